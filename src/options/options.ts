/**
 * The options of a connection: one valibot schema holds their names, types, defaults and
 * docs; {@linkcode parseConnectionString} turns a URL, an options object or both into
 * validated, fully defaulted {@linkcode MqttOptions}.
 *
 * @module
 */
import * as v from "valibot";
import type { Secret } from "./secret.ts";
import { toOpenSslCiphers } from "./_ciphers.ts";
import {
  describeOption,
  OPTION_NAMES,
  type OptionMeta,
  type OptionName,
  OPTIONS_SCHEMA,
} from "./_schema.ts";
import { collectOptions, hiddenParameterError, type RawOption } from "./_connection_string.ts";
import { brokerList } from "./_brokers.ts";
import { MqttOptionsError } from "../errors.ts";
import { redactText, showPath, showValue } from "./_redact.ts";

export { describeOption, OPTION_NAMES, type OptionMeta, type OptionName, OPTIONS_SCHEMA };

/**
 * Validated, fully defaulted options.
 *
 * @example Read the defaults
 * ```ts
 * import { type MqttOptions, parseConnectionString } from "@mqtt-streams/core";
 *
 * const options: MqttOptions = parseConnectionString("mqtt://localhost");
 * console.log(options.qos, options.maxInflight, options.keepAlive); // 1 60 60
 * ```
 * Names are the Bahir connector's (Apache Bahir
 * `sql-streaming-mqtt`); secrets are {@linkcode Secret}s.
 */
export interface MqttOptions {
  /**
   * The broker, without credentials or query, with the scheme normalized (tcp → mqtt,
   * ssl → mqtts); several brokers of one cluster as `mqtt://node1:1883,node2:1883`.
   */
  brokerUrl: string;
  /**
   * Each broker of `brokerUrl` as a URL of its own (`mqtt://node1:1883`), in the order
   * they are tried: one, unless `brokerUrl` names several.
   */
  brokers: string[];
  /** Topic filters to subscribe to; the first is also the default topic to publish to. @default {[]} */
  topic: string[];
  /** Session identity; undefined means a random one per connection. */
  clientId?: string;
  /** QoS to subscribe and publish at. @default {1} */
  qos: 0 | 1 | 2;
  /** User name. */
  username?: string;
  /** Password. */
  password?: Secret;
  /** Start a fresh session. @default {false with a clientId, true without} */
  cleanSession: boolean;
  /** MQTT 5 session expiry (s). @default {0 with cleanSession, 4294967295 without} */
  sessionExpiryInterval: number;
  /** Seconds to wait for CONNACK; 0 waits for ever. @default {30} */
  connectionTimeout: number;
  /** Keep-alive (s). @default {60} */
  keepAlive: number;
  /** Protocol version: 3 (3.1), 4 (3.1.1) or 5. @default {4} */
  mqttVersion: 3 | 4 | 5;
  /** Unacknowledged QoS 1/2 messages each way. @default {60} */
  maxInflight: number;
  /**
   * Largest MQTT packet (bytes) this client accepts: sent as the MQTT 5 Maximum Packet
   * Size, and an incoming packet declaring more is refused before its body is read (on
   * 3.1.1 too). Records sent are limited by the broker's Maximum Packet Size instead.
   * @default {1048576}
   */
  maxPacketSize: number;
  /** Reconnect after a drop. @default {true} */
  autoReconnect: boolean;
  /** Where in-flight messages are kept. @default {"memory"} */
  persistence: "memory" | "file";
  /** Folder of the file store; set when persistence is "file". @default {"./.mqtt-streams/<clientId>"} */
  localStorage?: string;
  /** When the file store counts a packet as stored: written to the log, or synced to the disk too. @default {"batch"} */
  fsync: "batch" | "always";
  /** Lowest TLS version. @default {"TLS"} */
  "ssl.protocol": "TLS" | "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
  /** Client key store: a path or bytes. */
  "ssl.key.store"?: string | Uint8Array;
  /** Password of the key store. */
  "ssl.key.store.password"?: Secret;
  /** Type of the key store. @default {"PKCS12", or "PEM" for .pem/.crt/.key files} */
  "ssl.key.store.type"?: "PKCS12" | "PEM";
  /** No effect; kept for compatibility. */
  "ssl.key.store.provider"?: string;
  /** Trust store: a path or bytes. */
  "ssl.trust.store"?: string | Uint8Array;
  /** Password of the trust store. */
  "ssl.trust.store.password"?: Secret;
  /** Type of the trust store. @default {"PKCS12", or "PEM" for .pem/.crt files} */
  "ssl.trust.store.type"?: "PKCS12" | "PEM";
  /** No effect; kept for compatibility. */
  "ssl.trust.store.provider"?: string;
  /** OpenSSL cipher list (Java names already mapped). */
  "ssl.ciphers"?: string;
  /** CA certificate(s): a PEM path, PEM text or bytes. */
  "ssl.ca"?: string | Uint8Array;
  /** Client certificate: a PEM path, PEM text or bytes. */
  "ssl.cert"?: string | Uint8Array;
  /** Client private key: a PEM path, PEM text or bytes. */
  "ssl.key"?: Secret<string | Uint8Array>;
  /** Passphrase of ssl.key. */
  "ssl.key.password"?: Secret;
  /** Verify the broker's certificate and host name. @default {true} */
  "ssl.verify": boolean;
  /** Connection attempts; -1 for ever. With several brokers, an attempt is a round that tries each once. @default {5} */
  connectAttempts: number;
  /** First delay between connection attempts (ms). @default {1000} */
  connectBackoff: number;
  /**
   * Where an MQTT 5 redirection may send the client (and its credentials): only to a broker
   * of `brokers` (list), anywhere (any), or nowhere (off). @default {"list"}
   */
  redirect: "list" | "any" | "off";
  /** Idle time (ms) before a shared connection closes. @default {600000} */
  connectionCacheTimeout: number;
  /** Publish attempts; -1 for ever. @default {3} */
  publishAttempts: number;
  /** First delay between publish attempts (ms). @default {1000} */
  publishBackoff: number;
  /** When a source acknowledges. @default {"read"} */
  ack: "read" | "manual";
  /** What a source does with QoS 0 messages while its queue is full. @default {"drop"} */
  qos0Overflow: "drop" | "block";
  /** Export OpenTelemetry metrics and spans (a no-op until an SDK is registered). @default {true} */
  telemetry: boolean;
  /** Put each message's topic on the duration histograms (unbounded series). @default {false} */
  "telemetry.topics": boolean;
  /** Topic of the last will. */
  "will.topic"?: string;
  /** Payload of the last will. */
  "will.payload"?: string | Uint8Array;
  /** QoS of the last will. @default {0} */
  "will.qos": 0 | 1 | 2;
  /** Retain the last will. @default {false} */
  "will.retain": boolean;
}

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

