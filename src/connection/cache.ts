// Shared, ref-counted connections for sinks, as the Bahir connector's sink cached its MQTT
// clients: sinks with the same connection identity share one client, which closes
// `connectionCacheTimeout` ms after its last sink let go, or serves the next sink that
// comes before. A serverless handler that runs many times per warm instance then pays for
// one connect, not one per invocation.
//
// The identity is every option that shapes the connection (broker, credentials, TLS,
// protocol version, a fixed clientId, keep-alive, will, ...), not the options of one sink
// (topic, qos, maxInflight, publish attempts). Without a fixed clientId the shared client
// has a random one, so sinks in different processes never take over each other's session.
//
// A connection with a file store (persistence=file) is not kept once its last sink let go:
// the store and its folder's lock belong to the clientId's session, which this process
// holds while the connection is open, so close() ends the connection and frees the folder
// (for another process, or a source of this one). An idle connection would hold the lock
// for connectionCacheTimeout, or past the end of a process that exits without waiting.
//
// The broker's window (MQTT 5 §4.9 Receive Maximum, from CONNACK) is per connection
// (`connection.hasRoom`, `reserve()`, `settle()`): every sink on a connection draws its
// in-flight QoS 1/2 publishes from it.
import { Connection } from "./connection.ts";
import type { MqttOptions } from "../options/options.ts";
import { unrefTimer } from "./_timers.ts";
import type { MqttCredentialsInit } from "./credentials.ts";

/** Options of one sink: sinks that differ only in these share a connection. */
const PER_SINK: ReadonlySet<string> = new Set<keyof MqttOptions>([
  "topic",
  "qos",
  "maxInflight",
  "publishAttempts",
  "publishBackoff",
  "connectionCacheTimeout",
  "ack",
  "qos0Overflow",
  "telemetry",
  "telemetry.topics",
]);

/** One sink's hold on a shared connection. */
export interface Lease {
  readonly connection: Connection;
  /**
   * Lets go (idempotent: a second call returns the first one's promise). The connection
   * closes `connectionCacheTimeout` ms after its last lease is released, or at once with
   * `now` (abort: then without DISCONNECT) or a file store; the promise resolves once it has.
   */
  release(now?: boolean): Promise<void>;
}

interface Entry {
  key: string;
  opening: Promise<Connection>;
  connection?: Connection;
  refs: number;
  timer?: ReturnType<typeof setTimeout>;
  /** Stops connecting when the last sink leaves before the connection is up. */
  stop: AbortController;
}

const entries = new Map<string, Entry>();

/** How many connections the cache holds, open or opening (for tests and diagnostics). */
export function cachedConnections(): number {
  return entries.size;
}

/** What a sink acquires a connection with, besides its options. */
export interface AcquireInit {
  /** Stops waiting for the connection (it stays open for the other sinks). */
  signal?: AbortSignal;
  /** The init's hooks: part of the identity, by which functions they are. */
  hooks?: MqttCredentialsInit;
}

/**
 * A lease on the shared connection for `options` (and `hooks`), opened if there is none.
 *
 * @throws {MqttConnectError} When a new connection cannot be opened.
 */
export async function acquire(
  options: MqttOptions,
  { signal, hooks = {} }: AcquireInit = {},
): Promise<Lease> {
  signal?.throwIfAborted();
  const key = await identity(options, hooks);
  let entry = entries.get(key);
  if (!entry) {
    const stop = new AbortController();
    const created: Entry = {
      key,
      refs: 0,
      stop,
      opening: Connection.open(options, { signal: stop.signal, hooks }),
    };
    entry = created;
    entries.set(key, created);
    created.opening.then((connection) => {
      created.connection = connection;
      // An idle connection that drops is not worth reconnecting: the next sink opens anew.
      connection.onClose(() => created.refs === 0 && evictIdle(created));
      // A connection that failed for good is never handed out again (`closed` never rejects).
      connection.closed.then((error) => error && evictIdle(created));
    }, () => evictIdle(created));
  }
  entry.refs++;
  clearTimeout(entry.timer);
  entry.connection?.setIdle(false);
  const held = entry;
  let released: Promise<void> | undefined;
  const letGo = (now: boolean): Promise<void> => {
    if (--held.refs > 0) return Promise.resolve();
    const connection = held.connection;
    const timeout = options.connectionCacheTimeout;
    // A WebSocket cannot be unref'd: kept open, it would hold the process for `timeout`.
    // A file store is not kept (see the header).
    if (now || timeout === 0 || !connection?.canIdle || options.persistence === "file") {
      return evict(held, now);
    }
    connection.setIdle(true);
    held.timer = setTimeout(() => evictIdle(held, false), timeout);
    unrefTimer(held.timer);
    return Promise.resolve();
  };
  // The stream's abort releases twice (its signal, then abort()): both wait for the end.
  const release = (now = false): Promise<void> => (released ??= letGo(now));
  try {
    const connection = await abortable(held.opening, signal);
    return { connection, release };
  } catch (error) {
    await release(true);
    throw error;
  }
}

/**
 * {@linkcode evict} with no one waiting: an idle connection, or one that failed or never
 * opened. Ending one fails only when its store cannot close (mqtt.js's end reports nothing
 * else), and a connection with a file store is never idle: it is evicted as its last sink
 * lets go, which waits and gets that error. So there is nothing to report here, and no
 * rejection is left unhandled.
 */
function evictIdle(entry: Entry, force = true): void {
  evict(entry, force).catch(() => {});
}

/** Drops the entry from the cache and ends its connection, unless a sink took it again. */
async function evict(entry: Entry, force: boolean): Promise<void> {
  if (entry.refs > 0 && entry.connection && !force) return;
  if (entries.get(entry.key) === entry) entries.delete(entry.key);
  clearTimeout(entry.timer);
  // Sinks still on a connection that failed have their own error; ending is for the idle.
  if (entry.refs > 0) return;
  if (entry.connection) await entry.connection.end(force);
  else entry.stop.abort(new Error("every sink left before the connection was up"));
}

/** Waits for `promise`, or rejects with the signal's reason when it aborts first. */
function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  // It may have aborted while acquire() awaited the identity: its event is gone by now.
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** A number for each hook function seen: its identity in the cache's keys. */
const hookIds = new WeakMap<object, number>();
let hookCount = 0;

/**
 * The connection identity of `options` and `hooks`, as a SHA-256 digest: credentials and
 * keys take part in it but never sit in the cache in the clear. A hook takes part by which
 * function it is, never by what it returned: two sinks share a connection only when given
 * the same function objects.
 */
async function identity(options: MqttOptions, hooks: MqttCredentialsInit): Promise<string> {
  const parts = Object.entries(options)
    .filter(([name, value]) => !PER_SINK.has(name) && value !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, value]) => [name, canonical(value)]);
  for (const [name, hook] of Object.entries(hooks).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (typeof hook !== "function") continue;
    if (!hookIds.has(hook)) hookIds.set(hook, ++hookCount);
    parts.push([`hook:${name}`, hookIds.get(hook)]);
  }
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify(parts)),
  );
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An option value as JSON: secrets revealed (only to be hashed), bytes as arrays. */
function canonical(value: unknown): unknown {
  if (value instanceof Uint8Array) return Array.from(value);
  if (value && typeof value === "object" && "reveal" in value) {
    return canonical((value as { reveal(): unknown }).reveal());
  }
  return value;
}
