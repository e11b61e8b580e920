/**
 * MQTT as WHATWG web streams: a `ReadableStream` subscribes, a `WritableStream`
 * publishes, one URL configures the connection.
 *
 * This release (0.1.0) is the foundation: connection strings and options
 * ({@linkcode parseConnectionString}), secrets that never print ({@linkcode Secret}) and
 * the errors ({@linkcode MqttStreamError} and its subclasses). `MqttSource` and
 * `MqttSink` build on them next.
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
export {
  MqttConnectError,
  type MqttErrorCode,
  MqttOptionsError,
  MqttProtocolError,
  MqttPublishError,
  MqttStreamError,
  type MqttStreamErrorOptions,
  MqttSubscribeError,
} from "./src/errors.ts";
export {
  type MqttConnection,
  type MqttOptions,
  type MqttOptionsInit,
  parseConnectionString,
} from "./src/options.ts";
export { Secret } from "./src/secret.ts";
export { MqttMessage, type MqttMessageProperties } from "./src/message.ts";
export { MqttSource, type MqttSourceInit, type MqttSourceStats } from "./src/source.ts";
