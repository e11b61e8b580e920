// Every measurement, in one runtime, against brokers someone else started (bench/main.ts
// starts them and runs this file under Deno, Bun and Node). Prints one RESULT line (JSON)
// per figure.
//
//   deno run -A bench/suite.ts --mosquitto mqtt://127.0.0.1:1883 [--aedes URL] [--quick]
//     [--rounds 3] [--scale 1] [--raw-only] [--native]
//     [--only source,floor,sink,persistence,bridge,sweep,latency,memory]
//
// --raw-only measures only the baselines, raw mqtt.js and the peers of _peers.ts (how Node
// runs it); --native adds mosquitto_sub / mosquitto_pub beside them (once per run of main.ts,
// not per runtime).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import type { MqttMessage, MqttOptions, MqttRecord } from "../mod.ts";
import { alternate, rate, report, type Result, RUNTIME, timed, within } from "./_measure.ts";
import { drainNative, publishNative } from "./_native.ts";
import * as raw from "./_raw.ts";
import type { QoS } from "./_raw.ts";
import { latencyRun, memoryRun, rawSubscribe, sourceSubscribe, type Subscribe } from "./_probes.ts";
import { emitCannot, PEERS, peersFor } from "./_peers.ts";

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    mosquitto: { type: "string" },
    aedes: { type: "string" },
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    "raw-only": { type: "boolean", default: false },
    native: { type: "boolean", default: false },
    only: { type: "string" },
    scale: { type: "string" },
  },
});

const quick = args.quick;
/** --scale F: every full-run message count times F, for a shorter run (the docs say which). */
const SCALE = Number(args.scale ?? 1);
const n = (count: number) => Math.max(1, Math.round(count * SCALE));
/** Workload sizes: the figures, or small ones that only prove the harness runs. */
const SIZE = quick
  ? {
    source: [
      { count: 2_000, size: 64, qos: [0, 1, 2] },
      { count: 200, size: 4096, qos: [0, 1, 2] },
    ],
    sink: 2_000,
    persistence: 2_000,
    bridge: 1_000,
    latency: { rate: 500, seconds: 1 },
    memory: 5_000,
    sweep: 500,
  }
  : {
    // mosquitto 2.0.11 drains a QoS 2 backlog in a time that grows with its square
    // (measured: 20,000 at 14,800 msg/s, 50,000 at 4,200 msg/s, the broker at 100% CPU),
    // so the QoS 2 drain of 64-byte messages is 20,000 long.
    source: [
      { count: n(100_000), size: 64, qos: [0, 1] },
      { count: n(20_000), size: 64, qos: [2] },
      // 30,000: a 4 KiB drain of 10,000 was over in 35 ms, too short to measure.
      { count: n(30_000), size: 4096, qos: [0, 1] },
      { count: n(10_000), size: 4096, qos: [2] },
    ],
    sink: n(50_000),
    persistence: n(20_000),
    bridge: n(50_000),
    latency: { rate: 2_000, seconds: 5 },
    memory: n(100_000),
    sweep: n(10_000),
  };
const ROUNDS = Number(args.rounds ?? (quick ? 1 : 3));
const WARM_UP = !quick;
const WINDOW = 60;
const SWEEP = [1, 10, 60, 256];
const BRIDGE_WINDOWS = [10, 60, 256];
/** No single run may take longer: a stalled client fails the benchmark instead of hanging it. */
const RUN_LIMIT = Number(process.env.BENCH_RUN_LIMIT ?? 120_000);
const rawOnly = args["raw-only"];
/** The library, loaded only when it is measured (Node runs the raw baselines alone). */
let lib: typeof import("../mod.ts") | undefined;

const LIBRARY = { source: "MqttSource", sink: "MqttSink", bridge: "MqttSource → MqttSink" };

const fmt = (n: number) => n.toLocaleString("en-US");
const bytes = (size: number) => (size >= 1024 ? `${size / 1024} KiB` : `${size} B`);
let unique = 0;
/** A fresh name, so no run meets another's session or messages. */
const fresh = (what: string) => `bench_${what}_${process.pid}_${unique++}`;

