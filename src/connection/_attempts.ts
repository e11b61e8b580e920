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
// A broker that redirects (MQTT 5 §4.11, reason 0x9C / 0x9D with a Server Reference) sends
// the next attempt, at once, to the broker it names.
import type { Packet } from "mqtt";
import type { MqttOptions } from "../options.ts";
import { backoffDelay } from "../_backoff.ts";
import { HOST_PORT } from "../_brokers.ts";
import { unrefTimer } from "./_timers.ts";

/** What a close means: the end, or the delay before the next attempt. */
export type AfterClose = { end: "lost" | "exhausted" } | { retryIn: number };

/** Why an attempt on one broker failed. */
export interface Failure {
  /** The last error reported, if any. */
  error: unknown;
  /** It got a CONNACK and was closed before it proved usable. */
  closedAfterConnack: boolean;
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
  /** Index in options.brokers of the broker the next attempt goes to (unless redirected). */
  #next = 0;
  /** Brokers tried in the current round. */
  #tried = 0;
  /** Where a broker's redirection sends the next attempt. */
  #redirect?: string;
  /** The broker of the last connection that was made, and when it was made. */
  #connectedTo?: string;
  #connectedAt = 0;
  /** Each broker's last failure in the current outage (or first connect), in order tried. */
  readonly failures: Map<string, Failure> = new Map();
  /** Connections made to a broker other than the one before. */
  failovers = 0;

  constructor(options: MqttOptions) {
    this.#options = options;
    this.#target = options.brokers[0];
  }

  /** The broker the starting attempt goes to: the next in order, or where a redirection points. */
  aim(): string {
    const { brokers } = this.#options;
    this.#target = this.#redirect ?? brokers[this.#next];
    if (this.#redirect === undefined) this.#next = (this.#next + 1) % brokers.length;
    this.#redirect = undefined;
    return this.#target;
  }

  /** The broker of the last connection made, if one was: where the streams are now. */
  get broker(): string | undefined {
    return this.#connectedTo;
  }

  /** The broker of the current (or last) attempt. */
  get target(): string {
    return this.#target;
  }

  /**
   * The broker sent the client elsewhere (CONNACK or DISCONNECT with 0x9C Use another
   * server or 0x9D Server moved): its Server Reference, `host[:port]` or a list of them
   * (MQTT 5 §4.11), takes the next attempt there, with this connection's scheme and path.
   */
  redirect(reference: string): void {
    const first = reference.trim().split(/\s+/)[0] ?? "";
    if (!HOST_PORT.test(first)) return;
    const current = new URL(this.#target);
    const path = current.pathname === "/" ? "" : current.pathname;
    this.#redirect = `${current.protocol}//${first}${path}`;
  }

  /** The current attempt got its CONNACK. */
  connack(): void {
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
    this.failures.set(this.#target, { error, closedAfterConnack: this.#connacked });
    // The next broker of the round at once; a redirection too, once more than the round.
    const redirected = this.#redirect !== undefined;
    if (++this.#tried < brokers.length + (redirected ? 1 : 0)) return { retryIn: 1 };
    // A round is over: every broker was tried once (one broker: the attempt was its round).
    this.#tried = 0;
    if (connectAttempts !== -1 && this.count >= connectAttempts) return { end: "exhausted" };
    const retryIn = Math.max(1, backoffDelay(this.count, connectBackoff));
    this.count++;
    return { retryIn };
  }

  /** The attempt that ended got a CONNACK and was closed before it proved usable. */
  get closedAfterConnack(): boolean {
    return this.#connacked && this.count > 0;
  }

  /** The connection is over: no timer is left running. */
  stop(): void {
    clearTimeout(this.#usableTimer);
  }

  #usable(): void {
    clearTimeout(this.#usableTimer);
    this.count = 0;
    this.#tried = 0;
    this.failures.clear();
  }
}

/**
 * The Server Reference of a CONNACK or DISCONNECT that sends the client elsewhere (MQTT 5
 * §4.11: 0x9C Use another server, 0x9D Server moved), if it is one.
 */
export function redirection(packet: Packet): string | undefined {
  if (packet.cmd !== "connack" && packet.cmd !== "disconnect") return undefined;
  if (packet.reasonCode !== 0x9c && packet.reasonCode !== 0x9d) return undefined;
  return packet.properties?.serverReference;
}
