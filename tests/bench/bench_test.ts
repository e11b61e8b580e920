// The benchmark harness in --quick mode (small counts, one run), so it never rots: it must
// complete and print every row, each with its figures and ratios, a figure in each peer's column
// (async-mqtt, u8-mqtt) or why it has none. How fast is not checked.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUNTIME } from "../../bench/_measure.ts";
import { skipWithoutMosquitto } from "../../testing/broker.ts";
import { spawnScript } from "../../testing/helpers.ts";

/** Node's raw baselines ride along on Deno's run only: one run of them is enough. */
const runtimes = typeof Deno === "object" ? "deno,node" : "bun";

/** The cells of the table row whose first cells are `start`, or undefined. */
function row(markdown: string, start: string[]): string[] | undefined {
  for (const line of markdown.split("\n")) {
    if (!line.startsWith("|")) continue;
    const cells = line.slice(1, -1).split("|").map((cell) => cell.trim());
    if (start.every((cell, i) => cells[i] === cell)) return cells;
  }
  return undefined;
}

/** Asserts the row exists and its last `ratios` cells are positive numbers. */
function assertRow(markdown: string, start: string[], ratios: number) {
  const cells = row(markdown, start);
  assert.ok(cells, `a row ${start.join(" | ")}`);
  for (const cell of cells.slice(cells.length - ratios)) {
    assert.ok(Number(cell) > 0, `${start.join(" | ")}: ratio ${JSON.stringify(cell)}`);
  }
}

/**
 * The cells under `columns` of the table row whose first cells are `start`, read by the
 * headers of its table (a line starting "| broker |").
 */
function cells(markdown: string, start: string[], columns: string[]): string[] {
  let header: string[] = [];
  for (const line of markdown.split("\n")) {
    if (!line.startsWith("|")) continue;
    const row = line.slice(1, -1).split("|").map((cell) => cell.trim());
    if (row[0] === "broker") header = row;
    else if (start.every((cell, i) => row[i] === cell)) {
      return columns.map((column) => {
        assert.ok(header.includes(column), `${start.join(" | ")}: a column ${column}`);
        return row[header.indexOf(column)];
      });
    }
  }
  assert.fail(`a row ${start.join(" | ")}`);
}

/** The number a cell opens with ("12,345 (11,000–13,000)" → 12345). */
const numberIn = (cell: string) => Number(cell.split(" ")[0].replaceAll(",", ""));

/** Asserts the row's cells under `columns` are positive numbers (figures or ratios). */
function assertNumbers(markdown: string, start: string[], columns: string[]) {
  cells(markdown, start, columns).forEach((cell, i) =>
    assert.ok(numberIn(cell) > 0, `${start.join(" | ")}, ${columns[i]}: ${JSON.stringify(cell)}`)
  );
}

/** Each peer's figure and its ratio to raw mqtt.js. */
const peerColumns = (...peers: string[]) => peers.flatMap((peer) => [peer, `${peer} ÷ mqtt.js`]);

/**
 * Asserts each peer has a figure in the row, except where the peer says it cannot: u8-mqtt
 * has no QoS 2 and its QoS 0 publish throws (bench/_peers.ts).
 */
function assertPeers(markdown: string, start: string[], side: "source" | "sink", qos: number) {
  const u8 = qos === 2 ? "no QoS 2" : side === "sink" && qos === 0 ? "QoS 0 publish throws" : "";
  assertNumbers(markdown, start, peerColumns("async-mqtt", ...(u8 ? [] : ["u8-mqtt"])));
  if (u8) assert.deepEqual(cells(markdown, start, ["u8-mqtt"]), [`— (${u8})`]);
}

