// MQTT into a durable log, acknowledging each message only once it is on disk: the Bahir
// connector's best practice 1. A JSON-lines file written with fdatasync stands in for Kafka; the
// source has a persistent session (clientId, qos=1) and ack=manual, so a message is
// acknowledged to the broker only after its line is durable. Kill the process at any
// point and start it again: what was not acknowledged is delivered again (at least once;
// a line may repeat, never go missing). To use Kafka, replace the WritableStream below
// with one whose write() awaits `producer.send({ topic, messages: [{ key, value }] })`
// (kafkajs, with acks: -1) before calling message.ack().
// Run: npx --yes deno@2 run --allow-net=127.0.0.1 --allow-env --allow-sys --allow-read --allow-write examples/durable_log.ts [file]
import { open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type MqttMessage, MqttSink, MqttSource } from "../mod.ts";
import { embeddedBroker } from "./_embedded_broker.ts";

/**
 * A WritableStream that appends each message to `path` as a JSON line, makes it durable
 * (fdatasync), and only then acknowledges it. Up to `batch` lines share one fdatasync; a
 * batch that does not fill is written after `lingerMs`.
 */
async function jsonLinesLog(path: string, batch = 64, lingerMs = 20) {
  const file = await open(path, "a");
  let lines: string[] = [];
  let waiting: MqttMessage[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  let chain = Promise.resolve();
  let fail: (error: unknown) => void = () => {};
  // One flush at a time, in order: a write's and the linger timer's.
  const flush = () =>
    chain = chain.then(async () => {
      clearTimeout(timer);
      timer = undefined;
      if (lines.length === 0) return;
      const [text, messages] = [lines.join(""), waiting];
      [lines, waiting] = [[], []];
      await file.appendFile(text);
      await file.datasync(); // durable: now the broker may forget them
      for (const message of messages) message.ack();
    });
  return new WritableStream<MqttMessage>({
    start(controller) {
      fail = (error) => controller.error(error); // a failed timer flush errors the stream
    },
    write(message) {
      const { topic, timestamp } = message;
      lines.push(`${JSON.stringify({ topic, payload: message.text(), at: timestamp })}\n`);
      waiting.push(message);
      if (lines.length >= batch) return flush();
      timer ??= setTimeout(() => flush().catch(fail), lingerMs);
      return Promise.resolve();
    },
    async close() {
      await flush();
      await file.close();
    },
    async abort() {
      clearTimeout(timer);
      await chain.catch(() => {});
      await file.close(); // lines not yet flushed were never acknowledged: they come again
    },
  }, new CountQueuingStrategy({ highWaterMark: batch }));
}

const broker = await embeddedBroker();
const { url } = broker;
const path = process.argv[2] ?? join(tmpdir(), `mqtt-streams-log-${Date.now()}.jsonl`);
try {
  // maxInflight above the batch, so a batch can fill before its acks are due.
  const source = new MqttSource(
    `${url}?topic=meters/%23&qos=1&clientId=log-writer&ack=manual&maxInflight=128`,
  );
  await source.ready;
  const count = 500;
  const stop = new AbortController();
  const logging = source.pipeTo(await jsonLinesLog(path), { signal: stop.signal });
  await ReadableStream.from(
    Array.from({ length: count }, (_, i) => ({ topic: `meters/${i % 5}`, payload: String(i) })),
  ).pipeTo(new MqttSink(`${url}?qos=1`));
  for (let i = 0; i < 1000 && source.stats.acked < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  stop.abort(); // cancels the source (the session stays) and closes the file
  await logging.catch(() => {});
  const lines = (await readFile(path, "utf8")).trim().split("\n");
  console.log(
    `logged ${lines.length} lines to ${path}; acked ${source.stats.acked} after fdatasync`,
  );
  console.log(`first: ${lines[0]}`);
  if (process.argv[2] === undefined) await rm(path); // a demo run leaves nothing behind
} finally {
  await broker.close();
}
