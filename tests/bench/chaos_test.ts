// The chaos run, short: 60 seconds of every fault at once on a fixed seed (bench/chaos.ts),
// so the harness and its checker never rot. It fails on any resolved write lost, any QoS 2
// message read twice, any operation that hung, and any error that is not an MqttStreamError.
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { skipWithoutMosquitto } from "../../testing/broker.ts";
import { exited, kill, spawnScript, within } from "../../testing/helpers.ts";
import { skipWithoutNats } from "../../testing/nats.ts";

/** The seed of the suite's run; `deno task chaos --seed 1 --minutes 1` replays its schedule. */
const SEED = 1;

test(
  "a 60-second chaos run (seed 1) loses no resolved write, reads no QoS 2 message twice, and nothing hangs",
  { skip: skipWithoutMosquitto() || skipWithoutNats(), timeout: 8 * 60_000 },
  async () => {
    const out = join(tmpdir(), `mqtt-streams-chaos-test-${crypto.randomUUID().slice(0, 8)}`);
    const child = spawnScript(
      new URL("../../bench/chaos.ts", import.meta.url),
      ["--seed", String(SEED), "--minutes", "1", "--out", out],
      { stdout: "pipe", stderr: "pipe" },
    );
    let output = "";
    child.stdout!.on("data", (chunk) => (output += chunk));
    child.stderr!.on("data", (chunk) => (output += chunk));
    try {
      const { code } = await within(exited(child), 7 * 60_000, "the chaos run");
      const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8")).report;
      assert.deepEqual(report.verdict.problems, [], output.slice(-4_000));
      assert.equal(code, 0, output.slice(-4_000));
      // It did strike: faults of most kinds ran, and every workload moved messages.
      assert.ok(Object.keys(report.faults).length >= 6, JSON.stringify(report.faults));
      for (const workload of report.workloads) {
        assert.ok(workload.sent > 100, `${workload.wl} sent ${workload.sent}`);
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) await kill(child);
      rmSync(out, { recursive: true, force: true });
    }
  },
);
