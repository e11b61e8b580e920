// Following a broker cluster when a node dies: three NATS Server nodes (sessions and QoS 1
// messages replicated through JetStream, MQTT served by each), one connection string that
// names them all, and a node killed with SIGKILL while messages flow.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MqttConnectError, MqttSink, MqttSource } from "../../mod.ts";
import { freePort, skipWithoutMosquitto, startMosquitto } from "../../testing/broker.ts";
import { startHostile } from "../../testing/hostile.ts";
import { type NatsCluster, skipWithoutNats, startNatsCluster } from "../../testing/nats.ts";
import { failureOf, LOSSLESS, sleep, within } from "../../testing/helpers.ts";

const COUNT = 5_000;
/** The whole of one test's traffic is bounded by this. */
const DEADLINE_MS = 120_000;

/** The node a stream is on now, by its stats. */
function nodeOf(cluster: NatsCluster, stats: { broker: string | undefined }) {
  const node = cluster.nodes.find((n) => n.url === stats.broker);
  assert.ok(node, `the stream is on ${stats.broker}, not a node of the cluster`);
  return node;
}

/** Writes `count` QoS 1 payloads `0…count-1` through `url`; resolves once all are acknowledged. */
async function publishAll(url: string, count: number, from = 0): Promise<void> {
  await ReadableStream.from(
    Array.from({ length: count }, (_, i) => String(from + i)),
  ).pipeTo(new MqttSink(url));
}

/**
 * Reads `reader` until every payload `0…count-1` was seen or the deadline passes, calling
 * `seen` after each; returns how many arrived more than once.
 */
async function readAll(
  reader: ReadableStreamDefaultReader<{ text(): string; ack(): void }>,
  count: number,
  each: (distinct: number) => void | Promise<void> = () => {},
): Promise<{ distinct: Set<string>; duplicates: number }> {
  const distinct = new Set<string>();
  let duplicates = 0;
  const deadline = Date.now() + DEADLINE_MS;
  while (distinct.size < count && Date.now() < deadline) {
    const { value, done } = await within(reader.read(), 60_000, `message ${distinct.size + 1}`);
    if (done) break;
    const text = value.text();
    if (distinct.has(text)) duplicates++;
    else distinct.add(text);
    await each(distinct.size);
  }
  return { distinct, duplicates };
}

/** A callback for {@linkcode readAll} that SIGKILLs `node` once, as message `at` arrives. */
function killAt(at: number, node: { kill(): Promise<unknown> }) {
  let killed = false;
  return async (distinct: number) => {
    if (killed || distinct !== at) return;
    killed = true;
    await node.kill();
  };
}

