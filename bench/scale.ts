// How cost grows with the work (the Bahir connector's second best practice: many varied
// sources in one pipeline). Against one mosquitto, under each runtime:
//
// - sources: 1, 10, 100 and 1,000 MqttSources in one process, each its own connection and
//   topic, QoS 1: time until all are subscribed, heap a stream, and messages a second
//   across all of them (20,000 messages, spread evenly).
// - filters: one MqttSource subscribed to 10, 1,000 and 10,000 filters: subscribe time,
//   messages a second (10,000, spread over the filters), heap grown.
// - payloads: one source draining a stored backlog of 64 B to 256 KiB messages, against a
//   raw mqtt.js subscriber: msg/s, MB/s and their ratio (medians of 3).
//
//   deno run -A bench/scale.ts [--runtimes deno,bun] [--quick] [--out DIR]
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import { MqttSource } from "../mod.ts";
import { startMosquitto } from "../testing/broker.ts";
import { median, RUNTIME, runUnder } from "./_measure.ts";
import { type LineChart, lineChart } from "./_report.ts";
import { drainRaw, payloads, prefill } from "./_raw.ts";

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runtimes: { type: "string", default: "deno,bun" },
    quick: { type: "boolean", default: false },
    out: { type: "string" },
    child: { type: "string" },
  },
});
const ROW = "SCALE_RESULT ";
const SOURCES = args.quick ? [1, 10] : [1, 10, 100, 1_000];
const FILTERS = args.quick ? [10, 100] : [10, 1_000, 10_000];
const SIZES = args.quick ? [64, 16_384] : [64, 1_024, 16_384, 262_144];
const MESSAGES = args.quick ? 2_000 : 20_000;

/** What the `work` column counts, by section. */
const WORK: Record<string, string> = {
  sources: "sources",
  filters: "filters",
  payloads: "payload, bytes",
};

type Row = { runtime: string; section: string; work: number } & Record<string, number | string>;

/**
 * The JavaScript heap in use after a full garbage collection (Deno with `gc()` exposed,
 * Bun's `Bun.gc`): resident memory moves in steps the allocator keeps, too coarse to
 * divide among streams.
 */
function heap(): number {
  const runtime = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  runtime.Bun?.gc(true);
  runtime.gc?.();
  return process.memoryUsage().heapUsed;
}
const mb = (bytes: number) => bytes / 2 ** 20;

/** Publishes each `[topic, payload]` at QoS 1 with at most 50 unconfirmed. */
function publishAll(client: MqttClient, messages: [string, Uint8Array][]): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = 0, unconfirmed = 0;
    const pump = () => {
      while (unconfirmed < 50 && next < messages.length) {
        const [topic, payload] = messages[next++];
        unconfirmed++;
        client.publish(topic, payload as unknown as string, { qos: 1 }, (error) => {
          if (error) return reject(error);
          unconfirmed--;
          if (next === messages.length && unconfirmed === 0) resolve();
          else pump();
        });
      }
    };
    pump();
  });
}

/** Reads `count` messages from `source`. */
async function readCount(source: MqttSource, count: number): Promise<void> {
  const reader = source.getReader();
  for (let n = 0; n < count; n++) {
    const { done } = await reader.read();
    if (done) throw new Error(`the source ended after ${n} of ${count}`);
  }
  reader.releaseLock();
}

async function manySources(url: string, n: number): Promise<Row> {
  const run = crypto.randomUUID().slice(0, 8);
  const before = heap();
  const started = performance.now();
  const sources = Array.from(
    { length: n },
    (_, i) => new MqttSource(`${url}?topic=scale/${run}/${i}&qos=1&connectBackoff=200`),
  );
  await Promise.all(sources.map((source) => source.ready));
  const connectMs = performance.now() - started;
  const perStream = (heap() - before) / n;
  const each = Math.max(1, Math.floor(MESSAGES / n));
  const publisher = await mqtt.connectAsync(url, { clean: true });
  const messages: [string, Uint8Array][] = [];
  for (let k = 0; k < each; k++) {
    for (let i = 0; i < n; i++) messages.push([`scale/${run}/${i}`, new Uint8Array(64)]);
  }
  const t0 = performance.now();
  await Promise.all([
    publishAll(publisher, messages),
    ...sources.map((source) => readCount(source, each)),
  ]);
  const seconds = (performance.now() - t0) / 1000;
  await publisher.endAsync();
  await Promise.all(sources.map((source) => source.cancel()));
  return {
    runtime: RUNTIME,
    section: "sources",
    work: n,
    "connect + subscribe, ms": Math.round(connectMs),
    "heap a stream, KiB": Math.round(perStream / 1024),
    "msg/s, all together": Math.round(messages.length / seconds),
  };
}

async function manyFilters(url: string, n: number): Promise<Row> {
  const run = crypto.randomUUID().slice(0, 8);
  const filters = Array.from({ length: n }, (_, i) => `scale/${run}/${i}`);
  const before = heap();
  const started = performance.now();
  const source = new MqttSource({ brokerUrl: url, topic: filters, qos: "1" });
  await source.ready;
  const subscribeMs = performance.now() - started;
  const publisher = await mqtt.connectAsync(url, { clean: true });
  const count = Math.max(MESSAGES / 2, n);
  const messages: [string, Uint8Array][] = Array.from(
    { length: count },
    (_, k) => [filters[k % n], new Uint8Array(64)],
  );
  const t0 = performance.now();
  await Promise.all([publishAll(publisher, messages), readCount(source, count)]);
  const seconds = (performance.now() - t0) / 1000;
  const grown = heap() - before;
  await publisher.endAsync();
  await source.cancel();
  return {
    runtime: RUNTIME,
    section: "filters",
    work: n,
    "subscribe, ms": Math.round(subscribeMs),
    "heap grown, MiB": Number(mb(grown).toFixed(1)),
    "msg/s": Math.round(count / seconds),
  };
}

