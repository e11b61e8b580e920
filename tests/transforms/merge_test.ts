import { test } from "node:test";
import assert from "node:assert/strict";
import { merge, type MqttMessage } from "../../mod.ts";
import { drain, message } from "./_transforms.ts";

/** A stream of `count` messages that counts how many its reader pulled, queueing nothing ahead. */
function counted(name: string, count: number) {
  const stats = { pulled: 0 };
  let i = 0;
  const stream = new ReadableStream<MqttMessage>({
    pull(controller) {
      if (i === count) return controller.close();
      stats.pulled++;
      controller.enqueue(message(`${name}/${i++}`, "1"));
    },
  }, { highWaterMark: 0 });
  return { stream, stats };
}

test("merge tags each message with the name of its source and ends when every source ends", async () => {
  const { chunks } = await drain(merge({
    edge: ReadableStream.from([message("e/1", "1"), message("e/2", "2")]),
    cloud: ReadableStream.from([message("c/1", "3")]),
  }));
  assert.deepEqual(
    chunks.map(({ source, message }) => `${source} ${message.topic}`).sort(),
    ["cloud c/1", "edge e/1", "edge e/2"],
  );
});

test("merge reads no source faster than its consumer reads", async () => {
  const fast = counted("fast", 10_000);
  const slow = counted("slow", 10_000);
  const reader = merge({ fast: fast.stream, slow: slow.stream }).getReader();
  for (let i = 0; i < 20; i++) await reader.read();
  await new Promise((resolve) => setTimeout(resolve, 50)); // time to read ahead, if it would
  // Each source is read at most one message ahead of what the consumer took.
  assert.ok(fast.stats.pulled + slow.stats.pulled <= 22, JSON.stringify([fast.stats, slow.stats]));
  // Ready sources take turns.
  assert.ok(
    Math.abs(fast.stats.pulled - slow.stats.pulled) <= 2,
    JSON.stringify([fast.stats, slow.stats]),
  );
  await reader.cancel();
});

test("merge lets a quiet source through while a busy one always has a message ready", async () => {
  let release!: () => void;
  const later = new Promise<void>((resolve) => (release = resolve));
  const quiet = new ReadableStream<MqttMessage>({
    async pull(controller) {
      await later;
      controller.enqueue(message("quiet/1", "1"));
      controller.close();
    },
  }, { highWaterMark: 0 });
  const busy = counted("busy", 1_000);
  const reader = merge({ busy: busy.stream, quiet }).getReader();
  for (let i = 0; i < 5; i++) assert.equal((await reader.read()).value?.source, "busy");
  release();
  const sources: string[] = [];
  for (let i = 0; i < 4; i++) sources.push((await reader.read()).value!.source);
  assert.ok(sources.includes("quiet"), sources.join());
  await reader.cancel();
});

test("merge errors when a source errors, and cancels the others", async () => {
  let cancelled: unknown;
  const healthy = new ReadableStream<MqttMessage>({
    pull: () => new Promise(() => {}), // never has a message
    cancel: (reason) => void (cancelled = reason),
  }, { highWaterMark: 0 });
  const failing = new ReadableStream<MqttMessage>({
    pull: (c) => c.error(new Error("broker gone")),
  });
  const { error } = await drain(merge({ healthy, failing }));
  assert.match(String(error), /broker gone/);
  assert.match(String(cancelled), /broker gone/);
});

test("merge cancels every source when it is cancelled", async () => {
  const reasons: unknown[] = [];
  const source = () =>
    new ReadableStream<MqttMessage>({ cancel: (reason) => void reasons.push(reason) });
  await merge({ a: source(), b: source() }).cancel("enough");
  assert.deepEqual(reasons, ["enough", "enough"]);
});

test("merge tags with the function given as tag", async () => {
  const { chunks } = await drain(merge(
    { a: ReadableStream.from([message("t", "1")]) },
    { tag: (m, source) => `${source}:${m.topic}` },
  ));
  assert.deepEqual(chunks, ["a:t"]);
});

test("merge adds the source to what a transform yielded, and wraps other values", async () => {
  const m = message("t", "1");
  const { chunks } = await drain(merge({
    decoded: ReadableStream.from([{ value: 1, message: m }]),
    numbers: ReadableStream.from([7]),
  }));
  assert.deepEqual(chunks.sort((x, y) => x.source.localeCompare(y.source)), [
    { value: 1, message: m, source: "decoded" },
    { value: 7, source: "numbers" },
  ]);
});

test("merge refuses no sources, or a source that is not a ReadableStream", () => {
  assert.throws(() => merge({}), /^TypeError: Cannot merge as 'sources' names no stream$/);
  assert.throws(
    () => merge({ a: [] as never }),
    /^TypeError: Cannot merge as source 'a' must be a ReadableStream: current value is $/,
  );
});
