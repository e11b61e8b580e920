// Says what a connection failure was, in words, whether another attempt could help, and
// the error a connection ends with.
import {
  MqttConnectError,
  type MqttErrorCode,
  MqttProtocolError,
  type MqttStreamError,
  MqttSubscribeError,
} from "../errors.ts";
import type { MqttOptions } from "../options/options.ts";
import { MQTT_MAX_PACKET_SIZE } from "../options/_schema.ts";
import type { Oversized } from "./_packet_size.ts";
import { ConnackTimeout, type Failure, shortestShare } from "./_attempts.ts";
import { RedirectRefused } from "./_redirect.ts";
import { HookFailed } from "./_credentials.ts";

/** CONNACK codes that send the client to another broker (MQTT 5 §4.11): tried there. */
const REDIRECT_TEMPORARY = 0x9c;
const REDIRECT_MOVED = 0x9d;
/** CONNACK codes that may clear up by themselves: server unavailable / busy, quota, rate. */
const TRANSIENT_CONNACK = new Set([3, 0x88, 0x89, 0x97, 0x9f, REDIRECT_TEMPORARY, REDIRECT_MOVED]);
/** CONNACK codes about who the client is: bad credentials, not authorized, banned, bad auth method. */
const AUTH_CONNACK = new Set([4, 5, 0x86, 0x87, 0x8a, 0x8c]);
/**
 * CONNACK codes refusing the protocol version: 0x01 (MQTT 3.1.1 §3.2.2.3, which a 3.1.1-only
 * broker such as aedes 1.x sends to an MQTT 5 CONNECT as well) and 0x84 (MQTT 5 §3.2.2.2).
 */
const VERSION_CONNACK = new Set([1, 0x84]);

export interface Classified {
  code: MqttErrorCode;
  reason: string;
  permanent: boolean;
}

/** Says what a connection failure was, in words, and whether another attempt could help. */
export function classify(error: unknown, options: MqttOptions): Classified {
  if (error instanceof RedirectRefused) {
    // Another round may find the cluster redirecting elsewhere, or not at all.
    return { code: "CONNECT_REJECTED", reason: error.message, permanent: false };
  }
  if (error instanceof HookFailed) {
    // The token service may be back on the next attempt: retried within connectAttempts.
    return { code: "CONNECT_AUTH", reason: error.message, permanent: false };
  }
  if (error instanceof ConnackTimeout && options.brokers.length === 1) {
    return connackTimeout(options);
  }
  if (error instanceof ConnackTimeout) {
    const seconds = (ms: number) => Number((ms / 1000).toFixed(1));
    return {
      code: "CONNECT_TIMEOUT",
      reason: `no CONNACK within ${
        seconds(error.ms)
      } s, its share of connectionTimeout=${options.connectionTimeout} s (the ${options.brokers.length} brokers of a round share it, each at least ${
        seconds(shortestShare(options))
      } s: raise connectionTimeout if a broker needs longer)`,
      permanent: false,
    };
  }
  const e = error as { message?: string; code?: string | number } | undefined;
  const handshake = webSocketHandshake(error);
  if (handshake !== undefined) return handshake;
  const message = withoutQueries(webSocketDetail(error) ?? e?.message ?? String(error));
  if (typeof e?.code === "number" && message.startsWith("Connection refused")) {
    const what = `CONNACK ${e.code}: ${message.replace(/^Connection refused: /, "")}`;
    if (AUTH_CONNACK.has(e.code)) {
      const who = options.username === undefined
        ? "without a user name"
        : `as user '${options.username}'`;
      return {
        code: "CONNECT_AUTH",
        reason: `the broker refused the credentials ${who} (${what})`,
        permanent: true,
      };
    }
    return {
      code: "CONNECT_REJECTED",
      reason: `the broker refused the connection (${what})${
        VERSION_CONNACK.has(e.code) ? versionAdvice(options, "it does not support") : ""
      }`,
      permanent: !TRANSIENT_CONNACK.has(e.code),
    };
  }
  if (typeof e?.code === "number") {
    // mqtt.js's ErrorWithReasonCode outside CONNACK: the broker broke MQTT 5's rules
    // (topic alias, packet size). Reconnecting would meet the same broker.
    return {
      code: "PROTOCOL",
      reason: `protocol error (reason code 0x${e.code.toString(16)}): ${message}`,
      permanent: true,
    };
  }
  if (message === "Keepalive timeout") {
    return {
      code: "CONNECT_CLOSED",
      reason: "no answer from the broker within 1.5 × keepAlive",
      permanent: false,
    };
  }
  if (
    e?.code === undefined &&
    /^(Protocol error|Invalid|Malformed|Cannot parse|Packet|Not supported|Unknown property|unrecognized packet|Wrong reason code)/i
      .test(message)
  ) {
    // The packet parser's and handlers' errors: a malformed or unexpected packet.
    return { code: "PROTOCOL", reason: `protocol error: ${message}`, permanent: true };
  }
  // mqtt.js's own timer, which Attempts' replaces (see aimAt).
  if (message === "connack timeout") return connackTimeout(options);
  const code = typeof e?.code === "string" ? e.code : "";
  if (/CERT|SSL|TLS|certificate|handshake|self.signed|issuer/i.test(`${code} ${message}`)) {
    return {
      code: "CONNECT_TLS",
      reason: `TLS handshake failed: ${message}${code ? ` (${code})` : ""}${
        tlsAdvice(`${code} ${message}`)
      }`,
      permanent: true,
    };
  }
  if (
    /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|refused/i.test(`${code} ${message}`)
  ) {
    return {
      code: "CONNECT_REFUSED",
      reason: `nothing accepts connections there: ${message}`,
      permanent: false,
    };
  }
  return {
    code: "CONNECT_CLOSED",
    reason: error === undefined ? "the connection closed" : `${message}${code ? ` (${code})` : ""}`,
    permanent: false,
  };
}

