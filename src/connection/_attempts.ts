// When a connection counts as made, and what a close means: connectAttempts and
// connectBackoff across the first connect and every outage. A broker that accepts and
// drops at once, again and again, must not reset the attempts each time, so a connection
// counts as made only once it proved usable: the broker answered something after CONNACK
// (a source's SUBACK, an acknowledgement, a PINGRESP) with no SUBSCRIBE unanswered, or it
// stayed up connectionTimeout. A close before that ends a failed attempt.
import type { MqttOptions } from "../options.ts";
import { backoffDelay } from "../_backoff.ts";
import { unrefTimer } from "./_timers.ts";

/** What a close means: the end, or the delay before the next attempt. */
export type AfterClose = { end: "lost" | "exhausted" } | { retryIn: number };

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

  constructor(options: MqttOptions) {
    this.#options = options;
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

  /** The connection (or an attempt) closed: end it for good, or try again after a delay. */
  closed(): AfterClose {
    this.stop();
    const { autoReconnect, connectAttempts, connectBackoff } = this.#options;
    // Once connected, autoReconnect=false ends it at the first drop.
    if (!autoReconnect && this.#connectedOnce) return { end: "lost" };
    // count = 0: usable until now, and a new outage begins; otherwise this close ended an
    // attempt, before or after its CONNACK.
    if (this.count > 0 && connectAttempts !== -1 && this.count >= connectAttempts) {
      return { end: "exhausted" };
    }
    const retryIn = Math.max(1, backoffDelay(Math.max(1, this.count), connectBackoff));
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
  }
}
