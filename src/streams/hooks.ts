/**
 * {@linkcode MqttTelemetryInit}: where a stream's OpenTelemetry metrics and spans go.
 *
 * @module
 */
// This module is browser compatible.
import type { MeterProvider, TracerProvider } from "@opentelemetry/api";

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