const TLS_SCHEMES = new Set(["mqtts", "wss"]);
const FILE_OPTIONS = new Set<OptionName>([
  "ssl.key.store",
  "ssl.trust.store",
  "ssl.ca",
  "ssl.cert",
]);
const PEM_EXTENSION = /\.(pem|crt|cer|key)$/i;

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
  // Before the values are checked: with a plain scheme, the scheme is what is wrong, not
  // the value of whichever ssl.* option (ssl.key.store.provider=SunJSSE is a fine value).
  const broker = raw.get("brokerUrl")!;
  const scheme = String(broker.value).slice(0, String(broker.value).indexOf(":"));
  const ssl = OPTION_NAMES.find((n) => n.startsWith("ssl.") && raw.has(n));
  if (ssl && !TLS_SCHEMES.has(scheme)) throw needsTls(raw.get(ssl)!, ssl, broker);
  const input: Record<string, unknown> = {};
  for (const [name, { value }] of raw) input[name] = value;
  const result = v.safeParse(OPTIONS_SCHEMA, input);
  if (!result.success) {
    const issue = result.issues[0];
    const name = String(issue.path?.[0]?.key) as OptionName;
    const detail = issue.type === "check" ? issue.message : undefined;
    // Inside a list (a repeated topic), show the element at fault, not the whole list.
    const value = (issue.path?.length ?? 0) > 1 ? issue.input : raw.get(name)?.value;
    throw invalid(raw.get(name), name, detail, value);
  }
  return finish(result.output, raw);
}

type Parsed = v.InferOutput<typeof OPTIONS_SCHEMA>;

