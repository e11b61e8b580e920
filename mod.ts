/**
 * MQTT as WHATWG web streams: a `ReadableStream` subscribes, a `WritableStream`
 * publishes, one URL configures the connection.
 *
 * This release holds the foundation: connection strings and options
 * ({@linkcode parseConnectionString}), the errors, and connecting with attempts and
 * backoff ({@linkcode connect}).
 *
 * @example Parse a connection string and connect
 * ```ts ignore
 * import { connect, parseConnectionString } from "@mqtt-streams/core";
 *
 * const options = parseConnectionString("mqtt://localhost:1883?topic=sensors/%2B/temp&qos=1");
 * const client = await connect(options);
 * await client.endAsync();
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
} from "./src/errors.ts";
export {
  type MqttConnection,
  type MqttOptions,
  type MqttOptionsInit,
  parseConnectionString,
} from "./src/options.ts";
export { Secret } from "./src/secret.ts";
