// The schema of every option: name, type, coercion from strings, default, doc and the
// metadata that error messages are made from, and the rules between options. The one source
// of the options: the MqttOptions interface (mqtt_options.ts) and the option table of
// docs/options.md are generated from it (tests/options/_generate.ts), and tests keep them so.
import * as v from "valibot";
import {
  attempts,
  boolean,
  choice,
  cipherList,
  integer,
  keyOrPath,
  mqttVersion,
  payload,
  pemOrPath,
  protocolList,
  qos,
  secret,
  storeType,
  text,
  topicFilters,
  topicName,
  type Typed,
} from "./_values.ts";
import {
  alpnNeedsMqtts,
  certWithKey,
  completeOptions,
  enhancedAuthNeedsMqtt5,
  fileStoreNeedsClientId,
  sslNeedsTls,
  willNeedsTopic,
} from "./_rules.ts";

/** What docs/options.md and error messages say about an option, beside its schema. */
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

/**
 * Attaches the option's doc and metadata to its value schema, which names its TypeScript
 * type (`typed` in _values.ts).
 */
function option<S extends Typed>(schema: S, doc: string, meta: OptionMeta) {
  return v.pipe(schema, v.description(doc), v.metadata({ ...meta }));
}

const STORE_TYPE_DOC = "PKCS12 or PEM";

/** The largest packet MQTT can express: a remaining length of 268,435,455 bytes (MQTT 5 §2.2.3). */
export const MQTT_MAX_PACKET_SIZE = 268_435_455;

