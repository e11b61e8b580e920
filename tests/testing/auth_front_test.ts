// The SCRAM-SHA-256 front of testing/auth_front.ts checked with plain mqtt.js against a real
// mosquitto: MQTT 5 enhanced authentication (§4.12) and re-authentication (§4.12.1) on a live
// connection with messages flowing, the refusals a broker sends, and passwords that rotate.
// mqtt.js answers the broker's AUTH 0x18 through `handleAuth` (handlers/auth.js), and has no
// public call to start a re-authentication: the tests send AUTH 0x19 with `_sendPacket`.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { once } from "node:events";
import { createConnection } from "node:net";
import mqtt, {
  type IClientOptions,
  type IConnackPacket,
  type IDisconnectPacket,
  type MqttClient,
} from "mqtt";
import { skipWithoutMosquitto, startMosquitto } from "../../testing/broker.ts";
import { LOSSLESS, waitFor, within } from "../../testing/helpers.ts";
import { startAuthFront } from "../../testing/auth_front.ts";
import { ScramClient } from "../../testing/scram.ts";

/** mqtt-packet's AUTH packet (mqtt.js does not re-export its type). */
type IAuthPacket = Parameters<MqttClient["handleAuth"]>[0];

const METHOD = "SCRAM-SHA-256";
const CONTINUE = 0x18, REAUTHENTICATE = 0x19, NOT_AUTHORIZED = 0x87, BAD_METHOD = 0x8c;

/** An mqtt.js MQTT 5 client that authenticates with SCRAM and can re-authenticate. */
interface ScramMqtt {
  client: MqttClient;
  /** The CONNACK, once its server-final-message is verified. */
  connack: Promise<IConnackPacket>;
  /** Re-authenticates with `password`: the AUTH 0x00, once its server-final is verified. */
  reauthenticate(password: string): Promise<IAuthPacket>;
}

/** The first of `client`'s `connect` and `error`; a refusal rejects with mqtt.js's error. */
function connackOf(client: MqttClient): Promise<IConnackPacket> {
  const settled = new Promise<IConnackPacket>((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  return within(settled, 5_000, "a CONNACK");
}

/** Connects to `url` as `user` with `password`, answering the front's challenges with SCRAM. */
function connectScram(
  url: string,
  user: string,
  password: string,
  options: IClientOptions = {},
): ScramMqtt {
  let scram = new ScramClient(user, password);
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...options,
    properties: {
      authenticationMethod: METHOD,
      authenticationData: Buffer.from(scram.first()),
      ...options.properties,
    },
  });
  let onSuccess = (_packet: IAuthPacket) => {};
  // An AUTH 0x18 carries a server-first-message, an AUTH 0x00 a server-final-message.
  client.handleAuth = (packet, callback) => {
    const data = packet.properties?.authenticationData ?? Buffer.alloc(0);
    if (packet.reasonCode !== CONTINUE) return (onSuccess(packet), callback());
    scram.final(data).then((final) => {
      const properties = { authenticationMethod: METHOD, authenticationData: Buffer.from(final) };
      callback(undefined, { cmd: "auth", reasonCode: CONTINUE, properties });
    }, (error: Error) => callback(error));
  };
  const connack = connackOf(client).then(async (packet) => {
    await scram.verify(packet.properties?.authenticationData ?? Buffer.alloc(0));
    return packet;
  });
  const reauthenticate = (newPassword: string) => {
    scram = new ScramClient(user, newPassword);
    const exchange = scram;
    const done = new Promise<IAuthPacket>((resolve, reject) => {
      onSuccess = (packet) => {
        const data = packet.properties?.authenticationData ?? Buffer.alloc(0);
        exchange.verify(data).then(() => resolve(packet), reject);
      };
      client.once(
        "disconnect",
        (packet) => reject(Object.assign(new Error("DISCONNECT"), { packet })),
      );
    });
    const properties = {
      authenticationMethod: METHOD,
      authenticationData: Buffer.from(scram.first()),
    };
    (client as unknown as { _sendPacket(packet: IAuthPacket): void })
      ._sendPacket({ cmd: "auth", reasonCode: REAUTHENTICATE, properties });
    return within(done, 5_000, "a re-authentication");
  };
  return { client, connack, reauthenticate };
}

