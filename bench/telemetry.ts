// What OpenTelemetry costs a source and a sink, on mosquitto over MQTT 5 (so that the trace
// context travels): raw mqtt.js, the library with telemetry=false, with no SDK registered
// (the default for most users: the API is a no-op), and with an SDK (metrics with an
// in-memory exporter, spans through a BatchSpanProcessor into an in-memory exporter).
// With --base DIR, the library at DIR (a checkout of an earlier commit) runs beside them:
// "today's" code, measured in the same run.
//
//   deno run -A bench/telemetry.ts [--quick] [--rounds 5] [--base /tmp/base]
//   bun bench/telemetry.ts
import process from "node:process";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import type { MeterProvider as ApiMeterProvider } from "@opentelemetry/api";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
} from "@opentelemetry/sdk-trace-base";
import * as library from "../mod.ts";
import { startMosquitto } from "../testing/broker.ts";
import { alternate, median, rate, RUNTIME, within } from "./_measure.ts";
import { drainRaw, payloads, prefill, publishWindowed } from "./_raw.ts";

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    base: { type: "string" },
  },
});
const COUNT = args.quick ? 2_000 : 50_000;
const ROUNDS = Number(args.rounds ?? (args.quick ? 1 : 7));
const WINDOW = 60;
const LIMIT = 120_000;
const records = payloads(COUNT, 64);

/** The library as an earlier commit has it, for "today's" figures. */
const base: typeof library | undefined = args.base
  ? await import(new URL(`file://${args.base}/mod.ts`).href)
  : undefined;

// The SDK, as an application in production sets it up: metrics exported every 10 s, spans
// batched. In-memory exporters, emptied after every run.
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const meterProvider = new MeterProvider({
  readers: [
    new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 10_000 }),
  ],
}) as ApiMeterProvider;
const spanExporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({
  // A queue that holds a whole run: at the default 2048 the processor drops spans past it,
  // and the cost of those would go unmeasured.
  spanProcessors: [new BatchSpanProcessor(spanExporter, { maxQueueSize: 131_072 })],
});
const sdk = { meterProvider, tracerProvider };
const spansSeen: number[] = [];
const afterRun = async () => {
  await tracerProvider.forceFlush();
  spansSeen.push(spanExporter.getFinishedSpans().length);
  spanExporter.reset();
  metricExporter.reset();
};

await using broker = await startMosquitto({
  lines: ["max_queued_messages 0", "max_inflight_messages 60"],
});
const url = `${broker.url}?mqttVersion=5`;
let sessions = 0;

type Init = Record<string, unknown>;
/** The variants of the library: which code, and which options. */
const VARIANTS: [string, typeof library, Init][] = [
  ...(base ? [[`before (${args.base})`, base, {}] as [string, typeof library, Init]] : []),
  ["telemetry=false", library, { telemetry: false }],
  ["no SDK (default)", library, {}],
  ["SDK: metrics", library, { meterProvider }],
  ["SDK: metrics + spans", library, sdk],
];

/** Drains a session prefilled with COUNT QoS 1 messages; messages a second. */
async function drainLibrary(lib: typeof library, init: Init): Promise<number> {
  const clientId = await filled();
  const started = performance.now();
  const source = new lib.MqttSource(url, {
    topic: "bench/in",
    clientId,
    qos: 1,
    maxInflight: WINDOW,
    ...init,
  });
  let received = 0;
  for await (const _ of source) if (++received === COUNT) break;
  return rate(COUNT, performance.now() - started);
}

/** A new persistent session (made over MQTT 3.1.1) holding COUNT QoS 1 messages. */
async function filled(): Promise<string> {
  const clientId = `telemetry-${sessions++}`;
  await prefill(broker.url, "bench/in", [clientId], records, 1);
  return clientId;
}

/** A raw MQTT 5 subscriber ('message' listener) resuming the session. */
async function drainBaseline(): Promise<number> {
  const clientId = await filled();
  return rate(
    COUNT,
    await drainRaw(broker.url, clientId, COUNT, {
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 0xffffffff, receiveMaximum: WINDOW },
    }),
  );
}

/** pipeTo(MqttSink), QoS 1, window 60, connect and close included; messages a second. */
async function publishLibrary(lib: typeof library, init: Init): Promise<number> {
  const started = performance.now();
  await ReadableStream.from(records).pipeTo(
    new lib.MqttSink(url, {
      topic: "bench/out",
      qos: 1,
      maxInflight: WINDOW,
      connectionCacheTimeout: 0,
      ...init,
    }),
  );
  return rate(COUNT, performance.now() - started);
}

async function publishBaseline(): Promise<number> {
  const started = performance.now();
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  await publishWindowed(client, "bench/out", records, 1, WINDOW);
  await client.endAsync();
  return rate(COUNT, performance.now() - started);
}

/** Runs each subject ROUNDS times, alternating, and prints a table. */
async function table(
  title: string,
  baseline: () => Promise<number>,
  run: (lib: typeof library, init: Init) => Promise<number>,
): Promise<void> {
  const subjects: Record<string, () => Promise<number>> = {
    "mqtt.js": () => within(baseline(), LIMIT, `${title}: mqtt.js`),
  };
  for (const [name, lib, init] of VARIANTS) {
    subjects[name] = async () => {
      const result = await within(run(lib, init), LIMIT, `${title}: ${name}`);
      await afterRun();
      return result;
    };
  }
  const runs = await alternate(subjects, ROUNDS);
  const raw = median(runs["mqtt.js"]);
  const off = median(runs["telemetry=false"]);
  console.log(`\n${RUNTIME}, mosquitto, MQTT 5: ${title}, median of ${ROUNDS} (min–max)\n`);
  console.log(
    "| who | msg/s | ÷ mqtt.js | ÷ telemetry=false | µs a message over telemetry=false |",
  );
  console.log("|---|---:|---:|---:|---:|");
  for (const [who, values] of Object.entries(runs)) {
    const m = median(values);
    const span = `${k(Math.min(...values))}–${k(Math.max(...values))}`;
    const cost = who === "mqtt.js" ? "" : (1e6 / m - 1e6 / off).toFixed(2);
    console.log(
      `| ${who} | ${k(m)} (${span}) | ${(m / raw).toFixed(2)} | ${
        (m / off).toFixed(2)
      } | ${cost} |`,
    );
  }
}

const k = (n: number) => `${(n / 1000).toFixed(1)}k`;

await table(
  `source, QoS 1, ${COUNT.toLocaleString("en")} × 64 B drained`,
  drainBaseline,
  drainLibrary,
);
await table(
  `sink, QoS 1, ${COUNT.toLocaleString("en")} × 64 B, window ${WINDOW}`,
  publishBaseline,
  publishLibrary,
);
const exported = spansSeen.filter((n) => n > 0);
console.log(
  `\nspans exported by the SDK runs: ${exported.map((n) => n.toLocaleString("en")).join(", ")} ` +
    `(one a message: a span per publish and per message received)`,
);
await tracerProvider.shutdown();
await (meterProvider as MeterProvider).shutdown();