/** Each option's own schema: its name, type, default and doc. */
export const OPTION_FIELDS = v.object({
  brokerUrl: option(
    text(),
    "The broker: mqtt://, tcp://, mqtts://, ssl://, ws:// or wss://, with user:password@ if needed; several brokers of one cluster as mqtt://node1:1883,node2:1883, tried in order. Parsed, it keeps neither user info nor query, and tcp:// and ssl:// become mqtt:// and mqtts://.",
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
      "Session identity. Left out, each connection gets a random one, kept across its reconnects, and a clean session; a fixed one lets a restarted source or sink resume its session (sinks of one process with the same clientId share one connection).",
      {
        allowed: "a non-empty string (leave it out for a random one)",
        defaultText: "random, one per connection",
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
  authenticationMethod: v.optional(
    option(
      text(),
      "MQTT 5 enhanced authentication (§4.12): the method named in the CONNECT, such as SCRAM-SHA-256 or a broker's OAUTH2-JWT. The exchange itself is the stream init's `authenticate` hook, which gives the CONNECT's authentication data and answers each AUTH challenge; needs mqttVersion=5.",
      { allowed: "a method name, such as SCRAM-SHA-256" },
    ),
  ),
  reauthenticateInterval: v.optional(
    option(
      integer(0, 2_147_483),
      "MQTT 5: seconds between re-authentications (§4.12.1, AUTH 0x19) on a connection, for credentials with a lifetime (a JWT); the connection stays up and messages keep flowing. 0 re-authenticates only when asked (source.reauthenticate()). Needs authenticationMethod.",
      { allowed: "an integer from 0 to 2147483 (seconds)" },
    ),
    0,
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
    option(
      integer(0, 2_147_483),
      "Seconds to wait for the broker's CONNACK (and for a SUBACK); 0 waits for ever. With several brokers it bounds a whole round: each attempt gets an equal share of what is left of it (at least connectionTimeout ÷ brokers, and 1 s), so a silent broker does not hold the others back.",
      {
        allowed: "an integer from 0 to 2147483",
      },
    ),
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
      mqttVersion(),
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
  maxPacketSize: v.optional(
    option(
      integer(1, MQTT_MAX_PACKET_SIZE),
      "Largest MQTT packet (bytes) this client accepts: sent to the broker as the MQTT 5 Maximum Packet Size, and an incoming packet that declares more is refused before its body is read (on MQTT 3.1.1 too), so a source holds at most maxInflight × maxPacketSize bytes of messages. Records sent are limited by the broker's CONNACK Maximum Packet Size (and MQTT's 268435455 bytes) instead. 1 MiB by default, in line with Kafka's and NATS's default message limits.",
      { allowed: `an integer from 1 to ${MQTT_MAX_PACKET_SIZE} (bytes)` },
    ),
    1_048_576,
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
      "Where in-flight QoS 1/2 publishes and QoS 2 receipts are kept: memory, or a crash-safe log under localStorage that a restarted process resumes from (needs a fixed clientId).",
      {
        allowed: "memory or file",
      },
    ),
    "memory",
  ),
  localStorage: v.optional(
    option(
      text(),
      "Folder of the file store (persistence=file); one process at a time may use it.",
      {
        allowed: "a folder path",
        defaultText: "./.mqtt-streams/<clientId>",
      },
    ),
  ),
  fsync: v.optional(
    option(
      choice(["batch", "always"] as const),
      "When the file store counts a packet as stored (persistence=file): batch, once it is written to the log (survives a killed process; fdatasync follows in the background), or always, once an fdatasync covering it returned (survives a power loss too; about a tenth of the throughput).",
      { allowed: "batch or always" },
    ),
    "batch",
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
      "Accepted for compatibility with the Bahir connector; JavaScript runtimes have one TLS provider, so it has no effect.",
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
    option(text(), "Accepted for compatibility with the Bahir connector; has no effect.", {
      allowed: "a non-empty string",
    }),
  ),
  "ssl.ciphers": v.optional(
    option(
      cipherList(),
      "Cipher suites, OpenSSL names or Java (IANA) names, separated by ':' or ','.",
      {
        allowed: "a list of cipher suites",
      },
    ),
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
  "ssl.alpn": v.optional(
    option(
      protocolList(),
      "TLS ALPN protocols to offer (RFC 7301), separated by commas: x-amzn-mqtt-ca lets AWS IoT Core take MQTT on port 443. mqtts:// only.",
      { allowed: "protocol names separated by commas, such as x-amzn-mqtt-ca" },
    ),
  ),
  "ssl.servername": v.optional(
    option(
      text(),
      "The TLS server name (SNI) to send and to verify the broker's certificate against, when it differs from the host connected to (an IP address, a load balancer, a tunnel).",
      { allowed: "a host name" },
    ),
  ),
  connectAttempts: v.optional(
    option(
      attempts(),
      "Connection attempts before failing, for the first connect and for each outage; -1 tries for ever. With several brokers, an attempt is a round that tries each once.",
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
  redirect: v.optional(
    option(
      choice(["list", "any", "off"] as const),
      "Where an MQTT 5 redirection (CONNACK or DISCONNECT 0x9C / 0x9D with a Server Reference) may send the client, with its credentials: list, only to a broker named in the connection string; any, to whatever host the broker names; off, never (a redirection is a failed attempt on that broker).",
      { allowed: "list, any or off" },
    ),
    "list",
  ),
  connectionCacheTimeout: v.optional(
    option(
      integer(0, 2_147_483_647),
      "Milliseconds a shared sink connection stays open after its last sink closed, for the next sink with the same identity; an idle one does not keep the process alive. Over ws:// and wss:// it closes at once, as a WebSocket cannot be left open without holding the process; with persistence=file it closes at once too, so that close() frees the store's folder.",
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
      "Attempts of a publish the broker refused for a reason that may clear up (MQTT 5: 0x80, 0x89, 0x91, 0x96, 0x97); -1 tries for ever. Resends after a reconnect are not counted.",
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
  qos0Overflow: v.optional(
    option(
      choice(["drop", "block"] as const),
      "What a source does with a QoS 0 message that arrives while its queue is full: drop it (counted in stats.dropped) or stop reading the socket until the consumer reads (TCP backpressure onto the broker).",
      { allowed: "drop or block" },
    ),
    "drop",
  ),
  telemetry: v.optional(
    option(
      boolean(),
      "Export OpenTelemetry metrics and spans through @opentelemetry/api (a no-op until the application registers an SDK); false turns them off for this stream.",
      { allowed: "true or false", env: "MQTT_TELEMETRY" },
    ),
    true,
  ),
  "telemetry.topics": v.optional(
    option(
      boolean(),
      "Put each message's topic on its duration histograms (messaging.destination.name). Topics are unbounded, so every distinct topic makes a series; off, the series follow the stream's filters and configured topic.",
      { allowed: "true or false" },
    ),
    false,
  ),
  "will.topic": v.optional(
    option(
      topicName(),
      "Topic of the last will, published by the broker if the connection is lost.",
      { allowed: "a topic name without wildcards" },
    ),
  ),
  "will.payload": v.optional(
    option(payload(), "Payload of the last will.", {
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
export type OptionName = keyof typeof OPTION_FIELDS.entries;

/** Every option name, in the schema's order. */
export const OPTION_NAMES = Object.keys(OPTION_FIELDS.entries) as OptionName[];

/** The options' values, checked and defaulted one by one. */
type Fields = v.InferOutput<typeof OPTION_FIELDS>;

/**
 * The schema of the options: what is given (canonical names, values as given) in, the
 * validated, fully defaulted options (MqttOptions) out. Each step's issues name the option
 * at fault; the first one found is the one reported.
 */
export const OPTIONS_SCHEMA = v.pipe(
  v.looseObject({}),
  // Which options are given together, before their values.
  sslNeedsTls(OPTION_NAMES),
  certWithKey(),
  willNeedsTopic(OPTION_NAMES),
  OPTION_FIELDS,
  // The values together.
  fileStoreNeedsClientId<Fields>(),
  enhancedAuthNeedsMqtt5<Fields>(),
  alpnNeedsMqtts<Fields>(),
  v.transform(completeOptions<Fields>),
);

/** The doc, metadata, TypeScript type and default of an option, read from the schema. */
export function describeOption(
  name: OptionName,
): { doc: string; meta: OptionMeta; type: string; default: unknown } {
  const entry = OPTION_FIELDS.entries[name];
  const described = entry.type === "optional" ? entry.wrapped : entry;
  const [value, { description }, { metadata }] = described.pipe;
  return {
    doc: description,
    meta: metadata,
    type: v.getMetadata(value).type,
    default: entry.type === "optional" ? entry.default : undefined,
  };
}
