// What a connection counts, as the streams' stats read it: a live view over the attempts
// and the sides, which may be absent (no inbound side without `deliver`, no file store with
// persistence=memory).
import type { Attempts } from "./_attempts.ts";
import type { Inbound } from "./_inbound.ts";
import type { Persisted } from "./_stores.ts";

/** What a connection counts, for the streams' stats: a live view, read when asked. */
export interface ConnectionStats {
  /** Successful reconnects after the first connect. */
  readonly reconnects: number;
  /** The broker of the current (or last) connection. */
  readonly broker: string | undefined;
  /** Reconnects that landed on a broker other than the one before. */
  readonly failovers: number;
  /** Acknowledgements of incoming messages sent to the broker. */
  readonly acked: number;
  /** Incoming QoS 1/2 messages that arrived while `maxInflight` were already unacknowledged. */
  readonly beyondWindow: number;
  /** QoS 2 messages the file store held received, dropped as the broker lost the session. */
  readonly discarded: number;
  /** Publishes recovered from the file store that failed when sent again. */
  readonly recoveredFailed: number;
  /** Incoming packets the file store recovered from an earlier run. */
  readonly recoveredIncoming: number;
  /** Outgoing packets the file store recovered from an earlier run. */
  readonly recoveredOutgoing: number;
  /** Damaged or torn stretches of the file store's logs skipped on recovery. */
  readonly damaged: number;
}

/**
 * The live {@linkcode ConnectionStats} of a connection: one object whose getters read the
 * counts when asked, so it can be kept and read again.
 */
export function connectionStats(
  reconnects: () => number,
  attempts: Attempts,
  inbound: Inbound | undefined,
  persisted: Persisted | undefined,
): ConnectionStats {
  const recovery = persisted?.stores.recovery;
  return {
    get reconnects() {
      return reconnects();
    },
    get broker() {
      return attempts.broker;
    },
    get failovers() {
      return attempts.failovers;
    },
    get acked() {
      return inbound?.acked ?? 0;
    },
    get beyondWindow() {
      return inbound?.beyondWindow ?? 0;
    },
    get discarded() {
      return persisted?.discarded ?? 0;
    },
    get recoveredFailed() {
      return persisted?.recoveredFailed ?? 0;
    },
    get recoveredIncoming() {
      return recovery?.incoming ?? 0;
    },
    get recoveredOutgoing() {
      return recovery?.outgoing ?? 0;
    },
    get damaged() {
      return recovery?.damage.length ?? 0;
    },
  };
}