/** What is being measured, for the progress line and the timeout's message. */
let current = "";

function begin(what: string) {
  current = what;
  console.error(`${RUNTIME}: ${what}`);
}

/** A fresh session name for each run of `rounds` (and the warm-up): a drain uses one up. */
function sessions(rounds: number, who: string): string[] {
  return Array.from({ length: rounds + (WARM_UP ? 1 : 0) }, () => fresh(who));
}

function emit(
  section: Result["section"],
  broker: string,
  what: string,
  runs: Record<string, number[]>,
  unit: Result["unit"] = "msg/s",
  x?: number,
) {
  for (const [who, values] of Object.entries(runs)) {
    // The C clients are no runtime's: a row of their own.
    const runtime = who.startsWith("mosquitto_") ? "C (mosquitto-clients)" : RUNTIME;
    report({ section, broker, runtime, case: what, who, unit, runs: values, x });
  }
}

/** for await over MqttSource against a raw 'message' listener, both draining a full session. */
async function source(broker: string, url: string) {
  for (const { count, size, qos: levels } of SIZE.source) {
    for (const qos of levels as QoS[]) {
      // aedes 1.x keeps no QoS 0 message for an offline session, so there is nothing to
      // drain; and of the QoS 2 messages it queued it never delivers the first (measured:
      // 1,999 of 2,000 to raw mqtt.js and MqttSource alike), so a drain cannot complete.
      if (broker === "aedes" && qos !== 1) continue;
      const what = `QoS ${qos}, ${fmt(count)} × ${bytes(size)}`;
      begin(`${broker} source ${what}`);
      const topic = fresh("source");
      const peers = peersFor("source", qos);
      // A drain shorter than ~0.3 s (every one at QoS 0) is at the mercy of one GC pause:
      // more rounds.
      const rounds = count * size < 5_000_000 || qos !== 1 ? ROUNDS * 2 + 1 : ROUNDS;
      const ids: Record<string, string[]> = { raw: sessions(rounds, "raw") };
      if (lib) ids.lib = sessions(rounds, "lib");
      if (args.native) ids.native = sessions(rounds, "native");
      for (const peer of peers) ids[peer.name] = sessions(rounds, peer.name);
      await prefill(url, topic, Object.values(ids).flat(), raw.payloads(count, size), qos);
      const subjects: Record<string, () => Promise<number>> = {
        "mqtt.js": () => bounded(() => raw.drainRaw(url, ids.raw.shift()!, count)),
      };
      if (lib) {
        subjects[LIBRARY.source] = () =>
          bounded(() => drainSource(url, ids.lib.shift()!, topic, count, qos));
      }
      if (args.native) {
        subjects.mosquitto_sub = () =>
          bounded(() => drainNative(url, ids.native.shift()!, topic, count, qos));
      }
      for (const peer of peers) {
        subjects[peer.name] = () =>
          bounded(() => peer.drain(url, ids[peer.name].shift()!, topic, count, qos));
      }
      const runs = await alternate(toRates(subjects, count), rounds, WARM_UP);
      emit("source", broker, what, runs);
      emitCannot("source", broker, what, qos);
    }
  }
}

function prefill(url: string, topic: string, ids: string[], records: Uint8Array[], qos: QoS) {
  return within(raw.prefill(url, topic, ids, records, qos), RUN_LIMIT * 5, `filling ${topic}`);
}

async function drainSource(
  url: string,
  clientId: string,
  topic: string,
  count: number,
  qos: QoS,
): Promise<number> {
  const started = performance.now();
  // "block": a lossless comparison; raw mqtt.js drops nothing either.
  const stream = new lib!.MqttSource(url, { topic, clientId, qos, qos0Overflow: "block" });
  let received = 0;
  for await (const _ of stream) if (++received === count) break;
  return performance.now() - started;
}

