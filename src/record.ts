/**
 * {@linkcode MqttRecord}: what an `MqttSink` publishes, besides bare payloads.
 *
 * @module
 */
// This module is browser compatible.

/**
 * An OpenTelemetry trace context: `Context` of `@opentelemetry/api`, which it is the same
 * type as (declared here with its three members, so that the module's documentation is
 * complete). A message carries the one it arrived with; a record may carry the one to
 * publish under.
 *
 * @example Continue a message's trace
 * ```ts
 * import { context, trace } from "@opentelemetry/api";
 * import { MqttMessage, type MqttTraceContext } from "@mqtt-streams/core";
 *
 * const message = new MqttMessage("plant/1/temp", new TextEncoder().encode("21.5"));
 * const parent: MqttTraceContext = message.context ?? context.active();
 * const span = trace.getTracer("app").startSpan("handle", {}, parent);
 * span.end();
 * ```
 */
export interface MqttTraceContext {
  /** The value of `key` in this context. */
  getValue(key: symbol): unknown;
  /** A new context with `key` set to `value`. */
  setValue(key: symbol, value: unknown): MqttTraceContext;
  /** A new context without `key`. */
  deleteValue(key: symbol): MqttTraceContext;
}

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
  context?: MqttTraceContext;
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
  context?: MqttTraceContext;
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