/** Ends `client`, within 5 s. */
const end = (client: MqttClient) => within(client.endAsync(), 5_000, "mqtt.js end");

describe("the SCRAM-SHA-256 front before mosquitto", { skip: skipWithoutMosquitto() }, () => {
  let broker: Awaited<ReturnType<typeof startMosquitto>>;
  before(async () => {
    broker = await startMosquitto({ lines: LOSSLESS });
  });
  after(async () => {
    await broker?.close();
  });

  test("a client that proves its password publishes and receives a QoS 1 message, and checks the broker's proof", async () => {
    await using front = await startAuthFront({
      upstreamPort: broker.port,
      users: { alice: "s3cret" },
    });
    const { client, connack } = connectScram(front.url, "alice", "s3cret");
    try {
      const packet = await connack; // rejects unless the server-final-message verifies
      assert.equal(packet.reasonCode, 0);
      assert.equal(packet.properties?.authenticationMethod, METHOD);
      assert.ok(packet.properties?.receiveMaximum, "mosquitto's own CONNACK properties stay");
      await within(client.subscribeAsync("scram/a", { qos: 1 }), 5_000, "SUBACK");
      const received = new Promise<[string, Buffer]>((resolve) =>
        client.once("message", (topic, payload) => resolve([topic, payload]))
      );
      await within(
        client.publishAsync("scram/a", "through mosquitto", { qos: 1 }),
        5_000,
        "PUBACK",
      );
      const [topic, payload] = await within(received, 5_000, "the message");
      assert.deepEqual([topic, payload.toString()], ["scram/a", "through mosquitto"]);
      assert.deepEqual({ ...front.counters }, {
        authentications: 1,
        reauthentications: 0,
        refused: 0,
      });
    } finally {
      await end(client);
    }
  });

  test("a wrong password gets CONNACK 0x87 Not authorized", async () => {
    await using front = await startAuthFront({
      upstreamPort: broker.port,
      users: { alice: "s3cret" },
    });
    const { client, connack } = connectScram(front.url, "alice", "guess");
    try {
      await assert.rejects(connack, (error: { code?: number }) => error.code === NOT_AUTHORIZED);
      assert.deepEqual({ ...front.counters }, {
        authentications: 0,
        reauthentications: 0,
        refused: 1,
      });
    } finally {
      await end(client);
    }
  });

  test("after a password rotation a new connection needs the new password", async () => {
    await using front = await startAuthFront({
      upstreamPort: broker.port,
      users: { alice: "one" },
    });
    front.setPassword("alice", "two");
    const old = connectScram(front.url, "alice", "one");
    const rotated = connectScram(front.url, "alice", "two");
    try {
      await assert.rejects(
        old.connack,
        (error: { code?: number }) => error.code === NOT_AUTHORIZED,
      );
      assert.equal((await rotated.connack).reasonCode, 0);
    } finally {
      await Promise.all([end(old.client), end(rotated.client)]);
    }
  });

  test("a CONNECT without Authentication Data gets an empty challenge, answered with the client-first-message", async () => {
    await using front = await startAuthFront({
      upstreamPort: broker.port,
      users: { alice: "s3cret" },
    });
    const scram = new ScramClient("alice", "s3cret");
    const client = mqtt.connect(front.url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      properties: { authenticationMethod: METHOD },
    });
    const challenges: number[] = [];
    client.handleAuth = (packet, callback) => {
      const data = packet.properties?.authenticationData ?? Buffer.alloc(0);
      challenges.push(data.length);
      const answer = data.length ? scram.final(data) : Promise.resolve(scram.first());
      answer.then((bytes) => {
        const properties = { authenticationMethod: METHOD, authenticationData: Buffer.from(bytes) };
        callback(undefined, { cmd: "auth", reasonCode: CONTINUE, properties });
      }, (error: Error) => callback(error));
    };
    try {
      const connack = await connackOf(client);
      await scram.verify(connack.properties?.authenticationData ?? Buffer.alloc(0));
      assert.equal(challenges[0], 0, "the first challenge is empty");
      assert.equal(challenges.length, 2);
    } finally {
      await end(client);
    }
  });

  test("a CONNECT without the SCRAM-SHA-256 method gets CONNACK 0x8C Bad authentication method", async () => {
    await using front = await startAuthFront({
      upstreamPort: broker.port,
      users: { alice: "s3cret" },
    });
    const plain = mqtt.connect(front.url, { protocolVersion: 5, reconnectPeriod: 0 });
    const other = mqtt.connect(front.url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      properties: {
        authenticationMethod: "PLAIN",
        authenticationData: Buffer.from("\0alice\0s3cret"),
      },
    });
    try {
      // Both listen from the start: mqtt.js emits the refusal as soon as it reads it.
      for (const outcome of [plain, other].map(connackOf)) {
        await assert.rejects(outcome, (error: { code?: number }) => error.code === BAD_METHOD);
      }
      assert.equal(front.counters.refused, 2);
    } finally {
      await Promise.all([end(plain), end(other)]);
    }
  });

  test("a subscriber re-authenticates with a rotated password mid-stream and all 500 QoS 1 messages arrive", async () => {
    await using front = await startAuthFront({
      upstreamPort: broker.port,
      users: { sub: "first", pub: "p" },
    });
    const subscriber = connectScram(front.url, "sub", "first", {
      clientId: "scram-sub",
      clean: true,
    });
    const publisher = connectScram(front.url, "pub", "p", { clientId: "scram-pub" });
    const total = 500;
    try {
      await Promise.all([subscriber.connack, publisher.connack]);
      const seen = new Set<string>();
      subscriber.client.on("message", (_topic, payload) => seen.add(payload.toString()));
      await within(subscriber.client.subscribeAsync("scram/d", { qos: 1 }), 5_000, "SUBACK");
      // mosquitto refuses QoS 1 publishes past its Receive Maximum (20): a window of 10.
      const publishing = (async () => {
        for (let i = 0; i < total; i += 10) {
          const batch = Array.from(
            { length: Math.min(10, total - i) },
            (_, k) => publisher.client.publishAsync("scram/d", String(i + k), { qos: 1 }),
          );
          await Promise.all(batch);
        }
      })();
      await waitFor(() => seen.size >= 100, "the first 100 messages");
      front.setPassword("sub", "second");
      const atStart = seen.size;
      const success = await subscriber.reauthenticate("second"); // verifies the server-final
      const atSuccess = seen.size;
      assert.equal(success.reasonCode, 0);
      await within(publishing, 20_000, "500 PUBACKs");
      await waitFor(() => seen.size === total, `${total} messages (${seen.size} so far)`);
      console.log(`re-authentication from message ${atStart} to ${atSuccess} of ${total}`);
      assert.ok(atStart < total, "the re-authentication started before the stream ended");
      assert.ok(subscriber.client.connected, "the subscriber's connection is the same");
      assert.deepEqual({ ...front.counters }, {
        authentications: 2,
        reauthentications: 1,
        refused: 0,
      });
    } finally {
      await Promise.all([end(subscriber.client), end(publisher.client)]);
    }
  });

  test("a re-authentication with a wrong password gets DISCONNECT 0x87 and the connection closes", async () => {
    await using front = await startAuthFront({
      upstreamPort: broker.port,
      users: { alice: "s3cret" },
    });
    const { client, connack, reauthenticate } = connectScram(front.url, "alice", "s3cret");
    try {
      await connack;
      const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
      const refusal = await reauthenticate("guess").then(
        () => assert.fail("the re-authentication succeeded"),
        (error: { packet?: IDisconnectPacket }) => error.packet,
      );
      assert.equal(refusal?.reasonCode, NOT_AUTHORIZED);
      await within(closed, 5_000, "the connection to close");
      assert.deepEqual({ ...front.counters }, {
        authentications: 1,
        reauthentications: 0,
        refused: 1,
      });
    } finally {
      await end(client);
    }
  });

  test("close() ends the connections it relays and stops listening", async () => {
    const front = await startAuthFront({ upstreamPort: broker.port, users: { alice: "s3cret" } });
    const { client, connack } = connectScram(front.url, "alice", "s3cret");
    try {
      await connack;
      const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
      await within(front.close(), 5_000, "the front to close");
      await within(closed, 5_000, "the client's connection to close");
      const refused = createConnection({ port: front.port, host: "127.0.0.1" });
      await within(once(refused, "error"), 5_000, "a refused connection");
    } finally {
      await end(client);
    }
  });
});
