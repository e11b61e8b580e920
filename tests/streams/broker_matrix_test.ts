// The core behaviours against every broker the tests can start: aedes (MQTT 3.1.1) over
// TCP and over WebSocket, mosquitto over MQTT 5, NATS server's MQTT listener and RabbitMQ's
// MQTT plugin. (Debian's mosquitto 2.0.11 will not open a websockets listener here: "Unable
// to start any listening sockets".) One broker a column, started before its tests (RabbitMQ
// takes about ten seconds to boot); each test has topics and client ids of its own. The
// matrix of docs/brokers.md is this file's outcome.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { MqttSink, MqttSource } from "../../mod.ts";
import {
  skipWithoutMosquitto,
  startAedes,
  startMosquitto,
  startProxy,
  type TestBroker,
} from "../../testing/broker.ts";
import { skipWithoutNats, startNats } from "../../testing/nats.ts";
import { skipWithoutRabbitMQ, startRabbitMQ } from "../../testing/rabbitmq.ts";
import { LOSSLESS, readN, sleep, waitFor, within } from "../../testing/helpers.ts";

type QoS = 0 | 1 | 2;

/** A broker of the matrix and what it is known to support. */
interface MatrixBroker {
  name: string;
  start(): Promise<TestBroker>;
  skip?(): string | false;
  /** The QoS levels it delivers end to end. */
  qos: QoS[];
  /** Query parameters every connection to it adds (the MQTT version). */
  query: string;
}

const BROKERS: MatrixBroker[] = [
  { name: "aedes (MQTT 3.1.1, TCP)", start: () => startAedes(), qos: [0, 1, 2], query: "" },
  {
    name: "aedes (MQTT 3.1.1, ws://)",
    start: () => startAedes({ transport: "ws" }),
    qos: [0, 1, 2],
    query: "",
  },
  {
    name: "mosquitto (MQTT 5, TCP)",
    start: () => startMosquitto({ lines: LOSSLESS }),
    skip: skipWithoutMosquitto,
    qos: [0, 1, 2],
    query: "&mqttVersion=5",
  },
  {
    name: "NATS (MQTT 3.1.1, TCP, ack_wait 2 s)",
    start: () => startNats(),
    skip: skipWithoutNats,
    qos: [0, 1],
    query: "",
  },
  {
    // It grants QoS 2 as QoS 1 (tests/streams/rabbitmq_test.ts).
    name: "RabbitMQ 3.10 (MQTT 3.1.1, TCP)",
    start: () => startRabbitMQ(),
    skip: skipWithoutRabbitMQ,
    qos: [0, 1],
    query: "",
  },
];

const uniqueId = () => `mx_${crypto.randomUUID().slice(0, 8)}`;

/** Publishes `payloads` through a new sink and closes it (every publish confirmed). */
async function publish(url: string, payloads: string[], extra = "") {
  const sink = new MqttSink(`${url}${extra}`);
  const writer = sink.getWriter();
  for (const payload of payloads) await writer.write(payload);
  await writer.close();
}

const numbered = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `m${from + i}`);

