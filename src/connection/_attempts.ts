// When a connection counts as made, what a close means, and which broker comes next:
// connectAttempts and connectBackoff across the first connect and every outage. A broker
// that accepts and drops at once, again and again, must not reset the attempts each time,
// so a connection counts as made only once it proved usable: the broker answered something
// after CONNACK (a source's SUBACK, an acknowledgement, a PINGRESP) with no SUBSCRIBE
// unanswered, or it stayed up connectionTimeout. A close before that ends a failed attempt.
//
// With several brokers (a cluster), one attempt of connectAttempts is a round: each broker
// tried once, in order, without delay between them; connectBackoff waits between rounds.
// A usable connection that drops starts the next round at the next broker, at once (the
// node it was on is likely down, the others likely up), unless it lasted less than
// connectBackoff: a broker that keeps accepting and dropping is not retried in a tight loop.
//
// A round waits for CONNACKs at most connectionTimeout in all: a broker that accepts TCP and
// never answers (a hung node) would otherwise hold every round for the whole of it before the
// next broker is tried. Each attempt gets an equal share of what is left of the round's
// connectionTimeout, so each broker gets at least connectionTimeout ÷ brokers (never under
// 1 s, unless connectionTimeout itself is), and the time a broker that failed fast (refused,
// down) did not use goes to the brokers after it. One broker gets the whole of it.
//
// A broker that redirects (MQTT 5 §4.11, reason 0x9C / 0x9D with a Server Reference) sends
// the next attempt, at once, to the broker it names, if `redirect` allows (_redirect.ts); a
// redirection refused is a failed attempt on the broker that sent it.
import type { MqttOptions } from "../options/options.ts";
import { backoffDelay } from "../options/_backoff.ts";
import { type Redirection, type RedirectRefused, redirectTarget } from "./_redirect.ts";
import { unrefTimer } from "./_timers.ts";

/** What a close means: the end, or the delay before the next attempt. */
export type AfterClose = { end: "lost" | "exhausted" } | { retryIn: number };

/** A broker's share of connectionTimeout is never smaller than this, unless connectionTimeout is. */
const SHORTEST_SHARE_MS = 1000;

