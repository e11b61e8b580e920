// What the transform tests share: messages that count their acks, reading a stream to its
// end or its error, a dead-letter stream that records what it got, and the three
// onInvalid policies run over the same good and bad messages.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type MqttDeadLetter,
  type MqttInput,
  MqttInvalidMessageError,
  MqttMessage,
  type MqttTransform,
  type MqttTransformOptions,
} from "../../mod.ts";

const encoder = new TextEncoder();

/** A QoS 1 message that counts its acks in `acks`. */
export function message(
  topic: string,
  payload: string | Uint8Array,
  acks: Map<MqttMessage, number> = new Map(),
): MqttMessage {
  const message: MqttMessage = new MqttMessage(
    topic,
    typeof payload === "string" ? encoder.encode(payload) : payload,
    { qos: 1, ack: () => acks.set(message, (acks.get(message) ?? 0) + 1) },
  );
  return message;
}

/** Everything `stream` yields, and the error it ended with, if any. */
export async function drain<T>(
  stream: ReadableStream<T>,
): Promise<{ chunks: T[]; error?: unknown }> {
  const chunks: T[] = [];
  const reader = stream.getReader();
  try {
    for (let i = 0; i < 100_000; i++) {
      const { done, value } = await reader.read();
      if (done) return { chunks };
      chunks.push(value);
    }
    throw new Error("drain(): more than 100000 chunks");
  } catch (error) {
    return { chunks, error };
  }
}

/** A dead-letter stream that keeps what it is given and whether it was closed. */
export function letterBox(): {
  stream: WritableStream<MqttDeadLetter>;
  letters: MqttDeadLetter[];
  closed: () => boolean;
} {
  const letters: MqttDeadLetter[] = [];
  let closed = false;
  const stream = new WritableStream<MqttDeadLetter>({
    write: (letter) => void letters.push(letter),
    close: () => void (closed = true),
  });
  return { stream, letters, closed: () => closed };
}

/**
 * Registers three tests of `stage` made by `make`: under onInvalid "error", "drop" and a
 * dead-letter stream, over `good` and `bad` messages interleaved (good first). `check`
 * looks at what came out of the good ones; `issue` matches the first bad one's issues.
 */
export function underEachPolicy<O>(
  stage: string,
  make: (options: MqttTransformOptions) => MqttTransform<MqttInput, O>,
  cases: {
    good: (acks: Map<MqttMessage, number>) => MqttMessage[];
    bad: (acks: Map<MqttMessage, number>) => MqttMessage[];
    check: (outputs: O[], good: MqttMessage[]) => void;
    issue: RegExp;
  },
): void {
  const inputs = (acks: Map<MqttMessage, number>) => {
    const good = cases.good(acks);
    const bad = cases.bad(acks);
    const all = good.flatMap((message, i) => (bad[i] ? [message, bad[i]] : [message]));
    return { good, bad, all: [...all, ...bad.slice(good.length)] };
  };

  test(`${stage} passes good messages, then errors the stream at the first bad one naming its topic`, async () => {
    const acks = new Map<MqttMessage, number>();
    const { good, bad, all } = inputs(acks);
    const transform = make({});
    const { chunks, error } = await drain(ReadableStream.from(all).pipeThrough(transform));
    if (!(error instanceof MqttInvalidMessageError)) throw error;
    assert.equal(error.code, "INVALID_MESSAGE");
    assert.equal(error.stage, stage);
    assert.equal(error.topic, bad[0].topic);
    assert.match(error.message, new RegExp(`'${bad[0].topic}': `));
    assert.match(error.message, cases.issue);
    cases.check(chunks, good.slice(0, 1));
    assert.equal(
      acks.get(bad[0]),
      undefined,
      "an invalid message that errors the stream is not acked",
    );
    assert.deepEqual(transform.stats, { passed: 1, dropped: 0, deadLettered: 0 });
  });

  test(`${stage} with onInvalid "drop" passes the good messages and counts and acks each bad one`, async () => {
    const acks = new Map<MqttMessage, number>();
    const { good, bad, all } = inputs(acks);
    const transform = make({ onInvalid: "drop" });
    const { chunks, error } = await drain(ReadableStream.from(all).pipeThrough(transform));
    assert.equal(error, undefined);
    cases.check(chunks, good);
    assert.deepEqual(transform.stats, {
      passed: good.length,
      dropped: bad.length,
      deadLettered: 0,
    });
    for (const message of bad) assert.equal(acks.get(message), 1, `${message.topic} acked once`);
  });

  test(`${stage} with a dead-letter stream writes each bad message with its issues, acks it once written, and closes the stream at the end`, async () => {
    const acks = new Map<MqttMessage, number>();
    const { good, bad, all } = inputs(acks);
    const box = letterBox();
    const transform = make({ onInvalid: box.stream });
    const { chunks, error } = await drain(ReadableStream.from(all).pipeThrough(transform));
    assert.equal(error, undefined);
    cases.check(chunks, good);
    assert.deepEqual(transform.stats, {
      passed: good.length,
      dropped: 0,
      deadLettered: bad.length,
    });
    assert.deepEqual(box.letters.map((letter) => letter.message), bad);
    const [first] = box.letters;
    assert.equal(first.stage, stage);
    assert.deepEqual(first.payload, bad[0].payload);
    assert.equal(first.qos, 1);
    assert.equal(first.properties?.userProperties?.["mqtt-streams-topic"], bad[0].topic);
    assert.match(String(first.properties?.userProperties?.["mqtt-streams-issues"]), cases.issue);
    assert.match(
      first.issues.map((i) => `${i.path ? `${i.path.join(".")}: ` : ""}${i.message}`).join("; "),
      cases.issue,
    );
    for (const message of bad) assert.equal(acks.get(message), 1, `${message.topic} acked once`);
    assert.ok(box.closed(), "the dead-letter stream is closed when the input ends");
  });
}
