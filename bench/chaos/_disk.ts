// A small disk of its own for the stores of one process, that the chaos run fills up and
// frees: a tmpfs mounted for the run (root only, as in CI). Filling it makes every append of
// the file store fail with ENOSPC, as a full disk does; freeing it lets a new store work.
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

/** A mounted tmpfs, from {@linkcode mountDisk}. */
export interface SmallDisk {
  dir: string;
  /** Writes a filler file until the disk is full; bytes written. */
  fill(): number;
  /** Removes the filler. */
  free(): void;
  /** Unmounts it (idempotent). */
  unmount(): void;
}

/**
 * Mounts a tmpfs of `mib` MiB at `dir`; or, when that is not allowed (not root, no mount),
 * returns why, and the run goes on without the full-disk fault.
 */
export function mountDisk(dir: string, mib: number): SmallDisk | string {
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${mib}m,mode=0777`, "tmpfs", dir], {
      stdio: "pipe",
    });
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? "").trim();
    return `mount -t tmpfs failed: ${stderr || (error as Error).message}`;
  }
  const filler = join(dir, "filler");
  let mounted = true;
  return {
    dir,
    fill() {
      const fd = openSync(filler, "a");
      const chunk = new Uint8Array(64 * 1024);
      let written = 0;
      try {
        for (let i = 0; i < mib * 16 + 16; i++) written += writeSync(fd, chunk);
      } catch (error) {
        if ((error as { code?: string }).code !== "ENOSPC") throw error;
      } finally {
        closeSync(fd);
      }
      return written;
    },
    free() {
      rmSync(filler, { force: true });
    },
    unmount() {
      if (!mounted) return;
      mounted = false;
      try {
        execFileSync("umount", ["-l", dir], { stdio: "pipe" });
      } catch { /* already gone */ }
    },
  };
}
