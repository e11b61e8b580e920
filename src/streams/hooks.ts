/**
 * {@linkcode MqttTelemetryInit}: where a stream's OpenTelemetry metrics and spans go.
 *
 * @module
 */
// This module is browser compatible.
//
// The hooks through which a stream is observed. The streams call them at what they see (a
// message arrived, a publish goes out, is sent again, settles; the stream ends) and know
// nothing of who listens: src/telemetry/ implements them and installs itself with
// observeStreams() when mod.ts loads it, so the streams never import telemetry. A stream
// whose telemetry is off, or that finds no SDK, gets no observer and tests one field.
import type { Ack } from "../connection/connection.ts";
import type { IncomingPublish } from "../message.ts";
import type { MqttOptions } from "../options/options.ts";
import type { MqttTraceContext, Publish, PublishObserver } from "../record.ts";
import type { MqttSinkStats, MqttSourceStats } from "./stats.ts";

/**
 * The OpenTelemetry providers a stream reports to, instead of the global ones (those an
 * SDK registered, or Deno's with `OTEL_DENO=true`). Without an SDK the API is a no-op and
 * the streams report nothing; `telemetry=false` turns a stream's telemetry off.
 *
 * @example Metrics to a provider of one's own
 * ```ts
 * import { MeterProvider } from "@opentelemetry/sdk-metrics";
 * import type { MqttTelemetryInit } from "@mqtt-streams/core";
 *
 * const init: MqttTelemetryInit = { meterProvider: new MeterProvider() };
 * console.log(init.meterProvider !== undefined); // true
 * ```
 */
export interface MqttTelemetryInit {
  /** Where the stream's metrics go. @default {the global MeterProvider} */
  meterProvider?: MqttMeterProvider;
  /** Where the stream's spans go. @default {the global TracerProvider} */
  tracerProvider?: MqttTracerProvider;
}

/**
 * An OpenTelemetry `MeterProvider` of `@opentelemetry/api`, as far as the streams name it:
 * any SDK's provider is one. (Declared here rather than re-exported, so that the module's
 * documentation does not lead into the whole metrics API.)
 *
 * @example The SDK's provider
 * ```ts
 * import { MeterProvider } from "@opentelemetry/sdk-metrics";
 * import type { MqttMeterProvider } from "@mqtt-streams/core";
 *
 * const provider: MqttMeterProvider = new MeterProvider();
 * console.log(typeof provider.getMeter); // function
 * ```
 */
export interface MqttMeterProvider {
  /** Returns the `Meter` of an instrumentation scope. */
  getMeter(name: string, version?: string, options?: object): object;
}

/**
 * An OpenTelemetry `TracerProvider` of `@opentelemetry/api`, as far as the streams name it:
 * any SDK's provider is one.
 *
 * @example The SDK's provider
 * ```ts
 * import { BasicTracerProvider } from "@opentelemetry/sdk-trace-base";
 * import type { MqttTracerProvider } from "@mqtt-streams/core";
 *
 * const provider: MqttTracerProvider = new BasicTracerProvider();
 * console.log(typeof provider.getTracer); // function
 * ```
 */
export interface MqttTracerProvider {
  /** Returns the `Tracer` of an instrumentation scope. */
  getTracer(name: string, version?: string, options?: object): object;
}

/** A message as its observer saw it arrive. */
export interface Arrival {
  /** Its trace context. */
  context?: MqttTraceContext;
  /** The acknowledgement to use instead of the message's own: it reports its release. */
  ack?: Ack;
  /** QoS 0 (no acknowledgement): called when the message is read. */
  read?: () => void;
}

/** What observes a source. */
export interface SourceObserver {
  /** A message arrived, with its acknowledgement (QoS 1/2). */
  arrived(packet: IncomingPublish, ack: Ack | undefined): Arrival;
  /** The source is over. */
  close(): void;
}

/** What observes a sink. */
export interface SinkObserver {
  /** A publish is about to go out; what it returns hears how it ends. */
  sending(publish: Publish): PublishObserver;
  /** The sink is over. */
  close(): void;
}

/** What a source shows its observer. */
export interface ObservedSource {
  readonly options: MqttOptions;
  readonly stats: MqttSourceStats;
  /** The part of `stats.dropped` the source's full queue dropped (QoS 0, qos0Overflow=drop). */
  overflowDropped(): number;
}

/** What a sink shows its observer. */
export interface ObservedSink {
  readonly options: MqttOptions;
  readonly stats: MqttSinkStats;
}

/** Makes the observer of each stream; undefined when there is nothing to observe it with. */
export interface StreamObservers {
  source(source: ObservedSource, init: MqttTelemetryInit): SourceObserver | undefined;
  sink(sink: ObservedSink, init: MqttTelemetryInit): SinkObserver | undefined;
}

let installed: StreamObservers | undefined;

/** Installs the observers of every stream made from now on (src/telemetry/ does, once). */
export function observeStreams(observers: StreamObservers): void {
  installed = observers;
}

/** The observer of a new source, if one is installed and wants it. */
export function observeSource(
  source: ObservedSource,
  init: MqttTelemetryInit,
): SourceObserver | undefined {
  return installed?.source(source, init);
}

/** The observer of a new sink, if one is installed and wants it. */
export function observeSink(sink: ObservedSink, init: MqttTelemetryInit): SinkObserver | undefined {
  return installed?.sink(sink, init);
}
