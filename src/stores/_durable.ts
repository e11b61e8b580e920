// The file store's low-level file work: writing all of a record, making a rename durable,
// and the error every failure of the store's folder becomes.
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
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
