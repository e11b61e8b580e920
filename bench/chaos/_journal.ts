// The chaos run's record of what happened: one JSON object a line, appended with a
// synchronous write before the process takes its next step. The faults kill processes,
// never the machine, so a line handed to the kernel is kept whatever befalls its writer; an
// fsync a line would only slow the workloads down. A process killed mid-write leaves at most
// a truncated last line, which the checker skips and counts.
import { closeSync, openSync, writeSync } from "node:fs";

/** An append-only journal file. */
export interface Journal {
  /** Appends `entry` (with `t`, the time, added) as one line. */
  record(entry: Record<string, unknown>): void;
  close(): void;
}

/** Opens (creating it if need be) the journal at `path` for appending. */
export function openJournal(path: string): Journal {
  let fd: number | undefined = openSync(path, "a");
  return {
    record(entry) {
      if (fd === undefined) return;
      writeSync(fd, JSON.stringify({ ...entry, t: Date.now() }) + "\n");
    },
    close() {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
