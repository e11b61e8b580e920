// The dead-letter side of a transform's `onInvalid` policy: each message it refuses is
// written to the given WritableStream with its issues, and acknowledged to its own broker
// only once the dead-letter stream took it (an MqttSink: once its broker confirmed it), so
// a refused message is never lost between the two.
import { formatIssues } from "../errors.ts";
import type { MqttPublishProperties } from "../record.ts";
import { MqttSink } from "../sink.ts";
import { messageJson } from "./_json_line.ts";
import type { MqttDeadLetter } from "./mqtt_transform.ts";

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
    this.#acksItself = stream instanceof MqttSink;
    this.#plain = stream instanceof MqttSink && stream.options.mqttVersion !== 5;
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
