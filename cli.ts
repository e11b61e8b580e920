/**
 * The `mqtt-streams` command line: `sub` prints messages as JSON lines, `pub` publishes
 * lines from stdin, `bridge` copies messages between brokers at least once.
 *
 * ```sh
 * deno run -A jsr:@mqtt-streams/core/cli sub 'mqtt://localhost?topic=sensors/%23'
 * ```
 *
 * It runs on Deno, Bun and Node (as ESM, or through `tsx` in a checkout).
 *
 * @example Run it from code
 * ```ts
 * import { main } from "@mqtt-streams/core/cli";
 *
 * const code = await main(["sub", "--help"]); // prints the usage of sub
 * console.log(code); // 0
 * ```
 *
 * @module
 */
import { realpathSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { MqttOptionsError } from "./mod.ts";
import { type Command, parseCommand, UsageError } from "./cli/_args.ts";
import { bridge, pub, sub } from "./cli/_commands.ts";

/**
 * Runs the command line with `args` (without the program's name).
 *
 * @param args The arguments, e.g. `["sub", "mqtt://localhost?topic=a/%23"]`.
 * @returns The exit code: 0 done (also after Ctrl-C, once closed cleanly), 1 failed,
 * 2 bad arguments (none at all included: the usage is then printed on stderr).
 *
 * @example
 * ```ts
 * import { main } from "@mqtt-streams/core/cli";
 *
 * console.log(await main(["sub"])); // 2, after "mqtt-streams: sub: expected <url>, got nothing"
 * console.log(await main([])); // 2, after the usage, on stderr
 * ```
 */
export async function main(args: string[]): Promise<number> {
  let command: Command;
  try {
    command = parseCommand(args, Boolean(process.stderr.isTTY));
    if (command.name === "help") {
      process.stdout.write(`${command.text}\n`);
      return 0;
    }
    if (command.name === "usage") {
      process.stderr.write(`${command.text}\n`);
      return 2;
    }
    if (command.name === "sub") await sub(command);
    else if (command.name === "pub") await pub(command);
    else await bridge(command);
    return 0;
  } catch (error) {
    const usage = error instanceof UsageError || error instanceof MqttOptionsError;
    process.stderr.write(
      `mqtt-streams: ${(error as Error).message}${usage ? " (see --help)" : ""}\n`,
    );
    return usage ? 2 : 1;
  }
}

/** Exits with `code` once stdout has drained (a pending stdin read would keep us alive). */
function exit(code: number): void {
  process.stdout.write("", () => process.exit(code));
}

// No top-level await: Node runs this file as CommonJS through tsx, where there is none.
// main() catches what it expects; anything else still exits 1, saying what it was.
if (isMain()) {
  main(process.argv.slice(2)).then(exit, (error) => {
    process.stderr.write(`mqtt-streams: ${error instanceof Error ? error.message : error}\n`);
    exit(1);
  });
}

/**
 * Whether this file is the program run, rather than imported. `import.meta.main` is Deno's
 * and Bun's (Node has it from 24.2); elsewhere the script Node was given, through any
 * symlink (npm's bin), is this file.
 */
function isMain(): boolean {
  const meta = import.meta as { main?: boolean; url?: string; filename?: string };
  if (typeof meta.main === "boolean") return meta.main;
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    const self = meta.filename ?? (meta.url ? fileURLToPath(meta.url) : undefined);
    return self !== undefined && realpathSync(script) === realpathSync(self);
  } catch {
    return false;
  }
}
