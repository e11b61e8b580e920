// The three commands. Each returns when it is done, after Ctrl-C once it has closed
// cleanly, or throws what failed.
import process from "node:process";
import {
  messageJson,
  type MqttMessage,
  type MqttRecord,
  MqttSink,
  MqttSource,
  parseConnectionString,
  toRecord,
} from "../mod.ts";
import { type Command, UsageError } from "./_args.ts";
import { controls, stdinLines, stdoutStream } from "./_io.ts";
import { topicMap } from "./_topic_map.ts";

const note = (text: string) => process.stderr.write(`mqtt-streams: ${text}\n`);

/** A pass-through stream that ends (closing what it feeds) when `signal` aborts. */
function gate<T>(signal: AbortSignal): TransformStream<T, T> {
  return new TransformStream<T, T>({
    start(controller) {
      signal.addEventListener("abort", () => controller.terminate(), { once: true });
    },
  });
}

/** sub: messages as JSON lines; each acknowledged once its line is written. */
export async function sub(command: Extract<Command, { name: "sub" }>): Promise<void> {
  const source = new MqttSource(command.url, { ack: "manual" });
  const run = controls(
    command.progress,
    (perSecond) =>
      `sub: ${source.stats.received} received (${
        perSecond(source.stats.received)
      }/s), ${source.stats.acked} acked`,
    () => source.stats.connecting,
  );
  const reader = source.getReader();
  const stop = () => reader.cancel().catch(() => {});
  run.signal.addEventListener("abort", stop, { once: true });
  const timer = command.timeout === undefined
    ? undefined
    : setTimeout(stop, command.timeout * 1000);
  // Not awaited: a resumed session's backlog can hold the SUBACK until messages are read.
  source.ready.then(
    () => note(`subscribed to ${source.options.topic.join(", ")} on ${source.stats.broker}`),
    () => {},
  );
  const out = stdoutStream().getWriter();
  try {
    for (let count = 0; count !== command.count;) {
      const { done, value } = await reader.read();
      if (done) break;
      await out.write(`${JSON.stringify(messageJson(value))}\n`);
      value.ack();
      count++;
    }
    await out.close();
  } finally {
    clearTimeout(timer);
    run.done();
    await stop();
  }
}

/** pub: stdin lines (or JSON records) to the broker; done once every publish is acknowledged. */
export async function pub(command: Extract<Command, { name: "pub" }>): Promise<void> {
  if (!command.json && parseConnectionString(command.url).topic.length === 0) {
    throw new UsageError(
      "pub: the URL needs ?topic=... (or use --json, with a topic in each line)",
    );
  }
  const sink = new MqttSink(command.url);
  const run = controls(
    command.progress,
    publishing("pub: ", "published", sink, () => sink.stats.acked),
    () => sink.stats.connecting,
  );
  let line = 0;
  try {
    await ReadableStream.from(stdinLines())
      .pipeThrough(
        new TransformStream<string, MqttRecord | string>({
          transform(text, controller) {
            line++;
            if (!command.json) return controller.enqueue(text);
            if (text.trim() !== "") controller.enqueue(recordOf(text, line));
          },
        }),
      )
      .pipeThrough(gate(run.signal))
      .pipeTo(sink);
  } finally {
    run.done();
  }
  note(`published ${sink.stats.published} (${sink.stats.acked} acknowledged) from ${line} lines`);
}

/**
 * The progress line of a command that publishes through `sink`: `label`, the publishes as
 * `verb` with their rate, those in flight, and `acked()`.
 */
function publishing(
  label: string,
  verb: string,
  sink: MqttSink,
  acked: () => number,
): (perSecond: (total: number) => number) => string {
  return (perSecond) =>
    `${label}${sink.stats.published} ${verb} (${
      perSecond(sink.stats.published)
    }/s), ${sink.stats.inflight} in flight, ${acked()} acked`;
}

/** A JSON line as a record. @throws {Error} Naming the line, when it is not one. */
function recordOf(text: string, line: number): MqttRecord {
  let record;
  try {
    record = JSON.parse(text);
  } catch (error) {
    throw new Error(`line ${line} is not JSON (${(error as Error).message})`);
  }
  if (typeof record !== "object" || record === null || typeof record.payload !== "string") {
    throw new Error(`line ${line} is not a record: it needs "payload" as a string`);
  }
  const { topic, qos, retain, properties } = record;
  if (record.encoding !== "base64") {
    return { topic, qos, retain, properties, payload: record.payload };
  }
  let payload;
  try {
    payload = Uint8Array.from(atob(record.payload), (char) => char.charCodeAt(0));
  } catch {
    throw new Error(`line ${line} is not a record: "encoding" is base64 but "payload" is not`);
  }
  return { topic, qos, retain, properties, payload };
}

/** bridge: from → to, at least once (ack=manual), topics rewritten by --map. */
export async function bridge(command: Extract<Command, { name: "bridge" }>): Promise<void> {
  const map = topicMap(command.maps);
  const source = new MqttSource(command.from, { ack: "manual" });
  let sink: MqttSink;
  try {
    sink = new MqttSink(command.to);
  } catch (error) {
    await source.cancel();
    throw error;
  }
  if (source.options.cleanSession) {
    note(
      "bridge: <from> has no clientId (or cleanSession=true), so a restarted bridge does not receive what arrived while it was down",
    );
  }
  const withProperties = sink.options.mqttVersion === 5;
  const run = controls(
    command.progress,
    publishing("bridge: ", "bridged", sink, () => source.stats.acked),
    () => source.stats.connecting ?? sink.stats.connecting,
  );
  try {
    // Not awaited: a resumed session's backlog can hold the SUBACK until messages are read.
    source.ready.then(() => note(`bridging ${source.options.topic.join(", ")}`), () => {});
    // On Ctrl-C the gate ends the stream: the sink closes once every copy is confirmed,
    // which acknowledges the originals; only then is the source cancelled (disconnected).
    await source
      .pipeThrough(gate<MqttMessage>(run.signal), { preventCancel: true })
      .pipeThrough(
        toRecord((message: MqttMessage) => ({
          topic: map(message.topic),
          payload: message.payload,
          qos: message.qos,
          retain: message.retain,
          properties: withProperties ? message.properties : undefined,
        })),
      )
      .pipeTo(sink);
  } finally {
    run.done();
    await source.cancel().catch(() => {});
  }
  note(`bridged ${sink.stats.acked} messages`);
}
