import { describe, test } from "node:test";
import assert from "node:assert/strict";
import mqtt from "mqtt";
import {
  MqttConnectError,
  MqttMessage,
  MqttPublishError,
  type MqttRecord,
  MqttRecordError,
  MqttSink,
  type MqttSinkChunk,
  MqttSource,
} from "../../mod.ts";
import { cachedConnections } from "../../src/connection/cache.ts";
import {
  freePort,
  skipWithoutMosquitto,
  startAedes,
  startMosquitto,
} from "../../testing/broker.ts";
import { LOSSLESS, sleep, spawnScript, waitFor, within } from "../../testing/helpers.ts";

/**
 * A stream of `n` chunks made by `make`, which records the sink's in-flight count each
 * time the pipe asks for the next chunk.
 */
function watched(n: number, make: (i: number) => MqttSinkChunk, sink: () => MqttSink) {
  const seen = { maxInflight: 0 };
  let i = 0;
  const stream = new ReadableStream<MqttSinkChunk>({
    pull(controller) {
      seen.maxInflight = Math.max(seen.maxInflight, sink().stats.inflight);
      if (i < n) controller.enqueue(make(i++));
      else controller.close();
    },
  }, { highWaterMark: 0 });
  return { stream, seen };
}

/** A raw mqtt.js subscriber that collects what arrives on `filter`. */
async function collect(url: string, filter: string, options: mqtt.IClientOptions = {}) {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 100, ...options });
  const received: { topic: string; payload: Uint8Array; packet: mqtt.IPublishPacket }[] = [];
  client.on("message", (topic, payload, packet) => received.push({ topic, payload, packet }));
  await client.subscribeAsync(filter, { qos: 2 });
  return { received, client, [Symbol.asyncDispose]: () => client.endAsync(true) };
}

