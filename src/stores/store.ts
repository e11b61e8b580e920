// The shapes of the file store that the core names, without its code: src/connection/
// imports these as types only, and loads file_store.ts (node:fs) with import() when asked
// for.
import type { MqttStreamError } from "../errors.ts";

/** A packet as mqtt.js hands it to a store: a PUBLISH or a PUBREL, with a messageId. */
export interface StoredPacket {
  cmd: string;
  messageId?: number;
  payload?: string | Uint8Array;
  [field: string]: unknown;
}

/** How put waits for the disk (the `fsync` option). */
export type FsyncMode = "batch" | "always";

/** A stretch of a log that could not be read as records. */
export interface Damage {
  /** Byte offset in the log. */
  offset: number;
  /** Its length in bytes. */
  bytes: number;
  /**
   * "damaged": a complete record whose checksum fails (or bytes that are no record);
   * "torn": an incomplete record at the end, a write the process did not finish.
   */
  kind: "damaged" | "torn";
}

/** What an opened store folder held from an earlier run. */
export interface Recovery {
  /** Packets restored into the incoming store (QoS 2 messages awaiting PUBREL). */
  incoming: number;
  /** Packets restored into the outgoing store (publishes and PUBRELs not acknowledged). */
  outgoing: number;
  /** Their packet identifiers, in the order mqtt.js will send them again. */
  outgoingIds: number[];
  /** Damaged or torn stretches skipped, in both logs. */
  damage: Damage[];
}

/** Both stores of one client (mqtt.js's Store interface each), in one locked folder. */
export interface FileStores {
  readonly incoming: object;
  readonly outgoing: object;
  readonly recovery: Recovery;
  /**
   * Settles (never rejects) with a STORE_FAILED error when a write or sync of either log
   * fails (ENOSPC, EROFS, EIO): the store writes nothing more, and a put it could not store
   * is never called back, so whoever waits for one must end on this.
   */
  readonly failure: Promise<MqttStreamError>;
  /**
   * Resolves once the outgoing store holds nothing: every publish it took (and its PUBREL)
   * acknowledged. After a failure, what it still holds was stored, so promised, and is
   * still sent and acknowledged (see _log_store.ts).
   */
  drained(): Promise<void>;
  /** Resolves once both stores are closed and the lock released, whoever closed them. */
  readonly closed: Promise<void>;
  /**
   * Deletes every packet of the incoming store and says how many there were: called when
   * the broker has no session, so that no PUBREL will release them.
   */
  discardIncoming(): number;
  /**
   * Closes both stores (syncing what is written) and releases the folder's lock, which
   * also happens when mqtt.js closes both.
   */
  close(): Promise<void>;
}
