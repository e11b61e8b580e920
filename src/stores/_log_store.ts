// One direction's store of persistence=file: mqtt.js's Store interface (put / get / del /
// createStream / close) on an append-only log of checksummed records (_log.ts). Two of
// them, in a folder locked to one process, make the file store (file_store.ts).
//
// What is stored when:
// - put writes its record to the file before it calls back, so what mqtt.js was told is
//   stored survives the process being killed (the kernel has it). With fsync=always it
//   calls back only once an fdatasync covering the record has returned, which survives a
//   power loss too; puts that arrive while one runs share the next (group commit).
// - fdatasync runs in the background all the time there is something unsynced, one after
//   another, so with fsync=batch a power loss loses at most what one fdatasync covered.
// - get and del answer synchronously from an in-memory index, as mqtt.js's memory store
//   does: src/connection/_outbound.ts relies on that before mqtt.js replays the store on
//   CONNACK. The outgoing log writes its dels in one batch a task (or with the next put);
//   the incoming log writes each at once (see file_store.ts).
// - The log is rewritten with only the live packets when it opens (dropping damage, so
//   new records never follow a torn one), and compacted when it grows past four times the
//   live size: in the background, with asynchronous writes and fdatasyncs, a slice at a time
//   (_compaction.ts says why a crash at any point of it loses nothing and brings nothing
//   back), never inside a put. Only its last step, a rename and the few records appended
//   during its last fdatasync, runs in one task.
// - A write or sync that fails (ENOSPC, EROFS, EIO) fails the store for good: `failure`
//   settles with a STORE_FAILED error naming the log and the OS code, and a put that was not
//   stored is never called back (nor held). mqtt.js 5.16 mishandles a put's error: for an
//   outgoing QoS 1/2 publish it drops it (the publish never settles: a full disk hung the
//   sink), and for an incoming QoS 2 message it sends PUBREC all the same (the broker
//   forgets a message the store never held). The connection ends on `failure` instead
//   (src/connection/_stores.ts), once what the store did take is acknowledged: so a failed
//   store still answers get and del from memory, and takes in memory the PUBREL of a QoS 2
//   publish it holds. Once it holds nothing it empties its log: nothing is sent twice.
import { closeSync, fdatasync, fdatasyncSync, ftruncateSync, readFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import { Readable } from "node:stream";
import { delRecord, putRecord, scanLog } from "./_log.ts";
import type { Damage, FsyncMode, StoredPacket } from "./store.ts";
import { storeError, writeFully } from "./_durable.ts";
import { compact, type CompactionHost, type CompactionStep } from "./_compaction.ts";
import { Rewrite, rewriteNow } from "./_compaction.ts";
import type { MqttStreamError } from "../errors.ts";

type Callback = (error?: Error | null, packet?: StoredPacket) => void;

/** Options of a {@linkcode FileStore}. */
export interface FileStoreInit {
  /** Write dels in one batch a task (or with the next put) rather than each at once. */
  batchDeletes?: boolean;
  /**
   * Called at each step of a compaction, which waits for what it returns: tests copy the
   * folder there (what a process killed at that step leaves) or fail the step.
   */
  onCompaction?: (step: CompactionStep) => void | Promise<void>;
}

/** A live packet, and the size of its put record. */
interface Entry {
  packet: StoredPacket;
  bytes: number;
}

/** A log is rewritten when it is larger than this and four times its live records. */
const COMPACT_MIN_BYTES = 1 << 20;

/** One direction's store: mqtt.js's Store interface on an append-only log. */
export class FileStore {
  readonly path: string;
  /** Packets restored from the log when it was opened. */
  readonly recovered: number;
  /** What the log held that could not be read, when it was opened. */
  readonly damage: Damage[];
  readonly #fsync: FsyncMode;
  readonly #batchDeletes: boolean;
  /** batchDeletes: del records not yet written, written with the next put or in a microtask. */
  #deletes: Uint8Array[] = [];
  /** The live packets by messageId, in the order a memory store would stream them. */
  #index = new Map<number, Entry>();
  #liveBytes = 0;
  #fileBytes = 0;
  #fd: number;
  /** Records written since the log was opened, and how many the log's file has synced. */
  #written = 0;
  #synced = 0;
  /**
   * Records past this are not durable at `path` whatever the syncs say: a compaction's
   * rename is not durable yet, and `path` may still name the old log after a power loss.
   */
  #durableCap = Infinity;
  #syncing = false;
  /** Called when the fdatasync in flight has returned. */
  #onSynced: (() => void)[] = [];
  /** A compaction is under way, from its start to its rename made durable. */
  #compacting = false;
  /** The compaction's file, until the rename: every record appended goes to its tail too. */
  #rewriting?: Rewrite;
  /**
   * No fdatasync of the log may start: the compaction is about to rename its file over the
   * log, and a record such a sync made durable might not be synced in that file yet.
   */
  #frozen = false;
  readonly #onCompaction?: (step: CompactionStep) => void | Promise<void>;
  /**
   * fsync=always: puts waiting for the sync that covers record number `upTo`, with what
   * their packet replaced (to undo it if the sync fails).
   */
  #waiters: { upTo: number; cb: Callback; packet: StoredPacket; previous?: Entry }[] = [];
  /** Resolved when the store holds no packet (see {@linkcode emptied}). */
  #onEmpty: (() => void)[] = [];
  #error?: MqttStreamError;
  /**
   * Settles with the error that failed the store (a write or sync of the log), if one does;
   * it never rejects.
   */
  readonly failure: Promise<MqttStreamError>;
  #reportFailure!: (error: MqttStreamError) => void;
  #closed = false;
  #onClosed: (() => void)[] = [];

  /**
   * Opens the log at `path`, restoring its intact records.
   *
   * @throws {MqttStreamError} code "STORE_FAILED" when it cannot be read or rewritten.
   */
  constructor(path: string, fsync: FsyncMode, init: FileStoreInit = {}) {
    this.path = path;
    this.#fsync = fsync;
    this.failure = new Promise((resolve) => (this.#reportFailure = resolve));
    this.#batchDeletes = init.batchDeletes ?? false;
    this.#onCompaction = init.onCompaction;
    let log: Uint8Array;
    try {
      log = readFileSync(path);
    } catch (error) {
      if ((error as { code?: string }).code !== "ENOENT") throw storeError(`read ${path}`, error);
      log = new Uint8Array();
    }
    const { ops, damage } = scanLog(log);
    for (const op of ops) {
      if (op.op === "put") this.#set(op.packet, putRecord(op.packet).length);
      else this.#forget(op.messageId);
    }
    this.recovered = this.#index.size;
    this.damage = damage;
    this.#fd = this.#rewrite();
  }

  /**
   * Stores `packet` under its messageId, replacing what was there, and calls back once it
   * is written (fsync=always: synced). When it cannot be written, it never calls back: the
   * store has failed, and {@linkcode failure} says why. A failed store still takes the
   * PUBREL of a publish it holds, in memory (see the header).
   */
  put(packet: StoredPacket, cb?: Callback): this {
    const previous = this.#index.get(packet.messageId!);
    if (this.#error) {
      if (completes(packet, previous)) this.#keep(packet, previous!, cb);
      return this;
    }
    const record = putRecord(packet);
    this.#set(packet, record.length);
    if (!this.#append(this.#withDeletes(record))) {
      if (completes(packet, previous)) cb?.();
      else this.#undo(packet, previous);
      return this;
    }
    if (this.#fsync === "always") {
      if (cb) this.#waiters.push({ upTo: this.#written, cb, packet, previous });
      this.#sync();
    } else {
      cb?.();
    }
    this.#maybeCompact();
    return this;
  }

  /** A failed store's put of `packet`, which replaces `previous`: in memory only. */
  #keep(packet: StoredPacket, previous: Entry, cb?: Callback): void {
    this.#set(packet, previous.bytes);
    cb?.();
  }

  /** Takes back the put of `packet` that could not be stored: `previous` is live again. */
  #undo(packet: StoredPacket, previous: Entry | undefined): void {
    const id = packet.messageId!;
    if (this.#index.get(id)?.packet !== packet) return;
    if (previous) this.#set(previous.packet, previous.bytes);
    else this.#forget(id);
  }

  /** Calls back with the packet stored under `packet.messageId`, synchronously. */
  get(packet: { messageId?: number }, cb: Callback): this {
    const stored = this.#index.get(packet.messageId!);
    if (stored) cb(null, stored.packet);
    else cb(new Error("missing packet"));
    return this;
  }

  /**
   * Removes the packet stored under `packet.messageId` and calls back with it, synchronously.
   * A del that cannot be written fails the store (see {@linkcode failure}); the packet is
   * gone from memory all the same, and would only come again after a restart (at least once).
   */
  del(packet: { messageId?: number }, cb?: Callback): this {
    const stored = this.#index.get(packet.messageId!);
    if (!stored) {
      cb?.(new Error("missing packet"));
      return this;
    }
    this.#forget(packet.messageId!);
    if (this.#batchDeletes) {
      if (this.#deletes.push(delRecord(packet.messageId!)) === 1) {
        queueMicrotask(() => this.#writeDeletes());
      }
    } else if (!this.#error && this.#append(delRecord(packet.messageId!))) {
      this.#maybeCompact();
    }
    cb?.(null, stored.packet);
    return this;
  }

  /** Resolves once the store holds no packet: everything it took was deleted. */
  emptied(): Promise<void> {
    if (this.#index.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#onEmpty.push(resolve));
  }

  /** The packet identifiers stored, in the order {@linkcode createStream} gives them. */
  ids(): number[] {
    return Array.from(this.#index.keys());
  }

  /** The stored packets at this moment, as an object-mode stream (what mqtt.js replays). */
  createStream(): Readable {
    const packets = Array.from(this.#index.values(), (entry) => entry.packet);
    let next = 0;
    return new Readable({
      objectMode: true,
      read() {
        this.push(next < packets.length ? packets[next++] : null);
      },
    });
  }

  /** Syncs what is written, closes the file and calls back; the log stays for the next run. */
  close(cb?: (error?: Error) => void): void {
    if (!this.#closed) {
      this.#closed = true;
      this.#finishWhenIdle();
    }
    if (cb) this.closed().then(() => cb(), cb);
  }

  /** Resolves once {@linkcode close} has finished. */
  closed(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#fd === -1) resolve();
      else this.#onClosed.push(resolve);
    });
  }

  /** Closes the file at once, without waiting for a sync in flight. */
  closeSync(): void {
    if (this.#fd === -1) return;
    try {
      closeSync(this.#fd);
    } catch {
      // Closing is best effort here: the log on disk is what counts.
    }
    this.#fd = -1;
  }

  #set(packet: StoredPacket, bytes: number): void {
    const id = packet.messageId!;
    this.#liveBytes += bytes - (this.#index.get(id)?.bytes ?? 0);
    this.#index.set(id, { packet, bytes });
  }

  #forget(messageId: number): void {
    this.#liveBytes -= this.#index.get(messageId)?.bytes ?? 0;
    if (!this.#index.delete(messageId) || this.#index.size > 0) return;
    if (this.#error) this.#empty();
    for (const resolve of this.#onEmpty.splice(0)) resolve();
  }

  /**
   * A failed store that holds nothing any more empties its log (best effort): the dels it
   * could not write would make the next process send again what was acknowledged. A
   * truncation needs no free space; it frees some.
   */
  #empty(): void {
    if (this.#fd === -1) return;
    try {
      ftruncateSync(this.#fd, 0);
      fdatasyncSync(this.#fd);
      this.#fileBytes = 0;
    } catch {
      // The log keeps its records: the next process sends them again (at least once).
    }
  }

  /** `record` after the dels waiting to be written (which are written with it). */
  #withDeletes(record: Uint8Array): Uint8Array {
    if (this.#deletes.length === 0) return record;
    return Buffer.concat([...this.#deletes.splice(0), record]);
  }

  /**
   * Writes the dels waiting. One lost to a crash only makes its packet come back: sent
   * again (at least once), or a PUBREL the broker answers as unknown.
   */
  #writeDeletes(sync = true): void {
    if (this.#deletes.length === 0 || this.#fd === -1) return;
    const records = Buffer.concat(this.#deletes.splice(0));
    if (!this.#error && this.#append(records, sync)) this.#maybeCompact();
  }

  /** Writes `record` at the end of the log; false (and the store failed) if it cannot. */
  #append(record: Uint8Array, sync = true): boolean {
    try {
      writeFully(this.#fd, record);
    } catch (error) {
      this.#fail(storeError(`write to ${this.path}`, error));
      return false;
    }
    this.#fileBytes += record.length;
    this.#written++;
    this.#rewriting?.follow(record);
    if (sync) this.#sync();
    return true;
  }

  /** Starts an fdatasync of what is written, unless one runs (it starts the next). */
  #sync(): void {
    if (
      this.#syncing || this.#frozen || this.#error || this.#fd === -1 ||
      this.#synced === this.#written
    ) return;
    this.#syncing = true;
    const upTo = this.#written;
    fdatasync(this.#fd, (error) => {
      this.#syncing = false;
      if (error) this.#fail(storeError(`sync ${this.path}`, error));
      else {
        this.#synced = upTo;
        this.#release(Math.min(upTo, this.#durableCap));
      }
      for (const resume of this.#onSynced.splice(0)) resume();
      // A failed store still closes its file once asked to (the lock goes with it).
      if (this.#closed) this.#finishWhenIdle();
      else this.#sync();
    });
  }

  /** Calls back the puts the sync up to record `upTo` made durable. */
  #release(upTo: number): void {
    let n = 0;
    while (n < this.#waiters.length && this.#waiters[n].upTo <= upTo) n++;
    for (const { cb } of this.#waiters.splice(0, n)) cb();
  }

  /** Starts a compaction in the background when the log is large and mostly dead. */
  #maybeCompact(): void {
    if (this.#compacting || this.#closed || this.#error) return;
    if (this.#fileBytes <= COMPACT_MIN_BYTES || this.#fileBytes <= 4 * this.#liveBytes) return;
    this.#compacting = true;
    // From here on every record appended is the rewrite's too (its tail).
    this.#rewriting = new Rewrite(this.path);
    compact(this.#compactionHost(), this.#rewriting).then(
      () => this.#compacted(),
      (error) => {
        this.#fail(storeError(`rewrite ${this.path}`, error));
        this.#compacted();
      },
    );
  }

  /** The store as its compaction sees it (see _compaction.ts). */
  #compactionHost(): CompactionHost {
    return {
      path: this.path,
      live: this.#index,
      written: () => this.#written,
      gone: () => this.#closed || this.#error !== undefined || this.#fd === -1,
      freeze: () => (this.#frozen = true),
      synced: () =>
        this.#syncing
          ? new Promise<void>((resume) => this.#onSynced.push(resume))
          : Promise.resolve(),
      adopt: (fd, bytes, synced) => {
        const old = this.#fd;
        this.#rewriting = undefined;
        this.#fd = fd;
        this.#fileBytes = bytes;
        // What was called back was synced in both files; the rest waits for the folder.
        this.#durableCap = this.#synced;
        this.#synced = synced;
        this.#frozen = false;
        this.#sync();
        return old;
      },
      renamed: () => {
        this.#durableCap = Infinity;
        this.#release(this.#synced);
      },
      step: this.#onCompaction,
    };
  }

  /** A compaction ended, done or not: syncs go on, or the store closes. */
  #compacted(): void {
    this.#compacting = false;
    this.#rewriting = undefined;
    this.#frozen = false;
    this.#durableCap = Infinity;
    if (this.#closed) this.#finishWhenIdle();
    else this.#sync();
  }

  /** The log rewritten with only the live packets when it opens (see rewriteNow). */
  #rewrite(): number {
    try {
      const { fd, bytes } = rewriteNow(
        this.path,
        Array.from(this.#index.values(), (e) => e.packet),
      );
      this.#fileBytes = bytes;
      return fd;
    } catch (error) {
      throw storeError(`rewrite ${this.path}`, error);
    }
  }

  /**
   * The store failed: nothing more is written, and the puts waiting for a sync are never
   * called back (their records may not be on disk), except a PUBREL (see the header).
   */
  #fail(error: MqttStreamError): void {
    if (this.#error) return;
    this.#error = error;
    for (const { cb, packet, previous } of this.#waiters.splice(0)) {
      if (completes(packet, previous)) cb();
      else this.#undo(packet, previous);
    }
    if (this.#index.size === 0) this.#empty();
    this.#reportFailure(error);
  }

  /** Closes the file once no sync is in flight, after a last one. */
  #finishWhenIdle(): void {
    if (this.#syncing || this.#compacting || this.#fd === -1) return;
    // Written here, then synced with the rest below: an fdatasync started now would still
    // run when the file is closed.
    this.#writeDeletes(false);
    try {
      if (!this.#error && this.#synced !== this.#written) fdatasyncSync(this.#fd);
      if (!this.#error) this.#release(Infinity);
    } catch (error) {
      this.#fail(storeError(`sync ${this.path}`, error));
    }
    this.closeSync();
    for (const resolve of this.#onClosed.splice(0)) resolve();
  }
}

/**
 * Whether a failed store still takes `packet` in memory: the PUBREL of a QoS 2 publish it
 * holds, stored and so promised, without which that publish would never complete. The log
 * keeps the publish.
 */
function completes(packet: StoredPacket, previous: Entry | undefined): boolean {
  return packet.cmd === "pubrel" && previous !== undefined;
}
