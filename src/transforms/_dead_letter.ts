// The dead-letter side of a transform's `onInvalid` policy: each message it refuses is
// written to the given WritableStream with its issues, and acknowledged to its own broker
// only once the dead-letter stream took it (an MqttSink: once its broker confirmed it), so
// a refused message is never lost between the two.
import { formatIssues, type MqttIssue } from "../errors.ts";
import type { MqttMessage } from "../message.ts";
import { type MqttPublishProperties, type MqttRecord, recordSinks } from "../record.ts";
import { messageJson } from "./json_line.ts";

/**
 * A message a transform refused, as its dead-letter stream receives it: a record an
 * `MqttSink` publishes as it is (to the sink's own topic: the original payload, QoS and
 * properties, plus the user properties `mqtt-streams-stage`, `mqtt-streams-topic` and
 * `mqtt-streams-issues`; on MQTT 3.1.1 a JSON payload with the message and its issues),
 * with the message and its issues beside it for any other stream.
 *
 * @example Log dead letters
 * ```ts
 * import type { MqttDeadLetter } from "@mqtt-streams/core";
 *
 * const log = new WritableStream<MqttDeadLetter>({
 *   write: (letter) => console.error(letter.stage, letter.message.topic, letter.issues),
 * });
 * console.log(log.locked); // false
 * ```
 */
export interface MqttDeadLetter extends MqttRecord {
  /** The payload: the original, or on an MQTT 3.1.1 `MqttSink` a JSON envelope. */
  readonly payload: Uint8Array | string;
  /** The message that was refused. */
  readonly message: MqttMessage;
  /** Why. */
  readonly issues: readonly MqttIssue[];
  /** Which transform refused it: "decodeText", "decodeJson", "validate" or "route". */
  readonly stage: string;
  /** The name of its source, when it came through `merge`. */
  readonly source?: string;
}

/** What a transform knows of a message it refused; the rest of its dead letter is made here. */
type Letter = Omit<MqttDeadLetter, "payload" | "qos" | "retain" | "properties" | "ack">;

/** Writes dead letters to one stream, keeping to its backpressure; closes it at the end. */
export class DeadLetters {
  readonly #stream: WritableStream<MqttDeadLetter>;
  /** An MqttSink calls a record's ack() on its broker's confirmation; other streams on write. */
  readonly #acksItself: boolean;
  /** MQTT 3.1.1 has no user properties: the issues travel in a JSON payload instead. */
  readonly #plain: boolean;
  #writer?: WritableStreamDefaultWriter<MqttDeadLetter>;
  readonly #pending = new Set<Promise<void>>();

  constructor(stream: WritableStream<MqttDeadLetter>) {
    this.#stream = stream;
    const sink = recordSinks.get(stream);
    this.#acksItself = sink !== undefined;
    this.#plain = sink !== undefined && sink.mqttVersion !== 5;
  }

  /**
   * Writes the dead letter of `message`, once the stream has room. A failed write calls
   * `fail`, which errors the transform.
   */
  async write(
    letter: Letter,
    fail: (error: unknown) => void,
  ): Promise<void> {
    const writer = this.#writer ??= this.#stream.getWriter();
    await writer.ready;
    const { message } = letter;
    const full: MqttDeadLetter = {
      ...letter,
      ...(this.#plain ? this.#envelope(letter) : this.#record(letter)),
      retain: false,
      qos: message.qos,
      ack: () => message.ack(),
    };
    const written = writer.write(full).then(() => {
      if (!this.#acksItself) message.ack();
    }, fail);
    const pending = written.finally(() => this.#pending.delete(pending));
    this.#pending.add(pending);
  }

  /** Waits for the writes under way, then closes the stream (as pipeTo closes its destination). */
  async close(): Promise<void> {
    await Promise.all(this.#pending);
    if (this.#writer) return this.#writer.close();
    if (!this.#stream.locked) return this.#stream.close();
  }

  /** Aborts the stream: the transform failed or was cancelled. */
  abort(reason: unknown): Promise<void> {
    if (this.#writer) return this.#writer.abort(reason).catch(() => {});
    if (!this.#stream.locked) return this.#stream.abort(reason).catch(() => {});
    return Promise.resolve();
  }

  /** The original payload, its properties, and the issues as user properties (MQTT 5). */
  #record(letter: Letter) {
    const { message, issues, stage } = letter;
    const { topicAlias: _alias, subscriptionIdentifier: _id, ...kept } = message.properties ?? {};
    const properties: MqttPublishProperties = {
      ...kept,
      userProperties: {
        ...kept.userProperties,
        "mqtt-streams-stage": stage,
        "mqtt-streams-topic": message.topic,
        "mqtt-streams-issues": formatIssues(issues),
      },
    };
    return { payload: message.payload, properties };
  }

  /** The message and its issues as one JSON payload (MQTT 3.1.1). */
  #envelope(letter: Letter) {
    const { message, issues, stage } = letter;
    return { payload: JSON.stringify({ stage, issues, ...messageJson(message) }) };
  }
}
