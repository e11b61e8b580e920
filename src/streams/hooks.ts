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
import type { Context, MeterProvider, TracerProvider } from "@opentelemetry/api";
import type { Ack } from "../connection/connection.ts";
import type { IncomingPublish } from "../message.ts";
import type { MqttOptions } from "../options/options.ts";
import type { Publish, PublishObserver } from "../record.ts";
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
  meterProvider?: MeterProvider;
  /** Where the stream's spans go. @default {the global TracerProvider} */
  tracerProvider?: TracerProvider;
}

/** A message as its observer saw it arrive. */
export interface Arrival {
  /** Its trace context. */
  context?: Context;
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
