// What is specific to RabbitMQ 3.10 (Debian's rabbitmq-server with its rabbitmq_mqtt plugin), a
// broker that speaks MQTT 3.1.1 only and delivers at most QoS 1: what holds there (a long
// round trip in order, a persistent session's backlog, retained messages) and how it downgrades
// QoS 2, seen on the wire through a recording proxy. That it closes an MQTT 5 CONNECT without a
// CONNACK is tested in tests/connection/mqtt_version_test.ts. docs/brokers.md reports the outcome.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { MqttSink, MqttSource } from "../../mod.ts";
import { startProxy, type TestBroker } from "../../testing/broker.ts";
import { type Packet, PacketDecoder } from "../../testing/mqtt_codec.ts";
import { skipWithoutRabbitMQ, startRabbitMQ } from "../../testing/rabbitmq.ts";
import { readN, waitFor, within } from "../../testing/helpers.ts";

const uniqueId = () => `rmq_${crypto.randomUUID().slice(0, 8)}`;
const numbered = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `m${from + i}`);

/** Publishes `payloads` through a new sink to `url` and closes it (every publish confirmed). */
async function publish(url: string, payloads: string[]) {
  const sink = new MqttSink(url);
  const writer = sink.getWriter();
  await within(
    (async () => {
      for (const payload of payloads) await writer.write(payload);
      await writer.close();
    })(),
    60_000,
    `publishing ${payloads.length} messages`,
  );
  return sink;
}

/** A proxy to `port` that decodes what the broker sends back (MQTT 3.1.1), for the test to read. */
async function startRecorder(port: number) {
  const fromBroker: Packet[] = [];
  // A decoder for each connection's byte stream.
  const decoders = new WeakMap<object, PacketDecoder>();
  const proxy = await startProxy(port, {
    fromBroker: (chunk, connection) => {
      if (!decoders.has(connection)) decoders.set(connection, new PacketDecoder(4));
      fromBroker.push(...decoders.get(connection)!.push(chunk));
    },
  });
  return {
    url: proxy.url,
    /** The packets the broker sent, by command. */
    sent: <C extends Packet["cmd"]>(cmd: C) =>
      fromBroker.filter((p): p is Packet & { cmd: C } => p.cmd === cmd),
    [Symbol.asyncDispose]: () => proxy.close(),
  };
}

describe("RabbitMQ 3.10 over MQTT 3.1.1", { skip: skipWithoutRabbitMQ(), timeout: 300_000 }, () => {
  let rabbit: TestBroker;
  // One broker for the block: it takes about ten seconds to boot. Topics and client ids are
  // unique to each test.
  before(async () => {
    rabbit = await startRabbitMQ();
  }, { timeout: 120_000 });
  after(async () => {
    await rabbit?.close();
  });

  test("round-trips 1,000 QoS 1 messages through MqttSink and MqttSource, none lost and in order", async () => {
    const topic = `rmq/${uniqueId()}`;
    const query = `?topic=${topic}&qos=1&mqttVersion=4`;
    await using source = new MqttSource(`${rabbit.url}${query}`);
    await within(source.ready, 10_000, "the source's subscription");
    const started = Date.now();
    const [messages, sink] = await Promise.all([
      readN(source, 1_000, 60_000),
      publish(`${rabbit.url}${query}`, numbered(0, 1_000)),
    ]);
    console.log(`RabbitMQ: 1,000 QoS 1 messages round-tripped in ${Date.now() - started} ms`);
    assert.deepEqual(messages.map((m) => m.text()), numbered(0, 1_000));
    assert.ok(messages.every((m) => m.qos === 1 && !m.dup), "every message at QoS 1, none resent");
    assert.equal(sink.stats.acked, 1_000);
    await waitFor(() => source.stats.acked === 1_000, "the source's 1,000 PUBACKs");
  });

  test("resumes a persistent session: 100 QoS 1 messages queued while the source was away all arrive, in order", async () => {
    await using recorder = await startRecorder(rabbit.port);
    const topic = `rmq/${uniqueId()}`;
    const query = `?topic=${topic}&qos=1&clientId=${uniqueId()}&cleanSession=false`;
    const first = new MqttSource(`${rabbit.url}${query}`);
    await within(first.ready, 10_000, "the first source's subscription");
    await first.cancel();
    await publish(`${rabbit.url}?topic=${topic}&qos=1`, numbered(0, 100));
    // Read at once rather than after `ready`: a resumed session's backlog may come first.
    await using second = new MqttSource(`${recorder.url}${query}`);
    const missed = await readN(second, 100);
    assert.deepEqual(missed.map((m) => m.text()), numbered(0, 100));
    assert.ok(missed.every((m) => m.qos === 1));
    // RabbitMQ kept the session (a durable queue of its own) and says so in the CONNACK.
    assert.deepEqual(recorder.sent("connack").map((p) => p.sessionPresent), [true]);
  });

  test("a source that subscribes after a retained publish receives it, marked retained", async () => {
    const topic = `rmq/${uniqueId()}`;
    const sink = new MqttSink(`${rabbit.url}?topic=${topic}&qos=1`);
    const writer = sink.getWriter();
    await within(
      writer.write({ payload: "last known value", retain: true }).then(() => writer.close()),
      10_000,
      "the retained publish",
    );
    await using source = new MqttSource(`${rabbit.url}?topic=${topic}&qos=1`);
    const [message] = await readN(source, 1);
    assert.equal(message.text(), "last known value");
    assert.equal(message.retain, true);
    assert.equal(message.qos, 1);
  });

  test("a QoS 2 subscription is granted QoS 1 (SUBACK 1): a qos=2 source receives and acknowledges at QoS 1", async () => {
    await using recorder = await startRecorder(rabbit.port);
    const topic = `rmq/${uniqueId()}`;
    await using source = new MqttSource(`${recorder.url}?topic=${topic}&qos=2`);
    await within(source.ready, 10_000, "the QoS 2 subscription");
    // The library does not report granted QoS, so the SUBACK is read from the wire.
    assert.deepEqual(recorder.sent("suback").map((p) => p.codes), [[1]]);
    await publish(`${rabbit.url}?topic=${topic}&qos=1`, numbered(0, 5));
    const messages = await readN(source, 5);
    assert.deepEqual(messages.map((m) => m.text()), numbered(0, 5));
    assert.deepEqual(messages.map((m) => m.qos), [1, 1, 1, 1, 1]);
    await waitFor(() => source.stats.acked === 5, "the source's five PUBACKs");
  });

  test("a QoS 2 publish is answered with PUBACK, not PUBREC: a qos=2 sink's writes settle and arrive at QoS 1 (at least once, not exactly once)", async () => {
    await using recorder = await startRecorder(rabbit.port);
    const topic = `rmq/${uniqueId()}`;
    await using source = new MqttSource(`${rabbit.url}?topic=${topic}&qos=2`);
    await within(source.ready, 10_000, "the source's subscription");
    const sink = await publish(`${recorder.url}?topic=${topic}&qos=2`, numbered(0, 5));
    assert.equal(sink.stats.acked, 5);
    assert.equal(sink.stats.failed, 0);
    assert.equal(recorder.sent("puback").length, 5);
    assert.equal(recorder.sent("pubrec").length, 0);
    const messages = await readN(source, 5);
    assert.deepEqual(messages.map((m) => m.text()), numbered(0, 5));
    assert.deepEqual(messages.map((m) => m.qos), [1, 1, 1, 1, 1]);
  });
});
