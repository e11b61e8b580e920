// persistence=file: mqtt.js's Store interface (put / get / del / createStream / close) on
// an append-only log of checksummed records (_log.ts), one log for each direction
// (_log_store.ts: what is stored when, and what a failed store still does), in a folder
// locked to one process (_lock.ts). Runtime-specific (node:fs, which Deno, Bun and Node
// all provide): src/connection/_stores.ts loads it with import() only when
// persistence=file is asked for, so the core stays free of file-system code.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { FileStores, FsyncMode } from "./store.ts";
import { acquireLock } from "./_lock.ts";
import { storeError } from "./_durable.ts";
import { FileStore } from "./_log_store.ts";

/**
 * Opens (creating it if need be) the store folder `folder` for this process.
 *
 * @throws {MqttStreamError} code "STORE_LOCKED" when another process holds the folder,
 * "STORE_FAILED" when it cannot be read or written.
 */
export function openFileStores(folder: string, fsync: FsyncMode): FileStores & {
  readonly incoming: FileStore;
  readonly outgoing: FileStore;
} {
  try {
    mkdirSync(folder, { recursive: true });
  } catch (error) {
    throw storeError(`create the store folder ${folder}`, error);
  }
  const lock = acquireLock(join(folder, "lock"), `the file store ${folder}`);
  let incoming: FileStore | undefined;
  let outgoing: FileStore | undefined;
  try {
    // An incoming QoS 2 message is deleted as its PUBCOMP leaves: that del must be on file
    // first, or a restarted process would hold a message the broker has finished with.
    incoming = new FileStore(join(folder, "incoming.log"), fsync);
    // An acknowledged publish whose del is lost is only sent again (at least once), so the
    // outgoing log writes its dels in one batch a task, or with the next put.
    outgoing = new FileStore(join(folder, "outgoing.log"), fsync, { batchDeletes: true });
  } catch (error) {
    incoming?.closeSync();
    lock.release();
    throw error;
  }
  const stores = [incoming, outgoing];
  // mqtt.js closes both stores when its client ends; the lock goes with the last of them.
  const closed = Promise.all(stores.map((store) => store.closed())).then(() => lock.release());
  return {
    incoming,
    outgoing,
    failure: Promise.race(stores.map((store) => store.failure)),
    closed,
    drained: () => outgoing.emptied(),
    recovery: {
      incoming: incoming.recovered,
      outgoing: outgoing.recovered,
      outgoingIds: outgoing.ids(),
      damage: stores.flatMap((store) => store.damage),
    },
    discardIncoming() {
      const ids = incoming.ids();
      for (const messageId of ids) incoming.del({ messageId });
      return ids.length;
    },
    close() {
      for (const store of stores) store.close();
      return closed;
    },
  };
}
