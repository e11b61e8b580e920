// One process at a time per store folder. The lock is a file created exclusively
// (O_EXCL), holding the holder's pid and host. A lock whose process is gone (killed, or
// the machine restarted) is stale and taken over; a live holder is named in the error.
//
// A process that ends with a lock held (process.exit(), Deno.exit(), or the end of its
// work with a store still open) deletes it on the way out: under Deno without --allow-run
// the next process could not tell that it is gone, and would refuse the folder. Only a
// kill (SIGKILL, a signal with no handler) or, under Deno, an uncaught error (no "unload"
// then) leaves it, for the liveness check.
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import process from "node:process";
import { MqttStreamError } from "../errors.ts";
import { storeError } from "./_durable.ts";

interface Holder {
  pid: number;
  host: string;
}

/** How often a takeover may lose a race with another process before giving up. */
const TAKEOVER_ROUNDS = 5;

/** A held lock; `release()` lets it go (idempotent). */
export interface Lock {
  release(): void;
}

/**
 * Takes the lock file `path` for this process.
 *
 * @throws {MqttStreamError} code "STORE_LOCKED" when a live process holds it, "STORE_FAILED"
 * when the lock cannot be read or written (a read-only folder: EROFS).
 */
export function acquireLock(path: string, what: string): Lock {
  try {
    return takeLock(path, what);
  } catch (error) {
    throw storeError(`lock ${what} (its lock file ${path})`, error);
  }
}

function takeLock(path: string, what: string): Lock {
  const me: Holder = { pid: process.pid, host: hostname() };
  for (let round = 0; round < TAKEOVER_ROUNDS; round++) {
    let fd: number;
    try {
      fd = openSync(path, "wx");
    } catch (error) {
      if ((error as { code?: string }).code !== "EEXIST") throw error;
      const seen = readHolder(path);
      if (seen === undefined) continue; // released meanwhile
      const state = seen.holder ? liveness(seen.holder, me) : "dead";
      if (state !== "dead") throw lockedError(path, what, seen.holder!, me, state === "unknown");
      takeOver(path, seen.text);
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(me));
    } finally {
      closeSync(fd);
    }
    let released = false;
    const lock = {
      release() {
        if (released) return;
        released = true;
        held.delete(lock);
        try {
          // Only our own lock: never one a later process took over.
          if (readHolder(path)?.text === JSON.stringify(me)) unlinkSync(path);
        } catch {
          // The folder went read-only or away: a lock left behind names this process, and
          // the next one takes it over once this process is gone.
        }
      },
    };
    releaseAtExit(lock);
    return lock;
  }
  throw new MqttStreamError(
    "STORE_LOCKED",
    `Cannot open ${what} as its lock ${path} changed hands ${TAKEOVER_ROUNDS} times while taking it over: another process is starting with the same folder`,
  );
}

/** The locks this process holds; released when it exits, if they are still held then. */
const held = new Set<Lock>();
let hooked = false;

/**
 * Adds `lock` to those released when the process exits. The hooks, installed once: Node's
 * and Bun's process "exit" event (process.exit() and the end of the event loop) and the
 * global "unload" event, which Deno dispatches for both and for Deno.exit() (its "exit"
 * event misses Deno.exit()). Both run synchronously, as release() does.
 */
function releaseAtExit(lock: Lock): void {
  held.add(lock);
  if (hooked) return;
  hooked = true;
  const releaseAll = () => {
    for (const each of held) each.release();
  };
  process.once("exit", releaseAll);
  (globalThis as { addEventListener?(type: string, listener: () => void): void })
    .addEventListener?.("unload", releaseAll);
}

/** The lock's text and holder, or undefined when there is no lock file. */
function readHolder(path: string): { text: string; holder?: Holder } | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    const holder = JSON.parse(text);
    if (Number.isInteger(holder?.pid) && typeof holder?.host === "string") return { text, holder };
  } catch {
    // A lock written by a process killed before it wrote its pid: stale.
  }
  return { text };
}

/**
 * Whether the holder still runs: "dead" only when the system says there is no such process.
 * On another host we cannot tell, nor where the runtime forbids asking (Deno without
 * --allow-run): a lock is never taken from a process that may be alive.
 */
function liveness(holder: Holder, me: Holder): "alive" | "dead" | "unknown" {
  if (holder.host !== me.host) return "unknown";
  if (holder.pid === me.pid) return "alive";
  try {
    process.kill(holder.pid, 0);
    return "alive";
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ESRCH") return "dead";
    // EPERM: the process exists but belongs to another user.
    return code === "EPERM" ? "alive" : "unknown";
  }
}

/**
 * Removes a stale lock, unless another process replaced it since we read it: the lock is
 * renamed away first (atomic), and put back if what was renamed is not what we read.
 */
function takeOver(path: string, staleText: string): void {
  const aside = `${path}.stale-${process.pid}`;
  try {
    renameSync(path, aside);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return;
    throw error;
  }
  if (readFileSync(aside, "utf8") === staleText) return unlinkSync(aside);
  try {
    // Someone else's fresh lock: give it back (a link fails if the path is taken again).
    linkSync(aside, path);
  } catch {
    // Yet another process took the path meanwhile; its lock stands.
  }
  unlinkSync(aside);
}

function lockedError(
  path: string,
  what: string,
  holder: Holder,
  me: Holder,
  unknown: boolean,
): MqttStreamError {
  const who = holder.pid === me.pid && holder.host === me.host
    ? `this process (pid ${holder.pid}), by another MqttSource or MqttSink with the same clientId and localStorage`
    : `process ${holder.pid} on ${holder.host}`;
  const unsure = !unknown
    ? ""
    : holder.host === me.host
    ? ` (whether it still runs cannot be checked here: under Deno, --allow-run lets it check)`
    : ` (whether it still runs cannot be checked from ${me.host})`;
  return new MqttStreamError(
    "STORE_LOCKED",
    `Cannot open ${what}: its lock ${path} is held by ${who}${unsure}. One process at a time may use a store folder; stop the holder, or give this one another clientId or localStorage${
      unknown ? ", or delete the lock file if no process uses the folder any more" : ""
    }`,
  );
}
