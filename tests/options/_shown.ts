// How a failure can show a secret: the texts a test searches for one.
import process from "node:process";
import { inspect } from "node:util";

/** Every way a failure can be shown: message, String(), stack, inspection, JSON, and the same for each cause. */
export function shown(error: unknown): string[] {
  const texts: string[] = [inspect(error, { depth: 20 })];
  if (typeof Deno === "object") texts.push(Deno.inspect(error, { depth: 20 }));
  const seen = new Set<unknown>();
  for (let e = error; e !== undefined && e !== null && !seen.has(e); e = (e as Error).cause) {
    seen.add(e);
    texts.push(String(e));
    if (e instanceof Error) texts.push(e.message, e.stack ?? "");
    try {
      texts.push(JSON.stringify(e) ?? "");
    } catch { /* a cycle: inspection covers it */ }
  }
  return texts;
}

/** Runs `run`; the error it throws, if any. */
export function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** What the CLI printed on stderr while `run` ran. */
export async function stderrOf(run: () => Promise<unknown>): Promise<string> {
  const write = process.stderr.write;
  let text = "";
  process.stderr.write = ((chunk: string | Uint8Array) => {
    text += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    await run();
  } finally {
    process.stderr.write = write;
  }
  return text;
}
