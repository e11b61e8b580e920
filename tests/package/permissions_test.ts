// The Deno permissions docs/runtimes.md lists are enough, and --allow-env and (with
// persistence=file) --allow-sys=hostname are not optional: each case runs
// tests/package/_permissions_child.ts under Deno with exactly those flags.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startAedes } from "../../testing/broker.ts";
import { denoExecutable, runToEnd } from "../../testing/helpers.ts";

const child = fileURLToPath(new URL("./_permissions_child.ts", import.meta.url));

/** Runs the child under `deno run` with `flags`; its exit code and output. */
function runWith(flags: string[], args: string[]) {
  return runToEnd(denoExecutable(), ["run", ...flags, child, ...args]);
}

/**
 * Runs the child with persistence=file in a new folder, with the flags of the broker's port,
 * the environment and the folder, and `more`; the folder is removed afterwards.
 */
async function runWithStore(port: number, url: string, more: string[]) {
  const folder = mkdtempSync(join(tmpdir(), "mqtt-streams-permissions-"));
  try {
    return await runWith(
      [
        `--allow-net=127.0.0.1:${port}`,
        "--allow-env",
        `--allow-read=${folder}`,
        `--allow-write=${folder}`,
        ...more,
      ],
      [url, `&clientId=permissions&persistence=file&localStorage=${folder}`],
    );
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

describe("Deno permissions", () => {
  for (const transport of ["tcp", "ws"] as const) {
    test(`${transport}: --allow-net=<host:port> --allow-env is enough`, async () => {
      await using broker = await startAedes({ transport });
      const { code, output } = await runWith(
        [`--allow-net=127.0.0.1:${broker.port}`, "--allow-env"],
        [broker.url],
      );
      assert.equal(code, 0, output);
      assert.match(output, /received with the documented permissions/);
    });
  }

  test("persistence=file adds --allow-read/--allow-write of the folder and --allow-sys=hostname", async () => {
    await using broker = await startAedes();
    const { code, output } = await runWithStore(broker.port, broker.url, ["--allow-sys=hostname"]);
    assert.equal(code, 0, output);
    assert.match(output, /received with the documented permissions/);
  });

  test("persistence=file without --allow-sys=hostname fails with STORE_FAILED naming the flags it needs", async () => {
    await using broker = await startAedes();
    const { code, output } = await runWithStore(broker.port, broker.url, []);
    assert.notEqual(code, 0);
    assert.match(output, /MqttStreamError: Cannot lock the file store/);
    assert.match(
      output,
      /persistence=file needs --allow-read=<localStorage> --allow-write=<localStorage> --allow-sys=hostname/,
    );
  });

  test("without --allow-env, loading fails with a short MqttStreamError naming the flag", async () => {
    await using broker = await startAedes();
    const { code, output } = await runWith([`--allow-net=127.0.0.1:${broker.port}`], [
      broker.url,
    ]);
    assert.notEqual(code, 0);
    assert.match(
      output,
      /MqttStreamError: Cannot load mqtt-streams as Deno denies environment access: run with --allow-env/,
    );
    // Not the stack trace of mqtt.js's dependencies reading the environment as they load.
    assert.doesNotMatch(output, /NotCapable|node_modules/);
    assert.ok(output.trim().split("\n").length <= 8, output);
  });
});
