// What the test files share besides brokers: waiting, mosquitto settings, child processes.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { MqttClient } from "mqtt";
import { type MqttMessage, MqttOptionsError, MqttStreamError } from "../mod.ts";

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** A mosquitto that never drops a message for a slow subscriber (its default drops past 1000). */
export const LOSSLESS: string[] = ["max_queued_messages 0"];

/**
 * esbuild's options for one minified ES module for browsers, in memory, with the list of
 * the files it holds (metafile): how the browser and module-graph tests bundle the core.
 */
export const BROWSER_BUNDLE = {
  bundle: true,
  platform: "browser",
  format: "esm",
  minify: true,
  write: false,
  metafile: true,
  logLevel: "silent",
} as const;

/** Polls `condition` (which may ask something over the network) every 10 ms for at most `ms`. */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Publishes "from" … "to - 1" to `topic` (each number its payload) through a raw mqtt.js
 * client, `batch` at a time (10 by default: mosquitto refuses a QoS 2 publish past 20 in
 * flight, PUBREC 0x97, and mqtt.js then drops the connection).
 */
export async function publishRange(
  client: MqttClient,
  topic: string,
  from: number,
  to: number,
  { qos = 1, batch = 10 }: { qos?: 0 | 1 | 2; batch?: number } = {},
): Promise<void> {
  for (let start = from; start < to; start += batch) {
    const published = [];
    for (let n = start; n < Math.min(to, start + batch); n++) {
      published.push(client.publishAsync(topic, String(n), { qos }));
    }
    await Promise.all(published);
  }
}

/** Reads `n` messages within `ms`; fails if the stream ends first. */
export async function readN(
  source: ReadableStream<MqttMessage>,
  n: number,
  ms = 20_000,
): Promise<MqttMessage[]> {
  const reader = source.getReader();
  const messages: MqttMessage[] = [];
  try {
    await within(
      (async () => {
        while (messages.length < n) {
          const { value, done } = await reader.read();
          if (done) assert.fail(`the stream ended after ${messages.length} of ${n} messages`);
          messages.push(value);
        }
      })(),
      ms,
      `reading ${n} messages (got ${messages.length})`,
    );
  } finally {
    reader.releaseLock();
  }
  return messages;
}

/** Rejects when `promise` takes longer than `ms`, naming `what`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The error a source fails with, read within `ms`; undefined if a message comes first. */
export function failureOf(source: ReadableStream, ms = 10_000): Promise<unknown> {
  return within(
    source.getReader().read().then(() => undefined, (e: unknown) => e),
    ms,
    "the source to fail",
  );
}

/**
 * Runs the script at `script` with `args` in a child process of the runtime that runs the
 * tests (Deno or Bun); stdin ignored, stdout piped and stderr inherited unless `stdio` says
 * otherwise; `env` adds to the environment.
 */
export function spawnScript(
  script: URL,
  args: string[],
  stdio: "pipe" | "inherit" | {
    stdin?: "pipe" | "ignore";
    stdout?: "pipe" | "inherit";
    stderr?: "pipe" | "inherit";
  } = "pipe",
  env: Record<string, string> = {},
): ChildProcess {
  const { stdin = "ignore", stdout = "pipe", stderr = "inherit" } = typeof stdio === "string"
    ? { stdout: stdio }
    : stdio;
  const child = spawn(
    process.execPath,
    [...(typeof Deno === "object" ? ["run", "-A"] : []), fileURLToPath(script), ...args],
    { stdio: [stdin, stdout, stderr], env: { ...process.env, ...env } },
  );
  endings.set(
    child,
    new Promise((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal: signal as string | null }))
    ),
  );
  return child;
}

/** How each child of {@linkcode spawnScript} ended, watched from its start. */
const endings = new WeakMap<
  ChildProcess,
  Promise<{ code: number | null; signal: string | null }>
>();

/**
 * Resolves with how `child` (started by {@linkcode spawnScript}) ended. Its own exitCode
 * and signalCode are no guide: under Deno, kill() sets signalCode before the process is gone.
 */
export function exited(
  child: ChildProcess,
): Promise<{ code: number | null; signal: string | null }> {
  const ending = endings.get(child);
  if (!ending) throw new Error("exited() takes a child started by spawnScript()");
  return ending;
}

/** SIGKILLs `child` and waits until it is gone. */
export async function kill(child: ChildProcess): Promise<void> {
  child.kill("SIGKILL");
  await exited(child);
}

