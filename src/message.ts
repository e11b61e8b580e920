/**
 * {@linkcode MqttMessage}: what an {@linkcode MqttSource} yields.
 *
 * @module
 */
// This module is browser compatible.
import type { MqttTraceContext } from "./record.ts";

/** MQTT 5 properties of a PUBLISH (MQTT 5 §3.3.2.3), as mqtt.js reads them. */
export interface MqttMessageProperties {
  /** True when the payload is UTF-8 text. */
  payloadFormatIndicator?: boolean;
  /** Seconds the message had left to live when the broker sent it. */
  messageExpiryInterval?: number;
  /** The topic alias the broker used. */
  topicAlias?: number;
  /** Where to send a reply (request/response). */
  responseTopic?: string;
  /** Correlates a reply with its request. */
  correlationData?: Uint8Array;
  /** User properties; a name that repeats has an array of values. */
  userProperties?: Record<string, string | string[]>;
  /** The identifier(s) of the subscription(s) that matched. */
  subscriptionIdentifier?: number | number[];
  /** The MIME type of the payload. */
  contentType?: string;
}

const decoder = new TextDecoder();

/**
 * One message received by an {@linkcode MqttSource}.
 *
 * @example Read a message's fields
 * ```ts
 * import { MqttMessage } from "@mqtt-streams/core";
 *
 * const message = new MqttMessage("sensors/1/temp", new TextEncoder().encode('{"c":21.5}'), { qos: 1, id: 7 });
 * console.log(message.topic, message.qos, message.json()); // sensors/1/temp 1 { c: 21.5 }
 * ```
 */
export class MqttMessage {
  /** The topic it was published to. */
  readonly topic: string;
  /** The payload. */
  readonly payload: Uint8Array;
  /** The QoS it was delivered at: the lower of the publish's and the subscription's. */
  readonly qos: 0 | 1 | 2;
  /** Whether the broker delivered it as a retained message. */
  readonly retain: boolean;
  /**
   * Whether it may have been delivered before (DUP): a QoS 1 message sent again after a
   * reconnect. Such duplicates are what at-least-once means; they are counted in
   * `source.stats.redelivered`, never hidden.
   */
  readonly dup: boolean;
  /** The packet identifier (QoS 1/2); undefined at QoS 0. Identifiers are reused. */
  readonly id: number | undefined;
  /** When it arrived, in ms since the epoch. */
  readonly timestamp: number;
  /** MQTT 5 properties (user properties, content type, response topic, ...); undefined on 3.1.1. */
  readonly properties: MqttMessageProperties | undefined;
  /**
   * Its OpenTelemetry context, when an SDK is registered: the source's consumer span,
   * the child of the publisher's span when its trace context came in the MQTT 5 user
   * properties. A handler continues the trace from it; a sink it is written to does.
   */
  readonly context: MqttTraceContext | undefined;
  readonly #ack: (() => void) | undefined;
  #filters: readonly string[] | (() => readonly string[]) | undefined;

  /**
   * Creates a message. Sources create them; this is public for tests and transforms.
   *
   * @param topic The topic.
   * @param payload The payload.
   * @param init The other fields, and `ack`: what {@linkcode MqttMessage.ack} calls.
   */
  constructor(
    topic: string,
    payload: Uint8Array,
    init: {
      qos?: 0 | 1 | 2;
      retain?: boolean;
      dup?: boolean;
      id?: number;
      timestamp?: number;
      properties?: MqttMessageProperties;
      context?: MqttTraceContext;
      ack?: () => void;
      filters?: readonly string[] | (() => readonly string[]);
    } = {},
  ) {
    this.topic = topic;
    this.payload = payload;
    this.qos = init.qos ?? 0;
    this.retain = init.retain ?? false;
    this.dup = init.dup ?? false;
    this.id = init.id;
    this.timestamp = init.timestamp ?? Date.now();
    this.properties = init.properties;
    this.context = init.context;
    this.#ack = init.ack;
    this.#filters = init.filters;
  }

  /**
   * The filters of its source that match its topic, in the order the source names them:
   * several when filters overlap (the message is still delivered once). Undefined for a
   * message no source made.
   *
   * @example Which filters a message matched
   * ```ts
   * import { MqttMessage } from "@mqtt-streams/core";
   *
   * const message = new MqttMessage("a/b", new Uint8Array(), { filters: ["a/+", "a/#"] });
   * console.log(message.filters); // [ "a/+", "a/#" ]
   * ```
   */
  get filters(): readonly string[] | undefined {
    if (typeof this.#filters === "function") this.#filters = this.#filters();
    return this.#filters;
  }

  /**
   * The payload decoded as UTF-8.
   *
   * @returns The text.
   */
  text(): string {
    return decoder.decode(this.payload);
  }

  /**
   * The payload parsed as JSON.
   *
   * @returns The parsed value.
   * @throws {SyntaxError} When the payload is not JSON.
   */
  json<T = unknown>(): T {
    return JSON.parse(this.text());
  }

  /**
   * Acknowledges the message to the broker, with `ack: "manual"`: a QoS 1 message's PUBACK
   * or a QoS 2 message's PUBCOMP is sent once this and every earlier message are
   * acknowledged, so the broker sees them in arrival order (MQTT 5 §4.6). Harmless and
   * idempotent otherwise (QoS 0, `ack: "read"`, a second call).
   *
   * @example Acknowledge after processing
   * ```ts
   * import { MqttMessage } from "@mqtt-streams/core";
   *
   * let acked = 0;
   * const message = new MqttMessage("a", new Uint8Array(), { qos: 1, ack: () => acked++ });
   * message.ack();
   * console.log(acked); // 1
   * ```
   */
  ack(): void {
    this.#ack?.();
  }
}

/**
 * An incoming PUBLISH as the connection hands it over (mqtt.js's packet, which has these
 * fields): the payload is a view of the bytes read, not a copy.
 */
export interface IncomingPublish {
  topic: string;
  payload: Uint8Array;
  qos: 0 | 1 | 2;
  retain: boolean;
  dup: boolean;
  messageId?: number;
  properties?: object;
}

/** The message of an incoming PUBLISH; its payload is a view of the same bytes, not a copy. */
export function receivedMessage(
  publish: IncomingPublish,
  ack: (() => void) | undefined,
  context?: MqttTraceContext,
  filters?: () => readonly string[],
): MqttMessage {
  const { payload } = publish;
  return new MqttMessage(
    publish.topic,
    new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
    {
      qos: publish.qos,
      retain: publish.retain,
      dup: publish.dup,
      id: publish.qos > 0 ? publish.messageId : undefined,
      properties: publish.properties as MqttMessageProperties | undefined,
      context,
      ack,
      filters,
    },
  );
}
