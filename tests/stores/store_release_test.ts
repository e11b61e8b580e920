// A clean end frees the store: close(), cancel() and abort() release the folder's lock within
// the process, and a process that ends (by itself, or with process.exit()) leaves no lock
// behind, on Deno with the least flags docs/runtimes.md lists, on Bun and on Node: a second
// run on the same folder succeeds. Under Deno without --allow-run a lock left behind cannot
// be checked and is refused (STORE_LOCKED), so a lock that outlives its process is a failure.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import * as esbuild from "esbuild";
import { MqttSink, MqttSource } from "../../mod.ts";
import { startAedes, type TestBroker } from "../../testing/broker.ts";
import { denoExecutable, runToEnd, within } from "../../testing/helpers.ts";
import { startHostile } from "../../testing/hostile.ts";

const child = fileURLToPath(new URL("./_store_release_child.ts", import.meta.url));
const root = fileURLToPath(new URL("../..", import.meta.url));
// Inside node_modules, so that Node resolves the bundle's imports of mqtt and valibot.
const nodeChild = `${root}node_modules/.cache/mqtt-streams/store_release_child.mjs`;

/** The Deno flags docs/runtimes.md lists for persistence=file, and nothing more. */
const denoFlags = (folder: string, port: number) => [
  `--allow-net=127.0.0.1:${port}`,
  "--allow-env",
  `--allow-read=${folder}`,
  `--allow-write=${folder}`,
  "--allow-sys=hostname",
];

type Runtime = "deno" | "bun" | "node";

declare const Bun: unknown;

/** The command that runs the child under `runtime`. */
function command(runtime: Runtime, folder: string, port: number): [string, string[]] {
  if (runtime === "deno") return [denoExecutable(), ["run", ...denoFlags(folder, port), child]];
  if (runtime === "node") return ["node", [nodeChild]];
  // Bun itself when the tests run on Bun; npx waits for the Bun it starts.
  return typeof Bun === "object" ? [process.execPath, [child]] : ["npx", ["--yes", "bun@1", child]];
}