describe("failover across a NATS cluster", { skip: skipWithoutNats() }, () => {
  test("a source (QoS 1, ack=read, persistent session) reads every message after its node is killed", async () => {
    await using cluster = await startNatsCluster();
    const source = new MqttSource(`${cluster.url}?topic=ha/source&qos=1&clientId=ha-source`);
    const reader = source.getReader();
    try {
      await within(source.ready, 30_000, "the source's subscription");
      const first = nodeOf(cluster, source.stats);
      assert.equal(first, cluster.nodes[0], "the first broker of the list is tried first");
      // Published through another node than the one the source reads from.
      const publishing = publishAll(`${cluster.nodes[1].url}?topic=ha/source&qos=1`, COUNT);
      const { distinct, duplicates } = await readAll(reader, COUNT, killAt(1_000, first));
      await within(publishing, 60_000, "the publisher");
      assert.equal(distinct.size, COUNT, `${COUNT - distinct.size} messages never arrived`);
      assert.equal(source.stats.failovers, 1);
      assert.notEqual(source.stats.broker, first.url);
      assert.ok(source.stats.reconnects >= 1);
      // Duplicates are counted, not hidden: every arrival is in `received`.
      assert.ok(source.stats.received >= COUNT + duplicates);
      console.log(
        `source failover: ${COUNT} of ${COUNT} arrived, ${duplicates} duplicates, now on node ${
          cluster.nodes.indexOf(nodeOf(cluster, source.stats)) + 1
        }`,
      );
    } finally {
      await reader.cancel();
    }
  });

  test("a sink's resolved writes all reach a subscriber on another node after its node is killed", async () => {
    await using cluster = await startNatsCluster();
    const subscriber = new MqttSource(
      `${cluster.nodes[1].url}?topic=ha/sink&qos=1&clientId=ha-sink-reader`,
    );
    const reader = subscriber.getReader();
    try {
      await within(subscriber.ready, 30_000, "the subscriber");
      // Read as it is written: a message NATS sent and saw unacknowledged for ack_wait
      // (2 s here) it sends again, which a reader that waits would see as duplicates.
      const reading = readAll(reader, COUNT);
      reading.catch(() => {}); // awaited below; a failure before that is not unhandled
      const sink = new MqttSink(`${cluster.url}?topic=ha/sink&qos=1`);
      const writer = sink.getWriter();
      // A second sink that differs only in its topic shares the cached connection.
      const other = new MqttSink(`${cluster.url}?topic=ha/other&qos=1`);
      const otherWriter = other.getWriter();
      await otherWriter.write("before");
      const resolved = new Set<string>();
      let killed: string | undefined;
      for (let i = 0; i < COUNT; i++) {
        await within(writer.ready, 60_000, `room for write ${i}`);
        const payload = String(i);
        writer.write(payload).then(() => resolved.add(payload), () => {});
        if (i === 1_000) {
          const node = nodeOf(cluster, sink.stats);
          killed = node.url;
          await node.kill();
        }
      }
      await within(writer.close(), 60_000, "the sink to close");
      await otherWriter.write("after");
      await within(otherWriter.close(), 60_000, "the other sink to close");
      // They moved together: one connection.
      assert.equal(other.stats.broker, sink.stats.broker);
      assert.equal(other.stats.failovers, 1);
      assert.equal(resolved.size, COUNT, "every write resolved");
      assert.equal(sink.stats.failovers, 1);
      assert.notEqual(sink.stats.broker, killed);
      const { distinct, duplicates } = await reading;
      const missing = [...resolved].filter((payload) => !distinct.has(payload));
      assert.deepEqual(missing.slice(0, 10), [], `${missing.length} resolved writes never arrived`);
      console.log(
        `sink failover: ${distinct.size} of ${COUNT} arrived, ${duplicates} duplicates, ${sink.stats.retried} publishes sent again`,
      );
    } finally {
      await reader.cancel();
    }
  });

  test("a killed node restarted rejoins, and a new stream lands on it", async () => {
    await using cluster = await startNatsCluster();
    const [node1, node2] = cluster.nodes;
    await node1.kill();
    // While it is down, a stream lands on another node: the next one, or the one after when
    // the next refuses the SUBSCRIBE while the cluster elects new leaders (SUBACK 0x80).
    const during = new MqttSource(`${cluster.url}?topic=ha/back&qos=1`);
    await within(during.ready, 60_000, "a source while node 1 is down");
    assert.notEqual(during.stats.broker, node1.url);
    assert.ok(nodeOf(cluster, during.stats).alive);
    await during.cancel();
    await node1.restart();
    const source = new MqttSource(`${cluster.url}?topic=ha/back&qos=1&clientId=ha-back`);
    const reader = source.getReader();
    try {
      await within(source.ready, 30_000, "a source after the restart");
      assert.equal(source.stats.broker, node1.url, "the first broker of the list, back");
      await publishAll(`${node2.url}?topic=ha/back&qos=1`, 10);
      const { distinct } = await readAll(reader, 10);
      assert.equal(distinct.size, 10);
    } finally {
      await reader.cancel();
    }
  });

  test("with every node down, MqttConnectError names each broker and why, without the password", async () => {
    await using cluster = await startNatsCluster();
    for (const node of cluster.nodes) await node.kill();
    const password = "n0t-in-the-message";
    const url = cluster.url.replace("mqtt://", `mqtt://user:${password}@`);
    const source = new MqttSource(`${url}?topic=t&connectAttempts=2&connectBackoff=50`);
    const error = await failureOf(source, 30_000);
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.equal(error.attempts, 2);
    assert.match(error.message, /any of 3 brokers after 2 attempts/);
    for (const node of cluster.nodes) {
      assert.match(error.message, new RegExp(`${node.url}: nothing accepts connections there`));
    }
    assert.ok(!error.message.includes(password));
    assert.ok(!String(error.stack).includes(password));
  });

  test(
    "a bridge (cluster → mosquitto, ack=manual) loses nothing when its cluster node dies",
    { skip: skipWithoutMosquitto() },
    async () => {
      const count = 2_000;
      await using cluster = await startNatsCluster();
      await using mosquitto = await startMosquitto({ lines: LOSSLESS });
      const out = new MqttSource(`${mosquitto.url}?topic=ha/bridge&qos=1&clientId=ha-out`);
      const outReader = out.getReader();
      const source = new MqttSource(
        `${cluster.url}?topic=ha/bridge&qos=1&clientId=ha-bridge&ack=manual`,
      );
      const stop = new AbortController();
      try {
        await within(Promise.all([out.ready, source.ready]), 30_000, "the subscriptions");
        const first = nodeOf(cluster, source.stats);
        const bridged = source.pipeTo(new MqttSink(`${mosquitto.url}?topic=ha/bridge&qos=1`), {
          signal: stop.signal,
        });
        bridged.catch(() => {});
        const publishing = publishAll(`${cluster.nodes[1].url}?topic=ha/bridge&qos=1`, count);
        const { distinct, duplicates } = await readAll(outReader, count, killAt(500, first));
        await within(publishing, 60_000, "the publisher");
        assert.equal(distinct.size, count, `${count - distinct.size} messages lost`);
        assert.equal(source.stats.failovers, 1);
        console.log(`bridge failover: ${count} of ${count} arrived, ${duplicates} duplicates`);
      } finally {
        stop.abort();
        if (!source.locked) await source.cancel();
        await outReader.cancel();
      }
    },
  );
});

