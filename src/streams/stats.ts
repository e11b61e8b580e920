// The counters the streams show: each stats interface and the function that builds its
// live view over a stream's own counts and its connection's.
import { Connection } from "../connection/connection.ts";
import type { MqttOptions } from "../options/options.ts";

/**
 * The connection attempt a stream is making, as its `stats.connecting` shows it while it
 * connects.
 *
 * @example As the command line says it
 * ```ts
 * import type { MqttConnecting } from "@mqtt-streams/core";
 *
 * const connecting: MqttConnecting = { broker: "mqtt://h:1883", attempt: 2, attempts: 5 };
 * const { broker, attempt, attempts } = connecting;
 * console.log(`connecting to ${broker} (attempt ${attempt} of ${attempts})…`);
 * ```
 */
export interface MqttConnecting {
  /** The broker tried (between two attempts, the one tried next), as `mqtt://host:port`. */
  readonly broker: string;
  /** The attempt's number, from 1 in this connect or outage (a round, with several brokers). */
  readonly attempt: number;
  /** `connectAttempts`: -1 for no limit. */
  readonly attempts: number;
}

/** Counters of an {@linkcode MqttSource}; live, read them at any time. */
export interface MqttSourceStats {
  /** Messages that arrived from the broker, dropped ones included. */
  readonly received: number;
  /** PUBACKs / PUBCOMPs sent to the broker. */
  readonly acked: number;
  /**
   * QoS 0 messages dropped because the queue was full (`qos0Overflow=drop`), and, with
   * persistence=file, QoS 2 messages the store held unreleased when the broker answered
   * without the session (it will never send their PUBREL).
   */
  readonly dropped: number;
  /** Messages that arrived with DUP set: possibly seen before, after a reconnect. */
  readonly redelivered: number;
  /**
   * Copies not delivered, over MQTT 5: the broker sent a message once per matching
   * subscription (§3.3.4) and another copy of it was the one delivered (see docs/delivery.md,
   * overlapping filters). Acknowledged unread; counted in `received` too.
   */
  readonly duplicates: number;
  /**
   * Messages delivered, over MQTT 3.1.1, whose topic matches two or more of the filters
   * subscribed (a partial overlap, such as `a/+/c` and `a/b/+`): a broker that sends a copy
   * per matching subscription (mosquitto with `allow_duplicate_messages true`, the default
   * from 2.1) delivers each such publish that many times, and the copies cannot be told
   * apart. 0 with disjoint filters, or over MQTT 5.
   */
  readonly overlapping: number;
  /** Reconnects after the first connect. */
  readonly reconnects: number;
  /**
   * The broker the stream is connected to now (or was last, while it reconnects), as
   * `mqtt://host:port`: one of the brokers its connection string names, or one a broker
   * redirected it to. Undefined before the first connect.
   */
  readonly broker: string | undefined;
  /** Reconnects that landed on another broker than the one before (failovers in a cluster). */
  readonly failovers: number;
  /**
   * While the stream connects (at first, or again after a drop): the broker tried (between
   * two attempts, the one tried next) as `mqtt://host:port`, without user info; the
   * attempt's number, from 1 in this connect or outage (with several brokers an attempt is a
   * round that tries each once); and `connectAttempts` (-1: no limit). Undefined while
   * connected, once the stream is closed, and in the moment after it is made, before its
   * first attempt is set up. Not enumerable: `{ ...stats }` copies the counters only.
   *
   * @example Say so while connecting takes more than a second
   * ```ts ignore
   * import { MqttSource } from "@mqtt-streams/core";
   *
   * const source = new MqttSource("mqtt://localhost?topic=a&connectAttempts=5");
   * const timer = setInterval(() => {
   *   const connecting = source.stats.connecting;
   *   if (connecting) {
   *     const { broker, attempt, attempts } = connecting;
   *     console.error(`connecting to ${broker} (attempt ${attempt} of ${attempts})…`);
   *   }
   * }, 1000);
   * source.ready.finally(() => clearInterval(timer)).catch(() => {});
   * ```
   */
  readonly connecting: MqttConnecting | undefined;
  /** Messages in the stream's queue, not yet read: at most `maxInflight`. */
  readonly buffered: number;
  /**
   * Messages that arrived while the queue or the window was full and wait outside the queue
   * while the source has stopped reading from the broker (0 or 1 unless reconnects overlap).
   */
  readonly held: number;
  /**
   * QoS 1/2 messages that arrived while `maxInflight` messages were already unacknowledged:
   * the broker sent past the window (MQTT 3.1.1 has none; some MQTT 5 brokers over-send).
   */
  readonly beyondWindow: number;
  /**
   * persistence=file: QoS 2 messages an earlier run received (PUBREC sent) and did not get
   * acknowledged by its consumer, found in the store; each is delivered when the broker
   * sends its PUBREL again.
   */
  readonly recovered: number;
  /**
   * persistence=file: stretches of the store's logs skipped when it opened, because a
   * checksum failed or a write was torn. Intact records around them are kept.
   */
  readonly damaged: number;
}

/** What a source counts itself; the rest comes from its connection. */
export interface SourceCounts {
  received: number;
  dropped: number;
  redelivered: number;
  duplicates: number;
  overlapping: number;
}

