// What every benchmark shares: the result rows, the runtime's name, alternating rounds,
// a time limit on each run, and running a benchmark under another runtime.
import { spawn } from "node:child_process";
import process from "node:process";

export { within } from "../testing/helpers.ts";

/** One measured figure: every run's value; the report shows the median and min–max. */
export interface Result {
  /** Which table the row belongs to. */
  section:
    | "source"
    | "floor"
    | "sink"
    | "persistence"
    | "bridge"
    | "latency"
    | "memory"
    | "sweep";
  broker: string;
  runtime: string;
  /** The workload, e.g. "QoS 1, 100,000 × 64 B". */
  case: string;
  /** What ran: "mqtt.js", "MqttSource", "mosquitto_sub", ... */
  who: string;
  unit: "msg/s" | "ms" | "MB";
  runs: number[];
  /** The sweep's maxInflight. */
  x?: number;
  /** Why `who` has no figure here (a peer that cannot do this workload): shown instead. */
  note?: string;
}

/** "Deno 2.9.6", "Bun 1.4.5" or "Node 20.19.0". */
export const RUNTIME: string = typeof Deno === "object"
  ? `Deno ${Deno.version.deno}`
  : process.versions.bun
  ? `Bun ${process.versions.bun}`
  : `Node ${process.versions.node}`;

/** Prefix of a result line on a suite's stdout. */
export const RESULT_PREFIX = "RESULT ";

/** Prints `result` for the runner that spawned this process to collect. */
export function report(result: Result): void {
  console.log(RESULT_PREFIX + JSON.stringify(result));
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/**
 * Runs each subject once to warm up (JIT, connections), then `rounds` times, reversing the
 * order every other round so that drift on a noisy machine hits every subject alike.
 */
export async function alternate<K extends string>(
  subjects: Record<K, () => Promise<number>>,
  rounds: number,
  warmUp = true,
): Promise<Record<K, number[]>> {
  const names = Object.keys(subjects) as K[];
  const runs = Object.fromEntries(names.map((name) => [name, []])) as unknown as Record<
    K,
    number[]
  >;
  if (warmUp) { for (const name of names) await subjects[name](); }
  for (let round = 0; round < rounds; round++) {
    for (const name of round % 2 ? [...names].reverse() : names) {
      if (process.env.BENCH_VERBOSE) console.error(`  ${name}`);
      runs[name].push(await subjects[name]());
    }
  }
  return runs;
}

/** Messages a second for `count` messages in `ms`. */
export const rate = (count: number, ms: number): number => count / (ms / 1000);

/** `performance.now()` after `fn` minus before it. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/**
 * The arguments that run `script` in a child process of this runtime (Deno, Bun, or Node
 * under tsx, whose loader flags are in `execArgv`).
 */
export function childArgs(script: string, args: string[] = []): string[] {
  if (typeof Deno === "object") return ["run", "-A", script, ...args];
  if (process.versions.bun) return [script, ...args];
  return [...process.execArgv, script, ...args];
}

/**
 * Runs `script` with `args` under `runtime` ("deno" or "bun", from npm; Deno with `gc()`
 * exposed, as Bun has `Bun.gc`) and collects its lines that start with `prefix`.
 */
export function runUnder<T>(
  runtime: string,
  script: string,
  args: string[],
  prefix: string,
): Promise<T[]> {
  const argv = runtime === "deno"
    ? ["--yes", "deno@2", "run", "-A", "--v8-flags=--expose-gc", script, ...args]
    : ["--yes", "bun@1", script, ...args];
  return collect("npx", argv, prefix, `${script} under ${runtime}`);
}

/**
 * Runs `command` with `argv`, stderr passed through, and collects the lines its stdout
 * starts with `prefix`, parsed as JSON; rejects, naming `what`, when it exits with an error.
 */
export function collect<T>(
  command: string,
  argv: string[],
  prefix: string,
  what: string,
): Promise<T[]> {
  const child = spawn(command, argv, {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, DENO_NO_UPDATE_CHECK: "1" },
  });
  let stdout = "";
  child.stdout!.on("data", (chunk) => (stdout += chunk));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`${what} failed (exit ${code})`));
      resolve(
        stdout.split("\n").filter((line) => line.startsWith(prefix)).map((line) =>
          JSON.parse(line.slice(prefix.length))
        ),
      );
    });
  });
}
