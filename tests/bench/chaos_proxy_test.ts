// The chaos harness's fault proxy (bench/chaos/_proxy.ts) between mqtt.js and mosquitto: it
// forwards MQTT untouched, and its faults (a cut at a named packet, a stall, a refusal) hit
// where asked. The framing is also checked on its own, against an echo server, with packets
// split byte by byte and packed several to a chunk.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createConnection, createServer, type Socket } from "node:net";
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { type FaultProxy, startFaultProxy } from "../../bench/chaos/_proxy.ts";
import { skipWithoutMosquitto, startMosquitto, type TestBroker } from "../../testing/broker.ts";
import { sleep, waitFor, within } from "../../testing/helpers.ts";

const needsMosquitto = { skip: skipWithoutMosquitto() };

/** Connects mqtt.js to `url` (no reconnecting: a cut must stay visible). */
function connect(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return within(
    mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...options }),
    10_000,
    `connecting to ${url}`,
  );
}

/** Resolves when `client`'s connection closes. */
function closeOf(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.once("close", () => resolve()));
}

/** The commands of the packets `client` receives from now on. */
function received(client: MqttClient): string[] {
  const commands: string[] = [];
  client.on("packetreceive", (packet) => commands.push(packet.cmd));
  return commands;
}

async function end(...clients: MqttClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.endAsync(true)));
}

/** What a scenario's test gets: mosquitto, the fault proxy in front of it, and its clients. */
interface Scenario {
  broker: TestBroker;
  proxy: FaultProxy;
  /** Connects mqtt.js to `url` like {@linkcode connect}; the client ends with the test. */
  connect(url: string, options?: IClientOptions): Promise<MqttClient>;
  /** Ends `client` (one connected some other way) with the test too; returns it. */
  owned(client: MqttClient): MqttClient;
}

/**
 * A test against mosquitto behind a fault proxy. Every client it connects is ended before the
 * proxy and the broker close, however the test ends, so a failed assertion leaves no socket open
 * to keep the runner waiting.
 */
function scenario(name: string, fn: (s: Scenario) => Promise<void>) {
  test(name, needsMosquitto, async () => {
    await using broker = await startMosquitto();
    await using proxy = await startFaultProxy(broker.port);
    const clients: MqttClient[] = [];
    const owned = (client: MqttClient) => {
      clients.push(client);
      return client;
    };
    try {
      await fn({
        broker,
        proxy,
        connect: async (url, options) => owned(await connect(url, options)),
        owned,
      });
    } finally {
      await end(...clients);
    }
  });
}

scenario(
  "a QoS 1 publish and subscribe pass through; the packets are counted both ways",
  async ({ proxy, connect }) => {
    assert.equal(proxy.url, `mqtt://127.0.0.1:${proxy.port}`);
    assert.equal(proxy.address, `127.0.0.1:${proxy.port}`);
    const client = await connect(proxy.url);
    await client.subscribeAsync("chaos/proxy/pass", { qos: 1 });
    const message = new Promise<string>((resolve) =>
      client.once("message", (_topic, payload) => resolve(payload.toString()))
    );
    await within(client.publishAsync("chaos/proxy/pass", "hello", { qos: 1 }), 5_000, "PUBACK");
    assert.equal(await within(message, 5_000, "the message"), "hello");
    // One PUBLISH each way, and each acknowledged by its receiver.
    await waitFor(() => proxy.stats.packets.puback === 2, "the client's PUBACK", 5_000);
    const { connect: connects, connack, subscribe, suback, publish } = proxy.stats.packets;
    assert.deepEqual({ connects, connack, subscribe, suback, publish }, {
      connects: 1,
      connack: 1,
      subscribe: 1,
      suback: 1,
      publish: 2,
    });
    assert.equal(proxy.stats.connections, 1);
    assert.equal(proxy.stats.cuts, 0);
  },
);