/** Runs `bench/<script>` with `args`, asserts it exits 0, and returns what it printed. */
async function runBench(script: string, args: string[]): Promise<string> {
  const child = spawnScript(new URL(`../../bench/${script}`, import.meta.url), args);
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  assert.equal(code, 0, `bench/${script} exits 0: ${output}`);
  return output;
}

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
async function withFolder(prefix: string, fn: (folder: string) => Promise<void>): Promise<void> {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  try {
    await fn(folder);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

test("bench/main.ts --quick completes and prints every row of every table, the peers' too", {
  skip: skipWithoutMosquitto(),
  timeout: 300_000,
}, async () => {
  await withFolder("mqtt-streams-bench-", async (out) => {
    const stdout = await runBench("main.ts", ["--quick", "--runtimes", runtimes, "--out", out]);
    const markdown = readFileSync(join(out, "RESULTS.md"), "utf8");
    assert.ok(stdout.includes(markdown.trim().slice(0, 200)), "the tables go to stdout too");
    // Node runs the baselines: raw mqtt.js and the peers (async-mqtt, u8-mqtt).
    const node = markdown.match(/\| (Node \d+\.\d+\.\d+) \|/)?.[1];
    if (runtimes.includes("node")) assert.ok(node, "Node's rows");
    const baselines = [RUNTIME, ...(node ? [node] : [])];
    for (const qos of [0, 1, 2]) {
      for (const size of ["2,000 × 64 B", "200 × 4 KiB"]) {
        const sourceRow = (broker: string) => [broker, `QoS ${qos}, ${size}`, RUNTIME];
        assertNumbers(markdown, sourceRow("mosquitto"), ["MqttSource ÷ mqtt.js"]);
        assertRow(markdown, ["mosquitto", `QoS ${qos}, ${size}`, "C (mosquitto-clients)"], 0);
        if (qos === 1) assertNumbers(markdown, sourceRow("aedes"), ["MqttSource ÷ mqtt.js"]);
        for (const runtime of baselines) {
          assertPeers(markdown, ["mosquitto", `QoS ${qos}, ${size}`, runtime], "source", qos);
          if (qos === 1) {
            assertPeers(markdown, ["aedes", `QoS ${qos}, ${size}`, runtime], "source", qos);
          }
        }
      }
      for (const broker of ["mosquitto", "aedes"]) {
        const what = `QoS ${qos}, 2,000 × 64 B, window 60`;
        assertNumbers(markdown, [broker, what, RUNTIME], [
          "MqttSink ÷ mqtt.js",
          "MqttSink ÷ serial",
          "mqtt.js ÷ serial",
        ]);
        assertRow(markdown, [broker, what, "C (mosquitto-clients)"], 0);
        for (const runtime of baselines) {
          assertPeers(markdown, [broker, what, runtime], "sink", qos);
        }
      }
    }
    assertRow(markdown, ["mosquitto", "QoS 1, 2,000 × 64 B, window 60, each store", RUNTIME], 2);
    for (const broker of ["mosquitto", "aedes"]) {
      // --quick measures the default window only; a full run adds maxInflight 10 and 256.
      assertRow(
        markdown,
        [broker, "QoS 1, 1,000 × 64 B, ack=manual, maxInflight 60 (default)", RUNTIME],
        1,
      );
    }
    for (const stat of ["p50", "p99", "max"]) {
      const what = `QoS 1, 500 msg/s for 1 s: ${stat}`;
      assertNumbers(markdown, ["mosquitto", what, RUNTIME], ["MqttSource ÷ mqtt.js"]);
      for (const runtime of baselines) {
        assertNumbers(markdown, ["mosquitto", what, runtime], peerColumns("async-mqtt", "u8-mqtt"));
      }
    }
    assertRow(markdown, ["mosquitto", "QoS 1, 5,000 × 64 B, nothing read", RUNTIME], 1);
    assertRow(markdown, ["none", "2,000 messages, no MQTT", RUNTIME], 0);
    for (const window of ["1", "10", "60", "256"]) {
      assertRow(markdown, ["mosquitto", "QoS 1, 500 × 64 B", window, RUNTIME], 1);
    }
    if (node) assert.match(markdown, /\| Node \d+\.\d+\.\d+ \| [\d,]+ \|/);
    const svg = readFileSync(join(out, "sweep.svg"), "utf8");
    assert.match(svg, /^<svg[^>]*>/);
    assert.equal(svg.match(/<polyline /g)?.length, runtimes.includes("node") ? 3 : 2);
  });
});

test(
  "bench/transforms.ts --quick --broker completes and prints every stage with a positive ratio",
  {
    skip: skipWithoutMosquitto(),
    timeout: 300_000,
  },
  async () => {
    const output = await runBench("transforms.ts", ["--quick", "--broker"]);
    for (
      const stage of [
        "decodeJson()",
        "validate(valibot object)",
        "route(3 filters, valibot)",
        "merge(2 sources)",
      ]
    ) {
      assertRow(output, [stage], 1);
    }
    assertRow(output, ["MqttSource → route()"], 1);
  },
);

test("bench/transports.ts --quick compares ws:// with mqtt:// for a source and a sink", {
  timeout: 300_000,
}, async () => {
  const output = await runBench("transports.ts", ["--quick"]);
  assertRow(output, ["source"], 1);
  assertRow(output, ["sink"], 1);
});

test("bench/telemetry.ts --quick measures a source and a sink without and with an SDK", {
  timeout: 300_000,
}, async () => {
  const output = await runBench("telemetry.ts", ["--quick"]);
  for (const who of ["mqtt.js", "telemetry=false", "no SDK (default)", "SDK: metrics + spans"]) {
    const cells = row(output, [who]);
    assert.ok(cells && Number(cells[2]) > 0, `${who}: ${JSON.stringify(cells)}`);
  }
  // Every SDK run exported a span for each of its 2,000 messages.
  assert.match(output, /spans exported by the SDK runs: (2,000, )+2,000 /);
});

test("bench/scale.ts --quick prints how cost grows with sources, filters and payloads", {
  skip: skipWithoutMosquitto(),
  timeout: 300_000,
}, async () => {
  await withFolder("mqtt-streams-scale-", async (out) => {
    const runtime = typeof Deno === "object" ? "deno" : "bun";
    const output = await runBench("scale.ts", ["--quick", "--runtimes", runtime, "--out", out]);
    const section = (name: string) => output.split(`### ${name}`)[1]?.split("###")[0] ?? "";
    // The last cell of each row: msg/s all together, msg/s, and MqttSource ÷ raw.
    for (const sources of ["1", "10"]) assertRow(section("sources"), [RUNTIME, sources], 1);
    for (const filters of ["10", "100"]) assertRow(section("filters"), [RUNTIME, filters], 1);
    for (const size of ["64", "16384"]) assertRow(section("payloads"), [RUNTIME, size], 1);
    // A line a runtime; the payloads' chart has the library's and raw mqtt.js's.
    for (const [chart, lines] of [["sources", 1], ["filters", 1], ["payloads", 2]] as const) {
      const svg = readFileSync(join(out, `scale-${chart}.svg`), "utf8");
      assert.match(svg, /^<svg[^>]*>/);
      assert.equal(svg.match(/<polyline /g)?.length, lines, chart);
    }
  });
});

test("bench/groups.ts --quick prints the rate of 1, 2 and 4 members with a positive ratio", {
  skip: skipWithoutMosquitto(),
  timeout: 300_000,
}, async () => {
  const output = await runBench("groups.ts", ["--quick"]);
  for (const section of ["read only", "1 ms of awaited work a message"]) {
    const table = output.split(`### ${section}:`)[1]?.split("###")[0] ?? "";
    for (const members of ["1", "2", "4"]) {
      // members | messages | seconds | msg/s | ratio to 1 member | per-member split | CPU
      const cells = row(table, [members]);
      assert.ok(cells && Number(cells[4]) > 0, `${section}, ${members}: ${JSON.stringify(cells)}`);
      const split = cells[5].split(" / ").map((n) => Number(n.replaceAll(",", "")));
      assert.equal(split.length, Number(members), `${section}: a share each`);
      const total = split.reduce((sum, n) => sum + n, 0);
      assert.equal(total, Number(cells[1].replaceAll(",", "")), `${section}: every message read`);
    }
  }
});
