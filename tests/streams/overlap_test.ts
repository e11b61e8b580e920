// Overlapping filters (src/streams/_overlap.ts): a message published once reaches the reader once,
// however many of a source's filters match it. MQTT 5 §3.3.4 lets a broker send a copy per
// matching subscription: mosquitto 2.0 does over MQTT 5, and over 3.1.1 with
// allow_duplicate_messages true (the default of mosquitto 2.1). Real brokers throughout.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import mqtt from "mqtt";
import * as v from "valibot";
import { type MqttMessage, MqttSource, route } from "../../mod.ts";
import {
  coveringSet,
  covers,
  intersect,
  matches,
  subscriptionPlan,
} from "../../src/streams/_overlap.ts";
import {
  skipWithoutMosquitto,
  startAedes,
  startMosquitto,
  startProxy,
} from "../../testing/broker.ts";
import { skipWithoutNats, startNats } from "../../testing/nats.ts";
import { LOSSLESS, sleep, waitFor } from "../../testing/helpers.ts";

const OVERLAPPING = ["a/+", "a/#", "a/b"];
const uniqueId = () => `ovl_${crypto.randomUUID().slice(0, 8)}`;
const query = (filters: string[]) => filters.map((f) => `topic=${encodeURIComponent(f)}`).join("&");

/** Publishes `count` numbered messages to `topic` at `qos` from a plain mqtt.js client. */
async function publish(url: string, topic: string, count: number, qos: 0 | 1 | 2, v: 4 | 5 = 4) {
  const client = await mqtt.connectAsync(url, { protocolVersion: v });
  try {
    for (let i = 0; i < count; i++) await client.publishAsync(topic, String(i), { qos });
  } finally {
    await client.endAsync();
  }
}

/** Reads until `quietMs` pass without a message (at most `maxMs` in all). */
async function readAll(
  reader: ReadableStreamDefaultReader<MqttMessage>,
  { quietMs = 700, maxMs = 20_000 } = {},
): Promise<MqttMessage[]> {
  const messages: MqttMessage[] = [];
  const deadline = Date.now() + maxMs;
  let pending = reader.read();
  while (Date.now() < deadline) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const quiet = new Promise<"quiet">((r) => (timer = setTimeout(() => r("quiet"), quietMs)));
    const outcome = await Promise.race([pending, quiet]);
    clearTimeout(timer);
    if (outcome === "quiet") break;
    if (outcome.done) break;
    messages.push(outcome.value);
    pending = reader.read();
  }
  // The read still pending settles when the reader is cancelled.
  pending.catch(() => {});
  return messages;
}

const texts = (messages: MqttMessage[]) => messages.map((m) => m.text());
const numbers = (n: number) => Array.from({ length: n }, (_, i) => String(i));

describe("topic filters, as MQTT 5 §4.7 defines them", () => {
  test("matches: + is one level, # the rest and its parent, $ topics only by a literal first level", () => {
    assert.ok(matches("a/+", "a/b"));
    assert.ok(!matches("a/+", "a/b/c"));
    assert.ok(matches("a/#", "a"));
    assert.ok(matches("a/#", "a/b/c"));
    assert.ok(!matches("#", "$SYS/x"));
    assert.ok(!matches("+/x", "$SYS/x"));
    assert.ok(matches("$SYS/#", "$SYS/x"));
    assert.ok(matches("a//b", "a//b"));
    assert.ok(!matches("a/b", "a/b/c"));
  });

  test("covers and intersect tell a filter that holds another from one that only overlaps it", () => {
    assert.ok(covers("a/#", "a/+"));
    assert.ok(covers("a/#", "a"));
    assert.ok(covers("a/+", "a/b"));
    assert.ok(!covers("a/+", "a/#"));
    assert.ok(!covers("#", "$SYS/#"));
    assert.ok(!covers("a/+/c", "a/b/+"));
    assert.ok(intersect("a/+/c", "a/b/+"));
    assert.ok(intersect("a/#", "a"));
    assert.ok(!intersect("a/+", "a"));
    assert.ok(!intersect("a/b", "a/c"));
    assert.ok(!intersect("#", "$SYS/x"));
    assert.deepEqual(coveringSet(["a/+", "a/#", "a/b", "c", "a/#"]), ["a/#", "c"]);
    assert.deepEqual(coveringSet(["a/+/c", "a/b/+"]), ["a/+/c", "a/b/+"]);
    assert.deepEqual(coveringSet(["$share/g/a/+", "a/#"]), ["$share/g/a/+", "a/#"]);
  });

  test("the copy delivered follows the filters' granted QoS, then the lowest identifier, never arrival", () => {
    const plan = subscriptionPlan(OVERLAPPING, 2, true);
    assert.deepEqual(plan.subscriptions.map((s) => s.id), [1, 2, 3]);
    // All granted 2: the lowest identifier matching (a/+ = 1) is kept.
    assert.ok(!plan.isCopy("a/b", 1));
    assert.ok(plan.isCopy("a/b", 2));
    assert.ok(plan.isCopy("a/b", [3]));
    assert.ok(!plan.isCopy("a/b", [2, 1, 3]), "one copy naming every subscription is delivered");
    // a/b/c matches only a/#.
    assert.ok(!plan.isCopy("a/b/c", 2));
    // Granted QoS decides first: a/# granted 2, the others 1.
    plan.granted([1, 2, 1]);
    assert.ok(plan.isCopy("a/b", 1));
    assert.ok(!plan.isCopy("a/b", 2));
    // Disjoint filters: no identifiers, no work per message.
    const disjoint = subscriptionPlan(["a/+", "b/#"], 1, true);
    assert.deepEqual(disjoint.subscriptions, [{ filter: "a/+" }, { filter: "b/#" }]);
    // A shared subscription's copy is this member's share: always delivered.
    const shared = subscriptionPlan(["$share/g/a/+", "a/#", "a/b"], 1, true);
    assert.ok(!shared.isCopy("a/b", 1));
    assert.ok(!shared.isCopy("a/b", 2));
    assert.ok(shared.isCopy("a/b", 3));
  });
});