function finish(o: Parsed, raw: Map<string, RawOption>): MqttOptions {
  const given = (name: OptionName) => raw.has(name);
  if (given("ssl.cert") !== given("ssl.key")) {
    const name = given("ssl.cert") ? "ssl.cert" : "ssl.key";
    throw invalid(raw.get(name), name, "ssl.cert and ssl.key go together");
  }
  const will = OPTION_NAMES.find((n) => n.startsWith("will.") && n !== "will.topic" && given(n));
  if (will && !given("will.topic")) {
    throw invalid(raw.get(will), will, "will.* options need will.topic");
  }
  if (o.persistence === "file" && o.clientId === undefined) {
    const hidden = raw.get("persistence")?.hidden;
    if (hidden !== undefined) throw hiddenParameterError(hidden);
    // The value is allowed; what is missing is another option, so the message names that.
    throw new MqttOptionsError(
      raw.get("persistence")?.spelled ?? "persistence",
      "Cannot configure MQTT as persistence=file needs a fixed clientId, since a session under a random one could never be resumed: current value of 'clientId' is missing (add clientId=<name> to the URL, or clientId to the options)",
    );
  }
  const ciphers = o["ssl.ciphers"] === undefined ? undefined : toOpenSslCiphers(o["ssl.ciphers"]);
  if (ciphers && "unknown" in ciphers) {
    throw invalid(
      raw.get("ssl.ciphers"),
      "ssl.ciphers",
      `${
        redactText(ciphers.unknown)
      } is not a Java cipher suite name this library knows; use its OpenSSL name`,
    );
  }
  const cleanSession = o.cleanSession ?? o.clientId === undefined;
  const storeType = (store: string | Uint8Array | undefined, type: "PKCS12" | "PEM" | undefined) =>
    store === undefined
      ? type
      : type ?? (typeof store === "string" && PEM_EXTENSION.test(store) ? "PEM" : "PKCS12");
  return {
    ...o,
    brokers: brokerList(o.brokerUrl),
    cleanSession,
    sessionExpiryInterval: o.sessionExpiryInterval ?? (cleanSession ? 0 : 0xffffffff),
    localStorage: o.persistence === "file"
      ? o.localStorage ?? `./.mqtt-streams/${o.clientId}`
      : o.localStorage,
    "ssl.key.store.type": storeType(o["ssl.key.store"], o["ssl.key.store.type"]),
    "ssl.trust.store.type": storeType(o["ssl.trust.store"], o["ssl.trust.store.type"]),
    "ssl.ciphers": ciphers?.ciphers,
  };
}

const HINTS: Partial<Record<OptionName, (value: unknown) => string | undefined>> = {
  "ssl.key.store.type": jksHint,
  "ssl.trust.store.type": jksHint,
  "ssl.protocol": (value) =>
    /^ssl/i.test(String(value))
      ? "SSL is broken and no JavaScript runtime offers it; use TLSv1.2"
      : undefined,
};

function jksHint(value: unknown): string | undefined {
  return /^(jks|jceks)$/i.test(String(value))
    ? "convert it with keytool -importkeystore -srckeystore store.jks -destkeystore store.p12 -deststoretype PKCS12"
    : undefined;
}

/**
 * The error for an ssl.* option given with a broker URL whose scheme has no TLS: it leads
 * with the scheme, and names the option, its value and the schemes that fit.
 */
function needsTls(raw: RawOption, name: OptionName, broker: RawOption): MqttOptionsError {
  if (raw.hidden !== undefined) return hiddenParameterError(raw.hidden);
  const brokerUrl = String(broker.value);
  const scheme = brokerUrl.slice(0, brokerUrl.indexOf(":") + 3);
  return new MqttOptionsError(
    raw.spelled,
    `Cannot configure MQTT as '${raw.spelled}' is a TLS option, and ssl.* options need an mqtts://, ssl:// or wss:// broker URL: current brokerUrl is ${
      broker.hidden ?? brokerUrl
    }, with '${raw.spelled}' set to ${
      shownValue(name, raw.value)
    } (connect over TLS with mqtts:// or wss:// in place of ${scheme}, or leave the ssl.* options out)`,
  );
}

/** An option's value as an error shows it. */
function shownValue(name: OptionName, value: unknown): string {
  // A key or trust store, a certificate: a path, or text that is never shown (it may hold a key).
  return FILE_OPTIONS.has(name) && typeof value === "string" && value !== ""
    ? showPath(value) ?? `<${value.length} characters, not shown>`
    : showValue(value, describeOption(name).meta.secret);
}

/** Builds the error for an option whose value is not allowed. */
function invalid(
  raw: RawOption | undefined,
  name: OptionName,
  detail?: string,
  value: unknown = raw?.value,
): MqttOptionsError {
  // From a part of a connection string that may be part of a password: not named, not shown.
  if (raw?.hidden !== undefined) return hiddenParameterError(raw.hidden);
  const { meta } = describeOption(name);
  const spelled = raw?.spelled ?? name;
  const where = raw?.from === "environment" ? `environment variable ${spelled}` : `'${spelled}'`;
  const shown = shownValue(name, value);
  const hint = detail ?? HINTS[name]?.(value);
  return new MqttOptionsError(
    spelled,
    `Cannot configure MQTT as ${where} must be ${meta.allowed}: current value is ${shown}${
      hint ? ` (${hint})` : ""
    }`,
  );
}