scenario(
  "cutAt('puback') cuts before the PUBACK: the publisher never gets it",
  async ({ proxy, connect }) => {
    const client = await connect(proxy.url);
    const packets = received(client);
    const closed = closeOf(client);
    const cut = proxy.cutAt("puback", { withinMs: 5_000 });
    let acknowledged = false;
    client.publish("chaos/proxy/puback", "x", { qos: 1 }, (error) => {
      if (!error) acknowledged = true;
    });
    assert.equal(await within(cut, 10_000, "the cut"), true);
    await within(closed, 5_000, "the client's close");
    assert.equal(packets.includes("puback"), false, `received ${packets}`);
    assert.equal(acknowledged, false);
    assert.equal(proxy.stats.cuts, 1);
  },
);

scenario(
  "cutAt('pubrec', { after: true }) lets the PUBREC through, then cuts",
  async ({ broker, proxy, connect }) => {
    const subscriber = await connect(broker.url);
    const publisher = await connect(proxy.url, { clientId: "chaos-proxy-q2", clean: false });
    await subscriber.subscribeAsync("chaos/proxy/q2", { qos: 2 });
    const messages: string[] = [];
    subscriber.on("message", (_topic, payload) => messages.push(payload.toString()));
    const packets = received(publisher);
    let messageId: number | undefined;
    publisher.on("packetsend", (packet) => {
      if (packet.cmd === "publish") messageId = packet.messageId;
    });
    const closed = closeOf(publisher);
    const cut = proxy.cutAt("pubrec", { after: true, withinMs: 5_000 });
    publisher.publish("chaos/proxy/q2", "exactly once", { qos: 2 });
    assert.equal(await within(cut, 10_000, "the cut"), true);
    await within(closed, 5_000, "the publisher's close");
    assert.ok(packets.includes("pubrec"), `received ${packets}`);
    assert.equal(packets.includes("pubcomp"), false, "the PUBREL never reached the broker");
    assert.equal(proxy.stats.packets.pubrel, undefined, "nothing passed after the cut");
    // mosquitto hands a QoS 2 message on at the PUBREL (MQTT 5 §4.3.3 allows either), so
    // the broker holding the PUBLISH shows as: the resumed session sends only a PUBREL for
    // its id, never the PUBLISH again, and the subscriber gets the message once.
    const resumed = await connect(broker.url, { clientId: "chaos-proxy-q2", clean: false });
    const completed = new Promise<void>((resolve) =>
      resumed.on("packetreceive", (packet) => packet.cmd === "pubcomp" && resolve())
    );
    assert.ok(messageId !== undefined);
    resumed.stream.write(Uint8Array.of(0x62, 0x02, messageId >> 8, messageId & 0xff));
    await within(completed, 5_000, "PUBCOMP");
    await waitFor(() => messages.length > 0, "the message at the subscriber", 5_000);
    await sleep(100);
    assert.deepEqual(messages, ["exactly once"]);
    assert.equal(proxy.stats.packets.publish, 1);
  },
);

scenario(
  "delay(500) stalls a round trip, then delivers every byte in order",
  async ({ proxy, connect }) => {
    const client = await connect(proxy.url);
    await client.subscribeAsync("chaos/proxy/delay", { qos: 0 });
    const messages: string[] = [];
    client.on("message", (_topic, payload) => messages.push(payload.toString()));
    const closed = { value: false };
    client.once("close", () => (closed.value = true));
    const started = Date.now();
    const released = proxy.delay(500);
    const sent = Array.from({ length: 20 }, (_, i) => `message ${i}`);
    for (const text of sent) client.publish("chaos/proxy/delay", text, { qos: 0 });
    await within(released, 5_000, "the release");
    await waitFor(() => messages.length === sent.length, "all 20 messages", 5_000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 400, `the round trip took ${elapsed} ms`);
    assert.deepEqual(messages, sent);
    assert.equal(closed.value, false);
    assert.equal(proxy.stats.delays, 1);
    assert.equal(proxy.stats.cuts, 0);
  },
);

