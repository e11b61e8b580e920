/**
 * {@linkcode MqttRecord}: what an `MqttSink` publishes, besides bare payloads.
 *
 * @module
 */
// This module is browser compatible.
import type { Context } from "@opentelemetry/api";
import { MqttRecordError } from "./errors.ts";
import type { MqttOptions } from "./options/options.ts";
import { topicNameProblem } from "./options/_topic.ts";
import { showValue } from "./options/_redact.ts";

/**
 * MQTT 5 properties a publisher sets (MQTT 5 §3.3.2.3); they reach subscribers as
 * `MqttMessage.properties`. MQTT 3.1.1 has none.
 *
 * @example Request and reply
 * ```ts
 * import type { MqttPublishProperties } from "@mqtt-streams/core";
 *
 * const properties: MqttPublishProperties = {
 *   responseTopic: "replies/client-7",
 *   correlationData: new TextEncoder().encode("req-42"),
 *   userProperties: { tenant: "acme" },
 * };
 * console.log(Object.keys(properties).length); // 3
 * ```
 */
export interface MqttPublishProperties {
  /** True when the payload is UTF-8 text. */
  payloadFormatIndicator?: boolean;
  /** Seconds the broker keeps the message for subscribers that have not received it. */
  messageExpiryInterval?: number;
  /** The MIME type of the payload. */
  contentType?: string;
  /** Where a reply should go (request/response). */
  responseTopic?: string;
  /** Correlates a reply with its request. */
  correlationData?: Uint8Array;
  /** User properties; a name with several values has an array. */
  userProperties?: Record<string, string | string[]>;
}

/**
 * One message to publish, with its own topic, QoS, retain flag and MQTT 5 properties;
 * what it leaves out comes from the sink's options. An `MqttMessage` is a record too, so
 * a source's messages can be written to a sink as they are.
 *
 * @example A retained JSON reading
 * ```ts
 * import type { MqttRecord } from "@mqtt-streams/core";
 *
 * const record: MqttRecord = {
 *   topic: "sensors/north/temp",
 *   payload: JSON.stringify({ celsius: 21.5 }),
 *   qos: 1,
 *   retain: true,
 *   properties: { contentType: "application/json" },
 * };
 * console.log(record.topic); // sensors/north/temp
 * ```
 */
export interface MqttRecord {
  /** The topic to publish to: a name, without wildcards. @default {the sink's topic} */
  topic?: string;
  /** The payload: bytes as they are, or text as UTF-8. */
  payload: Uint8Array | string;
  /** The QoS to publish at. @default {the sink's qos} */
  qos?: 0 | 1 | 2;
  /** Ask the broker to keep it as the topic's retained message. @default {false} */
  retain?: boolean;
  /** MQTT 5 properties (needs mqttVersion=5). */
  properties?: MqttPublishProperties;
  /**
   * The OpenTelemetry context the publish's span continues: an `MqttMessage`'s, so a
   * bridge carries the trace. @default {the active context}
   */
  context?: Context;
  /**
   * Called once the sink's broker confirmed the publish (PUBACK / PUBCOMP; for QoS 0,
   * once it is written to the connection). An `MqttMessage`'s `ack()` is this hook, which
   * makes `source.pipeTo(sink)` with `ack: "manual"` an at-least-once bridge.
   */
  ack?(): void;
}

/** A record checked and completed, as the sink publishes it. */
export interface Publish {
  /** Which chunk written to the sink it is, counting from 0. */
  index: number;
  topic: string;
  payload: Uint8Array | string;
  qos: 0 | 1 | 2;
  retain: boolean;
  properties?: MqttPublishProperties;
  ack?: () => void;
  /** persistence=file: resolves the sink's write once the store holds the publish. */
  stored?: () => void;
  /** The sink's attempt at sending it (publishAttempts), from 1. */
  attempt?: number;
  /** The trace context its producer span continues (a bridged message's). */
  context?: Context;
  /** What telemetry follows of it (src/telemetry/_observer.ts), when an SDK is there. */
  observer?: PublishObserver;
}

/** The end of a publish, as telemetry records it: its duration, and its span. */
export interface PublishObserver {
  /** Settled: acknowledged, written (QoS 0), or given up on with `failure` (an error type). */
  end(failure?: string): void;
  /** Sent again, as attempt `attempt`. */
  retried(attempt: number): void;
}

/**
 * What an {@linkcode MqttSink} takes: a record, or a bare payload for the sink's topic.
 *
 * @example
 * ```ts
 * import type { MqttSinkChunk } from "@mqtt-streams/core";
 *
 * const chunks: MqttSinkChunk[] = ["text", new Uint8Array([1, 2]), { topic: "a/b", payload: "x" }];
 * console.log(chunks.length); // 3
 * ```
 */
export type MqttSinkChunk = MqttRecord | Uint8Array | string;

/**
 * The streams that call a record's `ack()` only once their broker confirmed it (every
 * `MqttSink`), with the MQTT version they speak: a transform's dead letters written to one
 * are acknowledged by it, and on MQTT 3.1.1 carry their issues in the payload. A registry,
 * so that the transforms need not import the sink (and with it, mqtt.js).
 */
export const recordSinks: WeakMap<object, { readonly mqttVersion: number }> = new WeakMap();

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
