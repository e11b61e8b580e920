/**
 * MQTT as WHATWG web streams: a `ReadableStream` subscribes, a `WritableStream`
 * publishes, one URL configures the connection.
 *
 * It has {@linkcode MqttSource}, a flow-controlled subscribe stream
 * whose QoS 1/2 acknowledgements follow what the consumer read, and {@linkcode MqttSink},
 * a publish stream with a window of acknowledged publishes in flight, resends after a
 * reconnect, and connections shared between sinks. Together they bridge brokers at least
 * once. With `persistence=file` (Deno, Bun, Node) in-flight publishes and QoS 2 state are
 * kept in a crash-safe log, so a process killed mid-stream resumes where it was.
 *
 * Between them go transforms: {@linkcode decodeText} and {@linkcode decodeJson},
 * {@linkcode validate} against a valibot (or any Standard Schema v1) schema,
 * {@linkcode route} to the schema of the first topic filter a message matches (named
 * wildcards, a typed union), {@linkcode merge} of several sources, and
 * {@linkcode toRecord} for a sink; a message they cannot handle errors the stream, is
 * dropped and counted, or goes to a dead-letter stream ({@linkcode OnInvalid}). They stand
 * on connection strings and options ({@linkcode parseConnectionString}), secrets that
 * never print ({@linkcode Secret}) and the errors ({@linkcode MqttStreamError} and its
 * subclasses). The command line is `@mqtt-streams/core/cli` (`sub`, `pub`, `bridge`).
 *
 * The core uses web APIs and `mqtt` only, so it runs on Deno, Bun, Node, in browsers and in
 * edge workers; `ws://` and `wss://` URLs go over the runtime's own `WebSocket`.
 *
 * @example Subscribe
 * ```ts ignore
 * import { MqttSource } from "@mqtt-streams/core";
 *
 * for await (const message of new MqttSource("mqtt://localhost?topic=sensors/%2B/temp")) {
 *   console.log(message.topic, message.text());
 * }
 * ```
 *
 * @example Publish
 * ```ts ignore
 * import { MqttSink } from "@mqtt-streams/core";
 *
 * await ReadableStream.from(["21.5", "22.0"])
 *   .pipeTo(new MqttSink("mqtt://localhost?topic=sensors/north/temp&qos=1"));
 * ```
 *
 * @example Route many schemas through one pipeline
 * ```ts ignore
 * import { MqttSource, route } from "@mqtt-streams/core";
 * import * as v from "valibot";
 *
 * const router = route({
 *   "sensors/+site/temperature": v.object({ celsius: v.number() }),
 *   "sensors/+site/humidity": v.object({ percent: v.number() }),
 * }, { onInvalid: "drop" });
 * const source = new MqttSource("mqtt://localhost?qos=1", { topic: router.filters });
 * for await (const r of source.pipeThrough(router)) {
 *   if (r.route === "sensors/+site/temperature") console.log(r.params.site, r.value.celsius);
 * }
 * ```
 *
 * @example A worker: a persistent session, JSON checked by a schema, bad messages set aside, Ctrl-C
 * ```ts ignore
 * import process from "node:process";
 * import { decodeJson, MqttSink, MqttSource, validate } from "@mqtt-streams/core";
 * import * as v from "valibot"; // deno add npm:valibot, or npm install valibot
 *
 * const stop = new AbortController();
 * process.once("SIGINT", () => stop.abort());
 * const Job = v.object({ id: v.string(), size: v.number() });
 * // A dead-letter stream for each transform (each closes its own when the input ends).
 * const deadLetters = () => new MqttSink("mqtt://localhost?topic=jobs-dead&qos=1");
 * const jobs = new MqttSource("mqtt://localhost?topic=jobs/%23&clientId=worker-1&qos=1", {
 *   signal: stop.signal,
 * });
 * try {
 *   for await (const { value } of jobs
 *     .pipeThrough(decodeJson({ onInvalid: deadLetters() }))
 *     .pipeThrough(validate(Job, { onInvalid: deadLetters() }))) {
 *     console.log("job", value.id, value.size);
 *   }
 * } catch (error) {
 *   if (!stop.signal.aborted) throw error;
 * }
 * ```
 *
 * More common tasks, each an example where it belongs: TLS with a CA file and routing records
 * to topics on {@linkcode MqttSink}; a shared subscription and a persistent session on
 * {@linkcode MqttSource}.
 *
 * @example Parse a connection string
 * ```ts
 * import { parseConnectionString } from "@mqtt-streams/core";
 *
 * const options = parseConnectionString("mqtt://user:pass@localhost:1883?topic=sensors/%2B/temp&qos=1");
 * console.log(options.topic, String(options.password)); // [ "sensors/+/temp" ] ***
 * ```
 *
 * @module
 */
// OpenTelemetry observes the streams from the side: loading it installs it as their hooks.
import "./src/telemetry/telemetry.ts";
export {
  MqttConnectError,
  type MqttErrorCode,
  MqttInvalidMessageError,
  type MqttIssue,
  MqttOptionsError,
  MqttProtocolError,
  MqttPublishError,
  type MqttPublishErrorOptions,
  MqttRecordError,
  MqttStreamError,
  type MqttStreamErrorOptions,
  MqttSubscribeError,
} from "./src/errors.ts";
export {
  type MqttConnection,
  type MqttOptions,
  type MqttOptionsInit,
  parseConnectionString,
} from "./src/options/options.ts";
export { Secret } from "./src/secret.ts";
export { redactUrl as redactConnectionString } from "./src/_redact.ts";
export { MqttMessage, type MqttMessageProperties } from "./src/message.ts";
export { MqttSource, type MqttSourceInit, type MqttSourceStats } from "./src/streams/source.ts";
export type { MqttConnecting } from "./src/streams/stats.ts";
export {
  type MqttPublishProperties,
  type MqttRecord,
  type MqttTraceContext,
} from "./src/record.ts";
export {
  type MqttMeterProvider,
  type MqttTelemetryInit,
  type MqttTracerProvider,
} from "./src/streams/hooks.ts";
export type {
  MqttAuthenticate,
  MqttAuthStep,
  MqttCredentials,
  MqttCredentialsInit,
} from "./src/connection/credentials.ts";
export {
  MqttSink,
  type MqttSinkChunk,
  type MqttSinkInit,
  type MqttSinkStats,
} from "./src/streams/sink.ts";
export {
  type InferOutput,
  type StandardSchemaIssue,
  type StandardSchemaProps,
  type StandardSchemaResult,
  type StandardSchemaV1,
} from "./src/transforms/standard_schema.ts";
export {
  type MqttDeadLetter,
  type MqttInput,
  MqttTransform,
  type MqttTransformOptions,
  type MqttTransformStats,
  type MqttValue,
  type OnInvalid,
  type Outcome,
} from "./src/transforms/mqtt_transform.ts";
export { decodeJson, decodeText } from "./src/transforms/decode.ts";
export { validate } from "./src/transforms/validate.ts";
export {
  type MqttRouter,
  type MqttRoutes,
  route,
  type Routed,
  type RoutedUnion,
  type RouteParamName,
  type RouteParams,
} from "./src/transforms/route.ts";
export { merge, type MergeOptions, type Tagged, type TaggedUnion } from "./src/transforms/merge.ts";
export { type RecordsOf, toRecord } from "./src/transforms/to_record.ts";
export { type MessageJson, messageJson } from "./src/transforms/json_line.ts";