describe("overlapping filters on mosquitto over MQTT 5", { skip: skipWithoutMosquitto() }, () => {
  for (const qos of [0, 1, 2] as const) {
    test(`a/+, a/# and a/b at QoS ${qos}: 10 published, 10 read, 20 copies acknowledged unread`, async () => {
      await using broker = await startMosquitto({ lines: LOSSLESS });
      const source = new MqttSource(
        `${broker.url}?${query(OVERLAPPING)}&qos=${qos}&mqttVersion=5&clientId=${uniqueId()}`,
      );
      const reader = source.getReader();
      try {
        await source.ready;
        await publish(broker.url, "a/b", 10, qos, 5);
        await publish(broker.url, "a/c", 5, qos, 5);
        const read = await readAll(reader);
        assert.deepEqual(texts(read), [...numbers(10), ...numbers(5)]);
        assert.deepEqual(read[0].filters, OVERLAPPING);
        assert.deepEqual(read[10].filters, ["a/+", "a/#"]);
        assert.equal(source.stats.duplicates, 10 * 2 + 5);
        assert.equal(source.stats.received, 15 + 25);
        assert.equal(source.stats.redelivered, 0);
        // Every copy at QoS 1/2 was acknowledged: the broker holds nothing back.
        if (qos > 0) await waitFor(() => source.stats.acked === 40, "40 acknowledgements", 5_000);
      } finally {
        await reader.cancel();
      }
    });
  }

  test("ack=manual: the copies not delivered are acknowledged, the one delivered only when acked", async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    const clientId = uniqueId();
    const url = `${broker.url}?${query(OVERLAPPING)}&qos=1&mqttVersion=5&clientId=${clientId}`;
    const source = new MqttSource(`${url}&ack=manual`);
    const reader = source.getReader();
    try {
      await source.ready;
      await publish(broker.url, "a/b", 10, 1, 5);
      const read = await readAll(reader);
      assert.deepEqual(texts(read), numbers(10));
      // The first delivered message is not acknowledged: every copy after it waits behind
      // it (acknowledgements leave in arrival order, MQTT 5 §4.6).
      await sleep(300);
      assert.ok(source.stats.acked <= 2, `${source.stats.acked} acknowledged before any ack()`);
      for (const message of read.slice(0, 4)) message.ack();
      // 4 delivered and the copies up to the 5th delivered one: at least 4 + 3 × 2.
      await waitFor(() => source.stats.acked >= 10, "the first acknowledgements", 5_000);
      assert.ok(source.stats.acked <= 14, `${source.stats.acked} acknowledged`);
    } finally {
      await reader.cancel();
    }
    // The six not acknowledged come again to the same session, once each.
    const again = new MqttSource(url);
    const reader2 = again.getReader();
    try {
      const read = await readAll(reader2);
      assert.deepEqual(texts(read), ["4", "5", "6", "7", "8", "9"]);
    } finally {
      await reader2.cancel();
    }
  });

  for (const qos of [1, 2] as const) {
    test(`across a reconnect at QoS ${qos}: every message read, QoS 2 exactly once`, async () => {
      await using broker = await startMosquitto({ lines: LOSSLESS });
      await using proxy = await startProxy(broker.port);
      const source = new MqttSource(
        `${proxy.url}?${query(OVERLAPPING)}&qos=${qos}&mqttVersion=5&clientId=${uniqueId()}` +
          `&maxInflight=5&connectBackoff=100`,
      );
      const reader = source.getReader();
      try {
        await source.ready;
        await publish(broker.url, "a/b", 30, qos, 5);
        const first = await reader.read();
        assert.equal(first.value?.text(), "0");
        proxy.drop();
        await waitFor(() => source.stats.reconnects === 1, "the reconnect", 10_000);
        const rest = await readAll(reader);
        const all = texts([first.value!, ...rest]);
        // Every message arrives; QoS 1 may repeat what was unacknowledged at the cut (marked
        // dup), QoS 2 never does.
        assert.deepEqual([...new Set(all)].sort((a, b) => +a - +b), numbers(30));
        if (qos === 2) assert.deepEqual(all, numbers(30));
        else assert.ok(all.length - 30 <= source.stats.redelivered, `${all.length} read`);
      } finally {
        await reader.cancel();
      }
    });
  }
});

