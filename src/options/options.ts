/**
 * The options of a connection: one valibot schema (_schema.ts) holds their names, types,
 * defaults, docs and the rules between them, and {@linkcode MqttOptions} is generated from
 * it; {@linkcode parseConnectionString} turns a URL, an options object or both into
 * validated, fully defaulted {@linkcode MqttOptions}.
 *
 * @module
 */
import * as v from "valibot";
import type { MqttOptions } from "./mqtt_options.ts";
import {
  describeOption,
  OPTION_NAMES,
  type OptionMeta,
  type OptionName,
  OPTIONS_SCHEMA,
} from "./_schema.ts";
import { collectOptions } from "./_connection_string.ts";
import { optionsError } from "./_option_error.ts";

export type { MqttOptions };
export { describeOption, OPTION_NAMES, type OptionMeta, type OptionName, OPTIONS_SCHEMA };

/**
 * Options as a caller writes them: any option of {@linkcode MqttOptions}, numbers and
 * booleans also as strings, `topic` as one string or several, secrets as plain strings.
 * Keys match case-insensitively at run time (`QoS` is `qos`), and the Bahir connector's
 * `spark.mqtt.*` keys name five options too (`spark.mqtt.client.connect.attempts` is
 * `connectAttempts`).
 *
 * @example An options object
 * ```ts
 * import { type MqttOptionsInit, parseConnectionString } from "@mqtt-streams/core";
 *
 * const init: MqttOptionsInit = { brokerUrl: "mqtts://broker:8883", topic: ["a/#"], "ssl.ca": "/etc/ca.pem" };
 * console.log(parseConnectionString(init).topic); // [ "a/#" ]
 * ```
 */
export type MqttOptionsInit =
  & {
    [K in Exclude<keyof MqttOptions, "brokerUrl" | "brokers">]?:
      | MqttOptions[K]
      | string
      | (K extends "topic" ? string[] : never);
  }
  & {
    /**
     * The broker; its query parameters are options too. Several brokers of one cluster:
     * `mqtt://node1:1883,node2:1883` in one string, or a list of URLs with one broker each
     * (one scheme, and one set of options: those they give must agree).
     */
    brokerUrl?: string | URL | readonly (string | URL)[];
  }
  & {
    /** The Bahir connector's name of `connectAttempts`. */
    "spark.mqtt.client.connect.attempts"?: number | string;
    /** The Bahir connector's name of `connectBackoff`. */
    "spark.mqtt.client.connect.backoff"?: number | string;
    /** The Bahir connector's name of `connectionCacheTimeout`. */
    "spark.mqtt.connection.cache.timeout"?: number | string;
    /** The Bahir connector's name of `publishAttempts`. */
    "spark.mqtt.client.publish.attempts"?: number | string;
    /** The Bahir connector's name of `publishBackoff`. */
    "spark.mqtt.client.publish.backoff"?: number | string;
  };

/**
 * A connection: a connection string, a `URL`, or an options object.
 *
 * @example
 * ```ts
 * import { type MqttConnection, parseConnectionString } from "@mqtt-streams/core";
 *
 * const connections: MqttConnection[] = ["mqtt://h", new URL("mqtt://h"), { brokerUrl: "mqtt://h" }];
 * for (const c of connections) console.log(parseConnectionString(c).brokerUrl); // mqtt://h
 * ```
 */
export type MqttConnection = string | URL | MqttOptionsInit;

/**
 * Parses and validates a connection (a connection string, a `URL` or an options
 * object) with optional overrides, into fully defaulted options.
 *
 * Precedence, lowest first: defaults, environment variables (`MQTT_CONNECT_ATTEMPTS`,
 * `MQTT_CONNECT_BACKOFF`, `MQTT_CONNECTION_CACHE_TIMEOUT`, `MQTT_PUBLISH_ATTEMPTS`,
 * `MQTT_PUBLISH_BACKOFF`, or the Bahir connector's `spark.mqtt.client.connect.attempts`,
 * ... under their exact names, where the runtime lets them be read), the URL's user info
 * and query, the options object's keys, then `overrides`. The Bahir connector's
 * `spark.mqtt.*` keys are aliases in the URL and the options object too.
 *
 * @param connection A connection string such as `mqtt://user:pass@host:1883?topic=a/%23&qos=1`, a `URL`, or an options object with `brokerUrl`.
 * @param overrides Options that take precedence over `connection`.
 * @returns The validated options.
 * @throws {MqttOptionsError} When an option is unknown or invalid; the message names it, its value (secrets redacted) and what is allowed.
 *
 * @example Parse a connection string
 * ```ts
 * import { parseConnectionString } from "@mqtt-streams/core";
 *
 * const options = parseConnectionString("tcp://localhost:1883?topic=sensors/%2B/temp&QoS=2", { clientId: "ingest" });
 * console.log(options.brokerUrl, options.topic, options.qos, options.cleanSession);
 * // mqtt://localhost:1883 [ "sensors/+/temp" ] 2 false
 * ```
 */
export function parseConnectionString(
  connection: MqttConnection,
  overrides?: MqttOptionsInit,
): MqttOptions {
  const raw = collectOptions(connection, overrides, OPTION_NAMES, describeOption);
  const given: Record<string, unknown> = {};
  for (const [name, { value }] of raw) given[name] = value;
  const result = v.safeParse(OPTIONS_SCHEMA, given);
  if (!result.success) throw optionsError(result.issues[0], raw);
  return result.output;
}