/**
 * The floor under any source: `for await` over a ReadableStream (highWaterMark 60) of
 * messages that already exist, no MQTT at all. What a message costs here, a source pays on
 * top of what mqtt.js costs.
 */
async function floor() {
  if (!lib) return;
  const count = SIZE.source[0].count;
  const message = new lib.MqttMessage("bench/floor", new Uint8Array(64));
  const run = async () => {
    let left = count;
    const stream = new ReadableStream<unknown>({
      pull(controller) {
        for (let i = 0; i < 30 && left > 0; i++, left--) controller.enqueue(message);
        if (left === 0) controller.close();
      },
    }, { highWaterMark: 60 });
    const started = performance.now();
    for await (const _ of stream) { /* read only */ }
    return rate(count, performance.now() - started);
  };
  const runs = await alternate({ "for await over a ReadableStream": run }, ROUNDS * 2 + 1, WARM_UP);
  emit("floor", "none", `${fmt(count)} messages, no MQTT`, runs);
}

/** pipeTo(MqttSink) against raw mqtt.js with the same window, and a serial publishAsync loop. */
async function sink(broker: string, url: string) {
  const count = SIZE.sink;
  const records = raw.payloads(count, 64);
  // The serial loop is slow; its rate is measured on a fifth of the records.
  const few = records.slice(0, Math.ceil(count / 5));
  const client = await raw.connect(url);
  try {
    for (const qos of [0, 1, 2] as const) {
      begin(`${broker} sink QoS ${qos}`);
      const topic = fresh("sink");
      const what = `QoS ${qos}, ${fmt(count)} × 64 B, window ${WINDOW}`;
      const subjects: Record<string, () => Promise<number>> = {
        // Connect, publish, confirm and close, as pipeTo(MqttSink) does.
        "mqtt.js": () =>
          timedRate(
            count,
            () => raw.session(url, (c) => raw.publishWindowed(c, topic, records, qos, WINDOW)),
          ),
        "mqtt.js serial": () =>
          timedRate(few.length, () => raw.publishSerial(client, topic, few, qos)),
      };
      if (lib) {
        subjects[LIBRARY.sink] = () =>
          timedRate(count, () => pipeToSink(url, topic, records, qos, WINDOW));
      }
      if (args.native) {
        subjects.mosquitto_pub = () =>
          bounded(async () => rate(count, await publishNative(url, topic, count, 64, qos)));
      }
      for (const peer of peersFor("sink", qos)) {
        subjects[peer.name] = () =>
          timedRate(count, () => peer.publish(url, topic, records, qos, WINDOW));
      }
      // A QoS 0 run is over in about 0.15 s: more rounds, as for a short drain.
      const runs = await alternate(subjects, qos === 0 ? ROUNDS * 2 + 1 : ROUNDS, WARM_UP);
      emit("sink", broker, what, runs);
      emitCannot("sink", broker, what, qos);
    }
  } finally {
    await client.endAsync();
  }
}

function pipeToSink(url: string, topic: string, records: Uint8Array[], qos: QoS, window: number) {
  return ReadableStream.from(records).pipeTo(
    new lib!.MqttSink(url, { topic, qos, maxInflight: window }),
  );
}

/**
 * The cost of the file store: pipeTo(MqttSink) with persistence=memory against
 * persistence=file (fsync=batch, the default: each write resolves once its publish is
 * written to the log) and fsync=always (once an fdatasync covered it), QoS 1.
 */