describe("overlapping filters over MQTT 3.1.1", () => {
  test("mosquitto with allow_duplicate_messages true: the covering filter alone is subscribed", {
    skip: skipWithoutMosquitto(),
  }, async () => {
    await using broker = await startMosquitto({
      lines: [...LOSSLESS, "allow_duplicate_messages true"],
    });
    const source = new MqttSource(`${broker.url}?${query(OVERLAPPING)}&qos=2`);
    const reader = source.getReader();
    try {
      await source.ready;
      await publish(broker.url, "a/b", 10, 2);
      const read = await readAll(reader);
      assert.deepEqual(texts(read), numbers(10));
      assert.deepEqual(read[0].filters, OVERLAPPING);
      assert.equal(source.stats.overlapping, 0);
    } finally {
      await reader.cancel();
    }
  });

  test("a partial overlap (a/+/c and a/b/+) still repeats there, and is counted", {
    skip: skipWithoutMosquitto(),
  }, async () => {
    for (const duplicates of [true, false]) {
      await using broker = await startMosquitto({
        lines: [...LOSSLESS, `allow_duplicate_messages ${duplicates}`],
      });
      const source = new MqttSource(`${broker.url}?${query(["a/+/c", "a/b/+"])}&qos=1`);
      const reader = source.getReader();
      try {
        await source.ready;
        await publish(broker.url, "a/b/c", 10, 1);
        await publish(broker.url, "a/x/c", 2, 1);
        const read = await readAll(reader);
        const copies = duplicates ? 2 : 1;
        assert.equal(read.length, 10 * copies + 2, `allow_duplicate_messages ${duplicates}`);
        assert.equal(source.stats.overlapping, 10 * copies);
        assert.equal(source.stats.duplicates, 0);
      } finally {
        await reader.cancel();
      }
    }
  });

  test("NATS: a/+, a/# and a/b read each message once", { skip: skipWithoutNats() }, async () => {
    await using broker = await startNats();
    const source = new MqttSource(`${broker.url}?${query(OVERLAPPING)}&qos=1`);
    const reader = source.getReader();
    try {
      await source.ready;
      await publish(broker.url, "a/b", 10, 1);
      assert.deepEqual(texts(await readAll(reader)), numbers(10));
    } finally {
      await reader.cancel();
    }
  });

  test("aedes: a/+, a/# and a/b read each message once, at QoS 0, 1 and 2", async () => {
    await using broker = await startAedes();
    for (const qos of [0, 1, 2] as const) {
      const source = new MqttSource(`${broker.url}?${query(OVERLAPPING)}&qos=${qos}`);
      const reader = source.getReader();
      try {
        await source.ready;
        await publish(broker.url, "a/b", 10, qos);
        assert.deepEqual(texts(await readAll(reader, { quietMs: 400 })), numbers(10), `QoS ${qos}`);
      } finally {
        await reader.cancel();
      }
    }
  });
});

test("route() over overlapping filters routes each message once", {
  skip: skipWithoutMosquitto(),
}, async () => {
  await using broker = await startMosquitto({ lines: LOSSLESS });
  const router = route({ "a/+kind": v.unknown(), "a/#rest": v.unknown() });
  const source = new MqttSource(
    `${broker.url}?${query(router.filters)}&qos=1&mqttVersion=5`,
  );
  const reader = source.pipeThrough(router).getReader();
  try {
    await source.ready;
    const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    for (let i = 0; i < 10; i++) await client.publishAsync("a/b", JSON.stringify(i), { qos: 1 });
    await client.endAsync();
    const routed: string[] = [];
    for (let i = 0; i < 10; i++) {
      const { value } = await reader.read();
      routed.push(value!.route);
    }
    const more = await Promise.race([reader.read(), sleep(700).then(() => "quiet")]);
    assert.equal(more, "quiet");
    assert.deepEqual(routed, Array(10).fill("a/+kind"));
    assert.equal(source.stats.duplicates, 10);
  } finally {
    await reader.cancel();
  }
});