/** The command that runs Deno: Deno's own executable under Deno, `npx deno@2` under Bun. */
export function denoCommand(): [string, ...string[]] {
  return typeof Deno === "object" ? [process.execPath] : ["npx", "--yes", "deno@2"];
}

let denoPath: string | undefined;

/**
 * The path of Deno's own executable: under Deno this one, under Bun the one `npx deno@2`
 * runs (asked once). A child started with it is Deno itself, so killing the child stops
 * Deno; killing `npx` would leave its deno running.
 */
export function denoExecutable(): string {
  if (typeof Deno === "object") return process.execPath;
  if (denoPath) return denoPath;
  const result = spawnSync("npx", ["--yes", "deno@2", "eval", "console.log(Deno.execPath())"], {
    encoding: "utf8",
    timeout: 120_000,
  });
  const path = result.stdout?.trim();
  if (result.status !== 0 || !path) {
    throw new Error(`cannot find Deno through npx deno@2: ${result.stderr ?? result.error}`);
  }
  return (denoPath = path);
}

/**
 * Runs `command` with `args` to its end, within a minute (then SIGKILLs it and fails); its
 * exit code and its output, stdout and stderr together.
 */
export async function runToEnd(
  command: string,
  args: string[],
): Promise<{ code: number | null; output: string }> {
  const child = spawn(command, args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const ended = new Promise<number | null>((resolve) => child.once("exit", resolve));
  try {
    return { code: await within(ended, 60_000, `${command} ${args.join(" ")}`), output };
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
}

/** Runs Deno ({@linkcode denoCommand}) with `args` in the repository's folder, synchronously. */
export function runDeno(args: string[]): { status: number | null; stdout: string; output: string } {
  const [command, ...prefix] = denoCommand();
  const result = spawnSync(command, [...prefix, ...args], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    status: result.status,
    stdout: result.stdout,
    output: `${result.stdout}${result.stderr}`,
  };
}

/** mulberry32: a small seeded PRNG, so that a fuzz tries the same inputs every run. */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Asserts `parse` fails with an MqttOptionsError (code INVALID_OPTION) whose message
 * matches every pattern; returns it.
 */
export function rejects(parse: () => unknown, ...patterns: RegExp[]): MqttOptionsError {
  let error: unknown;
  try {
    parse();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof MqttOptionsError, `expected MqttOptionsError, got ${error}`);
  assert.ok(error instanceof MqttStreamError);
  assert.equal(error.code, "INVALID_OPTION");
  for (const pattern of patterns) assert.match(error.message, pattern);
  return error;
}

/**
 * How many cases a seeded fuzz tries: `full`, or a tenth of it under `deno task test:unit`
 * (MQTT_STREAMS_QUICK=1), which runs in seconds; `deno task test` always runs the full count.
 */
export function fuzzCount(full: number): number {
  return process.env.MQTT_STREAMS_QUICK === "1" ? Math.ceil(full / 10) : full;
}

/** Runs `deno check` on `files` with the repository's deno.json; returns its exit code and output. */
export function denoCheck(files: string[]): { status: number | null; output: string } {
  const config = fileURLToPath(new URL("../deno.json", import.meta.url));
  return runDeno(["check", "--quiet", "--config", config, ...files]);
}

/**
 * Asserts that each source in `mustFail` (by name) fails `deno check` with an error matching
 * its `error`: each is written to a file of its own in a temporary folder, and all are checked
 * in one run.
 */
export function assertEachFailsToCheck(
  mustFail: Record<string, { source: string; error: RegExp }>,
): void {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-types-"));
  try {
    const files = Object.entries(mustFail).map(([name, { source }], i) => {
      const file = join(dir, `must_fail_${i}.ts`);
      writeFileSync(file, `// ${name}\n${source}\n`);
      return file;
    });
    const { status, output } = denoCheck(files);
    assert.notEqual(status, 0, output);
    // deno check prints each error, then "at file:///…/must_fail_N.ts:line:col".
    const errors = output.split(/\n\n+/);
    Object.entries(mustFail).forEach(([name, { error }], i) => {
      const mine = errors.filter((text) => text.includes(`must_fail_${i}.ts:`));
      assert.ok(mine.length > 0, `${name}: type-checked, but must not\n${output}`);
      assert.ok(mine.some((text) => error.test(text)), `${name}: not ${error}\n${mine.join("\n")}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
