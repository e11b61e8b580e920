/**
 * The `mqtt-streams` command line: `sub` prints messages as JSON lines, `pub` publishes
 * lines from stdin, `bridge` copies messages between brokers at least once.
 *
 * ```sh
 * deno run -A jsr:@mqtt-streams/core/cli sub 'mqtt://localhost?topic=sensors/%23'
 * ```
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
import process from "node:process";
import { MqttOptionsError } from "./mod.ts";
import { type Command, parseCommand, UsageError } from "./cli/_args.ts";
import { bridge, pub, sub } from "./cli/_commands.ts";

/**
 * Runs the command line with `args` (without the program's name).
 *
 * @param args The arguments, e.g. `["sub", "mqtt://localhost?topic=a/%23"]`.
 * @returns The exit code: 0 done (also after Ctrl-C, once closed cleanly), 1 failed,
 * 2 bad arguments.
 *
 * @example
 * ```ts
 * import { main } from "@mqtt-streams/core/cli";
 *
 * console.log(await main(["sub"])); // 2, after "mqtt-streams: sub: expected <url>, got nothing"
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

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  // Wait for stdout to drain before exiting (a pending stdin read would keep us alive).
  process.stdout.write("", () => process.exit(code));
}
