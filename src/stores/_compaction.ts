// The compaction of a log (_log_store.ts starts it): the live packets written to
// `<log>.rewrite` with asynchronous writes and fdatasyncs, then renamed over the log, so
// that a compaction never runs inside a put and holds the event loop for one slice of
// records at most (and, once, for the rename and the records appended during its last
// fdatasync). Also the rewrite done in one go when a log opens.
//
// What it holds is a fuzzy snapshot followed by a tail. The tail is every record appended
// to the log from the moment the compaction began ({@linkcode Rewrite.follow}), in order;
// the snapshot is the live packets as the copy reaches them, each as it was then or as a
// later put or del left it. Replaying both rebuilds the store exactly: a packet no record
// of the tail touches is the one the snapshot read, and for every other one the tail's last
// put or del decides, as puts and dels are absolute (a put replaces, a del of a missing id
// does nothing). Until the file is renamed over the log, the log itself keeps every record,
// so a crash at any point leaves one or the other, each complete: never a lost packet, never
// a deleted one back.
import { Buffer } from "node:buffer";
import { closeSync, fdatasyncSync, openSync, renameSync } from "node:fs";
import { dirname } from "node:path";
import { putRecord } from "./_log.ts";
import type { StoredPacket } from "./store.ts";
import {
  appendAsync,
  closeAsync,
  closeNameless,
  fdatasyncAsync,
  openAsync,
  syncFolder,
  syncFolderAsync,
  unlinkIfAny,
  writeFully,
} from "./_durable.ts";

/**
 * The points a compaction passes, in order (a test hook observes them, see FileStoreInit):
 * - "opened": the rewrite file is created, empty; records appended from now on are its tail.
 * - "slice": a slice of the live packets is written (more may follow).
 * - "copied": every live packet is written, nothing synced.
 * - "synced": most of the tail so far is written too, and the file synced if it is large.
 * - "frozen": no sync of the old log runs, and the tail up to the file's last sync is
 *   written and synced; the next task writes what came since, renames the file over the
 *   log and appends to it from then on.
 * - "renamed": the file is the log; the folder is not synced yet.
 * - "done": the folder is synced; the rename is durable.
 */
export type CompactionStep =
  | "opened"
  | "slice"
  | "copied"
  | "synced"
  | "frozen"
  | "renamed"
  | "done";

/**
 * Bytes of records encoded before each write: the longest the event loop is held at once
 * (measured here with 1 KiB packets: 0.5 ms on Deno 2.9, 0.3 ms on Bun 1, at the median).
 */
const SLICE_BYTES = 256 * 1024;

/** A tail this small is written in the task that renames (a page-cache copy, microseconds). */
const SMALL_TAIL = 64 * 1024;

/** A rewrite this large is synced before the freeze, so that the sync in it is short. */
const PRESYNC_BYTES = 256 * 1024;

/** Catch-up rounds before the tail left is written synchronously, whatever its size. */
const CATCH_UP_ROUNDS = 8;

/** What a compaction needs of its store (FileStore). */
export interface CompactionHost {
  /** The log's path. */
  readonly path: string;
  /** The live packets, in the store's order (a Map, read as it changes). */
  readonly live: { values(): Iterable<{ packet: StoredPacket }>; readonly size: number };
  /** How many records have been appended to the log. */
  written(): number;
  /** Whether the store closed or failed: the compaction is given up. */
  gone(): boolean;
  /** No fdatasync of the log may start from now until {@linkcode adopt}. */
  freeze(): void;
  /** Resolves once no fdatasync of the log is in flight. */
  synced(): Promise<void>;
  /**
   * Appends and syncs go to `fd`, the log now, `bytes` long and synced up to record number
   * `synced`; what it syncs is not durable until {@linkcode renamed}. Returns the old log's
   * descriptor.
   */
  adopt(fd: number, bytes: number, synced: number): number;
  /** The rename is durable: so is what the new log syncs. */
  renamed(): void;
  /** Called at each step (and waited for): tests copy or fail the folder there. */
  step?(step: CompactionStep): void | Promise<void>;
}

/** A compaction given up: its file goes, the log is whole. */
class Abandoned extends Error {}

/**
 * Compacts the log of `host` with `rewrite` (whose tail the host feeds from the moment it
 * was made) while puts and dels go on. Resolves true once the rename is durable, false
 * when the store closed or failed before the rename (the file is deleted); rejects when a
 * write, sync or rename fails (the log is whole before the rename, the rewrite after it).
 */
