/**
 * The options of a connection: one valibot schema holds their names, types, defaults and
 * docs; {@linkcode parseConnectionString} turns a URL, an options object or both into
 * validated, fully defaulted {@linkcode MqttOptions}.
 *
 * @module
 */
import * as v from "valibot";
import { Secret } from "./secret.ts";
import { topicFilterProblem, topicNameProblem } from "./_topic.ts";
import { toOpenSslCiphers } from "./_ciphers.ts";
import { collectOptions, type RawOption } from "./_connection_string.ts";
import { MqttOptionsError } from "./errors.ts";

/** What the README and error messages say about an option, beside its schema. */
export interface OptionMeta {
  /** What values are allowed, as a phrase: "an integer from 0 to 65535". */
  readonly allowed: string;
  /** The environment variable read when the option is not given. */
  readonly env?: string;
  /** The value is a secret: never shown. */
  readonly secret?: boolean;
  /** The option may repeat in a URL. */
  readonly repeat?: boolean;
  /** The default, in words, when it depends on other options. */
  readonly defaultText?: string;
}

// --- coercions: URL parameters and environment variables arrive as strings ---------------

const toNumber = v.transform((x: unknown) =>
  typeof x === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(x) ? Number(x) : x
);
const integer = (min: number, max: number) =>
  v.pipe(v.unknown(), toNumber, v.number(), v.integer(), v.minValue(min), v.maxValue(max));
const attempts = () =>
  v.pipe(
    v.unknown(),
    toNumber,
    v.number(),
    v.integer(),
    v.check((n) => n === -1 || (n >= 1 && n <= 1_000_000)),
  );
const BOOLEANS: Record<string, boolean> = {
  true: true,
  false: false,
  "1": true,
  "0": false,
  yes: true,
  no: false,
  on: true,
  off: false,
};
const boolean = () =>
  v.pipe(
    v.unknown(),
    v.transform((x) => (typeof x === "string" ? BOOLEANS[x.trim().toLowerCase()] ?? x : x)),
    v.boolean(),
  );
const qos = () => v.pipe(integer(0, 2), v.transform((n) => n as 0 | 1 | 2));
/** Case-insensitive choice among `values`; returns the canonical spelling. */
const choice = <const T extends string>(values: readonly T[]) =>
  v.pipe(
    v.unknown(),
    v.transform((x) =>
      typeof x === "string"
        ? values.find((c) => c.toLowerCase() === x.trim().toLowerCase()) ?? x
        : x
    ),
    v.picklist(values),
  );
const text = () => v.pipe(v.string(), v.minLength(1));
const secret = () =>
  v.union([v.instance(Secret<string>), v.pipe(v.string(), v.transform((s) => new Secret(s)))]);
const pemOrPath = () => v.union([text(), v.instance(Uint8Array)]);
const keyOrPath = () =>
  v.union([
    v.instance(Secret<string | Uint8Array>),
    v.pipe(pemOrPath(), v.transform((k) => new Secret<string | Uint8Array>(k))),
  ]);
const storeType = () => choice(["PKCS12", "PEM"] as const);
const topicFilters = () =>
  v.pipe(
    v.unknown(),
    v.transform((x) => (typeof x === "string" ? [x] : x)),
    v.array(
      v.pipe(
        v.string(),
        v.check((f) => !topicFilterProblem(f), (issue) => topicFilterProblem(String(issue.input))!),
      ),
    ),
  );

const MQTT_VERSIONS: Record<string, 3 | 4 | 5> = {
  "3": 3,
  "3.1": 3,
  "4": 4,
  "3.1.1": 4,
  "5": 5,
  "5.0": 5,
};

/** Attaches the option's doc and metadata to its schema. */
function option<S extends v.GenericSchema>(schema: S, doc: string, meta: OptionMeta) {
  return v.pipe(schema, v.description(doc), v.metadata({ ...meta }));
}

const STORE_TYPE_DOC = "PKCS12 or PEM";

/**
 * The schema of every option: its name, type, default and doc. The README's option
 * table is checked against it by a test.
 */
