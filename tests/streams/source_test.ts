import { describe, test } from "node:test";
import assert from "node:assert/strict";
import mqtt from "mqtt";
import type { Aedes } from "aedes";
import { MqttConnectError, type MqttMessage, MqttSource, MqttSubscribeError } from "../../mod.ts";
import { checkInternals, MQTT_INTERNALS } from "../../src/connection/_mqtt.ts";
import {
  freePort,
  skipWithoutMosquitto,
  startAedes,
  startMosquitto,
} from "../../testing/broker.ts";
import { LOSSLESS, publishRange, sleep, spawnScript, waitFor } from "../../testing/helpers.ts";

const uniqueId = () => `src_${crypto.randomUUID().slice(0, 8)}`;

/** Reads `n` messages, failing if they do not come within `ms`. */
async function readN(
  reader: ReadableStreamDefaultReader<MqttMessage>,
  n: number,
  ms = 30_000,
): Promise<MqttMessage[]> {
  const messages: MqttMessage[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`only ${messages.length} of ${n} messages within ${ms} ms`)),
      ms,
    );
  });
  try {
    while (messages.length < n) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) assert.fail(`the stream ended after ${messages.length} of ${n} messages`);
      messages.push(value);
    }
  } finally {
    clearTimeout(timer);
  }
  return messages;
}

/** Asserts that no message arrives within `ms`; the reader is released afterwards. */
async function nothingMore(reader: ReadableStreamDefaultReader<MqttMessage>, ms = 300) {
  const read = reader.read();
  const outcome = await Promise.race([read, sleep(ms).then(() => "quiet" as const)]);
  assert.equal(outcome, "quiet", `unexpected message: ${JSON.stringify(outcome)}`);
}

const texts = (messages: MqttMessage[]) => messages.map((m) => m.text());
const range = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => String(from + i));

/** The payloads of the PUBACKs aedes received from `clientId`, in order. */
function acksOf(broker: Aedes, clientId: string): string[] {
  const acks: string[] = [];
  broker.on("ack", (packet, client) => {
    if (client?.id === clientId && packet && "payload" in packet) {
      acks.push(String(packet.payload));
    }
  });
  return acks;
}