export async function compact(host: CompactionHost, rewrite: Rewrite): Promise<boolean> {
  const step = async (name: CompactionStep) => {
    await host.step?.(name);
    if (host.gone()) throw new Abandoned();
  };
  let covered: number;
  try {
    await rewrite.open();
    await step("opened");
    await rewrite.copy(host.live.values(), host.live.size, () => step("slice"));
    await step("copied");
    await rewrite.catchUp();
    // Synced now, the bulk is not synced in the frozen part below; a small file is not
    // worth a sync of its own (it would only compete with the log's).
    if (rewrite.bytes >= PRESYNC_BYTES) await rewrite.sync();
    await step("synced");
    // A record a sync of the log makes durable from here on might not be synced in the
    // rewrite when it takes the log's name (and a power loss then would lose it): none starts.
    host.freeze();
    await rewrite.catchUp();
    rewrite.flush();
    covered = host.written();
    await rewrite.sync();
    // One that started before covers only records the rewrite now holds, synced.
    await host.synced();
    await step("frozen");
    // The switch, in this one task: the rewrite gets the records appended since its sync,
    // so it holds all the log does when it takes its name.
    rewrite.flush();
    renameSync(rewrite.temporary, host.path);
  } catch (error) {
    await rewrite.discard();
    if (error instanceof Abandoned) return false;
    throw error;
  }
  const old = host.adopt(rewrite.fd, rewrite.bytes, covered);
  await host.step?.("renamed");
  await syncFolderAsync(dirname(host.path));
  host.renamed();
  // Only now: until the rename is durable, a power loss could give `path` back to it.
  await closeNameless(old);
  await host.step?.("done");
  return true;
}

/**
 * Replaces the log at `path` with one holding only `packets` (written to the rewrite file,
 * synced, renamed over the log, the folder synced) and opens it for appending, in one go:
 * when the log opens, before anything else can be waiting.
 */
export function rewriteNow(
  path: string,
  packets: Iterable<StoredPacket>,
): { fd: number; bytes: number } {
  const live = Array.from(packets, (packet) => putRecord(packet));
  const temporary = `${path}.rewrite`;
  const fd = openSync(temporary, "w");
  try {
    for (const record of live) writeFully(fd, record);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  syncFolder(dirname(path));
  return { fd: openSync(path, "a"), bytes: live.reduce((sum, record) => sum + record.length, 0) };
}

/** The rewrite file of one compaction. */
export class Rewrite {
  /** `<log>.rewrite`, renamed over the log at the end. */
  readonly temporary: string;
  /**
   * The file, opened for appending: for its syncs, the last records, and after the rename
   * as the log's (the records before go by path, see appendAsync).
   */
  fd = -1;
  /** Bytes written to it. */
  bytes = 0;
  #tail: Uint8Array[] = [];
  #tailBytes = 0;

  constructor(log: string) {
    this.temporary = `${log}.rewrite`;
  }

  /** Keeps `record`, just appended to the log, for the tail. */
  follow(record: Uint8Array): void {
    this.#tail.push(record);
    this.#tailBytes += record.length;
  }

  /** Creates the file empty (dropping one an interrupted compaction left). */
  async open(): Promise<void> {
    await unlinkIfAny(this.temporary);
    this.fd = await openAsync(this.temporary, "a");
  }

  /**
   * Writes the put records of `entries`' packets, a slice at a time, calling `step` after
   * each slice. Only the first `count` entries are read: the live packets when the
   * compaction began come first in the index's order, and any after them were put since,
   * so the tail has them (without the bound a busy store could keep the copy going).
   */
  async copy(
    entries: Iterable<{ packet: StoredPacket }>,
    count: number,
    step: () => Promise<void>,
  ): Promise<void> {
    let slice: Uint8Array[] = [];
    let size = 0;
    let read = 0;
    for (const entry of entries) {
      if (read++ === count) break;
      const record = putRecord(entry.packet);
      slice.push(record);
      size += record.length;
      if (size >= SLICE_BYTES) {
        await this.#write(Buffer.concat(slice));
        slice = [];
        size = 0;
        await step();
      }
    }
    if (size > 0) await this.#write(Buffer.concat(slice));
  }

  /** Writes the tail asynchronously until what is left of it is small (or rounds run out). */
  async catchUp(): Promise<void> {
    for (let round = 0; round < CATCH_UP_ROUNDS && this.#tailBytes > SMALL_TAIL; round++) {
      await this.#write(this.#takeTail());
    }
  }

  /** Writes what is left of the tail now: the file then holds every record of the log. */
  flush(): void {
    if (this.#tailBytes === 0) return;
    const records = this.#takeTail();
    writeFully(this.fd, records);
    this.bytes += records.length;
  }

  /** fdatasync of the file. */
  sync(): Promise<void> {
    return fdatasyncAsync(this.fd);
  }

  /** Closes and deletes the file of a compaction given up (best effort: the log is whole). */
  async discard(): Promise<void> {
    this.#tail = [];
    this.#tailBytes = 0;
    const fd = this.fd;
    this.fd = -1;
    // Best effort: the next compaction, or the next open, replaces what is left of it.
    if (fd !== -1) await closeAsync(fd).catch(() => {});
    await unlinkIfAny(this.temporary).catch(() => {});
  }

  async #write(bytes: Uint8Array): Promise<void> {
    await appendAsync(this.temporary, bytes);
    this.bytes += bytes.length;
  }

  #takeTail(): Uint8Array {
    const records = Buffer.concat(this.#tail);
    this.#tail = [];
    this.#tailBytes = 0;
    return records;
  }
}
