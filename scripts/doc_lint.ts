/**
 * `deno doc --lint` of the public entry points on two Denos: the one running this script (the
 * current Deno 2 release) and the pinned 2.6. Both must pass. Deno 2.7+ also prints a
 * "Failed resolving types" warning for each of `@types/node`'s path references
 * (denoland/deno#36751, open): not ours, so they are counted and left out of the output;
 * every other line is shown.
 *
 * ```sh
 * deno task doc-lint
 * ```
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import process from "node:process";

const ENTRIES = ["mod.ts", "cli.ts"];
/** The Deno before the warnings of denoland/deno#36751, pinned. */
const PINNED = ["npx", "--yes", "deno@2.6"];

/** The output without the warnings of denoland/deno#36751, and how many there were. */
export function withoutKnownWarnings(output: string): { shown: string; known: number } {
  const lines = output.split("\n");
  const shown: string[] = [];
  let known = 0;
  for (let i = 0; i < lines.length; i++) {
    if (/^Warning Failed resolving types\. .*@types\/node/.test(lines[i])) {
      known++;
      // Its location follows on the next line.
      if (/^\s+at /.test(lines[i + 1] ?? "")) i++;
      continue;
    }
    shown.push(lines[i]);
  }
  return { shown: shown.join("\n").trim(), known };
}

/** Runs `deno doc --lint` with `deno`; true when it passed. */
function docLint(name: string, deno: string[]): boolean {
  const [command, ...prefix] = deno;
  const run = spawnSync(command, [...prefix, "doc", "--lint", ...ENTRIES], {
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" }, // plain lines, for the filter above
  });
  const { shown, known } = withoutKnownWarnings(`${run.stdout ?? ""}${run.stderr ?? ""}`);
  const passed = run.status === 0;
  console.log(
    `deno doc --lint on ${name}: ${passed ? "passed" : `failed (exit ${run.status})`}` +
      (known ? ` (${known} warnings of denoland/deno#36751 not shown)` : ""),
  );
  if (shown) console.log(shown);
  return passed;
}

if (import.meta.main) {
  const current = docLint(`Deno ${process.versions.deno ?? "?"}`, [process.execPath]);
  const pinned = docLint("Deno 2.6", PINNED);
  process.exitCode = current && pinned ? 0 : 1;
}