describe("a clean end frees the store", { timeout: 180_000 }, () => {
  let broker: TestBroker;
  let dir: string;
  before(async () => {
    broker = await startAedes();
    dir = mkdtempSync(join(tmpdir(), "mqtt-streams-release-"));
    // Node runs the child as one JavaScript module, built with esbuild.
    mkdirSync(`${root}node_modules/.cache/mqtt-streams`, { recursive: true });
    try {
      await esbuild.build({
        entryPoints: [child],
        bundle: true,
        platform: "node",
        format: "esm",
        target: "node20",
        packages: "external",
        outfile: nodeChild,
        logLevel: "silent",
      });
    } finally {
      await esbuild.stop();
    }
  });
  after(async () => {
    await broker[Symbol.asyncDispose]();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const runtime of ["deno", "bun", "node"] as const) {
    for (const mode of ["close", "exit"] as const) {
      const how = mode === "close"
        ? "pipes three records and ends by itself"
        : "writes three records and calls process.exit(0) with the sink open";
      test(`${runtime}: a process that ${how} leaves no lock; a second run on the same folder succeeds`, async () => {
        // A folder that does not exist yet, inside one the test owns: the flags name it alone.
        const folder = join(dir, `${runtime}-${mode}`);
        const url =
          `${broker.url}?topic=release/${runtime}&qos=1&clientId=release-${runtime}-${mode}` +
          `&persistence=file&localStorage=${folder}`;
        const runs = [];
        for (const run of [1, 2]) {
          const [executable, args] = command(runtime, folder, broker.port);
          const { code, output } = await runToEnd(executable, [...args, url, mode]);
          const lockLeft = existsSync(join(folder, "lock"));
          const locked = /STORE_LOCKED|is held by process/.test(output);
          console.log(
            `${runtime} ${mode} run ${run}: exit ${code}, lock left: ${lockLeft}${
              locked ? ", STORE_LOCKED" : ""
            }`,
          );
          runs.push({ run, code, output, lockLeft });
        }
        for (const { run, code, output, lockLeft } of runs) {
          assert.equal(code, 0, `run ${run}: ${output}`);
          assert.match(output, /published 3/, `run ${run}`);
          assert.equal(lockLeft, false, `run ${run} left its lock behind`);
        }
      });
    }
  }

  const lock = (folder: string) => join(folder, "lock");
  const options = (name: string) => ({
    clientId: `release-${name}`,
    persistence: "file" as const,
    localStorage: join(dir, name),
    qos: 1 as const,
  });

  test("MqttSink: close() releases the lock by the time it resolves, with the default connectionCacheTimeout", async () => {
    const sink = new MqttSink(broker.url, { topic: "release/close", ...options("close") });
    const writer = sink.getWriter();
    await writer.write("x");
    assert.ok(existsSync(lock(join(dir, "close"))), "held while the sink is open");
    await within(writer.close(), 10_000, "close()");
    assert.equal(existsSync(lock(join(dir, "close"))), false, "released when close() resolved");
    // The folder is free for the same clientId at once, in this process.
    const again = new MqttSink(broker.url, { topic: "release/close", ...options("close") });
    await ReadableStream.from(["y"]).pipeTo(again);
    assert.equal(again.stats.acked, 1);
  });

  test("MqttSink: two sinks on one connection share its store; the lock goes with the last close()", async () => {
    const first = new MqttSink(broker.url, { topic: "release/shared", ...options("shared") });
    const second = new MqttSink(broker.url, { topic: "release/shared", ...options("shared") });
    const [a, b] = [first.getWriter(), second.getWriter()];
    await Promise.all([a.write("a"), b.write("b")]);
    await a.close();
    assert.ok(existsSync(lock(join(dir, "shared"))), "held while a sink uses the connection");
    await b.close();
    assert.equal(existsSync(lock(join(dir, "shared"))), false, "released by the last close()");
  });

  test("MqttSink: abort() releases the lock by the time it resolves", async () => {
    const sink = new MqttSink(broker.url, { topic: "release/abort", ...options("abort") });
    const writer = sink.getWriter();
    await writer.write("x");
    assert.ok(existsSync(lock(join(dir, "abort"))));
    await within(writer.abort(new Error("stop")), 10_000, "abort()");
    assert.equal(existsSync(lock(join(dir, "abort"))), false, "released when abort() resolved");
  });

  test("MqttSource: cancel() releases the lock by the time it resolves", async () => {
    const source = new MqttSource(broker.url, { topic: "release/cancel", ...options("cancel") });
    await within(source.ready, 10_000, "the source subscribing");
    assert.ok(existsSync(lock(join(dir, "cancel"))));
    await within(source.cancel(), 10_000, "cancel()");
    assert.equal(existsSync(lock(join(dir, "cancel"))), false, "released when cancel() resolved");
  });

  test("MqttSource: cancel() while it still connects releases the lock by the time it resolves", async () => {
    // A broker that never answers CONNECT (no real broker is that silent on purpose), so the
    // cancel lands while the connection, its store open, waits for its CONNACK.
    await using silent = await startHostile();
    // Each step of opening (options, the store's files, the socket) is a few turns of the
    // event loop: cancelling after 0 to 11 of them, and after 50 ms, lands in every one.
    for (const turns of [...Array(12).keys(), 50]) {
      const source = new MqttSource(silent.url, {
        topic: "release/connecting",
        ...options("connecting"),
      });
      if (turns === 50) await new Promise((resolve) => setTimeout(resolve, 50));
      else for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
      await within(source.cancel(), 10_000, "cancel()");
      assert.equal(
        existsSync(lock(join(dir, "connecting"))),
        false,
        `released when cancel() resolved (cancelled after ${turns} turns)`,
      );
    }
    // The next source on the same folder opens at once.
    const again = new MqttSource(broker.url, {
      topic: "release/connecting",
      ...options("connecting"),
    });
    await within(again.ready, 10_000, "the next source subscribing");
    await again.cancel();
  });
});