scenario(
  "cutAt with withinMs and no traffic resolves false, and the arm is gone",
  async ({ proxy, connect }) => {
    const started = Date.now();
    assert.equal(await within(proxy.cutAt("publish", { withinMs: 200 }), 5_000, "the arm"), false);
    assert.ok(Date.now() - started >= 150);
    const client = await connect(proxy.url);
    await within(client.publishAsync("chaos/proxy/none", "x", { qos: 1 }), 5_000, "PUBACK");
    assert.equal(proxy.stats.cuts, 0);
  },
);

scenario(
  "refuse(300) closes a connection inside the window; one after it connects",
  async ({ proxy, connect, owned }) => {
    const refusing = proxy.refuse(300);
    // Not connectAsync: the attempt is meant to fail, and how it ends is what is checked.
    const early = owned(mqtt.connect(proxy.url, { reconnectPeriod: 0, connectTimeout: 5_000 }));
    const outcome = await within(
      new Promise<string>((resolve) => {
        early.once("connect", () => resolve("connected"));
        early.once("close", () => resolve("closed"));
      }),
      5_000,
      "the refused attempt",
    );
    assert.equal(outcome, "closed");
    await within(refusing, 5_000, "the end of the refusal");
    const late = await connect(proxy.url);
    assert.equal(late.connected, true);
    assert.equal(proxy.stats.connections, 1, "the refused one is not counted");
  },
);

scenario(
  "cutNow() cuts every connection and counts them; new ones pass",
  async ({ proxy, connect }) => {
    const first = await connect(proxy.url);
    const second = await connect(proxy.url);
    const closed = Promise.all([closeOf(first), closeOf(second)]);
    assert.equal(proxy.cutNow(), 2);
    await within(closed, 5_000, "both closes");
    assert.equal(proxy.stats.cuts, 2);
    const third = await connect(proxy.url);
    await within(third.publishAsync("chaos/proxy/after", "x", { qos: 1 }), 5_000, "PUBACK");
  },
);

/**
 * An echo server on 127.0.0.1: what a test sends through the proxy comes back through it;
 * `received` is every byte it got, `closes` how many of its connections closed.
 */
