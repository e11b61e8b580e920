// persistence=file end to end: processes SIGKILLed at random points, and what their
// successors send or deliver from the store they left.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { Buffer } from "node:buffer";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import mqtt from "mqtt";
import { MqttSink, MqttSource } from "../../mod.ts";
import { openFileStores } from "../../src/stores/file_store.ts";
import { putRecord } from "../../src/stores/_log.ts";
import {
  skipWithoutMosquitto,
  startAedes,
  startMosquitto,
  startProxy,
} from "../../testing/broker.ts";
import { exited, kill, LOSSLESS, sleep, spawnScript, waitFor } from "../../testing/helpers.ts";

/** A child's stdout as lines, live. */
function lines(child: ChildProcess): string[] {
  const out: string[] = [];
  let partial = "";
  child.stdout!.on("data", (chunk) => {
    const text = partial + chunk;
    const parts = text.split("\n");
    partial = parts.pop()!;
    out.push(...parts);
  });
  return out;
}

/** Numbers printed on their own line. */
const numbers = (out: string[]) => out.filter((line) => /^\d+$/.test(line)).map(Number);

/** A random integer in [min, max]. */
const between = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1));

describe("persistence=file", { timeout: 180_000 }, () => {
  for (const frozen of [true, false]) {
    test(
      frozen
        ? "MqttSink: every write that resolved before a SIGKILL reaches the broker, sent by the next process (5 random kill points, the network cut first)"
        : "MqttSink: every write that resolved before a SIGKILL reaches the broker (5 random kill points while publishes flow)",
      () => killedSinks({ frozen, qos: 1, points: 5 }),
    );
  }

  for (const frozen of [true, false]) {
    test(
      `MqttSink QoS 2: every resolved write arrives exactly once across SIGKILLs (mosquitto, MQTT 5, 3 random kill points${
        frozen ? ", the network cut first" : " while publishes flow"
      })`,
      { skip: skipWithoutMosquitto() },
      () => killedSinks({ frozen, qos: 2, points: 3 }),
    );
  }

  test("MqttSink: publishes recovered from the store go out before its own writes; a damaged record is skipped and counted, the intact ones around it are sent", async () => {
    await using broker = await startAedes();
    const folder = mkdtempSync(join(tmpdir(), "mqtt-streams-damaged-"));
    const subscriber = await mqtt.connectAsync(broker.url);
    const arrived: string[] = [];
    subscriber.on("message", (_topic, payload) => arrived.push(payload.toString()));
    await subscriber.subscribeAsync("damaged/x", { qos: 1 });
    try {
      // What an earlier run left: ten unacknowledged QoS 1 publishes, the sixth bit-flipped.
      const records = Array.from({ length: 10 }, (_, i) =>
        putRecord({
          cmd: "publish",
          topic: "damaged/x",
          payload: new TextEncoder().encode(`record ${i}`),
          qos: 1,
          messageId: 100 + i,
          dup: false,
          retain: false,
        }));
      records[5][records[5].length - 2] ^= 0x01;
      writeFileSync(join(folder, "outgoing.log"), Buffer.concat(records));
      const sink = new MqttSink(broker.url, {
        topic: "damaged/x",
        clientId: "damaged-sink",
        persistence: "file",
        localStorage: folder,
        connectionCacheTimeout: 0,
      });
      // Written at once: mqtt.js holds them back until it has replayed its store.
      const writer = sink.getWriter();
      await Promise.all(["new 0", "new 1", "new 2"].map((text) => writer.write(text)));
      await writer.close();
      assert.equal(sink.stats.recovered, 9);
      assert.equal(sink.stats.damaged, 1);
      assert.equal(sink.stats.failed, 0);
      const expected = [
        ...[0, 1, 2, 3, 4, 6, 7, 8, 9].map((i) => `record ${i}`),
        "new 0",
        "new 1",
        "new 2",
      ];
      await waitFor(() => arrived.length >= 12, "the nine intact publishes and three new", 5000);
      await sleep(100);
      assert.deepEqual(arrived, expected);
    } finally {
      await subscriber.endAsync(true);
      rmSync(folder, { recursive: true, force: true });
    }
  });

  test("MqttSource: QoS 2 messages stored unreleased are dropped and counted when the broker has no session for them", async () => {
    await using broker = await startAedes();
    const folder = mkdtempSync(join(tmpdir(), "mqtt-streams-no-session-"));
    try {
      // What an earlier run left: three QoS 2 messages received (PUBREC sent), never released.
      writeFileSync(
        join(folder, "incoming.log"),
        Buffer.concat([1, 2, 3].map((messageId) =>
          putRecord({
            cmd: "publish",
            topic: "gone/x",
            payload: "lost with the session",
            qos: 2,
            messageId,
            dup: false,
            retain: false,
          })
        )),
      );
      {
        // A broker that never saw this clientId: no session, so no PUBREL will come.
        await using source = new MqttSource(broker.url, {
          topic: "gone/x",
          qos: 2,
          clientId: "no-session-consumer",
          persistence: "file",
          localStorage: folder,
        });
        await source.ready;
        assert.equal(source.stats.recovered, 3);
        assert.equal(source.stats.dropped, 3);
      }
      const stores = openFileStores(folder, "batch");
      try {
        assert.deepEqual(stores.incoming.ids(), [], "the store no longer holds them");
      } finally {
        await stores.close();
      }
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  test(
    "MqttSource: across SIGKILLs between PUBREC and PUBCOMP no QoS 2 message is lost and none acknowledged comes again (3 random kill points)",
    {
      skip: skipWithoutMosquitto(),
    },
    async () => {
      // mosquitto: aedes 1.x withholds the first QoS 2 message it queues for an offline client.
      await using broker = await startMosquitto({ lines: LOSSLESS });
      const folder = mkdtempSync(join(tmpdir(), "mqtt-streams-q2-"));
      const publisher = await mqtt.connectAsync(broker.url);
      const total = 600;
      try {
        for (let point = 0; point < 3; point++) {
          const url = `${broker.url}?topic=q2/${point}/%23&qos=2&clientId=q2-consumer-${point}` +
            `&persistence=file&localStorage=${
              join(folder, String(point))
            }&ack=manual&maxInflight=20`;
          const consumer = () =>
            spawnScript(new URL("./_persist_source_child.ts", import.meta.url), [url]);
          const first = consumer();
          const out = lines(first);
          await waitFor(() => out.includes("ready recovered=0 damaged=0"), "the consumer", 15_000);
          // Ten at a time: mosquitto drops an MQTT 3.1.1 publisher with more QoS 2 publishes
          // in flight than max_inflight_messages (20), and its clean session with them.
          const publishing = (async () => {
            for (let n = 0; n < total; n += 10) {
              await Promise.all(
                Array.from(
                  { length: 10 },
                  (_, i) =>
                    publisher.publishAsync(`q2/${point}/${n + i}`, String(n + i), { qos: 2 }),
                ),
              );
            }
          })();
          const killAfter = between(20, total - 100);
          try {
            await waitFor(() => numbers(out).length >= killAfter, `${killAfter} read`, 30_000);
          } finally {
            await kill(first);
          }
          await publishing;
          const second = consumer();
          const secondOut = lines(second);
          const all = () => [...numbers(out), ...numbers(secondOut)];
          try {
            await waitFor(() => new Set(all()).size === total, `all ${total} read`, 60_000)
              .catch(() => {
                const seen = new Set(all());
                const missing = Array.from({ length: total }, (_, n) => n).filter((n) =>
                  !seen.has(n)
                );
                assert.fail(
                  `${missing.length} never read: ${missing.slice(0, 10)}; first read ${
                    numbers(out).length
                  } (${out.slice(0, 3)}), second ${numbers(secondOut).length} (${
                    secondOut.slice(0, 3)
                  })`,
                );
              });
            // Time for a duplicate to show up, were the store to deliver one again.
            await sleep(500);
          } finally {
            await kill(second);
          }
          const read = all();
          const counts = new Map<number, number>();
          for (const n of read) counts.set(n, (counts.get(n) ?? 0) + 1);
          const twice = [...counts].filter(([, c]) => c > 1).map(([n]) => n);
          // The child prints a message, then acks it: two statements, so a SIGKILL can land
          // between them (a window of microseconds, seen once in many runs). That message
          // was used but never acknowledged, and comes again: what the library cannot make
          // exactly once is a consumer's effect outside it. Only that one may repeat.
          const unacked = numbers(out).slice(-1);
          if (twice.length) console.log(`killed between print and ack of ${twice}: read again`);
          assert.deepEqual(
            twice.filter((n) => !unacked.includes(n) || counts.get(n)! > 2),
            [],
            `read more than once (killed after ${numbers(out).length} read; first's last ${
              numbers(out).slice(-5)
            }, second's first ${secondOut.slice(0, 6)})`,
          );
          assert.equal(read.length, total + twice.length);
          const ready = secondOut.find((line) => line.startsWith("ready"))!;
          const recovered = Number(/recovered=(\d+)/.exec(ready)![1]);
          console.log(
            `kill point ${point}: killed after ${
              numbers(out).length
            } read (asked ${killAfter}); the next process recovered ${recovered} QoS 2 messages from its store`,
          );
        }
      } finally {
        await publisher.endAsync(true);
        rmSync(folder, { recursive: true, force: true });
      }
    },
  );
});

/**
 * The kill test of the issue: a child process writes 2,000 numbered QoS 1 records through
 * an MqttSink with persistence=file and prints each number whose write() resolved; it is
 * SIGKILLed at a random point; a new child with the same options closes cleanly; a
 * subscriber with a persistent session must have received every printed number.
 *
 * `frozen`: the first child talks to the broker through a proxy that stops forwarding
 * before the kill, as a network failure would, and the kill waits until the window is full
 * of publishes that will never be acknowledged. Only the store can bring those back (with
 * persistence=memory this variant loses them). Otherwise the kill lands while publishes
 * and acknowledgements flow, at any point of a put, a del or an fdatasync.
 */
async function killedSinks(
  { frozen, qos, points }: { frozen: boolean; qos: 1 | 2; points: number },
): Promise<void> {
  // QoS 2 on mosquitto over MQTT 5, whose Receive Maximum (20) the sink keeps to: aedes 1.x
  // withholds the first QoS 2 message it queues for an offline subscriber.
  await using broker = qos === 1 ? await startAedes() : await startMosquitto({ lines: LOSSLESS });
  const folder = mkdtempSync(join(tmpdir(), "mqtt-streams-kill-"));
  const subscriber = await mqtt.connectAsync(broker.url, {
    clientId: "kill-test-subscriber",
    clean: false,
  });
  const received = new Map<string, number[]>();
  subscriber.on("message", (topic, payload) => {
    if (!received.has(topic)) received.set(topic, []);
    received.get(topic)!.push(Number(payload.toString()));
  });
  await subscriber.subscribeAsync("kill/#", { qos });
  const total = 2000;
  try {
    for (let point = 0; point < points; point++) {
      const topic = `kill/${point}`;
      const query = `?topic=${topic}&qos=${qos}&clientId=kill-sink-${point}` +
        `&persistence=file&localStorage=${join(folder, String(point))}&connectionCacheTimeout=0` +
        (qos === 2 ? "&mqttVersion=5" : "");
      const killAfter = between(50, 1500);
      await using proxy = await startProxy(broker.port);
      const first = spawnScript(new URL("./_persist_sink_child.ts", import.meta.url), [
        (frozen ? proxy.url : broker.url) + query,
        "0",
        String(total),
      ]);
      const out = lines(first);
      try {
        await waitFor(
          () => numbers(out).length >= killAfter || first.exitCode !== null,
          `${killAfter} resolved writes`,
          30_000,
        );
        if (frozen) {
          proxy.freeze();
          // Until the window is full of publishes that will never be acknowledged: the
          // child stops printing.
          for (let last = -1, round = 0; numbers(out).length !== last && round < 50; round++) {
            last = numbers(out).length;
            await sleep(100);
          }
        }
      } finally {
        await kill(first);
      }
      await proxy.close();
      const printed = numbers(out);
      assert.ok(
        printed.length < total,
        `the child wrote all ${total} before the kill: no kill point was tested`,
      );
      const second = spawnScript(new URL("./_persist_sink_child.ts", import.meta.url), [
        broker.url + query,
        "0",
        "0",
      ]);
      const secondOut = lines(second);
      const { code } = await exited(second);
      assert.equal(code, 0, "the second process closed cleanly");
      const closing = secondOut.find((line) => line.startsWith("closed"));
      assert.match(closing ?? "", /failed=0 damaged=0/);
      const got = () => new Set(received.get(topic) ?? []);
      await waitFor(
        () => printed.every((n) => got().has(n)),
        `every printed number on ${topic}`,
        10_000,
      ).catch(() => {
        const missing = printed.filter((n) => !got().has(n));
        assert.fail(`${missing.length} resolved writes never arrived: ${missing.slice(0, 10)}`);
      });
      const deliveries = received.get(topic)?.length ?? 0;
      if (qos === 2) assert.equal(deliveries, got().size, "QoS 2: no number arrived twice");
      console.log(
        `kill point ${point}: killed after ${printed.length} resolved writes (asked ${killAfter}), ${closing}, ${got().size} distinct arrived, ${
          deliveries - got().size
        } duplicates`,
      );
    }
  } finally {
    await subscriber.endAsync(true);
    rmSync(folder, { recursive: true, force: true });
  }
}