describe("MqttSink", { timeout: 120_000 }, () => {
  test("MqttSink publishes 10,000 QoS 1 records through pipeTo, all acknowledged when close() resolves, never more than maxInflight in flight", async () => {
    await using broker = await startAedes();
    let arrived = 0;
    broker.broker.on("publish", (packet, client) => {
      if (client && packet.topic === "load/q1") arrived++;
    });
    const maxInflight = 32;
    const sink = new MqttSink(`${broker.url}?topic=load/q1&qos=1&maxInflight=${maxInflight}`, {
      connectionCacheTimeout: 0,
    });
    const { stream, seen } = watched(10_000, (i) => `record ${i}`, () => sink);
    await stream.pipeTo(sink);
    assert.deepEqual(
      { ...sink.stats },
      {
        published: 10_000,
        acked: 10_000,
        retried: 0,
        reconnects: 0,
        broker: broker.url,
        failovers: 0,
        inflight: 0,
        failed: 0,
        recovered: 0,
        damaged: 0,
      },
    );
    assert.equal(arrived, 10_000);
    assert.ok(seen.maxInflight <= maxInflight, `in flight peaked at ${seen.maxInflight}`);
    assert.ok(seen.maxInflight > 1, `the window was never used: peak ${seen.maxInflight}`);
  });

  test("MqttSink keeps to the broker's Receive Maximum below maxInflight (mosquitto, MQTT 5)", {
    skip: skipWithoutMosquitto(),
  }, async () => {
    // mosquitto 2.0.11 advertises receiveMaximum 20 (max_inflight_messages) and refuses
    // QoS 2 publishes past it: none may be refused.
    await using broker = await startMosquitto({ lines: LOSSLESS });
    const sink = new MqttSink(`${broker.url}?topic=rm/q2&qos=2&maxInflight=200&mqttVersion=5`, {
      connectionCacheTimeout: 0,
    });
    const { stream, seen } = watched(2_000, (i) => `r${i}`, () => sink);
    await stream.pipeTo(sink);
    assert.equal(sink.stats.acked, 2_000);
    assert.equal(sink.stats.failed, 0);
    assert.ok(seen.maxInflight <= 20, `in flight peaked at ${seen.maxInflight}`);
    assert.ok(seen.maxInflight > 1, `the window was never used: peak ${seen.maxInflight}`);
  });

  test(
    "MqttSink publishes mixed topics, QoS 0/1/2, retained, text and bytes exactly, with MQTT 5 properties",
    {
      skip: skipWithoutMosquitto(),
    },
    async () => {
      await using broker = await startMosquitto({ lines: LOSSLESS });
      await using subscriber = await collect(broker.url, "mix/#", { protocolVersion: 5 });
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      const records: MqttRecord[] = [
        { topic: "mix/a", payload: "plain text, ünïcödé ✓", qos: 0 },
        { topic: "mix/b", payload: bytes, qos: 1 },
        { topic: "mix/c/deep", payload: new Uint8Array(0), qos: 2 },
        {
          topic: "mix/props",
          payload: '{"celsius":21.5}',
          qos: 1,
          properties: {
            userProperties: { tenant: "acme", tag: ["x", "y"] },
            contentType: "application/json",
            responseTopic: "mix/replies",
            correlationData: new Uint8Array([1, 2, 3]),
            messageExpiryInterval: 300,
            payloadFormatIndicator: true,
          },
        },
        { topic: "mix/retained", payload: "kept", qos: 1, retain: true },
      ];
      const sink = new MqttSink(`${broker.url}?topic=mix/default&qos=2&mqttVersion=5`, {
        connectionCacheTimeout: 0,
      });
      await ReadableStream.from<MqttSinkChunk>([...records, "bare text", bytes]).pipeTo(sink);
      await waitFor(() => subscriber.received.length === 7, "7 messages at the subscriber");
      const byTopic = new Map(subscriber.received.map((m) => [m.topic, m]));
      assert.equal(
        new TextDecoder().decode(byTopic.get("mix/a")!.payload),
        "plain text, ünïcödé ✓",
      );
      assert.deepEqual(new Uint8Array(byTopic.get("mix/b")!.payload), bytes);
      assert.equal(byTopic.get("mix/c/deep")!.payload.length, 0);
      assert.equal(byTopic.get("mix/c/deep")!.packet.qos, 2);
      const props = byTopic.get("mix/props")!.packet.properties!;
      assert.deepEqual({ ...props.userProperties }, { tenant: "acme", tag: ["x", "y"] });
      assert.equal(props.contentType, "application/json");
      assert.equal(props.responseTopic, "mix/replies");
      assert.deepEqual(new Uint8Array(props.correlationData!), new Uint8Array([1, 2, 3]));
      assert.equal(props.payloadFormatIndicator, true);
      assert.ok(props.messageExpiryInterval! <= 300 && props.messageExpiryInterval! > 290);
      const defaults = subscriber.received.filter((m) => m.topic === "mix/default");
      assert.deepEqual(defaults.map((m) => m.packet.qos), [2, 2]);
      assert.equal(new TextDecoder().decode(defaults[0].payload), "bare text");
      assert.deepEqual(new Uint8Array(defaults[1].payload), bytes);
      assert.deepEqual({ ...sink.stats }, {
        published: 7,
        acked: 6,
        retried: 0,
        reconnects: 0,
        broker: broker.url,
        failovers: 0,
        inflight: 0,
        failed: 0,
        recovered: 0,
        damaged: 0,
      });
      // A subscriber that comes later gets the retained message, flagged as retained.
      await using late = new MqttSource(broker.url, { topic: "mix/retained", mqttVersion: 5 });
      const reader = late.getReader();
      const { value } = await within(reader.read(), 5000, "the retained message");
      assert.equal(value!.text(), "kept");
      assert.equal(value!.retain, true);
      reader.releaseLock();
    },
  );

  test("MqttSink fails with MqttConnectError after connectAttempts when no broker listens", async () => {
    const port = await freePort();
    const sink = new MqttSink(`mqtt://127.0.0.1:${port}?topic=t`, {
      connectAttempts: 3,
      connectBackoff: 20,
    });
    const started = Date.now();
    const error = await within(
      ReadableStream.from(["a"]).pipeTo(sink).then(() => undefined, (e) => e),
      5000,
      "failing",
    );
    assert.ok(error instanceof MqttConnectError, `got ${error}`);
    assert.equal(error.code, "CONNECT_REFUSED");
    assert.equal(error.attempts, 3);
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  });

  test("MqttSink loses no acknowledged QoS 1 record when mosquitto restarts mid-stream", {
    skip: skipWithoutMosquitto(),
  }, async () => {
    await using broker = await startMosquitto({ persistence: true, lines: LOSSLESS });
    const subscriber = new MqttSource(broker.url, {
      topic: "restart/#",
      clientId: "restart-sub",
      qos: 1,
      maxInflight: 100,
    });
    await subscriber.ready;
    const seen = new Set<string>();
    const reading = (async () => {
      for await (const message of subscriber) {
        seen.add(message.text());
        if (seen.size === 3000) break;
      }
    })();
    const acked = new Set<string>();
    const sink = new MqttSink(`${broker.url}?topic=restart/x&qos=1&maxInflight=50`, {
      connectBackoff: 50,
      connectAttempts: 50,
      connectionCacheTimeout: 0,
    });
    let restarted: Promise<void> | undefined;
    const records = ReadableStream.from(Array.from({ length: 3000 }, (_, i) => `m${i}`))
      .pipeThrough(
        new TransformStream<string, MqttRecord>({
          transform(payload, controller) {
            if (payload === "m1000") restarted = broker.restart(300);
            controller.enqueue({ payload, ack: () => acked.add(payload) });
          },
        }),
      );
    await within(records.pipeTo(sink), 60_000, "publishing 3000 across a restart");
    await restarted;
    assert.equal(acked.size, 3000, "every record acknowledged to the caller");
    await within(reading, 30_000, `reading 3000 (got ${seen.size})`);
    const lost = [...acked].filter((payload) => !seen.has(payload));
    assert.deepEqual(lost, [], `${lost.length} acknowledged records lost`);
    console.log(`restart: sink ${JSON.stringify(sink.stats)}`);
    await subscriber.cancel();
  });

  test(
    "MqttSink loses no QoS 2 record when mosquitto drops it past its in-flight limit (MQTT 3.1.1, clean session)",
    {
      skip: skipWithoutMosquitto(),
    },
    async () => {
      // mosquitto's default max_inflight_messages is 20: a QoS 2 publisher over MQTT 3.1.1
      // (no Receive Maximum to keep to) with more in flight is disconnected, and its clean
      // session, PUBREC'd publishes included, is discarded. Replaying PUBREL would lose them.
      await using broker = await startMosquitto({ lines: LOSSLESS });
      const subscriber = await mqtt.connectAsync(broker.url, { clean: true });
      const seen = new Set<string>();
      subscriber.on("message", (_topic, payload) => seen.add(payload.toString()));
      await subscriber.subscribeAsync("limit/x", { qos: 2 });
      const sink = new MqttSink(`${broker.url}?topic=limit/x&qos=2&maxInflight=40`, {
        connectBackoff: 10,
        connectAttempts: 100,
        connectionCacheTimeout: 0,
      });
      const records = Array.from({ length: 300 }, (_, i) => `m${i}`);
      await within(ReadableStream.from(records).pipeTo(sink), 60_000, "publishing 300 at QoS 2");
      assert.equal(sink.stats.acked, 300);
      assert.equal(sink.stats.published, 300, "a resend is not counted as a new publish");
      assert.ok(sink.stats.retried > 0, "mosquitto did disconnect the sink");
      await waitFor(() => seen.size === 300, "all 300 delivered to the subscriber");
      assert.deepEqual(records.filter((record) => !seen.has(record)), []);
      console.log(`in-flight limit: sink ${JSON.stringify(sink.stats)}`);
      await subscriber.endAsync();
    },
  );

  test(
    "MqttSink errors with MqttPublishError naming the topic and 0x87 when an ACL denies it, without retrying",
    {
      skip: skipWithoutMosquitto(),
    },
    async () => {
      await using broker = await startMosquitto({
        users: { alice: "wonderland" },
        lines: ["acl_file %DIR%/acl"],
        files: { acl: "user alice\ntopic readwrite allowed/#\n" },
      });
      const url = broker.url.replace("mqtt://", "mqtt://alice:wonderland@");
      const sink = new MqttSink(`${url}?topic=allowed/a&qos=1&mqttVersion=5`, {
        publishAttempts: 5,
        publishBackoff: 1000,
        connectionCacheTimeout: 0,
      });
      const started = Date.now();
      const error = await within(
        ReadableStream.from<MqttSinkChunk>(["ok", { topic: "denied/x", payload: "no" }])
          .pipeTo(sink).then(() => undefined, (e) => e),
        5000,
        "the refusal",
      );
      assert.ok(error instanceof MqttPublishError, `got ${error}`);
      assert.equal(error.topic, "denied/x");
      assert.equal(error.reasonCode, 0x87);
      assert.match(error.message, /'denied\/x'.*0x87 \(not authorized\)/);
      assert.equal(sink.stats.retried, 0);
      assert.equal(sink.stats.failed, 1);
      assert.ok(Date.now() - started < 1000, "refused at once, without a backoff");
      const writer = sink.getWriter();
      await assert.rejects(writer.write("after"), (e) => e === error);
    },
  );

  test("MqttSink shares one connection between sinks with the same identity, closes it after connectionCacheTimeout and reuses it before", async () => {
    await using broker = await startAedes();
    let connects = 0;
    broker.broker.on("client", () => connects++);
    const url = `${broker.url}?topic=cache/a&qos=1&connectionCacheTimeout=400`;
    const before = cachedConnections();
    const a = new MqttSink(url);
    const b = new MqttSink(url, { topic: "cache/b", qos: 0, maxInflight: 5 });
    const wa = a.getWriter();
    const wb = b.getWriter();
    await Promise.all([wa.write("from a"), wb.write("from b")]);
    assert.equal(broker.broker.connectedClients, 1, "two sinks, one client");
    assert.equal(cachedConnections(), before + 1);
    // Another identity (credentials) gets its own client.
    const other = new MqttSink(url.replace("mqtt://", "mqtt://bob:pw@"));
    await ReadableStream.from(["from bob"]).pipeTo(other);
    assert.equal(broker.broker.connectedClients, 2);
    await Promise.all([wa.close(), wb.close()]);
    await sleep(200); // within the timeout: still open, and a new sink takes it
    assert.equal(broker.broker.connectedClients, 2);
    await ReadableStream.from(["from c"]).pipeTo(new MqttSink(url));
    assert.equal(connects, 2, "the third sink reused the cached client");
    await waitFor(() => broker.broker.connectedClients === 0, "both clients closed", 3000);
    assert.equal(cachedConnections(), before);
  });

  test("MqttSink's idle cached connection does not keep the process alive", async () => {
    await using broker = await startAedes();
    const child = spawnScript(new URL("./_sink_child.ts", import.meta.url), [
      `${broker.url}?topic=idle&qos=1`,
    ]);
    let output = "";
    child.stdout!.on("data", (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const code = await new Promise((resolve) => child.once("exit", resolve));
    clearTimeout(timer);
    assert.equal(code, 0, "the child had to be killed: something kept it alive");
    assert.match(output, /published 3/);
  });

  test("MqttSink gives every connection a unique clientId unless one is fixed", async () => {
    await using broker = await startAedes();
    const ids: string[] = [];
    broker.broker.on("client", (client) => ids.push(client.id));
    const write = (url: string) => ReadableStream.from(["x"]).pipeTo(new MqttSink(url));
    await write(`${broker.url}?topic=id&connectionCacheTimeout=0`);
    await write(`${broker.url}?topic=id&connectionCacheTimeout=0`);
    await write(`${broker.url}?topic=id&connectionCacheTimeout=0&clientId=fixed-sink`);
    assert.equal(ids.length, 3);
    assert.notEqual(ids[0], ids[1]);
    assert.equal(ids[2], "fixed-sink");
  });

  test("MqttSink bridges a manual-ack source to another broker at least once, across a SIGKILL of the bridge", async () => {
    await using from = await startAedes();
    await using to = await startAedes();
    await using arrived = await collect(to.url, "out/#");
    // The bridge's session on `from` must exist before the messages are published.
    const bridgeUrl = `${from.url}?topic=in/%23&qos=1&clientId=bridge&ack=manual&maxInflight=20`;
    const prime = new MqttSource(bridgeUrl);
    await prime.ready;
    await prime.cancel();
    const publisher = await mqtt.connectAsync(from.url);
    const total = 2000;
    for (let i = 0; i < total; i += 100) {
      await Promise.all(
        Array.from(
          { length: 100 },
          (_, j) => publisher.publishAsync(`in/${i + j}`, `m${i + j}`, { qos: 1 }),
        ),
      );
    }
    await publisher.endAsync();
    const bridge = () =>
      spawnScript(
        new URL("./_bridge_child.ts", import.meta.url),
        [bridgeUrl, `${to.url}?qos=1&maxInflight=20`],
        "inherit",
      );
    const distinct = () => new Set(arrived.received.map((m) => m.topic)).size;
    const first = bridge();
    await waitFor(() => distinct() >= 300, "300 messages over the bridge", 30_000);
    first.kill("SIGKILL");
    await new Promise((resolve) => first.once("exit", resolve));
    const killedAt = distinct();
    assert.ok(killedAt < total, `the bridge finished before it was killed (${killedAt})`);
    const second = bridge();
    try {
      await waitFor(() => distinct() === total, `all ${total} at the far side`, 60_000);
    } finally {
      second.kill("SIGKILL");
      await new Promise((resolve) => second.once("exit", resolve));
    }
    const topics = new Set(arrived.received.map((m) => m.topic));
    for (let i = 0; i < total; i++) assert.ok(topics.has(`out/in/${i}`), `out/in/${i} missing`);
    console.log(
      `bridge: ${killedAt} distinct before SIGKILL, ${arrived.received.length} deliveries for ${total} messages (${
        arrived.received.length - total
      } duplicates)`,
    );
  });

  describe("MqttSink errors the stream, naming the chunk, when", () => {
    const cases: [string, MqttSinkChunk | unknown, RegExp][] = [
      [
        "the chunk has no payload",
        { topic: "a" },
        /chunk #1 as it is not a string, a Uint8Array or a record with a payload: got an object with keys topic/,
      ],
      ["the chunk is a number", 42, /chunk #1 .*got number 42/],
      [
        "the topic has a wildcard",
        { topic: "a/+/c", payload: "x" },
        /chunk #1 to 'a\/\+\/c': .*wildcards/,
      ],
      [
        "the topic is empty",
        { topic: "", payload: "x" },
        /chunk #1 to '': a topic cannot be empty/,
      ],
      [
        "the qos is 3",
        { payload: "x", qos: 3 },
        /chunk #1 as its qos must be 0, 1 or 2: got number 3/,
      ],
      [
        "the payload is an object",
        { payload: { a: 1 } },
        /chunk #1 as its payload must be a string or a Uint8Array/,
      ],
      ["MQTT 5 properties go to an MQTT 3.1.1 broker", {
        payload: "x",
        properties: { contentType: "text/plain" },
      }, /chunk #1 as it has MQTT 5 properties \(contentType\) and the sink speaks MQTT 4/],
      [
        "a property is unknown",
        { payload: "x", properties: { userProperty: { a: "b" } } },
        /'userProperty' is not a property a publish can carry/,
      ],
    ];
    for (const [what, chunk, message] of cases) {
      test(what, async () => {
        await using broker = await startAedes();
        const sink = new MqttSink(`${broker.url}?topic=ok&connectionCacheTimeout=0`);
        const writer = sink.getWriter();
        await writer.write("fine");
        const error = await writer.write(chunk as MqttSinkChunk).then(() => undefined, (e) => e);
        assert.ok(error instanceof MqttRecordError, `got ${error}`);
        assert.equal(error.index, 1);
        assert.match(error.message, message);
        await assert.rejects(writer.write("after"), (e) => e === error);
        await waitFor(() => broker.broker.connectedClients === 0, "the sink's client gone");
      });
    }
  });

  test("MqttSink refuses a wildcard or several topics as its default topic", () => {
    assert.throws(
      () => new MqttSink("mqtt://localhost?topic=a/%23"),
      /'topic' must be a topic name: current value is a\/#/,
    );
    assert.throws(
      () => new MqttSink("mqtt://localhost?topic=a&topic=b"),
      /must be one topic name for a sink/,
    );
  });

  test("MqttSink's abort() disconnects at once", async () => {
    await using broker = await startAedes();
    const sink = new MqttSink(`${broker.url}?topic=ab&qos=1`);
    const writer = sink.getWriter();
    await writer.write("x");
    await writer.abort(new Error("stop"));
    await waitFor(() => broker.broker.connectedClients === 0, "the client gone", 2000);
  });

  test("MqttSink acknowledges a bridged message only after its broker confirmed it", async () => {
    await using broker = await startAedes();
    // aedes sends the PUBACK only once authorizePublish calls back: hold it.
    const held: (() => void)[] = [];
    broker.broker.authorizePublish = (_client, _packet, callback) => {
      held.push(() => callback(null));
    };
    const acked: string[] = [];
    const message = (text: string) =>
      new MqttMessage(`b/${text}`, new TextEncoder().encode(text), {
        qos: 1,
        ack: () => acked.push(text),
      });
    const sink = new MqttSink(`${broker.url}?connectionCacheTimeout=0`);
    const writer = sink.getWriter();
    await writer.write(message("one"));
    await writer.write(message("two"));
    await waitFor(() => held.length === 2, "both publishes at the broker");
    await sleep(100);
    assert.deepEqual(acked, [], "acknowledged before the broker confirmed");
    assert.equal(sink.stats.inflight, 2);
    held[1]();
    await waitFor(() => acked.length === 1, "the second acknowledged");
    assert.deepEqual(acked, ["two"]);
    held[0]();
    await writer.close();
    assert.deepEqual(acked, ["two", "one"]);
  });

  test("MqttSink's abort() while it is still connecting stops connecting at once, and the process exits by itself", async () => {
    const port = await freePort(); // nothing listens there: every attempt is refused
    const child = spawnScript(new URL("./_abort_sink_child.ts", import.meta.url), [
      `mqtt://127.0.0.1:${port}?topic=a`,
    ]);
    let out = "";
    child.stdout!.on("data", (chunk) => (out += chunk));
    const started = Date.now();
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    clearTimeout(timer);
    assert.equal(code, 0, out);
    const [, ms] = out.match(/aborted in (\d+) ms/) ?? [];
    assert.ok(Number(ms) < 2000, `abort() took ${ms} ms`);
    assert.ok(Date.now() - started < 15_000, `the child took ${Date.now() - started} ms to exit`);
  });
});
