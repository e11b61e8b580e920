// The benchmark: `deno task bench`. Starts mosquitto (a process of its own, limits raised
// so it drops nothing) and aedes (a Node process of its own), runs bench/suite.ts under each
// runtime against them, one runtime after the other, then prints the Markdown tables and
// writes them to bench/RESULTS.md with the maxInflight chart bench/sweep.svg.
//
//   deno run -A bench/main.ts [--quick] [--runtimes deno,bun,node] [--brokers mosquitto,aedes]
//     [--rounds 3] [--only source,floor,sink,persistence,bridge,sweep,latency,memory] [--out DIR]
//     [--scale F]
//
// --scale F multiplies every full-run message count by F (a shorter run; say so with its figures).
// --quick: small counts, one run, nothing written unless --out is given (a test runs it so
// the harness never rots). Node runs only the baselines (raw mqtt.js and the peers of
// _peers.ts, async-mqtt and u8-mqtt), under tsx.
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, release } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startMosquitto } from "../testing/broker.ts";
import { childArgs, collect, type Result, RESULT_PREFIX, RUNTIME } from "./_measure.ts";
import { hasNativeClients } from "./_native.ts";
import { markdownTables, sweepChart } from "./_report.ts";

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    runtimes: { type: "string", default: "deno,bun,node" },
    brokers: { type: "string", default: "mosquitto,aedes" },
    rounds: { type: "string" },
    scale: { type: "string" },
    only: { type: "string" },
    out: { type: "string" },
  },
});
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const SUITE = here("./suite.ts");
const out = args.out ?? (args.quick ? undefined : here("."));
const runtimes = args.runtimes.split(",").map((name) => name.trim()).filter(Boolean);
const brokers = args.brokers.split(",").map((name) => name.trim());
for (const name of runtimes) {
  if (!["deno", "bun", "node"].includes(name)) {
    throw new Error(
      `Cannot run the benchmark as --runtimes must list deno, bun or node: current value is ${name}`,
    );
  }
}

/** How to run the suite under `runtime`: this process's own binary when it is that runtime. */
function command(runtime: string, suiteArgs: string[]): [string, string[]] {
  const self = RUNTIME.split(" ")[0].toLowerCase();
  if (runtime === "node") return ["npx", ["--yes", "tsx@4", SUITE, "--raw-only", ...suiteArgs]];
  if (runtime === self) return [process.execPath, childArgs(SUITE, suiteArgs)];
  if (runtime === "deno") return ["npx", ["--yes", "deno@2", "run", "-A", SUITE, ...suiteArgs]];
  return ["npx", ["--yes", "bun@1", SUITE, ...suiteArgs]];
}

/** Runs the suite under `runtime`, stderr passed through, and collects its results. */
function runSuite(runtime: string, suiteArgs: string[]): Promise<Result[]> {
  const [file, argv] = command(runtime, suiteArgs);
  return collect(file, argv, RESULT_PREFIX, `the suite under ${runtime}`);
}

/** Starts aedes in a Node process (see _aedes.mjs); resolves with its URL and a stop. */
async function startAedesProcess(): Promise<{ url: string; close(): Promise<void> }> {
  const child = spawn("node", [here("./_aedes.mjs")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let stdout = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`aedes exited with ${code}`)));
    child.stdout!.on("data", (chunk) => {
      stdout += chunk;
      if (stdout.includes("\n")) resolve(stdout.trim());
    });
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return {
    url,
    close: async () => {
      child.stdin!.end();
      await exited;
    },
  };
}

function version(path: string): string {
  return JSON.parse(readFileSync(path, "utf8")).version;
}

/** The version of `dependency` as `pkg` (a folder in node_modules) resolves it. */
function versionFor(pkg: string, dependency: string): string {
  const from = createRequire(realpathSync(join(pkg, "package.json")));
  return version(from.resolve(`${dependency}/package.json`));
}

async function main() {
  const mosquitto = brokers.includes("mosquitto")
    ? await startMosquitto({
      // Lossless and roomy: queue everything (QoS 0 included) for offline sessions, and
      // keep 60 messages in flight to each subscriber (the source's maxInflight).
      lines: ["max_queued_messages 0", "queue_qos0_messages true", "max_inflight_messages 60"],
    })
    : undefined;
  const aedes = brokers.includes("aedes") ? await startAedesProcess() : undefined;
  const results: Result[] = [];
  try {
    const common = [
      ...(mosquitto ? ["--mosquitto", mosquitto.url] : []),
      ...(aedes ? ["--aedes", aedes.url] : []),
      ...(args.quick ? ["--quick"] : []),
      ...(args.rounds ? ["--rounds", args.rounds] : []),
      ...(args.scale ? ["--scale", args.scale] : []),
      ...(args.only ? ["--only", args.only] : []),
    ];
    for (const [i, runtime] of runtimes.entries()) {
      // The C clients once, beside the first runtime's figures.
      const native = i === 0 && hasNativeClients ? ["--native"] : [];
      results.push(...await runSuite(runtime, [...common, ...native]));
    }
  } finally {
    await aedes?.close();
    await mosquitto?.close();
  }
  const root = here("..");
  const heading = [
    "# Benchmark results",
    "",
    `- Date: ${new Date().toISOString().slice(0, 10)}`,
    `- Command: \`deno task bench${
      process.argv.slice(2).length ? " " + process.argv.slice(2).join(" ") : ""
    }\``,
    `- Runtimes: ${[...new Set(results.map((r) => r.runtime))].join(", ")}`,
    `- Libraries: @mqtt-streams/core ${version(join(root, "deno.json"))}, mqtt ${
      version(join(root, "node_modules/mqtt/package.json"))
    }, aedes ${version(join(root, "node_modules/aedes/package.json"))}; peers: async-mqtt ${
      version(join(root, "node_modules/async-mqtt/package.json"))
    } (on mqtt ${versionFor(join(root, "node_modules/async-mqtt"), "mqtt")}), u8-mqtt ${
      version(join(root, "node_modules/u8-mqtt/package.json"))
    } (its Node build, \`u8-mqtt/node\`); brokers: ${
      brokers.join(", ")
    } (each a process of its own on 127.0.0.1)`,
    `- Machine: ${cpus().length} × ${cpus()[0]?.model ?? "CPU"}, ${process.platform} ${release()}`,
    `- Runs: ${
      args.quick ? "1 (quick)" : `warm-up, then ${args.rounds ?? 3}`
    }, alternating the clients; each cell is the median (min–max) of the runs`,
    "",
  ].join("\n");
  const markdown = `${heading}\n${markdownTables(results)}`;
  console.log(markdown);
  if (out) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, "RESULTS.md"), markdown);
    console.error(`wrote ${join(out, "RESULTS.md")}`);
    // A run without the sweep (--only) leaves the chart of the last one alone.
    if (results.some((r) => r.section === "sweep")) {
      writeFileSync(join(out, "sweep.svg"), sweepChart(results));
      console.error(`wrote ${join(out, "sweep.svg")}`);
    }
  }
}

await main();