async function startEcho() {
  const sockets = new Set<Socket>();
  const got: number[] = [];
  let closes = 0;
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("close", () => {
      sockets.delete(socket);
      closes++;
    });
    socket.on("data", (chunk: Uint8Array) => {
      got.push(...chunk);
      socket.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    received: () => Uint8Array.from(got),
    closes: () => closes,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Opens a raw socket to `port`, and collects what comes back. */
async function rawSocket(port: number) {
  const socket = createConnection({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  const chunks: Uint8Array[] = [];
  socket.on("data", (chunk: Uint8Array) => chunks.push(chunk));
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  const bytes = () => new Uint8Array(chunks.flatMap((chunk) => [...chunk]));
  return { socket, closed, bytes };
}

type Echo = Awaited<ReturnType<typeof startEcho>>;
type RawSocket = Awaited<ReturnType<typeof rawSocket>>;

/** What an echo scenario's test gets: the echo server, the proxy in front of it, raw sockets. */
interface EchoScenario {
  echo: Echo;
  proxy: FaultProxy;
  /** Opens a raw socket to the proxy like {@linkcode rawSocket}; it is destroyed with the test. */
  open(): Promise<RawSocket>;
}

/**
 * A test of the framing alone: the fault proxy in front of an echo server, no broker. The sockets
 * are destroyed and both servers closed however the test ends, so nothing keeps the runner.
 */
function echoScenario(name: string, fn: (s: EchoScenario) => Promise<void>) {
  test(name, async () => {
    const echo = await startEcho();
    const proxy = await startFaultProxy(echo.port);
    const sockets: Socket[] = [];
    try {
      await fn({
        echo,
        proxy,
        open: async () => {
          const raw = await rawSocket(proxy.port);
          sockets.push(raw.socket);
          return raw;
        },
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      await proxy.close();
      await echo.close();
    }
  });
}

echoScenario(
  "framing holds whatever the chunking; a Remaining Length over 4 bytes cuts",
  async ({ proxy, open }) => {
    const raw = await open();
    // A PUBLISH of 300 bytes (Remaining Length in 2 bytes), then PINGREQ, PINGREQ, DISCONNECT.
    const body = new Uint8Array(300).map((_, i) => i & 0xff);
    const publish = Uint8Array.of(0x30, 300 & 0x7f | 0x80, 300 >> 7, ...body);
    const tail = Uint8Array.of(0xc0, 0x00, 0xc0, 0x00, 0xe0, 0x00);
    // Byte by byte for the PUBLISH, each its own write a little apart so TCP keeps them apart.
    for (const byte of publish.subarray(0, 8)) {
      raw.socket.write(Uint8Array.of(byte));
      await sleep(5);
    }
    raw.socket.write(publish.subarray(8));
    raw.socket.write(tail);
    const all = Uint8Array.of(...publish, ...tail);
    // Both directions count: the echo sends each packet back.
    await waitFor(() => proxy.stats.packets.disconnect === 2, "the echoed DISCONNECT", 5_000);
    await waitFor(() => raw.bytes().length === all.length, "every byte back", 5_000);
    assert.deepEqual(raw.bytes(), all);
    assert.deepEqual(proxy.stats.packets, { publish: 2, pingreq: 4, disconnect: 2 });
    // Four continuation bits in a row: not MQTT, so only that connection is cut.
    const other = await open();
    raw.socket.write(Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x01));
    await within(raw.closed, 5_000, "the malformed connection's close");
    assert.equal(other.socket.destroyed, false);
    assert.equal(proxy.stats.cuts, 1);
  },
);

echoScenario(
  "a cut at a packet in the middle of a chunk forwards exactly the bytes before (or through) it",
  async ({ echo, proxy, open }) => {
    const publish = Uint8Array.of(0x30, 0x05, 0x00, 0x01, 0x74, 0x68, 0x69);
    const pingreq = Uint8Array.of(0xc0, 0x00);
    const disconnect = Uint8Array.of(0xe0, 0x00);
    const chunk = Uint8Array.of(...publish, ...pingreq, ...disconnect);
    // after: false, then after: true, each on a connection of its own, the whole in one write.
    const expected = [publish, Uint8Array.of(...publish, ...pingreq)];
    for (const [i, after] of [false, true].entries()) {
      const raw = await open();
      const cut = proxy.cutAt("pingreq", { after, withinMs: 5_000 });
      raw.socket.write(chunk);
      assert.equal(await within(cut, 5_000, "the cut"), true);
      await within(raw.closed, 5_000, "the client's close");
      await waitFor(() => echo.closes() === i + 1, "the upstream close", 5_000);
      const from = i === 0 ? 0 : expected[0].length;
      assert.deepEqual(echo.received().subarray(from), expected[i], `after: ${after}`);
    }
    assert.equal(proxy.stats.cuts, 2);
  },
);

echoScenario(
  "overlapping delays hold until the later ends; close() settles what is pending",
  async ({ echo, proxy, open }) => {
    const raw = await open();
    const started = Date.now();
    const long = proxy.delay(300).then(() => Date.now() - started);
    const short = proxy.delay(100).then(() => Date.now() - started);
    raw.socket.write(Uint8Array.of(0xc0, 0x00));
    await sleep(150);
    assert.equal(echo.received().length, 0, "held while the longer delay lasts");
    const [longMs, shortMs] = await within(Promise.all([long, short]), 5_000, "the release");
    assert.ok(longMs >= 280 && shortMs >= 280, `released at ${longMs} and ${shortMs} ms`);
    await waitFor(() => raw.bytes().length === 2, "the PINGREQ back", 5_000);
    assert.equal(proxy.stats.delays, 2);
    const arm = proxy.cutAt("connect");
    const stall = proxy.delay(60_000);
    await proxy.close();
    assert.equal(await within(arm, 1_000, "the arm"), false);
    await within(stall, 1_000, "the delay");
    await within(raw.closed, 5_000, "the client's close");
  },
);