/** No CONNACK came within the `ms` an attempt had: its share of connectionTimeout. */
export class ConnackTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no CONNACK within ${ms} ms`);
  }
}

/** Why an attempt on one broker failed. */
export interface Failure {
  /** The last error reported, if any. */
  error: unknown;
  /** It got a CONNACK and was closed before it proved usable. */
  closedAfterConnack: boolean;
}

/**
 * The attempt a connection is making, or waits to make: where it goes, and its number in
 * the first connect or the current outage (a round, with several brokers), of
 * connectAttempts (-1: no limit).
 */
export interface Attempting {
  readonly broker: string;
  readonly attempt: number;
  readonly attempts: number;
}

/** The attempts of one connection. */
export class Attempts {
  /**
   * Attempts made in the current outage or first connect; 0 once the connection is
   * usable. A connection that ends before that was a failed attempt.
   */
  count = 1;
  readonly #options: MqttOptions;
  #connectedOnce = false;
  /** Whether a CONNACK came on the current attempt (reset as the next one starts). */
  #connacked = false;
  /** SUBSCRIBEs sent on the current connection and not yet answered. */
  #subscribing = 0;
  /** Makes the current connection usable once it has stayed up connectionTimeout. */
  #usableTimer?: ReturnType<typeof setTimeout>;
  /** The broker of the current attempt or connection. */
  #target: string;
  /** An attempt (or connection) is under way: aimed, and not closed yet. */
  #underWay = false;
  /** Index in options.brokers of the broker the next attempt goes to (unless redirected). */
  #next = 0;
  /** Brokers tried in the current round. */
  #tried = 0;
  /**
   * Attempts a round holds beyond one a broker: one for each redirection followed from a
   * refused CONNACK, at most one a broker (a broker that redirects to itself ends the round).
   */
  #extra = 0;
  /** Where a broker's redirection sends the next attempt. */
  #redirect?: string;
  /** A redirection of the current attempt or connection that was not followed. */
  #refused?: RedirectRefused;
  /** When the current round's first attempt started (ms since epoch). */
  #roundStart = 0;
  /** Milliseconds the current attempt waits for its CONNACK; undefined waits for ever. */
  #connackTimeout?: number;
  /** Ends the current attempt when no CONNACK came within #connackTimeout. */
  #connackTimer?: ReturnType<typeof setTimeout>;
  /** Told when the current attempt's CONNACK is late: it must close the attempt. */
  readonly #onConnackTimeout?: (timeout: ConnackTimeout) => void;
  /** The broker of the last connection that was made, and when it was made. */
  #connectedTo?: string;
  #connectedAt = 0;
  /** Each broker's last failure in the current outage (or first connect), in order tried. */
  readonly failures: Map<string, Failure> = new Map();
  /** Connections made to a broker other than the one before. */
  failovers = 0;

  /**
   * @param onConnackTimeout called when an attempt got no CONNACK within its share of
   * connectionTimeout; it must close the attempt. Without it, no CONNACK timer runs.
   */
  constructor(options: MqttOptions, onConnackTimeout?: (timeout: ConnackTimeout) => void) {
    this.#options = options;
    this.#target = options.brokers[0];
    this.#onConnackTimeout = onConnackTimeout;
  }

  /**
   * The broker the starting attempt goes to: the next in order, or where a redirection
   * points; {@linkcode connackTimeout} is then how long it waits for its CONNACK.
   */
  aim(): string {
    const { brokers } = this.#options;
    const redirected = this.#redirect !== undefined;
    if (this.#tried === 0) this.#roundStart = Date.now();
    this.#connackTimeout = this.#share();
    this.#target = this.#redirect ?? brokers[this.#next];
    if (!redirected) this.#next = (this.#next + 1) % brokers.length;
    this.#redirect = undefined;
    this.#refused = undefined;
    this.#underWay = true;
    // Our timer, not mqtt.js's (connectTimeout): on a timeout mqtt.js arms its next attempt
    // with the delay set before, ahead of the close that sets it (see aimAt).
    clearTimeout(this.#connackTimer);
    const ms = this.#connackTimeout;
    const onTimeout = this.#onConnackTimeout;
    if (ms !== undefined && onTimeout) {
      this.#connackTimer = setTimeout(() => onTimeout(new ConnackTimeout(ms)), ms);
    }
    return this.#target;
  }

  /**
   * Milliseconds the current attempt waits for its CONNACK (see the top of this file), or
   * undefined when connectionTimeout is 0 (wait for ever).
   */
  get connackTimeout(): number | undefined {
    return this.#connackTimeout;
  }

  /** An equal share of what is left of the round's connectionTimeout, at least the shortest. */
  #share(): number | undefined {
    const total = this.#options.connectionTimeout * 1000;
    const brokers = this.#options.brokers.length;
    if (total === 0) return undefined;
    if (brokers === 1) return total;
    // The attempts left in the round, this one included.
    const left = Math.max(1, brokers + this.#extra - this.#tried);
    const remaining = total - (Date.now() - this.#roundStart);
    return Math.max(shortestShare(this.#options), Math.round(remaining / left));
  }

  /** A redirection of the current attempt or connection that was not followed, if any. */
  get refused(): RedirectRefused | undefined {
    return this.#refused;
  }

  /** The broker of the last connection made, if one was: where the streams are now. */
  get broker(): string | undefined {
    return this.#connectedTo;
  }

  /** The broker the next attempt goes to (where {@linkcode aim} will point it). */
  get next(): string {
    return this.#redirect ?? this.#options.brokers[this.#next];
  }

  /** The broker of the current (or last) attempt. */
  get target(): string {
    return this.#target;
  }

  /**
   * The attempt under way, or between two attempts the next one (whose number `closed`
   * has already counted), as the streams' stats show it while connecting.
   */
  get current(): Attempting {
    return {
      broker: this.#underWay ? this.#target : this.next,
      attempt: Math.max(1, this.count),
      attempts: this.#options.connectAttempts,
    };
  }

  /**
   * The broker sent the client elsewhere (CONNACK or DISCONNECT with 0x9C Use another
   * server or 0x9D Server moved): the next attempt goes where its Server Reference points,
   * if `redirect` allows it. Returns the refusal when it does not (also kept as `refused`).
   */
  redirect(redirection: Redirection): RedirectRefused | undefined {
    const target = redirectTarget(redirection, this.#target, this.#options);
    if (typeof target === "string") this.#redirect = target;
    else this.#refused = target;
    return this.#refused;
  }

  /** The current attempt got its CONNACK. */
  connack(): void {
    clearTimeout(this.#connackTimer);
    this.#connacked = true;
  }

  /** The broker answered something after CONNACK. */
  answered(): void {
    if (this.#subscribing === 0 && this.count !== 0) this.#usable();
  }

  /** The next attempt starts. */
  retrying(): void {
    this.#connacked = false;
  }

  /** The broker accepted the connection; returns whether it is a reconnect. */
  connected(): boolean {
    const again = this.#connectedOnce;
    this.#connectedOnce = true;
    if (this.#connectedTo !== undefined && this.#connectedTo !== this.#target) this.failovers++;
    this.#connectedTo = this.#target;
    this.#connectedAt = Date.now();
    this.#subscribing = 0;
    clearTimeout(this.#usableTimer);
    this.#usableTimer = setTimeout(
      () => this.#subscribing === 0 && this.#usable(),
      (this.#options.connectionTimeout || 30) * 1000,
    );
    unrefTimer(this.#usableTimer);
    return again;
  }

  /**
   * A SUBSCRIBE is sent: until it is answered the connection is not usable. Returns the
   * function to call when it was answered, or failed.
   */
  subscribing(): (answered: boolean) => void {
    this.#subscribing++;
    return (answered) => {
      this.#subscribing = Math.max(0, this.#subscribing - 1);
      if (answered && this.#subscribing === 0) this.#usable();
    };
  }

  /**
   * The connection (or an attempt) closed, with `error` (the last one reported, if any):
   * end it for good, or try again after a delay.
   */
  closed(error: unknown): AfterClose {
    this.stop();
    this.#underWay = false;
    const { autoReconnect, connectAttempts, connectBackoff, brokers } = this.#options;
    // Once connected, autoReconnect=false ends it at the first drop.
    if (!autoReconnect && this.#connectedOnce) return { end: "lost" };
    const again = Math.max(1, backoffDelay(1, connectBackoff));
    if (this.count === 0) {
      // Usable until now: a new outage begins, and its first round at the next broker.
      this.count = 1;
      if (this.#redirect !== undefined) return { retryIn: 1 };
      const steady = Date.now() - this.#connectedAt >= connectBackoff;
      return { retryIn: steady && brokers.length > 1 ? 1 : again };
    }
    // This close ended an attempt, before or after its CONNACK.
    this.failures.delete(this.#target);
    this.failures.set(this.#target, {
      error: this.#refused ?? error,
      closedAfterConnack: this.#connacked,
    });
    // The next broker of the round at once; a redirection too, as one more of the round.
    if (this.#redirect !== undefined) this.#extra = Math.min(brokers.length, this.#extra + 1);
    if (++this.#tried < brokers.length + this.#extra) return { retryIn: 1 };
    // A round is over: every broker was tried once (one broker: the attempt was its round).
    this.#tried = this.#extra = 0;
    if (connectAttempts !== -1 && this.count >= connectAttempts) return { end: "exhausted" };
    const retryIn = Math.max(1, backoffDelay(this.count, connectBackoff));
    this.count++;
    return { retryIn };
  }

  /** The attempt that ended got a CONNACK and was closed before it proved usable. */
  get closedAfterConnack(): boolean {
    return this.#connacked && this.count > 0;
  }

  /** The connection (or attempt) is over: no timer is left running. */
  stop(): void {
    clearTimeout(this.#usableTimer);
    clearTimeout(this.#connackTimer);
  }

  #usable(): void {
    clearTimeout(this.#usableTimer);
    this.count = 0;
    this.#tried = this.#extra = 0;
    this.failures.clear();
  }
}

/**
 * The shortest share of connectionTimeout a broker of several gets: connectionTimeout ÷
 * brokers, at least {@link SHORTEST_SHARE_MS} (or connectionTimeout, if shorter); ms.
 */
export function shortestShare(options: Pick<MqttOptions, "connectionTimeout" | "brokers">): number {
  const total = options.connectionTimeout * 1000;
  return Math.min(total, Math.max(SHORTEST_SHARE_MS, Math.ceil(total / options.brokers.length)));
}