describe("failover across independent brokers", { skip: skipWithoutMosquitto() }, () => {
  test("a source whose mosquitto dies subscribes again on the other, where new messages arrive", async () => {
    await using a = await startMosquitto();
    await using b = await startMosquitto();
    const source = new MqttSource(
      `mqtt://127.0.0.1:${a.port},127.0.0.1:${b.port}?topic=ha/solo&qos=1&clientId=ha-solo`,
    );
    const reader = source.getReader();
    try {
      await within(source.ready, 10_000, "the source on the first broker");
      assert.equal(source.stats.broker, a.url);
      await publishAll(`${a.url}?topic=ha/solo&qos=1`, 1);
      assert.equal((await within(reader.read(), 10_000, "a message")).value?.text(), "0");
      await a.close();
      // The second broker has no session: the source subscribes there, or nothing arrives.
      const deadline = Date.now() + 30_000;
      while (source.stats.broker !== b.url && Date.now() < deadline) await sleep(20);
      assert.equal(source.stats.broker, b.url);
      assert.equal(source.stats.failovers, 1);
      // Published until one arrives: the SUBSCRIBE may still be on its way.
      const next = reader.read();
      let got: string | undefined;
      for (let i = 1; i <= 50 && got === undefined; i++) {
        await publishAll(`${b.url}?topic=ha/solo&qos=1`, 1, i);
        got = await Promise.race([
          next.then(({ value }) => value?.text()),
          sleep(200).then(() => undefined),
        ]);
      }
      assert.ok(got !== undefined, "nothing arrived on the second broker");
    } finally {
      await reader.cancel();
    }
  });

  test("a silent first broker holds the source for its share of connectionTimeout, then the next one serves it", async () => {
    // Accepts TCP, takes the CONNECT, never answers: a hung node, or a port forwarded to nothing.
    await using silent = await startHostile();
    await using broker = await startMosquitto();
    const down = await freePort();
    const connectionTimeout = 6;
    const source = new MqttSource(
      `mqtt://127.0.0.1:${silent.port},127.0.0.1:${broker.port},127.0.0.1:${down}?topic=ha/silent&qos=1&connectionTimeout=${connectionTimeout}`,
    );
    const started = performance.now();
    try {
      await within(source.ready, 3 * connectionTimeout * 1000, "the source on the second broker");
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `silent first of 3 brokers, connectionTimeout=${connectionTimeout} s: connected after ${
          seconds.toFixed(2)
        } s`,
      );
      assert.equal(source.stats.broker, broker.url);
      assert.equal(silent.connections, 1);
      // Its share: connectionTimeout ÷ 3 brokers = 2 s, not the whole 6 s.
      assert.ok(seconds >= 1.9, `the silent broker was given only ${seconds} s`);
      assert.ok(seconds < 4, `the silent broker held the source ${seconds} s`);
    } finally {
      await source.cancel();
    }
  });
});