export const OPTIONS_SCHEMA = v.object({
  brokerUrl: option(
    text(),
    "The broker: mqtt://, tcp://, mqtts://, ssl://, ws:// or wss://, with user:password@ if needed.",
    {
      allowed: "a URL such as mqtt://host:1883 (schemes mqtt, tcp, mqtts, ssl, ws, wss)",
    },
  ),
  topic: v.optional(
    option(
      topicFilters(),
      "Topic filter(s) to subscribe to (repeat it for several; $share/group/filter for shared subscriptions), and the default topic to publish to.",
      {
        allowed: "an MQTT topic filter (write %23 for # and %2B for + in a URL)",
        repeat: true,
      },
    ),
    [],
  ),
  clientId: v.optional(
    option(
      text(),
      "Session identity. A fixed one lets a restarted source or sink resume its session.",
      {
        allowed: "a non-empty string (leave it out for a random one)",
        defaultText: "random",
      },
    ),
  ),
  qos: v.optional(option(qos(), "QoS to subscribe and publish at.", { allowed: "0, 1 or 2" }), 1),
  username: v.optional(
    option(
      text(),
      "User name, also read from the URL's user info; leave it out rather than empty.",
      { allowed: "a non-empty string" },
    ),
  ),
  password: v.optional(
    option(secret(), "Password, also read from the URL's user info. Never printed.", {
      allowed: "a string",
      secret: true,
    }),
  ),
  cleanSession: v.optional(
    option(boolean(), "Start a fresh session (true) or resume the stored one (false).", {
      allowed: "true or false",
      defaultText: "false with a clientId, true without",
    }),
  ),
  sessionExpiryInterval: v.optional(
    option(
      integer(0, 0xffffffff),
      "MQTT 5: seconds the broker keeps the session after a disconnect.",
      {
        allowed: "an integer from 0 to 4294967295",
        defaultText: "0 with cleanSession, 4294967295 (never) without, as in MQTT 3.1.1",
      },
    ),
  ),
  connectionTimeout: v.optional(
    option(integer(0, 2_147_483), "Seconds to wait for the broker's CONNACK; 0 waits for ever.", {
      allowed: "an integer from 0 to 2147483",
    }),
    30,
  ),
  keepAlive: v.optional(
    option(integer(0, 65535), "Keep-alive interval in seconds; 0 turns it off.", {
      allowed: "an integer from 0 to 65535",
    }),
    60,
  ),
  mqttVersion: v.optional(
    option(
      v.pipe(
        v.unknown(),
        v.transform((x) => MQTT_VERSIONS[String(x).trim()] ?? x),
        v.picklist([3, 4, 5] as const),
      ),
      "MQTT protocol version: 3 (3.1), 4 (3.1.1) or 5.",
      { allowed: "3, 3.1, 4, 3.1.1, 5 or 5.0" },
    ),
    4,
  ),
  maxInflight: v.optional(
    option(
      integer(1, 65535),
      "Unacknowledged QoS 1/2 messages each way; the streams' highWaterMark; MQTT 5 receiveMaximum.",
      {
        allowed: "an integer from 1 to 65535",
      },
    ),
    60,
  ),
  autoReconnect: v.optional(
    option(
      boolean(),
      "Reconnect (with connectAttempts and connectBackoff) and resume after the connection drops.",
      {
        allowed: "true or false",
      },
    ),
    true,
  ),
  persistence: v.optional(
    option(
      choice(["memory", "file"] as const),
      "Where in-flight messages are kept: memory, or files under localStorage that survive a restart.",
      {
        allowed: "memory or file",
      },
    ),
    "memory",
  ),
  localStorage: v.optional(
    option(text(), "Folder of the file store (persistence=file).", {
      allowed: "a folder path",
      defaultText: "./.mqtt-streams/<clientId>",
    }),
  ),
  "ssl.protocol": v.optional(
    option(
      choice(["TLS", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] as const),
      "Lowest TLS version accepted; TLS means the runtime's default.",
      {
        allowed:
          "TLS, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3 (SSLv3 is not supported by any JavaScript runtime)",
      },
    ),
    "TLS",
  ),
  "ssl.key.store": v.optional(
    option(
      pemOrPath(),
      "Client certificate and key: a PKCS12 file (or bytes), or a PEM file holding both.",
      {
        allowed: "a file path or the store's bytes",
      },
    ),
  ),
  "ssl.key.store.password": v.optional(
    option(secret(), "Password of ssl.key.store.", { allowed: "a string", secret: true }),
  ),
  "ssl.key.store.type": v.optional(
    option(storeType(), "Type of ssl.key.store.", {
      allowed: STORE_TYPE_DOC,
      defaultText: "PEM for .pem/.crt/.key files, else PKCS12",
    }),
  ),
  "ssl.key.store.provider": v.optional(
    option(
      text(),
      "Accepted for compatibility with the seed; JavaScript runtimes have one TLS provider, so it has no effect.",
      {
        allowed: "a non-empty string",
      },
    ),
  ),
  "ssl.trust.store": v.optional(
    option(
      pemOrPath(),
      "CA certificates to trust: a PKCS12 trust store or a PEM file (or bytes).",
      {
        allowed: "a file path or the store's bytes",
      },
    ),
  ),
  "ssl.trust.store.password": v.optional(
    option(secret(), "Password of ssl.trust.store.", { allowed: "a string", secret: true }),
  ),
  "ssl.trust.store.type": v.optional(
    option(storeType(), "Type of ssl.trust.store.", {
      allowed: STORE_TYPE_DOC,
      defaultText: "PEM for .pem/.crt files, else PKCS12",
    }),
  ),
  "ssl.trust.store.provider": v.optional(
    option(text(), "Accepted for compatibility with the seed; has no effect.", {
      allowed: "a non-empty string",
    }),
  ),
  "ssl.ciphers": v.optional(
    option(text(), "Cipher suites, OpenSSL names or Java (IANA) names, separated by ':' or ','.", {
      allowed: "a list of cipher suites",
    }),
  ),
  "ssl.ca": v.optional(
    option(pemOrPath(), "CA certificate(s) to trust, PEM: a file path, PEM text or bytes.", {
      allowed: "a PEM file path, PEM text or bytes",
    }),
  ),
  "ssl.cert": v.optional(
    option(pemOrPath(), "Client certificate, PEM: a file path, PEM text or bytes.", {
      allowed: "a PEM file path, PEM text or bytes",
    }),
  ),
  "ssl.key": v.optional(
    option(keyOrPath(), "Client private key, PEM: a file path, PEM text or bytes. Never printed.", {
      allowed: "a PEM file path, PEM text or bytes",
      secret: true,
    }),
  ),
  "ssl.key.password": v.optional(
    option(secret(), "Passphrase of an encrypted ssl.key.", { allowed: "a string", secret: true }),
  ),
  "ssl.verify": v.optional(
    option(boolean(), "Verify the broker's certificate and host name. Turn off only for testing.", {
      allowed: "true or false",
    }),
    true,
  ),
  connectAttempts: v.optional(
    option(
      attempts(),
      "Connection attempts before failing, for the first connect and for each outage; -1 tries for ever.",
      {
        allowed: "-1 or an integer from 1 to 1000000",
        env: "MQTT_CONNECT_ATTEMPTS",
      },
    ),
    5,
  ),
  connectBackoff: v.optional(
    option(
      integer(0, 3_600_000),
      "First delay (ms) between connection attempts; it doubles each attempt, with jitter, up to 60 s.",
      {
        allowed: "an integer from 0 to 3600000",
        env: "MQTT_CONNECT_BACKOFF",
      },
    ),
    1000,
  ),
  connectionCacheTimeout: v.optional(
    option(
      integer(0, 2_147_483_647),
      "Milliseconds a shared sink connection stays open after its last sink closed.",
      {
        allowed: "an integer from 0 to 2147483647",
        env: "MQTT_CONNECTION_CACHE_TIMEOUT",
      },
    ),
    600_000,
  ),
  publishAttempts: v.optional(
    option(
      attempts(),
      "Attempts of a publish that fails for a transient reason; -1 tries for ever.",
      {
        allowed: "-1 or an integer from 1 to 1000000",
        env: "MQTT_PUBLISH_ATTEMPTS",
      },
    ),
    3,
  ),
  publishBackoff: v.optional(
    option(
      integer(0, 3_600_000),
      "First delay (ms) between publish attempts; it doubles each attempt, with jitter, up to 60 s.",
      {
        allowed: "an integer from 0 to 3600000",
        env: "MQTT_PUBLISH_BACKOFF",
      },
    ),
    1000,
  ),
  ack: v.optional(
    option(
      choice(["read", "manual"] as const),
      "When a source acknowledges a QoS 1/2 message: when it is read, or when message.ack() is called.",
      {
        allowed: "read or manual",
      },
    ),
    "read",
  ),
  "will.topic": v.optional(
    option(
      v.pipe(
        v.string(),
        v.check((t) => !topicNameProblem(t), (i) => topicNameProblem(String(i.input))!),
      ),
      "Topic of the last will, published by the broker if the connection is lost.",
      { allowed: "a topic name without wildcards" },
    ),
  ),
  "will.payload": v.optional(
    option(v.union([v.string(), v.instance(Uint8Array)]), "Payload of the last will.", {
      allowed: "a string or bytes",
    }),
  ),
  "will.qos": v.optional(option(qos(), "QoS of the last will.", { allowed: "0, 1 or 2" }), 0),
  "will.retain": v.optional(
    option(boolean(), "Retain the last will.", { allowed: "true or false" }),
    false,
  ),
});

