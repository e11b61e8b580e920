// Runtime-specific: reads files for TLS options. Loaded with import() only when an
// option names a file, so the core (mod.ts and what it imports eagerly) stays free of
// node: imports and bundles for browsers. Node, Deno and Bun all provide node:fs.
import { readFile } from "node:fs/promises";

/** The bytes of a file. */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(path));
}