/** The live stats of a source: its `counts`, queue (`unread`), `held` messages and connection. */
export function sourceStats(
  counts: SourceCounts,
  unread: { readonly length: number },
  held: { readonly length: number },
  connection: () => Connection | undefined,
  options: MqttOptions,
): MqttSourceStats {
  return withConnection(
    {
      get received() {
        return counts.received;
      },
      get dropped() {
        return counts.dropped + (connection()?.stats.discarded ?? 0);
      },
      get redelivered() {
        return counts.redelivered;
      },
      get duplicates() {
        return counts.duplicates;
      },
      get overlapping() {
        return counts.overlapping;
      },
      get acked() {
        return connection()?.stats.acked ?? 0;
      },
      get buffered() {
        return unread.length;
      },
      get held() {
        return held.length;
      },
      get beyondWindow() {
        return connection()?.stats.beyondWindow ?? 0;
      },
      get recovered() {
        return connection()?.stats.recoveredIncoming ?? 0;
      },
      get damaged() {
        return damaged(connection());
      },
    },
    connection,
    options,
  );
}

/**
 * Counters of an {@linkcode MqttSink}; live, read them at any time.
 *
 * @example
 * ```ts ignore
 * import { MqttSink } from "@mqtt-streams/core";
 *
 * const sink = new MqttSink("mqtt://localhost?topic=out");
 * await ReadableStream.from(["a", "b"]).pipeTo(sink);
 * console.log(sink.stats.published, sink.stats.acked); // 2 2
 * ```
 */
export interface MqttSinkStats {
  /** Publishes sent, at every QoS (a resend is not counted again). */
  readonly published: number;
  /** QoS 1/2 publishes the broker acknowledged (PUBACK / PUBCOMP). */
  readonly acked: number;
  /**
   * Publishes sent again: after a reconnect (still unacknowledged), or after a transient
   * refusal (within `publishAttempts`).
   */
  readonly retried: number;
  /** Reconnects after the first connect (of a connection shared with other sinks: theirs too). */
  readonly reconnects: number;
  /**
   * The broker the stream is connected to now (or was last, while it reconnects), as
   * `mqtt://host:port`: one of the brokers its connection string names, or one a broker
   * redirected it to. Undefined before the first connect.
   */
  readonly broker: string | undefined;
  /** Reconnects that landed on another broker than the one before (failovers in a cluster). */
  readonly failovers: number;
  /**
   * While the sink connects (at first, or again after a drop): the broker tried (between
   * two attempts, the one tried next) as `mqtt://host:port`, without user info; the
   * attempt's number, from 1 in this connect or outage (a round, with several brokers); and
   * `connectAttempts` (-1: no limit). Undefined while connected, once the sink is closed,
   * in the moment after it is made, before its first attempt is set up, and for a sink that
   * joins a shared connection another sink is still opening. Not enumerable: `{ ...stats }`
   * copies the counters only.
   */
  readonly connecting: MqttConnecting | undefined;
  /** QoS 1/2 publishes sent and not yet acknowledged (or waiting to retry): at most `maxInflight`. */
  readonly inflight: number;
  /**
   * Publishes given up on: refused for good, out of attempts, or unacknowledged when the
   * sink failed or was aborted (those may still have reached the broker).
   */
  readonly failed: number;
  /**
   * persistence=file: publishes an earlier run left unacknowledged in the store, sent again
   * when this sink's connection opened (before its own writes). Those the broker then
   * refuses are counted in `failed`.
   */
  readonly recovered: number;
  /**
   * persistence=file: stretches of the store's logs skipped when it opened, because a
   * checksum failed (a record damaged on disk: its packet is lost) or a write was torn
   * (a put that never reported success). Intact records around them are kept.
   */
  readonly damaged: number;
}

/** What a sink counts itself; the rest comes from its connection. */
export interface SinkCounts {
  published: number;
  acked: number;
  retried: number;
  failed: number;
}

/** The live stats of a sink: its `counts`, its unsettled publishes (`pending`) and connection. */
export function sinkStats(
  counts: SinkCounts,
  pending: { readonly size: number },
  connection: () => Connection | undefined,
  options: MqttOptions,
): MqttSinkStats {
  return withConnection(
    {
      get published() {
        return counts.published;
      },
      get acked() {
        return counts.acked;
      },
      get retried() {
        return counts.retried;
      },
      get inflight() {
        return pending.size;
      },
      get failed() {
        return counts.failed + (connection()?.stats.recoveredFailed ?? 0);
      },
      get recovered() {
        return connection()?.stats.recoveredOutgoing ?? 0;
      },
      get damaged() {
        return damaged(connection());
      },
    },
    connection,
    options,
  );
}

/** What both streams' stats read off their connection: reconnects, broker, failovers. */
interface ConnectionStats {
  readonly reconnects: number;
  readonly broker: string | undefined;
  readonly failovers: number;
}

/**
 * `stats` with the live {@linkcode ConnectionStats} of `connection` added, and `connecting`,
 * read off the connection being opened with `options` until the stream holds it.
 */
function withConnection<T extends object>(
  stats: T,
  connection: () => Connection | undefined,
  options: MqttOptions,
): T & ConnectionStats & { readonly connecting: MqttConnecting | undefined } {
  // A state, not a counter, and not enumerable, so that `{ ...stats }` stays the counters.
  Object.defineProperty(stats, "connecting", {
    get(): MqttConnecting | undefined {
      return (connection() ?? Connection.opening(options))?.connecting;
    },
    enumerable: false,
  });
  const live: ConnectionStats = {
    get reconnects() {
      return connection()?.stats.reconnects ?? 0;
    },
    get broker() {
      return connection()?.stats.broker;
    },
    get failovers() {
      return connection()?.stats.failovers ?? 0;
    },
  };
  return Object.defineProperties(stats, Object.getOwnPropertyDescriptors(live)) as
    & T
    & ConnectionStats
    & { readonly connecting: MqttConnecting | undefined };
}

/** Stretches of the file store's logs skipped when it opened (persistence=file). */
function damaged(connection: Connection | undefined): number {
  return connection?.stats.damaged ?? 0;
}