/** The name of an option. */
export type OptionName = keyof typeof OPTIONS_SCHEMA.entries;

/** Every option name, in the schema's order. */
export const OPTION_NAMES = Object.keys(OPTIONS_SCHEMA.entries) as OptionName[];

/** The doc, metadata and default of an option, read from the schema. */
export function describeOption(
  name: OptionName,
): { doc: string; meta: OptionMeta; default: unknown } {
  const entry = OPTIONS_SCHEMA.entries[name] as v.GenericSchema & {
    type: string;
    wrapped?: v.GenericSchema;
    default?: unknown;
  };
  const inner = entry.type === "optional" ? entry.wrapped! : entry;
  return {
    doc: v.getDescription(inner as never) ?? "",
    meta: v.getMetadata(inner as never) as unknown as OptionMeta,
    default: entry.type === "optional" ? entry.default : undefined,
  };
}

/**
 * Validated, fully defaulted options. Names are the seed connector's (Apache Bahir
 * `sql-streaming-mqtt`); secrets are {@linkcode Secret}s.
 */
export interface MqttOptions {
  /** The broker, without credentials or query, with the scheme normalized (tcp → mqtt, ssl → mqtts). */
  brokerUrl: string;
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
  /** Reconnect after a drop. @default {true} */
  autoReconnect: boolean;
  /** Where in-flight messages are kept. @default {"memory"} */
  persistence: "memory" | "file";
  /** Folder of the file store; set when persistence is "file". @default {"./.mqtt-streams/<clientId>"} */
  localStorage?: string;
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
  /** Connection attempts; -1 for ever. @default {5} */
  connectAttempts: number;
  /** First delay between connection attempts (ms). @default {1000} */
  connectBackoff: number;
  /** Idle time (ms) before a shared connection closes. @default {600000} */
  connectionCacheTimeout: number;
  /** Publish attempts; -1 for ever. @default {3} */
  publishAttempts: number;
  /** First delay between publish attempts (ms). @default {1000} */
  publishBackoff: number;
  /** When a source acknowledges. @default {"read"} */
  ack: "read" | "manual";
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
 * Keys match case-insensitively at run time (`QoS` is `qos`).
 */
export type MqttOptionsInit =
  & {
    [K in keyof MqttOptions]?: MqttOptions[K] | string | (K extends "topic" ? string[] : never);
  }
  & {
    /** The broker; its query parameters are options too. */
    brokerUrl?: string | URL;
  };

/** A connection: a connection string, a `URL`, or an options object. */
export type MqttConnection = string | URL | MqttOptionsInit;

const TLS_SCHEMES = new Set(["mqtts", "wss"]);
const PEM_EXTENSION = /\.(pem|crt|cer|key)$/i;

/**
 * Parses and validates a connection (a connection string, a `URL` or an options
 * object) with optional overrides, into fully defaulted options.
 *
 * Precedence, lowest first: defaults, environment variables (`MQTT_CONNECT_ATTEMPTS`,
 * `MQTT_CONNECT_BACKOFF`, `MQTT_CONNECTION_CACHE_TIMEOUT`, `MQTT_PUBLISH_ATTEMPTS`,
 * `MQTT_PUBLISH_BACKOFF`, where the runtime lets them be read), the URL's user info and
 * query, the options object's keys, then `overrides`.
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
  const scheme = o.brokerUrl.slice(0, o.brokerUrl.indexOf(":"));
  const given = (name: OptionName) => raw.has(name);
  if (!TLS_SCHEMES.has(scheme)) {
    const ssl = OPTION_NAMES.find((n) => n.startsWith("ssl.") && given(n));
    if (ssl) {
      throw invalid(
        raw.get(ssl),
        ssl,
        `ssl.* options need an mqtts://, ssl:// or wss:// broker URL, not ${scheme}://`,
      );
    }
  }
  if (given("ssl.cert") !== given("ssl.key")) {
    const name = given("ssl.cert") ? "ssl.cert" : "ssl.key";
    throw invalid(raw.get(name), name, "ssl.cert and ssl.key go together");
  }
  const will = OPTION_NAMES.find((n) => n.startsWith("will.") && n !== "will.topic" && given(n));
  if (will && !given("will.topic")) {
    throw invalid(raw.get(will), will, "will.* options need will.topic");
  }
  if (o.persistence === "file" && o.clientId === undefined) {
    throw invalid(
      raw.get("persistence"),
      "persistence",
      "persistence=file needs a fixed clientId, since a random one could never be resumed",
    );
  }
  const ciphers = o["ssl.ciphers"] === undefined ? undefined : toOpenSslCiphers(o["ssl.ciphers"]);
  if (ciphers && "unknown" in ciphers) {
    throw invalid(
      raw.get("ssl.ciphers"),
      "ssl.ciphers",
      `${ciphers.unknown} is not a Java cipher suite name this library knows; use its OpenSSL name`,
    );
  }
  const cleanSession = o.cleanSession ?? o.clientId === undefined;
  const storeType = (store: string | Uint8Array | undefined, type: "PKCS12" | "PEM" | undefined) =>
    store === undefined
      ? type
      : type ?? (typeof store === "string" && PEM_EXTENSION.test(store) ? "PEM" : "PKCS12");
  return {
    ...o,
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

/** Builds the error for an option whose value is not allowed. */
function invalid(
  raw: RawOption | undefined,
  name: OptionName,
  detail?: string,
  value: unknown = raw?.value,
): MqttOptionsError {
  const { meta } = describeOption(name);
  const spelled = raw?.spelled ?? name;
  const where = raw?.from === "environment" ? `environment variable ${meta.env}` : `'${spelled}'`;
  const shown = meta.secret ? "***" : showValue(value);
  const hint = detail ?? HINTS[name]?.(value);
  return new MqttOptionsError(
    spelled,
    `Cannot configure MQTT as ${where} must be ${meta.allowed}: current value is ${shown}${
      hint ? ` (${hint})` : ""
    }`,
  );
}

/** Shows a value in an error message. */
export function showValue(value: unknown): string {
  if (value instanceof Secret) return "***";
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (typeof value === "string") return value === "" ? '""' : value;
  if (Array.isArray(value)) return value.map(showValue).join(", ");
  return JSON.stringify(value) ?? String(value);
}