describe("MqttSource", () => {
  test("pins the mqtt.js internals it replaces", () => {
    // Never connected, so nothing to end.
    const client = mqtt.connect({ manualConnect: true });
    // The adapter's own check, as Connection.open runs it: each member, with its kind (the
    // hook that delivers QoS 2 on PUBLISH with persistence=memory among them).
    assert.doesNotThrow(() => checkInternals(client));
    for (const member of ["handleMessage", "_sendPacket", "options.customHandleAcks"]) {
      assert.ok(member in MQTT_INTERNALS, member);
    }
  });

  test("yields messages with their fields; text() and json() decode the payload", async () => {
    await using broker = await startAedes();
    await using source = new MqttSource(broker.url, { topic: "fields/#", qos: 1 });
    await source.ready;
    const publisher = await mqtt.connectAsync(broker.url);
    await publisher.publishAsync("fields/a", '{"c":21.5}', { qos: 1 });
    await publisher.publishAsync("fields/b", "plain", { qos: 0, retain: true });
    const reader = source.getReader();
    const [first, second] = await readN(reader, 2);
    assert.equal(first.topic, "fields/a");
    assert.deepEqual(first.json(), { c: 21.5 });
    assert.equal(first.qos, 1);
    assert.equal(typeof first.id, "number");
    assert.equal(first.dup, false);
    assert.ok(Math.abs(first.timestamp - Date.now()) < 5000);
    assert.equal(Object.getPrototypeOf(first.payload), Uint8Array.prototype);
    assert.equal(second.text(), "plain");
    assert.equal(second.qos, 0);
    assert.equal(second.id, undefined);
    reader.releaseLock();
    await publisher.endAsync();
  });

  describe("acknowledges a QoS 1 message only when it is consumed", () => {
    for (const mode of ["read", "manual"] as const) {
      test(`ack=${mode}: after a cut, the same clientId gets exactly the unacknowledged messages`, async () => {
        await using broker = await startAedes();
        const clientId = uniqueId();
        const acks = acksOf(broker.broker, clientId);
        const options = { topic: "deferred", clientId, ack: mode, autoReconnect: false } as const;
        const first = new MqttSource(broker.url, options);
        await first.ready;
        const publisher = await mqtt.connectAsync(broker.url);
        await publishRange(publisher, "deferred", 0, 10);
        const reader = first.getReader();
        const read = await readN(reader, 3);
        assert.deepEqual(texts(read), ["0", "1", "2"]);
        if (mode === "manual") {
          await sleep(200);
          assert.deepEqual(acks, [], "nothing is acknowledged before ack()");
          read[0].ack();
          read[1].ack();
        }
        const expectedAcks = mode === "read" ? 3 : 2;
        await waitFor(() => acks.length === expectedAcks, `${expectedAcks} PUBACKs`);
        // No DISCONNECT: the sockets are cut, as a crash or a network failure would.
        broker.dropClients();
        await assert.rejects(readN(reader, 10), MqttConnectError);
        await first.cancel().catch(() => {});

        await using second = new MqttSource(broker.url, { ...options, autoReconnect: true });
        const again = second.getReader();
        const rest = await readN(again, 10 - expectedAcks);
        assert.deepEqual(texts(rest), range(expectedAcks, 10));
        await nothingMore(again);
        // aedes 1.x sends stored messages again without DUP; what is marked is counted.
        assert.equal(second.stats.redelivered, rest.filter((m) => m.dup).length);
        again.releaseLock();
        await publisher.endAsync();
      });
    }
  });

  test("drains a resumed session's backlog larger than maxInflight", async () => {
    await using broker = await startAedes();
    const options = { topic: "backlog", clientId: uniqueId(), maxInflight: 10 };
    const first = new MqttSource(broker.url, options);
    await first.ready;
    await first.cancel(); // a persistent session keeps its subscription
    const publisher = await mqtt.connectAsync(broker.url);
    await publishRange(publisher, "backlog", 0, 200);
    await using second = new MqttSource(broker.url, options);
    const reader = second.getReader();
    assert.deepEqual(texts(await readN(reader, 200)), range(0, 200));
    await second.ready;
    reader.releaseLock();
    await publisher.endAsync();
  });

  test("sends acknowledgements in arrival order whatever order ack() is called in", async () => {
    await using broker = await startAedes();
    const clientId = uniqueId();
    const acks = acksOf(broker.broker, clientId);
    await using source = new MqttSource(broker.url, { topic: "order", clientId, ack: "manual" });
    await source.ready;
    const publisher = await mqtt.connectAsync(broker.url);
    await publishRange(publisher, "order", 0, 3);
    const reader = source.getReader();
    const [m0, m1, m2] = await readN(reader, 3);
    m2.ack();
    m1.ack();
    await sleep(200);
    assert.deepEqual(acks, [], "later acks wait for the first");
    m0.ack();
    await waitFor(() => acks.length === 3, "3 PUBACKs");
    assert.deepEqual(acks, ["0", "1", "2"]);
    assert.equal(source.stats.acked, 3);
    reader.releaseLock();
    await publisher.endAsync();
  });

  describe("a stalled consumer keeps its connection and at most maxInflight messages", () => {
    const stall = async (url: string, mqttVersion: 4 | 5) => {
      const maxInflight = 20;
      const source = new MqttSource(url, {
        topic: "stall",
        clientId: uniqueId(),
        keepAlive: 1,
        maxInflight,
        mqttVersion,
      });
      let peak = 0;
      const sampler = setInterval(() => (peak = Math.max(peak, source.stats.buffered)), 5);
      try {
        await source.ready;
        const publisher = await mqtt.connectAsync(url);
        await publishRange(publisher, "stall", 0, 500);
        await publisher.endAsync();
        const reader = source.getReader();
        const head = await readN(reader, 5);
        await sleep(5000); // 5 × keepAlive: mqtt.js alone would have timed out at 1.5 s
        const tail = await readN(reader, 495);
        assert.deepEqual(texts([...head, ...tail]), range(0, 500));
        assert.equal(source.stats.reconnects, 0);
        assert.ok(peak <= maxInflight, `buffered peaked at ${peak}`);
        console.log(
          `stall, MQTT ${mqttVersion}: buffered peak ${peak}, beyondWindow ${source.stats.beyondWindow}`,
        );
        reader.releaseLock();
        return source.stats;
      } finally {
        clearInterval(sampler);
        await source.cancel();
      }
    };

    test("on aedes (MQTT 3.1.1: no window, so the source pauses reading)", async () => {
      await using broker = await startAedes();
      const stats = await stall(broker.url, 4);
      assert.ok(stats.beyondWindow > 0, "aedes sends past the window");
    });

    test("on mosquitto with MQTT 5", { skip: skipWithoutMosquitto() }, async () => {
      await using broker = await startMosquitto({ lines: LOSSLESS });
      await stall(broker.url, 5);
    });
  });

  describe("QoS 2: 1,000 messages arrive exactly once, in order", () => {
    const exactlyOnce = async (url: string, mqttVersion: 4 | 5) => {
      await using source = new MqttSource(url, {
        topic: "qos2",
        qos: 2,
        maxInflight: 10,
        mqttVersion,
      });
      await source.ready;
      const publisher = await mqtt.connectAsync(url);
      const reader = source.getReader();
      const [received] = await Promise.all([
        readN(reader, 1000, 60_000),
        publishRange(publisher, "qos2", 0, 1000, { qos: 2 }),
      ]);
      assert.deepEqual(texts(received), range(0, 1000));
      assert.ok(received.every((m) => m.qos === 2));
      await nothingMore(reader);
      reader.releaseLock();
      await publisher.endAsync();
      return source.stats;
    };

    test("on aedes", async () => {
      await using broker = await startAedes();
      await exactlyOnce(broker.url, 4);
    });

    test("on mosquitto with MQTT 5, which sends past the window", {
      skip: skipWithoutMosquitto(),
    }, async () => {
      await using broker = await startMosquitto({ lines: LOSSLESS });
      const stats = await exactlyOnce(broker.url, 5);
      assert.equal(stats.reconnects, 0);
      console.log(`mosquitto QoS 2, maxInflight 10: beyondWindow=${stats.beyondWindow}`);
    });
  });

  describe("QoS 0 when the queue is full", () => {
    for (const policy of ["drop", "block"] as const) {
      test(`qos0Overflow=${policy}`, async () => {
        await using broker = await startAedes();
        await using source = new MqttSource(broker.url, {
          topic: "q0",
          qos: 0,
          maxInflight: 10,
          qos0Overflow: policy,
        });
        await source.ready;
        const publisher = await mqtt.connectAsync(broker.url);
        await publishRange(publisher, "q0", 0, 100, { qos: 0 });
        await waitFor(
          () => source.stats.received + source.stats.held >= (policy === "drop" ? 100 : 10),
          "the messages to arrive",
        );
        await sleep(200);
        assert.ok(source.stats.buffered <= 10);
        const reader = source.getReader();
        if (policy === "drop") {
          assert.equal(source.stats.received, 100);
          assert.equal(source.stats.dropped, 90);
          assert.deepEqual(texts(await readN(reader, 10)), range(0, 10));
        } else {
          assert.equal(source.stats.dropped, 0);
          assert.deepEqual(texts(await readN(reader, 100)), range(0, 100));
        }
        await nothingMore(reader);
        reader.releaseLock();
        await publisher.endAsync();
      });
    }
  });

  describe("resumes by itself after a broker restart; every QoS 1 message arrives", () => {
    test("aedes closed and started again on the same port", async () => {
      let broker = await startAedes();
      const { port } = broker;
      const source = new MqttSource(broker.url, { topic: "restart", connectBackoff: 100 });
      const reader = source.getReader();
      try {
        await source.ready;
        let publisher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
        await publishRange(publisher, "restart", 0, 250);
        assert.deepEqual(texts(await readN(reader, 250)), range(0, 250));
        await publisher.endAsync();
        await broker.close();
        broker = await startAedes({ port });
        // aedes keeps sessions in memory: the new one has none, so the source must
        // subscribe again by itself before what is published next can reach it.
        await new Promise((resolve) => broker.broker.once("subscribe", resolve));
        publisher = await mqtt.connectAsync(broker.url);
        await publishRange(publisher, "restart", 250, 500);
        assert.deepEqual(texts(await readN(reader, 250)), range(250, 500));
        assert.equal(source.stats.reconnects, 1);
        await publisher.endAsync();
      } finally {
        reader.releaseLock();
        await source.cancel();
        await broker.close();
      }
    });

    test("mosquitto stopped and restarted with persistence", {
      skip: skipWithoutMosquitto(),
    }, async () => {
      await using broker = await startMosquitto({ persistence: true, lines: LOSSLESS });
      const clientId = uniqueId();
      await using source = new MqttSource(broker.url, {
        topic: "restart",
        clientId,
        connectBackoff: 100,
        maxInflight: 10,
      });
      await source.ready;
      const publisher = await mqtt.connectAsync(broker.url, { reconnectPeriod: 100 });
      const published = publishRange(publisher, "restart", 0, 1000);
      const reader = source.getReader();
      const seen = new Set<string>();
      for (const m of await readN(reader, 300)) seen.add(m.text());
      await broker.restart(300);
      await published;
      while (seen.size < 1000) {
        const [m] = await readN(reader, 1, 30_000);
        seen.add(m.text());
      }
      assert.equal(seen.size, 1000);
      assert.ok(source.stats.reconnects >= 1);
      reader.releaseLock();
      await publisher.endAsync();
    });
  });

  test("subscribes to several filters with wildcards", async () => {
    await using broker = await startAedes();
    await using source = new MqttSource(
      `${broker.url}?topic=a/%2B/x&topic=b/%23&qos=1`,
    );
    await source.ready;
    const publisher = await mqtt.connectAsync(broker.url);
    for (const topic of ["a/1/x", "a/1/y", "b", "b/c/d", "c", "a/2/x"]) {
      await publisher.publishAsync(topic, topic, { qos: 1 });
    }
    const reader = source.getReader();
    assert.deepEqual(texts(await readN(reader, 4)), ["a/1/x", "b", "b/c/d", "a/2/x"]);
    await nothingMore(reader);
    reader.releaseLock();
    await publisher.endAsync();
  });

  test("MQTT 5 shared subscriptions: three sources split 3,000 messages", {
    skip: skipWithoutMosquitto(),
  }, async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    const stop = new AbortController();
    const sources = [0, 1, 2].map(() =>
      new MqttSource(broker.url, {
        topic: "$share/g/jobs/#",
        mqttVersion: 5,
        signal: stop.signal,
      })
    );
    const seen = sources.map(() => [] as string[]);
    let total = 0;
    await Promise.all(sources.map((s) => s.ready));
    const publisher = await mqtt.connectAsync(broker.url);
    const reading = sources.map(async (source, i) => {
      try {
        for await (const message of source) {
          seen[i].push(message.text());
          if (++total === 3000) stop.abort();
        }
      } catch (error) {
        if (error !== stop.signal.reason) throw error;
      }
    });
    await publishRange(publisher, "jobs/1", 0, 3000);
    await publisher.endAsync();
    const timer = setTimeout(() => stop.abort(), 30_000);
    await Promise.all(reading);
    clearTimeout(timer);
    const all = seen.flat();
    assert.equal(all.length, 3000, `received ${all.length}`);
    assert.equal(new Set(all).size, 3000, "every message exactly once");
    assert.ok(seen.every((s) => s.length > 0), `split: ${seen.map((s) => s.length)}`);
  });

  test("a refused subscription errors the stream with MqttSubscribeError", async () => {
    await using broker = await startAedes();
    // aedes answers SUBACK 0x80 when authorizeSubscribe negates a subscription. (mosquitto
    // 2.0.11 grants a filter its ACL denies and filters on delivery, so it cannot show this.)
    broker.broker.authorizeSubscribe = (_client, subscription, callback) =>
      callback(null, subscription.topic.startsWith("denied") ? null : subscription);
    const source = new MqttSource(broker.url, { topic: ["allowed/#", "denied/#"] });
    await assert.rejects(source.getReader().read(), (error: unknown) => {
      assert.ok(error instanceof MqttSubscribeError, String(error));
      assert.equal(error.topic, "denied/#");
      assert.match(error.message, /SUBACK 0x80/);
      return true;
    });
  });

  describe("releases everything", () => {
    test("a refused connection errors the stream with MqttConnectError", async () => {
      const port = await freePort();
      const source = new MqttSource(`mqtt://127.0.0.1:${port}?topic=a&connectAttempts=1`);
      await assert.rejects(source.getReader().read(), (error: unknown) => {
        assert.ok(error instanceof MqttConnectError);
        assert.equal(error.code, "CONNECT_REFUSED");
        return true;
      });
    });

    for (const how of ["cancel", "dispose", "abort"] as const) {
      test(`${how} mid-stream: the broker sees the client go and the process exits by itself`, async () => {
        await using broker = await startAedes();
        const publisher = await mqtt.connectAsync(broker.url);
        const feeding = setInterval(() => publisher.publish("feed", "x", { qos: 1 }), 5);
        const gone = new Promise((resolve) => broker.broker.on("clientDisconnect", resolve));
        try {
          const child = spawnScript(new URL("./_cancel_child.ts", import.meta.url), [
            broker.url,
            how,
          ]);
          let out = "";
          child.stdout!.on("data", (chunk) => (out += chunk));
          const started = Date.now();
          const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
          assert.equal(code, 0, out);
          assert.match(out, /read 3 messages/);
          assert.ok(Date.now() - started < 15_000, "the child exited promptly");
          await Promise.race([
            gone,
            sleep(5000).then(() => assert.fail("the broker saw no disconnect")),
          ]);
        } finally {
          clearInterval(feeding);
          await publisher.endAsync();
        }
      });
    }
  });
});

// node:test under `deno test` runs without Deno's sanitizers; this one test runs with them
// (Deno only), so a timer or socket left behind by a cancelled source fails it.
if (typeof Deno === "object") {
  Deno.test({
    name: "MqttSource cancelled mid-stream leaves no op or resource behind (Deno sanitizers)",
    sanitizeOps: true,
    sanitizeResources: true,
    fn: async () => {
      const broker = await startAedes();
      const publisher = await mqtt.connectAsync(broker.url);
      try {
        const source = new MqttSource(broker.url, {
          topic: "sanitized",
          keepAlive: 1,
          maxInflight: 5,
        });
        await source.ready;
        await publishRange(publisher, "sanitized", 0, 50);
        const reader = source.getReader();
        await readN(reader, 3);
        await sleep(1500); // past the window: reading has stopped and the pinger runs
        assert.ok(source.stats.held > 0 || source.stats.buffered === 5);
        await reader.cancel();
      } finally {
        await publisher.endAsync();
        await broker.close();
      }
    },
  });
}