async function payloadSize(url: string, size: number): Promise<Row> {
  const topic = `scale/${crypto.randomUUID().slice(0, 8)}/payload`;
  // About 64 MiB of backlog (at most MESSAGES / 2 messages) for each reader, 3 rounds.
  const count = Math.min(MESSAGES / 2, Math.floor(64 * 2 ** 20 / size));
  const rawRuns: number[] = [], libRuns: number[] = [];
  for (let round = 0; round < 3; round++) {
    const [rawId, libId] = [`raw-${round}-${topic}`, `lib-${round}-${topic}`].map((id) =>
      id.replaceAll("/", "-")
    );
    await prefill(url, topic, [rawId, libId], payloads(count, size), 1);
    rawRuns.push(await drainRaw(url, rawId, count));
    const started = performance.now();
    const source = new MqttSource(
      `${url}?topic=${topic}&qos=1&clientId=${libId}&maxPacketSize=${Math.max(2 ** 20, size * 2)}`,
    );
    await readCount(source, count);
    libRuns.push(performance.now() - started);
    await source.cancel();
  }
  const [rawMs, libMs] = [median(rawRuns), median(libRuns)];
  const rate = (ms: number) => count / (ms / 1000);
  return {
    runtime: RUNTIME,
    section: "payloads",
    work: size,
    messages: count,
    "MqttSource msg/s": Math.round(rate(libMs)),
    "MqttSource MB/s": Number((rate(libMs) * size / 1e6).toFixed(1)),
    "raw mqtt.js MB/s": Number((rate(rawMs) * size / 1e6).toFixed(1)),
    "MqttSource ÷ raw": Number((rawMs / libMs).toFixed(2)),
  };
}

/** The charts of the results, by file name: a line for each runtime (and column). */
function charts(rows: Row[]): Record<string, LineChart> {
  const lines = (section: string, columns: string[]) => {
    const series = new Map<string, { x: number; y: number }[]>();
    for (const row of rows.filter((row) => row.section === section)) {
      for (const column of columns) {
        const name = columns.length > 1 ? `${column}, ${row.runtime}` : row.runtime;
        series.set(name, [...(series.get(name) ?? []), { x: row.work, y: Number(row[column]) }]);
      }
    }
    return series;
  };
  const runtime = (name: string) => name.split(", ").at(-1)!;
  const raw = (name: string) => name.startsWith("raw");
  return {
    "scale-sources.svg": {
      title: "Connecting n sources at once (each its own connection, QoS 1)",
      xLabel: "sources",
      yLabel: "connect + subscribe, ms",
      series: lines("sources", ["connect + subscribe, ms"]),
      group: runtime,
      baseline: raw,
    },
    "scale-filters.svg": {
      title: "One source subscribing to n filters",
      xLabel: "filters",
      yLabel: "subscribe, ms",
      series: lines("filters", ["subscribe, ms"]),
      group: runtime,
      baseline: raw,
    },
    "scale-payloads.svg": {
      title: "Draining a backlog: MB/s against payload size",
      xLabel: "payload, bytes",
      yLabel: "MB/s",
      series: lines("payloads", ["MqttSource MB/s", "raw mqtt.js MB/s"]),
      group: runtime,
      baseline: raw,
    },
  };
}

if (args.child) {
  const url = args.child;
  // Warm up (the library loaded, JIT, the broker's first client): not reported.
  await manySources(url, 1);
  for (const n of SOURCES) console.log(ROW + JSON.stringify(await manySources(url, n)));
  for (const n of FILTERS) console.log(ROW + JSON.stringify(await manyFilters(url, n)));
  for (const size of SIZES) console.log(ROW + JSON.stringify(await payloadSize(url, size)));
} else {
  // Lossless and roomy, as the main benchmark's; 1,000 clients need as many descriptors.
  await using broker = await startMosquitto({
    lines: ["max_queued_messages 0", "max_inflight_messages 60"],
  });
  const rows: Row[] = [];
  for (const runtime of args.runtimes.split(",")) {
    const script = fileURLToPath(import.meta.url);
    const childArgs = ["--child", broker.url, ...(args.quick ? ["--quick"] : [])];
    rows.push(...await runUnder<Row>(runtime.trim(), script, childArgs, ROW));
  }
  const markdown = ["sources", "filters", "payloads"].map((section) => {
    const mine = rows.filter((row) => row.section === section);
    const columns = Object.keys(mine[0] ?? {}).filter((key) => key !== "section");
    const names = columns.map((key) => key === "work" ? WORK[section] : key);
    return [
      `### ${section}`,
      "",
      `| ${names.join(" | ")} |`,
      `|${columns.map(() => "---").join("|")}|`,
      ...mine.map((row) => `| ${columns.map((key) => row[key]).join(" | ")} |`),
      "",
    ].join("\n");
  }).join("\n");
  console.log(markdown);
  if (args.out) {
    mkdirSync(args.out, { recursive: true });
    writeFileSync(join(args.out, "SCALE.md"), markdown);
    const drawn = charts(rows);
    for (const [file, chart] of Object.entries(drawn)) {
      writeFileSync(join(args.out, file), lineChart(chart));
    }
    console.log(`wrote SCALE.md and ${Object.keys(drawn).join(", ")} to ${args.out}`);
  }
}