async function persistence(broker: string, url: string) {
  if (!lib) return;
  begin(`${broker} persistence`);
  const records = raw.payloads(SIZE.persistence, 64);
  const folder = mkdtempSync(join(tmpdir(), "mqtt-streams-bench-"));
  const run = (store: Partial<MqttOptions>) => () => {
    const clientId = fresh("persist");
    const sink = new lib!.MqttSink(url, {
      topic: fresh("persist"),
      qos: 1,
      maxInflight: WINDOW,
      clientId,
      cleanSession: true,
      connectionCacheTimeout: 0,
      ...store,
      ...(store.persistence === "file" ? { localStorage: join(folder, clientId) } : {}),
    });
    return timedRate(records.length, () => ReadableStream.from(records).pipeTo(sink));
  };
  try {
    const runs = await alternate(
      {
        "persistence=memory": run({ persistence: "memory" }),
        "persistence=file": run({ persistence: "file" }),
        "persistence=file, fsync=always": run({ persistence: "file", fsync: "always" }),
      },
      ROUNDS,
      WARM_UP,
    );
    emit(
      "persistence",
      broker,
      `QoS 1, ${fmt(records.length)} × 64 B, window ${WINDOW}, each store`,
      runs,
    );
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

/** Throughput of the sink (and of raw mqtt.js with the same window) against maxInflight. */
async function sweep(broker: string, url: string) {
  const records = raw.payloads(SIZE.sweep, 64);
  const client = await raw.connect(url);
  try {
    for (const window of SWEEP) {
      begin(`${broker} sweep maxInflight ${window}`);
      const topic = fresh("sweep");
      const subjects: Record<string, () => Promise<number>> = {
        "mqtt.js": () =>
          timedRate(records.length, () => raw.publishWindowed(client, topic, records, 1, window)),
      };
      if (lib) {
        subjects[LIBRARY.sink] = () =>
          timedRate(records.length, () => pipeToSink(url, topic, records, 1, window));
      }
      const runs = await alternate(subjects, ROUNDS, WARM_UP);
      emit("sweep", broker, `QoS 1, ${fmt(records.length)} × 64 B`, runs, "msg/s", window);
    }
  } finally {
    await client.endAsync();
  }
}

/**
 * source → TransformStream → sink against a raw subscriber republishing through a raw
 * client, with the library's maxInflight at 10, 60 (the default) and 256; the raw bridge
 * has no window of its own and is measured beside each.
 */
async function bridge(broker: string, url: string) {
  for (const window of quick ? [WINDOW] : BRIDGE_WINDOWS) {
    begin(`${broker} bridge, maxInflight ${window}`);
    const count = SIZE.bridge;
    const qos = 1;
    const topic = fresh("bridge");
    const to = `${topic}/out`;
    const ids: Record<string, string[]> = { raw: sessions(ROUNDS, "bridge") };
    if (lib) ids.lib = sessions(ROUNDS, "bridge");
    await prefill(url, topic, Object.values(ids).flat(), raw.payloads(count, 64), qos);
    const publisher = await raw.connect(url);
    try {
      const subjects: Record<string, () => Promise<number>> = {
        "mqtt.js": () =>
          bounded(() => raw.bridgeRaw(url, ids.raw.shift()!, publisher, to, count, qos)),
      };
      if (lib) {
        subjects[LIBRARY.bridge] = () =>
          bounded(() => bridgeLibrary(url, ids.lib.shift()!, topic, to, count, qos, window));
      }
      const runs = await alternate(toRates(subjects, count), ROUNDS, WARM_UP);
      const what = `QoS ${qos}, ${fmt(count)} × 64 B, ack=manual, maxInflight ${window}`;
      emit("bridge", broker, window === WINDOW ? `${what} (default)` : what, runs);
    } finally {
      await publisher.endAsync();
    }
  }
}

async function bridgeLibrary(
  url: string,
  clientId: string,
  from: string,
  to: string,
  count: number,
  qos: QoS,
  maxInflight: number,
): Promise<number> {
  const started = performance.now();
  const stream = new lib!.MqttSource(url, {
    topic: from,
    clientId,
    qos,
    ack: "manual",
    maxInflight,
  });
  let moved = 0;
  const rewrite = new TransformStream<MqttMessage, MqttRecord>({
    transform(message, controller) {
      controller.enqueue({ topic: to, payload: message.payload, qos, ack: () => message.ack() });
      if (++moved === count) controller.terminate();
    },
  });
  await stream.pipeThrough(rewrite).pipeTo(new lib!.MqttSink(url, { topic: to, qos, maxInflight }));
  return performance.now() - started;
}

/** p50 / p99 / max from publish to the consumer at a fixed rate, QoS 1. */
async function latency(broker: string, url: string) {
  begin(`${broker} latency`);
  const { rate: perSecond, seconds } = SIZE.latency;
  const consumers: Record<string, Subscribe> = { "mqtt.js": rawSubscribe };
  if (lib) consumers[LIBRARY.source] = sourceSubscribe(lib, perSecond * seconds);
  for (const peer of PEERS) consumers[peer.name] = peer.subscribe;
  const whos = Object.keys(consumers);
  const runs: Record<string, Record<"p50" | "p99" | "max", number[]>> = {};
  for (const who of whos) runs[who] = { p50: [], p99: [], max: [] };
  const subjects = Object.fromEntries(whos.map((who) => [who, async () => {
    const samples = await within(
      latencyRun(url, consumers[who], perSecond, seconds, fresh("latency")),
      seconds * 1000 + RUN_LIMIT,
      `latency of ${who}`,
    );
    samples.sort((a, b) => a - b);
    runs[who].p50.push(samples[Math.floor(samples.length * 0.5)]);
    runs[who].p99.push(samples[Math.floor(samples.length * 0.99)]);
    runs[who].max.push(samples[samples.length - 1]);
    return 0;
  }]));
  await alternate(subjects, ROUNDS, false);
  const what = `QoS 1, ${fmt(perSecond)} msg/s for ${seconds} s`;
  for (const stat of ["p50", "p99", "max"] as const) {
    emit(
      "latency",
      broker,
      `${what}: ${stat}`,
      Object.fromEntries(whos.map((who) => [who, runs[who][stat]])),
      "ms",
    );
  }
}

/** Peak RSS growth of a process that subscribes and reads nothing, against a naive queue. */
async function memory(broker: string, url: string) {
  begin(`${broker} memory`);
  const count = SIZE.memory;
  const runs: Record<string, number[]> = { "mqtt.js + array queue": [] };
  if (lib) runs[LIBRARY.source] = [];
  for (const who of Object.keys(runs)) {
    const growth = await within(
      memoryRun(url, who === LIBRARY.source ? "source" : "naive", count, fresh("memory"), quick),
      RUN_LIMIT,
      `memory of ${who}`,
    );
    runs[who].push(growth);
  }
  emit("memory", broker, `QoS 1, ${fmt(count)} × 64 B, nothing read`, runs, "MB");
}

function bounded<T>(run: () => Promise<T>): Promise<T> {
  return within(run(), RUN_LIMIT, `${RUNTIME}: a run of ${current}`);
}

function timedRate(count: number, run: () => Promise<unknown>): Promise<number> {
  return bounded(async () => rate(count, await timed(run)));
}

function toRates(
  subjects: Record<string, () => Promise<number>>,
  count: number,
): Record<string, () => Promise<number>> {
  return Object.fromEntries(
    Object.entries(subjects).map(([who, run]) => [who, async () => rate(count, await run())]),
  );
}

// A function, not top-level await: tsx runs this file as CommonJS under Node.
async function main() {
  if (!rawOnly) lib = await import("../mod.ts");
  const brokers: [string, string][] = [];
  if (args.mosquitto) brokers.push(["mosquitto", args.mosquitto]);
  if (args.aedes) brokers.push(["aedes", args.aedes]);
  if (brokers.length === 0) throw new Error("give --mosquitto URL and/or --aedes URL");
  const SECTIONS = { source, floor, sink, persistence, bridge, sweep, latency, memory };
  /** Persistence, sweep, latency and memory on the primary broker only: it bounds the run. */
  const EVERYWHERE = ["source", "sink", "bridge"];
  const only = args.only?.split(",") ?? Object.keys(SECTIONS);
  for (const [broker, url] of brokers) {
    for (const [name, measure] of Object.entries(SECTIONS)) {
      if (!only.includes(name)) continue;
      if (broker === "mosquitto" || EVERYWHERE.includes(name)) await measure(broker, url);
    }
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