for (const broker of BROKERS) {
  describe(`broker matrix: ${broker.name}`, { skip: broker.skip?.() }, () => {
    let server: TestBroker;
    before(async () => {
      server = await broker.start();
    }, { timeout: 120_000 });
    after(async () => {
      await server?.close();
    });

    for (const qos of broker.qos) {
      test(`round-trips 50 messages at QoS ${qos}, in order`, async () => {
        const topic = `matrix/${uniqueId()}`;
        const query = `?topic=${topic}&qos=${qos}${broker.query}`;
        await using source = new MqttSource(`${server.url}${query}`);
        await source.ready;
        await publish(server.url, numbered(0, 50), query);
        const messages = await readN(source, 50);
        assert.deepEqual(messages.map((m) => m.text()), numbered(0, 50));
        assert.ok(messages.every((m) => m.qos === qos), `QoS ${messages.map((m) => m.qos)}`);
      });
    }

    test("resumes a persistent session: QoS 1 messages sent while the source was away arrive", async () => {
      const topic = `matrix/${uniqueId()}`;
      const url = `${server.url}?topic=${topic}&qos=1&clientId=${uniqueId()}${broker.query}`;
      const first = new MqttSource(url);
      await first.ready;
      await publish(server.url, numbered(0, 5), `?topic=${topic}&qos=1${broker.query}`);
      assert.deepEqual((await readN(first, 5)).map((m) => m.text()), numbered(0, 5));
      await first.cancel();
      await publish(server.url, numbered(5, 25), `?topic=${topic}&qos=1${broker.query}`);
      await using second = new MqttSource(url);
      const missed = await readN(second, 20);
      assert.deepEqual(missed.map((m) => m.text()), numbered(5, 25));
    });

    test("a source that subscribes after a retained publish receives it, marked retained", async () => {
      const topic = `matrix/${uniqueId()}`;
      const sink = new MqttSink(`${server.url}?topic=${topic}&qos=1${broker.query}`);
      const writer = sink.getWriter();
      await writer.write({ payload: "last known value", retain: true });
      await writer.close();
      await using source = new MqttSource(`${server.url}?topic=${topic}&qos=1${broker.query}`);
      const [message] = await readN(source, 1);
      assert.equal(message.text(), "last known value");
      assert.equal(message.retain, true);
    });

    test("reconnects after the connection drops and loses no QoS 1 message", async () => {
      const scheme = new URL(server.url).protocol.slice(0, -1);
      await using proxy = await startProxy(server.port, { scheme });
      const topic = `matrix/${uniqueId()}`;
      await using source = new MqttSource(
        `${proxy.url}?topic=${topic}&qos=1&clientId=${uniqueId()}&connectBackoff=100${broker.query}`,
      );
      await source.ready;
      const query = `?topic=${topic}&qos=1&connectBackoff=100${broker.query}`;
      await publish(proxy.url, numbered(0, 20), query);
      const seen = new Set((await readN(source, 10)).map((m) => m.text()));
      proxy.drop();
      await publish(proxy.url, numbered(20, 40), query);
      // At least once: what was in flight when the connection dropped may come twice.
      for (let reads = 0; seen.size < 40 && reads < 100; reads++) {
        seen.add((await readN(source, 1))[0].text());
      }
      assert.deepEqual([...seen].sort(), numbered(0, 40).sort());
      // mqtt.js hands on the messages that follow a CONNACK while it still sends the session's
      // unacknowledged publishes again, before it says 'connect', where a reconnect is counted.
      await waitFor(() => source.stats.reconnects >= 1, "the reconnect to be counted", 5_000);
    });
  });
}

describe("broker matrix: what NATS does not support", { skip: skipWithoutNats() }, () => {
  test("a QoS 2 subscription is granted QoS 1, and messages arrive at QoS 1", async () => {
    await using server = await startNats();
    const topic = `matrix/${uniqueId()}`;
    await using source = new MqttSource(`${server.url}?topic=${topic}&qos=2`);
    await source.ready;
    await publish(server.url, numbered(0, 5), `?topic=${topic}&qos=1`);
    const messages = await readN(source, 5);
    assert.deepEqual(messages.map((m) => m.qos), [1, 1, 1, 1, 1]);
  });

  test("unacknowledged QoS 1 messages come again only after ack_wait, not when the session resumes (MQTT 3.1.1 §4.4 asks for at once)", async () => {
    await using server = await startNats({ ackWait: "3s" });
    await using proxy = await startProxy(server.port);
    const topic = `matrix/${uniqueId()}`;
    // ack=manual and no ack(): the five stay unacknowledged.
    await using source = new MqttSource(
      `${proxy.url}?topic=${topic}&qos=1&clientId=${uniqueId()}&ack=manual&connectBackoff=100`,
    );
    await source.ready;
    await publish(server.url, numbered(0, 5), `?topic=${topic}&qos=1`);
    assert.deepEqual((await readN(source, 5)).map((m) => m.text()), numbered(0, 5));
    proxy.drop();
    const reader = source.getReader();
    const next = reader.read();
    const early = await Promise.race([next, sleep(1_000).then(() => "nothing yet" as const)]);
    assert.equal(early, "nothing yet", "NATS resent at once: this test's premise changed");
    assert.ok(source.stats.reconnects >= 1, `reconnects: ${source.stats.reconnects}`);
    const { value } = await within(next, 10_000, "the copy after ack_wait");
    assert.equal(value!.text(), "m0");
    assert.equal(value!.dup, true);
    reader.releaseLock();
  });

  test("a QoS 2 publish errors the sink with MqttConnectError: the broker closes the connection", async () => {
    await using server = await startNats();
    const sink = new MqttSink(
      `${server.url}?topic=matrix/${uniqueId()}&qos=2&connectAttempts=2&connectBackoff=50`,
    );
    const writer = sink.getWriter();
    const outcome = (async () => {
      await writer.write("exactly once?");
      await writer.close();
    })();
    await assert.rejects(within(outcome, 15_000, "the QoS 2 sink's failure"), (error: Error) => {
      assert.equal(error.name, "MqttConnectError");
      assert.match(error.message, /accepted the connection \(CONNACK\) and then closed it/);
      return true;
    });
    assert.match(server.log(), /publish QoS=2 not supported/);
  });
});
