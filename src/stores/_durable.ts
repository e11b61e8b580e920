// The file store's low-level file work: writing all of a record, making a rename durable,
// and the error every failure of the store's folder becomes. The asynchronous forms run on
// the runtime's I/O threads, off the event loop (the compaction uses them, _compaction.ts).
import {
  appendFile,
  close,
  closeSync,
  fdatasync,
  fsync,
  fsyncSync,
  ftruncate,
  open,
  openSync,
  unlink,
  writeSync,
} from "node:fs";
import { MqttStreamError } from "../errors.ts";

/** Writes all of `bytes` at the file's position (writeSync may write less). */
export function writeFully(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
}

/** Makes a rename in `folder` durable; not every platform can open a folder (Windows). */
export function syncFolder(folder: string): void {
  let fd: number;
  try {
    fd = openSync(folder, "r");
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // Some file systems refuse to sync a folder; the rename is then as durable as they make it.
  } finally {
    closeSync(fd);
  }
}

/**
 * Appends `bytes` to the file at `path`, off the event loop. By path, not by descriptor:
 * Deno 2's node:fs write, writev and FileHandle.write run synchronously (measured here: 32
 * MiB held its event loop 249 ms), its appendFile does not (8 MiB: 2 ms, the loop free).
 */
export function appendAsync(path: string, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) =>
    appendFile(path, bytes, (error) => error ? reject(error) : resolve())
  );
}

/** fdatasync of `fd`, off the event loop. */
export function fdatasyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) =>
    fdatasync(fd, (error) => error ? reject(error) : resolve())
  );
}

/** Opens `path` with `flags` ("a", "r", ...), off the event loop. */
export function openAsync(path: string, flags: string): Promise<number> {
  return new Promise((resolve, reject) =>
    open(path, flags, (error, fd) => error ? reject(error) : resolve(fd))
  );
}

/** Closes `fd`, off the event loop on Bun and Node (Deno 2 closes on it). */
export function closeAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => close(fd, (error) => error ? reject(error) : resolve()));
}

/**
 * Closes the descriptor of a file that has no name any more (a log a compaction replaced),
 * best effort. Truncated first, off the event loop: the last close of a nameless file frees
 * its blocks, and Deno 2 closes on the event loop (measured here: 300 MiB held it 106 ms).
 */
export async function closeNameless(fd: number): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) =>
      ftruncate(fd, 0, (error) => error ? reject(error) : resolve())
    );
  } catch {
    // The close below frees the blocks then.
  }
  await closeAsync(fd).catch(() => {
    // Closing is best effort here: the log on disk is what counts.
  });
}

/** Deletes `path` if it exists. */
export function unlinkIfAny(path: string): Promise<void> {
  return new Promise((resolve, reject) =>
    unlink(path, (error) => {
      if (error && error.code !== "ENOENT") reject(error);
      else resolve();
    })
  );
}

/** {@linkcode syncFolder}, off the event loop, best effort as it is. */
export async function syncFolderAsync(folder: string): Promise<void> {
  let fd: number;
  try {
    fd = await openAsync(folder, "r");
  } catch {
    return;
  }
  try {
    await new Promise<void>((resolve, reject) =>
      fsync(fd, (error) => error ? reject(error) : resolve())
    );
  } catch {
    // As syncFolder: the rename is then as durable as the file system makes it.
  }
  // Not waited for: the sync is what counts, and puts may be waiting for it.
  closeAsync(fd).catch(() => {
    // Closing is best effort: the folder's descriptor held nothing but the sync.
  });
}

/**
 * A STORE_FAILED error saying what could not be done (naming the file or folder), the OS
 * code (ENOSPC, EROFS, EIO, ...) or the Deno permission denied, and what to check.
 */
export function storeError(what: string, cause: unknown): MqttStreamError {
  if (cause instanceof MqttStreamError) return cause;
  const message = (cause as Error | undefined)?.message ?? String(cause);
  const code = (cause as { code?: unknown } | undefined)?.code;
  // Node, Deno and Bun start the message with the code; say it where one does not.
  const reason = typeof code === "string" && !message.includes(code)
    ? `${code}: ${message}`
    : message;
  // Deno without a permission the store needs: the flags, not the disk, are to check.
  const advice = (cause as Error | undefined)?.name === "NotCapable"
    ? "under Deno, persistence=file needs --allow-read=<localStorage> --allow-write=<localStorage> --allow-sys=hostname"
    : "check the folder's permissions and free space, or set localStorage to another folder";
  return new MqttStreamError(
    "STORE_FAILED",
    `Cannot ${what} for persistence=file: ${reason} (${advice})`,
    { cause },
  );
}
