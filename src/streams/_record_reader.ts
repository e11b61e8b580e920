// How a sink reads what is written to it: one chunk (a record, or a bare payload) checked
// and turned into a Publish with the sink's defaults filled in, or refused with an
// MqttRecordError that names the chunk and what is wrong with it.
import { MqttRecordError } from "../errors.ts";
import type { MqttOptions } from "../options/options.ts";
import { topicNameProblem } from "../options/_topic.ts";
import { showValue } from "../_redact.ts";
import type { MqttPublishProperties, MqttRecord, Publish } from "../record.ts";

/** Properties a received message carries that belong to its hop, not to a republish. */
const PER_HOP = new Set(["topicAlias", "subscriptionIdentifier"]);

type Check = (value: unknown) => string | undefined;

const PROPERTY_CHECKS: Record<keyof MqttPublishProperties, Check> = {
  payloadFormatIndicator: (v) => typeof v === "boolean" ? undefined : "must be a boolean",
  messageExpiryInterval: (v) =>
    Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffff_ffff
      ? undefined
      : "must be an integer from 0 to 4294967295 (seconds)",
  contentType: (v) => typeof v === "string" ? undefined : "must be a string",
  responseTopic: (v) => typeof v === "string" ? topicNameProblem(v) : "must be a string",
  correlationData: (v) => v instanceof Uint8Array ? undefined : "must be a Uint8Array",
  userProperties: (v) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      return "must be an object of strings";
    }
    for (const [name, value] of Object.entries(v)) {
      const values = Array.isArray(value) ? value : [value];
      if (!values.every((item) => typeof item === "string")) {
        return `must map names to strings or arrays of strings: '${name}' is not`;
      }
    }
    return undefined;
  },
};

/**
 * Checks one chunk written to a sink and fills in the sink's defaults. Remembers the last
 * topic it checked, since a stream usually publishes to few.
 */
export class RecordReader {
  readonly #options: MqttOptions;
  #count = 0;
  #lastTopic?: string;

  constructor(options: MqttOptions) {
    this.#options = options;
  }

  /**
   * The publish that `chunk` asks for.
   *
   * @throws {MqttRecordError} When the chunk cannot be published, saying why.
   */
  read(chunk: unknown): Publish {
    const index = this.#count++;
    const { qos, topic } = this.#options;
    if (typeof chunk === "string" || chunk instanceof Uint8Array) {
      return { index, topic: this.#topic(topic[0], index), payload: chunk, qos, retain: false };
    }
    if (typeof chunk !== "object" || chunk === null || !("payload" in chunk)) {
      refuse(
        index,
        `it is not a string, a Uint8Array or a record with a payload: got ${describeValue(chunk)}`,
      );
    }
    const record = chunk as Partial<MqttRecord>;
    const fail = (what: string) => refuse(index, `its ${what}`);
    if (typeof record.payload !== "string" && !(record.payload instanceof Uint8Array)) {
      fail(`payload must be a string or a Uint8Array: got ${describeValue(record.payload)}`);
    }
    if (record.topic !== undefined && typeof record.topic !== "string") {
      fail(`topic must be a string: got ${describeValue(record.topic)}`);
    }
    if (record.qos !== undefined && record.qos !== 0 && record.qos !== 1 && record.qos !== 2) {
      fail(`qos must be 0, 1 or 2: got ${describeValue(record.qos)}`);
    }
    if (record.retain !== undefined && typeof record.retain !== "boolean") {
      fail(`retain must be a boolean: got ${describeValue(record.retain)}`);
    }
    if (record.ack !== undefined && typeof record.ack !== "function") {
      fail(`ack must be a function: got ${describeValue(record.ack)}`);
    }
    if (
      record.context !== undefined &&
      typeof (record.context as { getValue?: unknown } | null)?.getValue !== "function"
    ) {
      fail(`context must be an OpenTelemetry Context: got ${describeValue(record.context)}`);
    }
    return {
      index,
      topic: this.#topic(record.topic ?? topic[0], index),
      payload: record.payload!,
      qos: record.qos ?? qos,
      retain: record.retain ?? false,
      properties: this.#properties(record.properties, index),
      ack: record.ack && (() => record.ack!()),
      context: record.context,
    };
  }

  #topic(topic: string | undefined, index: number): string {
    if (topic === this.#lastTopic && topic !== undefined) return topic;
    if (topic === undefined) {
      refuse(
        index,
        "it has no topic and the sink has none (give the record a topic, or the sink ?topic=...)",
      );
    }
    const problem = topicNameProblem(topic);
    if (problem) {
      throw new MqttRecordError(
        `Cannot publish chunk #${index} to '${topic && showValue(topic)}': ${problem}`,
        index,
      );
    }
    this.#lastTopic = topic;
    return topic;
  }

  #properties(properties: unknown, index: number): MqttPublishProperties | undefined {
    if (properties === undefined || properties === null) return undefined;
    const fail = (what: string) => refuse(index, what);
    if (typeof properties !== "object") {
      fail(`its properties must be an object: got ${describeValue(properties)}`);
    }
    const kept: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(properties as object)) {
      if (value === undefined || PER_HOP.has(name)) continue;
      const check = PROPERTY_CHECKS[name as keyof MqttPublishProperties];
      if (!check) {
        fail(
          `'${name}' is not a property a publish can carry (allowed: ${
            Object.keys(PROPERTY_CHECKS).join(", ")
          })`,
        );
      }
      const problem = check(value);
      if (problem) fail(`its property '${name}' ${problem}`);
      kept[name] = value;
    }
    if (Object.keys(kept).length === 0) return undefined;
    if (this.#options.mqttVersion !== 5) {
      fail(
        `it has MQTT 5 properties (${
          Object.keys(kept).join(", ")
        }) and the sink speaks MQTT ${this.#options.mqttVersion} (set mqttVersion=5, or leave them out)`,
      );
    }
    return kept as MqttPublishProperties;
  }
}

/** Throws the error of chunk `index`, which cannot be published as `what` says. */
function refuse(index: number, what: string): never {
  throw new MqttRecordError(`Cannot publish chunk #${index} as ${what}`, index);
}

/** A value in a message: its type, and a short preview. */
function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === "object") {
    const name = value.constructor?.name ?? "Object";
    return `${name === "Object" ? "an object" : `a ${name}`} with keys ${
      Object.keys(value).slice(0, 5).join(", ") || "none"
    }`;
  }
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return `${typeof value} ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`;
}
