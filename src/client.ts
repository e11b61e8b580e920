// The one door to mqtt.js: options -> mqtt.js client options (TLS, MQTT 5, will), and a
// connection that keeps to connectAttempts / connectBackoff on the first connect and on
// every outage. Sources and sinks talk to `Connection`, never to mqtt.js's internals.
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import { MqttConnectError, type MqttErrorCode, MqttOptionsError } from "./errors.ts";
import type { MqttOptions } from "./options.ts";

/** setTimeout's largest delay: what "wait for ever" becomes for connectTimeout. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The longest delay between two attempts, whatever the base backoff. */
const MAX_BACKOFF_MS = 60_000;

/**
 * The delay before retry number `attempt` (1 = the first retry): `base` doubled each
 * attempt, capped at 60 s, with "equal jitter" (half fixed, half random) so that many
 * clients that lost the same broker do not come back in lockstep.
 */
export function backoffDelay(
  attempt: number,
  base: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, base * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + (ceiling / 2) * random());
}

/** A client id for a connection without a fixed one: unique, and at most 23 characters (MQTT 3.1.1 §3.1.3.1). */
export function randomClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  return `mqttstreams_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Maps validated options onto mqtt.js's client options, reading TLS files where named. */
export async function toClientOptions(options: MqttOptions): Promise<IClientOptions> {
  if (options.persistence === "file") {
    // Refused rather than quietly kept in memory: a caller who asked for durability must
    // not believe they have it.
    throw new MqttOptionsError(
      "persistence",
      "Cannot configure MQTT as 'persistence' must be memory in mqtt-streams 0.1.0: current value is file (the file store is not built yet)",
    );
  }
  const url = new URL(options.brokerUrl);
  const protocol = url.protocol.slice(0, -1) as "mqtt" | "mqtts" | "ws" | "wss";
  const v5 = options.mqttVersion === 5;
  const clientOptions: IClientOptions = {
    protocol,
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port ? Number(url.port) : undefined,
    path: url.pathname === "/" ? undefined : url.pathname,
    clientId: options.clientId ?? randomClientId(),
    clean: options.cleanSession,
    keepalive: options.keepAlive,
    protocolVersion: options.mqttVersion,
    connectTimeout: options.connectionTimeout === 0
      ? MAX_TIMER_MS
      : options.connectionTimeout * 1000,
    reconnectPeriod: Math.max(1, backoffDelay(1, options.connectBackoff)),
    // mqtt.js's offline queue for QoS 0 has no bound; sinks apply backpressure instead.
    queueQoSZero: false,
    // Connect refusals are classified below; transient ones are retried by us.
    reconnectOnConnackError: true,
    username: options.username,
    password: options.password?.reveal(),
    properties: v5
      ? {
        receiveMaximum: options.maxInflight,
        sessionExpiryInterval: options.sessionExpiryInterval,
      }
      : undefined,
  };
  if (options["will.topic"] !== undefined) {
    clientOptions.will = {
      topic: options["will.topic"],
      payload: (options["will.payload"] ?? "") as string,
      qos: options["will.qos"],
      retain: options["will.retain"],
    };
  }
  if (protocol === "mqtts" || protocol === "wss") {
    Object.assign(clientOptions, await tlsOptions(options));
  }
  return clientOptions;
}

/** Node-style TLS options (as Node, Deno and Bun's `node:tls` take them). */
async function tlsOptions(options: MqttOptions): Promise<Record<string, unknown>> {
  const tls: Record<string, unknown> = { rejectUnauthorized: options["ssl.verify"] };
  if (options["ssl.protocol"] !== "TLS") tls.minVersion = options["ssl.protocol"];
  if (options["ssl.ciphers"]) tls.ciphers = options["ssl.ciphers"];
  const ca: (string | Uint8Array)[] = [];
  if (options["ssl.ca"] !== undefined) ca.push(await pem(options["ssl.ca"], "ssl.ca"));
  const trust = options["ssl.trust.store"];
  if (trust !== undefined) {
    const bytes = await pem(trust, "ssl.trust.store");
    if (options["ssl.trust.store.type"] === "PEM") ca.push(bytes);
    else {
      // No runtime's TLS takes a PKCS12 file without a private key, so its certificates
      // are read here (WebCrypto only) and passed on as PEM.
      const { pkcs12Certificates } = await import("./_pkcs12.ts");
      ca.push(
        ...await pkcs12Certificates(
          toBytes(bytes),
          options["ssl.trust.store.password"]?.reveal(),
          "ssl.trust.store",
        ),
      );
    }
  }
  if (ca.length) tls.ca = ca;
  const store = options["ssl.key.store"];
  if (store !== undefined) {
    const bytes = await pem(store, "ssl.key.store");
    const passphrase = options["ssl.key.store.password"]?.reveal();
    if (options["ssl.key.store.type"] === "PEM") {
      Object.assign(tls, { cert: bytes, key: bytes, passphrase });
    } else Object.assign(tls, { pfx: bytes, passphrase });
  }
  if (options["ssl.cert"] !== undefined) tls.cert = await pem(options["ssl.cert"], "ssl.cert");
  const key = options["ssl.key"]?.reveal();
  if (key !== undefined) {
    tls.key = await pem(key, "ssl.key");
    if (options["ssl.key.password"]) tls.passphrase = options["ssl.key.password"].reveal();
  }
  return tls;
}

/** PEM text or bytes as given, or the contents of the file a path names. */
async function pem(value: string | Uint8Array, option: string): Promise<string | Uint8Array> {
  if (typeof value !== "string" || value.includes("-----BEGIN")) return value;
  // Only reached when a file is named, so the file-system code stays out of the core.
  const { readFileBytes } = await import("./runtime/files.ts");
  try {
    return await readFileBytes(value);
  } catch (error) {
    throw new MqttOptionsError(
      option,
      `Cannot configure MQTT as '${option}' must name a readable file: current value is ${value} (${
        (error as Error).message
      })`,
      { cause: error },
    );
  }
}

function toBytes(value: string | Uint8Array): Uint8Array {
  return typeof value === "string" ? new TextEncoder().encode(value) : value;
}

/** CONNACK codes that may clear up by themselves: server unavailable / busy, quota, rate. */
const TRANSIENT_CONNACK = new Set([3, 0x88, 0x89, 0x97, 0x9f]);
/** CONNACK codes about who the client is: bad credentials, not authorized, banned, bad auth method. */
const AUTH_CONNACK = new Set([4, 5, 0x86, 0x87, 0x8a, 0x8c]);

interface Classified {
  code: MqttErrorCode;
  reason: string;
  permanent: boolean;
}

/** Says what a connection failure was, in words, and whether another attempt could help. */
function classify(error: unknown, options: MqttOptions): Classified {
  const e = error as { message?: string; code?: string | number } | undefined;
  const message = e?.message ?? String(error);
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
      reason: `the broker refused the connection (${what})`,
      permanent: !TRANSIENT_CONNACK.has(e.code),
    };
  }
  if (message === "connack timeout") {
    return {
      code: "CONNECT_TIMEOUT",
      reason: `no CONNACK within connectionTimeout=${options.connectionTimeout} s`,
      permanent: false,
    };
  }
  const code = typeof e?.code === "string" ? e.code : "";
  if (/CERT|SSL|TLS|certificate|handshake|self.signed|issuer/i.test(`${code} ${message}`)) {
    return {
      code: "CONNECT_TLS",
      reason: `TLS handshake failed: ${message}${code ? ` (${code})` : ""}`,
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

/** Options of {@linkcode Connection.open}. */
export interface OpenOptions {
  /** Aborts connecting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * An mqtt.js client under our attempts-and-backoff policy. `closed` settles when the
 * connection is over: with undefined after `end()`, or with the MqttConnectError that
 * ended it (attempts exhausted in an outage, a permanent refusal, or a drop with
 * autoReconnect=false).
 */
export class Connection {
  readonly client: MqttClient;
  readonly options: MqttOptions;
  /** Successful reconnects after the first connect. */
  reconnects = 0;
  /** Attempts made in the current outage or first connect; 0 while connected. */
  attempts = 1;
  readonly closed: Promise<MqttConnectError | undefined>;
  #settle!: (error: MqttConnectError | undefined) => void;
  #lastError: unknown;
  #connectedOnce = false;
  #over = false;

  private constructor(client: MqttClient, options: MqttOptions) {
    this.client = client;
    this.options = options;
    this.closed = new Promise((resolve) => (this.#settle = resolve));
    // mqtt.js throws an 'error' event nobody listens to; this listener classifies every
    // error and ends the connection on a permanent one, so none is lost or hidden.
    client.on("error", (error) => {
      this.#lastError = error;
      if (!this.#over && classify(error, options).permanent) this.#fail("refused");
    });
    // Prepended so it runs before mqtt.js's own 'close' handler, which arms the next
    // attempt with options.reconnectPeriod: we set that delay here, attempt by attempt.
    client.prependListener("close", () => this.#onClose());
    client.on("connect", () => {
      if (this.#connectedOnce) this.reconnects++;
      this.#connectedOnce = true;
      this.attempts = 0;
      this.#lastError = undefined;
    });
  }

  /**
   * Connects, trying up to `connectAttempts` times with backoff.
   *
   * @throws {MqttConnectError} When every attempt failed, or the broker refused for good.
   */
  static async open(options: MqttOptions, init: OpenOptions = {}): Promise<Connection> {
    const clientOptions = await toClientOptions(options);
    init.signal?.throwIfAborted();
    const connection = new Connection(
      mqtt.connect({ ...clientOptions, manualConnect: true }),
      options,
    );
    const { client } = connection;
    const connected = new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        connection.#over = true;
        client.end(true);
        reject(init.signal!.reason);
      };
      init.signal?.addEventListener("abort", onAbort, { once: true });
      client.once("connect", () => {
        init.signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      connection.closed.then((error) => {
        init.signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
      });
    });
    client.connect();
    await connected;
    return connection;
  }

  /** Whether attempts are exhausted for the current outage. */
  #exhausted(): boolean {
    return this.options.connectAttempts !== -1 && this.attempts >= this.options.connectAttempts;
  }

  #onClose(): void {
    if (this.#over) return;
    if (this.attempts === 0) {
      // Connected until now: the connection was lost, and a new outage begins.
      if (!this.options.autoReconnect) return this.#fail("lost");
    } else if (this.#exhausted()) {
      return this.#fail("exhausted");
    }
    this.client.options.reconnectPeriod = Math.max(
      1,
      backoffDelay(Math.max(1, this.attempts), this.options.connectBackoff),
    );
    this.attempts++;
  }

  #fail(why: "lost" | "exhausted" | "refused"): void {
    if (this.#over) return;
    this.#over = true;
    const { code, reason } = classify(this.#lastError ?? this.#streamError(), this.options);
    const attempts = Math.max(1, this.attempts);
    const message = why === "lost"
      ? `Lost the connection to ${this.options.brokerUrl} and autoReconnect is false: ${reason}`
      : `Cannot connect to ${this.options.brokerUrl} after ${attempts} attempt${
        attempts === 1 ? "" : "s"
      } (connectAttempts=${this.options.connectAttempts}): ${reason}`;
    this.client.end(true);
    this.#settle(new MqttConnectError(code, message, attempts, { cause: this.#lastError }));
  }

  /** The error the transport stream died of, when mqtt.js swallowed it (errors without a code). */
  #streamError(): unknown {
    return (this.client.stream as unknown as { errored?: unknown } | undefined)?.errored;
  }

  /** Disconnects (DISCONNECT sent, unless `force`) and settles `closed` with undefined. */
  async end(force = false): Promise<void> {
    if (!this.#over) {
      this.#over = true;
      this.#settle(undefined);
    }
    await this.client.endAsync(force);
  }
}
