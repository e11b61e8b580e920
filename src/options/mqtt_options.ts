// Generated from the options' schema (_schema.ts) by tests/options/_generate.ts: change the
// schema, not this file, and run that script (a test fails while this file is out of date).
import type { Secret } from "../secret.ts";

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
   * The broker: mqtt://, tcp://, mqtts://, ssl://, ws:// or wss://, with user:password@ if needed;
   * several brokers of one cluster as mqtt://node1:1883,node2:1883, tried in order. Parsed, it
   * keeps neither user info nor query, and tcp:// and ssl:// become mqtt:// and mqtts://.
   *
   * Allowed: a URL such as mqtt://host:1883 (schemes mqtt, tcp, mqtts, ssl, ws, wss).
   */
  brokerUrl: string;
  /**
   * Each broker of brokerUrl as a URL of its own (mqtt://node1:1883), in the order they are tried:
   * one, unless brokerUrl names several.
   */
  brokers: string[];
  /**
   * Topic filter(s) to subscribe to (repeat it for several; $share/group/filter for shared
   * subscriptions), and the default topic to publish to.
   *
   * Allowed: an MQTT topic filter (write %23 for # and %2B for + in a URL).
   * @default {[]}
   */
  topic: string[];
  /**
   * Session identity. Left out, each connection gets a random one, kept across its reconnects, and
   * a clean session; a fixed one lets a restarted source or sink resume its session (sinks of one
   * process with the same clientId share one connection).
   *
   * Allowed: a non-empty string (leave it out for a random one).
   * @default {random, one per connection}
   */
  clientId?: string;
  /**
   * QoS to subscribe and publish at.
   *
   * Allowed: 0, 1 or 2.
   * @default {1}
   */
  qos: 0 | 1 | 2;
  /**
   * User name, also read from the URL's user info; leave it out rather than empty.
   *
   * Allowed: a non-empty string.
   */
  username?: string;
  /**
   * Password, also read from the URL's user info. Never printed.
   *
   * Allowed: a string.
   */
  password?: Secret;
  /**
   * MQTT 5 enhanced authentication (§4.12): the method named in the CONNECT, such as SCRAM-SHA-256
   * or a broker's OAUTH2-JWT. The exchange itself is the stream init's `authenticate` hook, which
   * gives the CONNECT's authentication data and answers each AUTH challenge; needs mqttVersion=5.
   *
   * Allowed: a method name, such as SCRAM-SHA-256.
   */
  authenticationMethod?: string;
  /**
   * MQTT 5: seconds between re-authentications (§4.12.1, AUTH 0x19) on a connection, for
   * credentials with a lifetime (a JWT); the connection stays up and messages keep flowing. 0
   * re-authenticates only when asked (source.reauthenticate()). Needs authenticationMethod.
   *
   * Allowed: an integer from 0 to 2147483 (seconds).
   * @default {0}
   */
  reauthenticateInterval: number;
  /**
   * Start a fresh session (true) or resume the stored one (false).
   *
   * Allowed: true or false.
   * @default {false with a clientId, true without}
   */
  cleanSession: boolean;
  /**
   * MQTT 5: seconds the broker keeps the session after a disconnect.
   *
   * Allowed: an integer from 0 to 4294967295.
   * @default {0 with cleanSession, 4294967295 (never) without, as in MQTT 3.1.1}
   */
  sessionExpiryInterval: number;
  /**
   * Seconds to wait for the broker's CONNACK (and for a SUBACK); 0 waits for ever. With several
   * brokers it bounds a whole round: each attempt gets an equal share of what is left of it (at
   * least connectionTimeout ÷ brokers, and 1 s), so a silent broker does not hold the others back.
   *
   * Allowed: an integer from 0 to 2147483.
   * @default {30}
   */
  connectionTimeout: number;
  /**
   * Keep-alive interval in seconds; 0 turns it off.
   *
   * Allowed: an integer from 0 to 65535.
   * @default {60}
   */
  keepAlive: number;
  /**
   * MQTT protocol version: 3 (3.1), 4 (3.1.1) or 5.
   *
   * Allowed: 3, 3.1, 4, 3.1.1, 5 or 5.0.
   * @default {4}
   */
  mqttVersion: 3 | 4 | 5;
  /**
   * Unacknowledged QoS 1/2 messages each way; the streams' highWaterMark; MQTT 5 receiveMaximum.
   *
   * Allowed: an integer from 1 to 65535.
   * @default {60}
   */
  maxInflight: number;
  /**
   * Largest MQTT packet (bytes) this client accepts: sent to the broker as the MQTT 5 Maximum
   * Packet Size, and an incoming packet that declares more is refused before its body is read (on
   * MQTT 3.1.1 too), so a source holds at most maxInflight × maxPacketSize bytes of messages.
   * Records sent are limited by the broker's CONNACK Maximum Packet Size (and MQTT's 268435455
   * bytes) instead. 1 MiB by default, in line with Kafka's and NATS's default message limits.
   *
   * Allowed: an integer from 1 to 268435455 (bytes).
   * @default {1048576}
   */
  maxPacketSize: number;
  /**
   * Reconnect (with connectAttempts and connectBackoff) and resume after the connection drops.
   *
   * Allowed: true or false.
   * @default {true}
   */
  autoReconnect: boolean;
  /**
   * Where in-flight QoS 1/2 publishes and QoS 2 receipts are kept: memory, or a crash-safe log
   * under localStorage that a restarted process resumes from (needs a fixed clientId).
   *
   * Allowed: memory or file.
   * @default {"memory"}
   */
  persistence: "memory" | "file";
  /**
   * Folder of the file store (persistence=file); one process at a time may use it.
   *
   * Allowed: a folder path.
   * @default {./.mqtt-streams/<clientId>}
   */
  localStorage?: string;
  /**
   * When the file store counts a packet as stored (persistence=file): batch, once it is written to
   * the log (survives a killed process; fdatasync follows in the background), or always, once an
   * fdatasync covering it returned (survives a power loss too; about a tenth of the throughput).
   *
   * Allowed: batch or always.
   * @default {"batch"}
   */
  fsync: "batch" | "always";
  /**
   * Lowest TLS version accepted; TLS means the runtime's default.
   *
   * Allowed: TLS, TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3 (SSLv3 is not supported by any JavaScript
   * runtime).
   * @default {"TLS"}
   */
  "ssl.protocol": "TLS" | "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
  /**
   * Client certificate and key: a PKCS12 file (or bytes), or a PEM file holding both.
   *
   * Allowed: a file path or the store's bytes.
   */
  "ssl.key.store"?: string | Uint8Array;
  /**
   * Password of ssl.key.store.
   *
   * Allowed: a string.
   */
  "ssl.key.store.password"?: Secret;
  /**
   * Type of ssl.key.store.
   *
   * Allowed: PKCS12 or PEM.
   * @default {PEM for .pem/.crt/.key files, else PKCS12}
   */
  "ssl.key.store.type"?: "PKCS12" | "PEM";
  /**
   * Accepted for compatibility with the Bahir connector; JavaScript runtimes have one TLS provider,
   * so it has no effect.
   *
   * Allowed: a non-empty string.
   */
  "ssl.key.store.provider"?: string;
  /**
   * CA certificates to trust: a PKCS12 trust store or a PEM file (or bytes).
   *
   * Allowed: a file path or the store's bytes.
   */
  "ssl.trust.store"?: string | Uint8Array;
  /**
   * Password of ssl.trust.store.
   *
   * Allowed: a string.
   */
  "ssl.trust.store.password"?: Secret;
  /**
   * Type of ssl.trust.store.
   *
   * Allowed: PKCS12 or PEM.
   * @default {PEM for .pem/.crt files, else PKCS12}
   */
  "ssl.trust.store.type"?: "PKCS12" | "PEM";
  /**
   * Accepted for compatibility with the Bahir connector; has no effect.
   *
   * Allowed: a non-empty string.
   */
  "ssl.trust.store.provider"?: string;
  /**
   * Cipher suites, OpenSSL names or Java (IANA) names, separated by ':' or ','.
   *
   * Allowed: a list of cipher suites.
   */
  "ssl.ciphers"?: string;
  /**
   * CA certificate(s) to trust, PEM: a file path, PEM text or bytes.
   *
   * Allowed: a PEM file path, PEM text or bytes.
   */
  "ssl.ca"?: string | Uint8Array;
  /**
   * Client certificate, PEM: a file path, PEM text or bytes.
   *
   * Allowed: a PEM file path, PEM text or bytes.
   */
  "ssl.cert"?: string | Uint8Array;
  /**
   * Client private key, PEM: a file path, PEM text or bytes. Never printed.
   *
   * Allowed: a PEM file path, PEM text or bytes.
   */
  "ssl.key"?: Secret<string | Uint8Array>;
  /**
   * Passphrase of an encrypted ssl.key.
   *
   * Allowed: a string.
   */
  "ssl.key.password"?: Secret;
  /**
   * Verify the broker's certificate and host name. Turn off only for testing.
   *
   * Allowed: true or false.
   * @default {true}
   */
  "ssl.verify": boolean;
  /**
   * TLS ALPN protocols to offer (RFC 7301), separated by commas: x-amzn-mqtt-ca lets AWS IoT Core
   * take MQTT on port 443. mqtts:// only.
   *
   * Allowed: protocol names separated by commas, such as x-amzn-mqtt-ca.
   */
  "ssl.alpn"?: string[];
  /**
   * The TLS server name (SNI) to send and to verify the broker's certificate against, when it
   * differs from the host connected to (an IP address, a load balancer, a tunnel).
   *
   * Allowed: a host name.
   */
  "ssl.servername"?: string;
  /**
   * Connection attempts before failing, for the first connect and for each outage; -1 tries for
   * ever. With several brokers, an attempt is a round that tries each once.
   *
   * Allowed: -1 or an integer from 1 to 1000000. Environment variable: `MQTT_CONNECT_ATTEMPTS`.
   * @default {5}
   */
  connectAttempts: number;
  /**
   * First delay (ms) between connection attempts; it doubles each attempt, with jitter, up to 60 s.
   *
   * Allowed: an integer from 0 to 3600000. Environment variable: `MQTT_CONNECT_BACKOFF`.
   * @default {1000}
   */
  connectBackoff: number;
  /**
   * Where an MQTT 5 redirection (CONNACK or DISCONNECT 0x9C / 0x9D with a Server Reference) may
   * send the client, with its credentials: list, only to a broker named in the connection string;
   * any, to whatever host the broker names; off, never (a redirection is a failed attempt on that
   * broker).
   *
   * Allowed: list, any or off.
   * @default {"list"}
   */
  redirect: "list" | "any" | "off";
  /**
   * Milliseconds a shared sink connection stays open after its last sink closed, for the next sink
   * with the same identity; an idle one does not keep the process alive. Over ws:// and wss:// it
   * closes at once, as a WebSocket cannot be left open without holding the process; with
   * persistence=file it closes at once too, so that close() frees the store's folder.
   *
   * Allowed: an integer from 0 to 2147483647. Environment variable:
   * `MQTT_CONNECTION_CACHE_TIMEOUT`.
   * @default {600000}
   */
  connectionCacheTimeout: number;
  /**
   * Attempts of a publish the broker refused for a reason that may clear up (MQTT 5: 0x80, 0x89,
   * 0x91, 0x96, 0x97); -1 tries for ever. Resends after a reconnect are not counted.
   *
   * Allowed: -1 or an integer from 1 to 1000000. Environment variable: `MQTT_PUBLISH_ATTEMPTS`.
   * @default {3}
   */
  publishAttempts: number;
  /**
   * First delay (ms) between publish attempts; it doubles each attempt, with jitter, up to 60 s.
   *
   * Allowed: an integer from 0 to 3600000. Environment variable: `MQTT_PUBLISH_BACKOFF`.
   * @default {1000}
   */
  publishBackoff: number;
  /**
   * When a source acknowledges a QoS 1/2 message: when it is read, or when message.ack() is called.
   *
   * Allowed: read or manual.
   * @default {"read"}
   */
  ack: "read" | "manual";
  /**
   * What a source does with a QoS 0 message that arrives while its queue is full: drop it (counted
   * in stats.dropped) or stop reading the socket until the consumer reads (TCP backpressure onto
   * the broker).
   *
   * Allowed: drop or block.
   * @default {"drop"}
   */
  qos0Overflow: "drop" | "block";
  /**
   * Export OpenTelemetry metrics and spans through @opentelemetry/api (a no-op until the
   * application registers an SDK); false turns them off for this stream.
   *
   * Allowed: true or false. Environment variable: `MQTT_TELEMETRY`.
   * @default {true}
   */
  telemetry: boolean;
  /**
   * Put each message's topic on its duration histograms (messaging.destination.name). Topics are
   * unbounded, so every distinct topic makes a series; off, the series follow the stream's filters
   * and configured topic.
   *
   * Allowed: true or false.
   * @default {false}
   */
  "telemetry.topics": boolean;
  /**
   * Topic of the last will, published by the broker if the connection is lost.
   *
   * Allowed: a topic name without wildcards.
   */
  "will.topic"?: string;
  /**
   * Payload of the last will.
   *
   * Allowed: a string or bytes.
   */
  "will.payload"?: string | Uint8Array;
  /**
   * QoS of the last will.
   *
   * Allowed: 0, 1 or 2.
   * @default {0}
   */
  "will.qos": 0 | 1 | 2;
  /**
   * Retain the last will.
   *
   * Allowed: true or false.
   * @default {false}
   */
  "will.retain": boolean;
}
