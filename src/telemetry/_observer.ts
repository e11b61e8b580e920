// OpenTelemetry for the streams, through @opentelemetry/api: a no-op until the application
// registers an SDK (or passes providers), and then:
// - metrics read off each stream's live `stats` when the SDK collects (observable
//   instruments), so they agree with `stats` by construction and cost nothing per message;
// - a duration histogram per message (source: arrival → acknowledgement; sink: write →
//   the broker's acknowledgement);
// - a PRODUCER span per publish whose W3C trace context travels in MQTT 5 user properties,
//   and a CONSUMER span per message received, the child of (and linked to) that context.
// Names follow OpenTelemetry's messaging semantic conventions
// (https://opentelemetry.io/docs/specs/semconv/messaging/messaging-metrics/ and
// .../messaging-spans/); what they do not name is under `mqtt_streams.`.
// A stream that finds no SDK gets no Telemetry at all: the streams then test one field.
import {
  type Attributes,
  type Context,
  context as contexts,
  defaultTextMapGetter,
  defaultTextMapSetter,
  type Histogram,
  type MeterProvider,
  metrics,
  propagation,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import type { Ack } from "../connection/connection.ts";
import { brokerAddress } from "../options/_brokers.ts";
import type { IncomingPublish } from "../message.ts";
import type { MqttOptions } from "../options/options.ts";
import type { Publish, PublishObserver } from "../record.ts";
import type { Arrival, MqttTelemetryInit, SinkObserver, SourceObserver } from "../streams/hooks.ts";
import {
  SCOPE,
  SCOPE_VERSION,
  type Series,
  type StreamKind,
  type StreamMeters,
  streamMeters,
} from "./_metrics.ts";
import { W3C_TRACE_CONTEXT } from "./_trace_context.ts";

/** The API's no-op tracer provider, which answers while no SDK is registered. */
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * The attributes of every series of a stream: one set per stream configuration, so that
 * their number stays bounded (topic names, which are not, stay out unless asked for).
 */
function streamAttributes(options: MqttOptions, kind: StreamKind): Attributes {
  const { hostname, port } = brokerAddress(options.brokers[0]);
  const attributes: Attributes = {
    "messaging.system": "mqtt",
    "server.address": hostname,
    "server.port": port,
    "mqtt_streams.qos": options.qos,
  };
  if (kind === "sink") {
    if (options.topic[0] !== undefined) attributes["messaging.destination.name"] = options.topic[0];
    return attributes;
  }
  // A filter is the low-cardinality form of the topics it matches; $share/group/filter
  // names a consumer group.
  const groups = new Set<string>();
  const filters = options.topic.map((filter) => {
    const shared = /^\$share\/([^/]+)\/(.*)$/.exec(filter);
    if (!shared) return filter;
    groups.add(shared[1]);
    return shared[2];
  });
  attributes["messaging.destination.template"] = summarize(filters);
  if (groups.size > 0) attributes["messaging.consumer.group.name"] = summarize([...groups]);
  return attributes;
}

/** A list as one attribute value, cut short past 256 characters (10,000 filters are allowed). */
function summarize(values: string[]): string {
  let text = values.join(",");
  if (text.length <= 256) return text;
  let shown = 0;
  for (let length = 0; shown < values.length; shown++) {
    length += values[shown].length + 1;
    if (length > 240) break;
  }
  text = values.slice(0, shown).join(",");
  return `${text},…(${values.length - shown} more)`;
}

/** The telemetry of one stream; undefined when turned off or when no SDK is there to take it. */
export function openTelemetry(
  options: MqttOptions,
  kind: StreamKind,
  providers: MqttTelemetryInit,
): Telemetry | undefined {
  if (!options.telemetry) return undefined;
  // The init's providers are typed by the few members the public API names (hooks.ts); they
  // are the API's providers, which is what the types of @opentelemetry/api say they are.
  const meters = streamMeters(
    (providers.meterProvider as MeterProvider | undefined) ?? metrics.getMeterProvider(),
  );
  let tracerProvider = (providers.tracerProvider as TracerProvider | undefined) ??
    trace.getTracerProvider();
  if (tracerProvider instanceof ProxyTracerProvider) tracerProvider = tracerProvider.getDelegate();
  const tracer = tracerProvider === NOOP_TRACER_PROVIDER
    ? undefined
    : tracerProvider.getTracer(SCOPE, SCOPE_VERSION);
  if (!meters && !tracer) return undefined;
  return new Telemetry(options, kind, meters, tracer);
}

/** One stream's metrics and spans: the observer of a source or a sink. */
export class Telemetry implements SourceObserver, SinkObserver {
  readonly #options: MqttOptions;
  readonly #attributes: Attributes;
  readonly #tracer?: Tracer;
  /** The duration histogram (source: arrival → ack; sink: write → ack), when metrics are on. */
  readonly #duration?: Histogram;
  /**
   * The stream's attributes with its operation (process or send): a success's histogram
   * attributes, made once (unless topics are asked for), and the base of its spans'.
   */
  readonly #done: Attributes;
  readonly #meters?: StreamMeters;
  #unobserve?: () => void;

  constructor(
    options: MqttOptions,
    kind: StreamKind,
    meters: StreamMeters | undefined,
    tracer: Tracer | undefined,
  ) {
    this.#options = options;
    this.#attributes = streamAttributes(options, kind);
    this.#tracer = tracer;
    const operation: Attributes = kind === "source"
      ? { "messaging.operation.name": "process", "messaging.operation.type": "process" }
      : { "messaging.operation.name": "send", "messaging.operation.type": "send" };
    this.#done = { ...this.#attributes, ...operation };
    this.#meters = meters;
    this.#duration = meters?.duration(kind);
  }

  /** Starts reporting `series` (the stream's stats) until {@linkcode Telemetry.close}. */
  observe(series: Series[]): void {
    this.#unobserve = this.#meters?.observe(this.#attributes, series);
  }

  /** The stream is over: its counters keep their last values, its gauges leave. */
  close(): void {
    this.#unobserve?.();
    this.#unobserve = undefined;
  }

  /** The histogram's attributes for one message (of `topic`), with the failure if any. */
  #histogramAttributes(topic: string, failure?: string): Attributes {
    if (!failure && !this.#options["telemetry.topics"]) return this.#done;
    const attributes = { ...this.#done };
    if (this.#options["telemetry.topics"]) attributes["messaging.destination.name"] = topic;
    if (failure) attributes["error.type"] = failure;
    return attributes;
  }

  /**
   * A message arrived (source): starts its consumer span, the child of the producer's
   * context found in its user properties, and wraps its acknowledgement to end it.
   */
  arrived(packet: IncomingPublish, ack: Ack | undefined): Arrival {
    const start = performance.now();
    let span: Span | undefined;
    let context: Context | undefined;
    if (this.#tracer) {
      const carrier = (packet.properties as { userProperties?: object } | undefined)
        ?.userProperties;
      const parent = carrier
        ? propagator().extract(ROOT_CONTEXT, carrier, defaultTextMapGetter)
        : ROOT_CONTEXT;
      const producer = trace.getSpanContext(parent);
      span = this.#tracer.startSpan(
        `process ${this.#attributes["messaging.destination.template"]}`,
        {
          kind: SpanKind.CONSUMER,
          attributes: {
            ...this.#done,
            "messaging.destination.name": packet.topic,
            "messaging.message.body.size": packet.payload.byteLength,
            ...(packet.messageId !== undefined && packet.qos > 0
              ? { "messaging.message.id": String(packet.messageId) }
              : {}),
          },
          links: producer ? [{ context: producer }] : undefined,
        },
        parent,
      );
      context = trace.setSpan(parent, span);
    }
    if (!ack) return { context, read: span && (() => span.end()) };
    const done = () => {
      this.#duration?.record(
        (performance.now() - start) / 1000,
        this.#histogramAttributes(packet.topic),
      );
      span?.end();
    };
    return { context, ack: new ObservedAck(ack, done) };
  }

  /**
   * A publish is about to go out (sink): starts its producer span, the child of the
   * record's context (a bridged message's) or the active one, and on MQTT 5 writes the
   * span's context into its user properties. What it returns ends both.
   */
  sending(publish: Publish): PublishObserver {
    const start = performance.now();
    let span: Span | undefined;
    if (this.#tracer) {
      const parent = publish.context ?? contexts.active();
      const configured = this.#options.topic[0];
      span = this.#tracer.startSpan(
        publish.topic === configured ? `send ${configured}` : "send",
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            ...this.#done,
            "messaging.destination.name": publish.topic,
            "mqtt_streams.qos": publish.qos,
          },
        },
        parent,
      );
      if (this.#options.mqttVersion === 5) inject(publish, trace.setSpan(parent, span));
    }
    return {
      end: (failure) => {
        this.#duration?.record(
          (performance.now() - start) / 1000,
          this.#histogramAttributes(publish.topic, failure),
        );
        if (!span) return;
        if (failure) span.setStatus({ code: SpanStatusCode.ERROR, message: failure });
        span.end();
      },
      retried: (attempt) => span?.addEvent("retry", { "mqtt_streams.attempt": attempt }),
    };
  }
}

/**
 * The propagator: the application's, once it registered one, or else W3C trace context
 * (an SDK's TracerProvider on its own registers none).
 */
function propagator() {
  return propagation.fields().length > 0 ? propagation : W3C_TRACE_CONTEXT;
}

/** Writes `context` into the publish's user properties, over a copy of them. */
function inject(publish: Publish, context: Context): void {
  const carrier: Record<string, string> = {};
  propagator().inject(context, carrier, defaultTextMapSetter);
  if (Object.keys(carrier).length === 0) return;
  const properties = publish.properties ?? {};
  publish.properties = {
    ...properties,
    userProperties: { ...properties.userProperties, ...carrier },
  };
}

/** An acknowledgement that reports its release once. */
class ObservedAck implements Ack {
  #released = false;
  constructor(readonly inner: Ack, readonly done: () => void) {}
  get qos(): 1 | 2 {
    return this.inner.qos;
  }
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.inner.release();
    this.done();
  }
}