/** A URL's query in a message (Bun names the WebSocket URL it failed to open). */
const URL_QUERY = /(\bwss?:\/\/[^\s'"?#]*)\?[^\s'"]*/g;

/**
 * `text` without the query of any ws:// or wss:// URL in it: a URL signed per connection
 * (the init's webSocketUrl) carries its signature there, which is never printed.
 */
function withoutQueries(text: string): string {
  return text.replace(URL_QUERY, "$1?…");
}

/**
 * `error`, or, when a WebSocket error names or holds a URL with a query (a signature), a
 * plain error saying the same without it: the cause of an MqttConnectError is printed with it.
 */
function shown(error: unknown): unknown {
  const detail = webSocketDetail(error);
  if (detail === undefined) return error;
  // The runtime's event holds its WebSocket, whose `url` is the signed one.
  const url = (error as { event?: { target?: { url?: unknown } } }).event?.target?.url;
  const signed = typeof url === "string" && url.includes("?");
  if (!signed && withoutQueries(detail) === detail) return error;
  return new Error(withoutQueries(detail));
}

/** What to set when a TLS failure names what the broker wanted: an ALPN protocol, a server name. */
function tlsAdvice(text: string): string {
  if (/NO_APPLICATION_PROTOCOL|NoApplicationProtocol/i.test(text)) {
    return ": the broker wants a TLS ALPN protocol this client did not offer: set ssl.alpn (AWS IoT Core on port 443: x-amzn-mqtt-ca)";
  }
  if (/UNRECOGNI[SZ]ED_?NAME/i.test(text)) {
    return ": the broker does not serve the TLS server name sent (none is sent for an IP address): set ssl.servername to the name it serves";
  }
  if (/ALTNAME|Hostname\/IP does not match|host ?name mismatch/i.test(text)) {
    return ": set ssl.servername to the name in the broker's certificate, if it is the broker's";
  }
  return "";
}

/** No CONNACK within connectionTimeout, from one broker. */
function connackTimeout(options: MqttOptions): Classified {
  return {
    code: "CONNECT_TIMEOUT",
    reason: `no CONNACK within connectionTimeout=${options.connectionTimeout} s`,
    permanent: false,
  };
}

/**
 * The runtime's own words for a WebSocket failure. mqtt.js reports every one as
 * "WebSocket error" and keeps the runtime's ErrorEvent as `event`, whose message says
 * what happened (Deno: "NetworkError: failed to connect to WebSocket: tcp connect error";
 * Bun: "WebSocket connection to 'ws://…' failed: Failed to connect").
 */
function webSocketDetail(error: unknown): string | undefined {
  const e = error as { message?: string; event?: { message?: unknown } } | undefined;
  if (e?.message !== "WebSocket error") return undefined;
  const detail = e.event?.message;
  return typeof detail === "string" && detail !== "" ? `WebSocket error: ${detail}` : undefined;
}

/** A WebSocket whose opening handshake failed: Deno's and Bun's wording. */
const HANDSHAKE =
  /^WebSocket error: (?:NetworkError: failed to connect to WebSocket|WebSocket connection to '[^']*' failed): (.*)$/s;

/**
 * Classifies a WebSocket that never opened (refused, unknown host, TLS, not a WebSocket
 * endpoint), which mqtt.js would leave as a bare "WebSocket error"; undefined for any
 * other error, a WebSocket lost after it opened included.
 */
function webSocketHandshake(error: unknown): Classified | undefined {
  const why = HANDSHAKE.exec(withoutQueries(webSocketDetail(error) ?? ""))?.[1];
  if (why === undefined) return undefined;
  if (/certificate|TLS|SSL|handshake|alert/i.test(why)) {
    const reason = why.startsWith("TLS handshake failed") ? why : `TLS handshake failed: ${why}`;
    return { code: "CONNECT_TLS", reason, permanent: true };
  }
  if (/status code:? 40[13]\b/i.test(why)) {
    // A signed URL expired or a token refused: a new attempt signs a new one (webSocketUrl).
    return {
      code: "CONNECT_AUTH",
      reason:
        `the server refused the WebSocket upgrade (${why}): it did not accept the URL's signature or the credentials`,
      permanent: false,
    };
  }
  if (/status code/i.test(why)) {
    // An HTTP server answered but did not switch protocols: a wrong path, or no MQTT there.
    return {
      code: "CONNECT_REFUSED",
      reason: `the server does not accept MQTT over WebSocket at that path: ${why}`,
      permanent: false,
    };
  }
  return {
    code: "CONNECT_REFUSED",
    reason: `nothing accepts connections there: ${why}`,
    permanent: false,
  };
}

/** What ended a connection for good, for {@linkcode endingError}. */
export interface Ending {
  /** A drop with autoReconnect=false, attempts exhausted, or a permanent refusal. */
  why: "lost" | "exhausted" | "refused";
  /** The last error mqtt.js reported, or the one the transport died of; none if silent. */
  error: unknown;
  /** Attempts made in the outage or first connect that ended. */
  attempts: number;
  /** The attempt that ended got a CONNACK and was closed before it proved usable. */
  closedAfterConnack: boolean;
  /** The broker of the attempt that ended. */
  broker: string;
  /** With several brokers: each one's last failure in the outage that ended, in order tried. */
  failures: ReadonlyMap<string, Failure>;
}

/** The error a connection ends with, saying why in words a user can act on. */
export function endingError(ending: Ending, options: MqttOptions): MqttStreamError {
  const { why, error, closedAfterConnack, broker } = ending;
  const attempts = Math.max(1, ending.attempts);
  // A connection that was up (lost) did not end before its CONNACK.
  const { code, reason } = error == null
    ? {
      code: "CONNECT_CLOSED" as const,
      reason: silentClose(closedAfterConnack, why !== "lost" && options),
    }
    : classify(error, options);
  // A hook's failure is caused by the hook's own error (a time-out has none: it is its own).
  const cause = { cause: error instanceof HookFailed ? error.cause ?? error : shown(error) };
  if (code === "PROTOCOL") {
    return new MqttProtocolError(`Protocol error on the connection to ${broker}: ${reason}`, cause);
  }
  const tries = `${attempts} attempt${attempts === 1 ? "" : "s"}`;
  const several = options.brokers.length > 1;
  const message = why === "lost"
    ? `Lost the connection to ${broker} and autoReconnect is false: ${reason}`
    : why === "exhausted" && several
    ? `Cannot connect to any of ${options.brokers.length} brokers after ${tries} (connectAttempts=${options.connectAttempts}; an attempt tries each broker once): ${
      eachFailure(ending.failures, options)
    }`
    : `Cannot connect to ${broker} after ${tries} (connectAttempts=${options.connectAttempts}): ${reason}`;
  return new MqttConnectError(code, message, attempts, cause);
}

/** Each broker and why its last attempt failed: "mqtt://a:1883: nothing accepts…; mqtt://b…". */
function eachFailure(failures: ReadonlyMap<string, Failure>, options: MqttOptions): string {
  return [...failures].map(([broker, { error, closedAfterConnack }]) =>
    `${broker}: ${
      error == null ? silentClose(closedAfterConnack, options) : classify(error, options).reason
    }`
  ).join("; ");
}

/**
 * Why the broker closed the connection, when it sent no reason. `attempt` (the options) when
 * the close ended an attempt, which got no CONNACK unless `closedAfterConnack`.
 */
function silentClose(closedAfterConnack: boolean, attempt: MqttOptions | false): string {
  if (closedAfterConnack) {
    return "the broker accepted the connection (CONNACK) and then closed it before it answered anything (no SUBACK, no acknowledgement): it refuses what was sent first, a subscription or a publish of the session sent again (NATS, for one, closes the connection on a QoS 2 publish)";
  }
  // A broker that speaks MQTT 3.1.1 only may close an MQTT 5 CONNECT without a CONNACK
  // (RabbitMQ 3.10 does; MQTT 3.1.1 §3.1.2.2 would have it answer 0x01 first).
  if (attempt && attempt.mqttVersion === 5) {
    return `the broker closed the connection without answering the CONNECT (no CONNACK)${
      versionAdvice(attempt, "it may not support")
    }`;
  }
  return "the broker closed the connection without a reason";
}

/** ": it may not support mqttVersion=5 (MQTT 5); set mqttVersion=4 (MQTT 3.1.1) …". */
function versionAdvice(options: MqttOptions, prefix: string): string {
  const names: Record<number, string> = { 3: "MQTT 3.1", 4: "MQTT 3.1.1", 5: "MQTT 5" };
  const version = options.mqttVersion;
  const older = version - 1;
  return `: ${prefix} mqttVersion=${version} (${names[version]})${
    names[older]
      ? `; set mqttVersion=${older} (${names[older]}) to connect to a broker that speaks only that`
      : ""
  }`;
}

/**
 * The error of a SUBSCRIBE the broker refused (SUBACK 0x80 or more), naming the filter;
 * undefined when `error` is not such a refusal (the connection closed first).
 */
export function subackRefusal(
  error: unknown,
  filters: readonly string[],
  options: MqttOptions,
  broker: string = options.brokerUrl,
): MqttSubscribeError | undefined {
  const refused = refusedAt(error);
  if (refused === undefined) return undefined;
  const filter = filters[refused.index];
  return new MqttSubscribeError(
    `Cannot subscribe to '${filter}' on ${broker}: the broker refused it (SUBACK 0x${
      refused.code.toString(16)
    }${filter.startsWith("$share/") ? "; does it support shared subscriptions?" : ""})`,
    filter,
    { cause: error },
  );
}

/**
 * Whether the broker refused a SUBSCRIBE without a reason: SUBACK 0x80, Failure (MQTT 3.1.1
 * §3.9.3) or Unspecified error (MQTT 5 §3.9.3), where a reason such as not authorized
 * (0x87) or a bad filter (0x8F) would be for good.
 */
export function refusedWithoutReason(error: unknown): boolean {
  return refusedAt(error)?.code === 0x80;
}

/** The first filter a SUBACK refused (0x80 or more), and its code. */
function refusedAt(error: unknown): { index: number; code: number } | undefined {
  // mqtt.js rejects with the SUBACK when it refuses a filter; its codes follow our order.
  const granted = (error as { packet?: { granted?: number[] } }).packet?.granted ?? [];
  const index = granted.findIndex((code) => code >= 0x80);
  return index === -1 ? undefined : { index, code: granted[index] };
}

/**
 * The error of an incoming packet over maxPacketSize, refused from its header; or of one
 * whose Remaining Length is malformed, which no limit would let through.
 */
export function oversizedError(
  { packet, size, malformed }: Oversized,
  options: MqttOptions,
): MqttProtocolError {
  if (malformed) {
    const section = options.mqttVersion === 5 ? "MQTT 5 §1.5.5" : "MQTT 3.1.1 §2.2.3";
    return new MqttProtocolError(
      `Cannot receive from ${options.brokerUrl} as the broker sent a ${packet} whose Remaining Length is malformed: it runs to more than four bytes, the most ${section} allows. No option of this client can accept it: the broker, or something between that does not speak MQTT (a proxy, another protocol on that port), corrupts the stream`,
    );
  }
  const limit = options.maxPacketSize;
  return new MqttProtocolError(
    `Cannot receive from ${options.brokerUrl} as the broker sent a ${packet} of ${size} bytes, over 'maxPacketSize' (${limit} bytes): raise maxPacketSize (at most ${MQTT_MAX_PACKET_SIZE}) to accept it`,
  );
}
