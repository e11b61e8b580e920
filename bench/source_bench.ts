// MqttSource against a raw mqtt.js subscriber, same broker, same run.
//
//   deno task bench            (or: npx --yes bun@1 bench/source_bench.ts)
//
// Throughput: N messages wait in a persistent session on mosquitto (or aedes when
// mosquitto is missing); the clock runs from connect to the last message, so the
// publisher does not compete for the CPU. Rounds alternate raw / source; the median is
// reported, and the ratio source ÷ raw (1.0 = as fast as raw mqtt.js).
//
// Memory: a child process subscribes and reads nothing while 100,000 QoS 1 messages are
// published; it reports its peak RSS growth over the RSS it had once subscribed.
import mqtt from "mqtt";
import process from "node:process";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { MqttSource } from "../mod.ts";
import { hasMosquitto, startMosquitto, type TestBroker } from "../tests/_broker.ts";

const N = Number(process.env.BENCH_MESSAGES ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const MEMORY_MESSAGES = Number(process.env.BENCH_MEMORY_MESSAGES ?? 100_000);
const runtime = typeof Deno === "object"
  ? `Deno ${Deno.version.deno}`
  : `Bun ${process.versions.bun}`;

async function main() {
  if (!hasMosquitto) {
    throw new Error(
      "the benchmark needs mosquitto and mosquitto_pub (apt-get install mosquitto mosquitto-clients)",
    );
  }
  const broker: TestBroker = await startMosquitto({
    lines: ["max_queued_messages 0", "queue_qos0_messages true", "max_inflight_messages 60"],
  });
  const name = "mosquitto 2 (separate process), published by mosquitto_pub";
  console.log(`${runtime}, broker: ${name}, ${N} messages, median of ${ROUNDS} rounds\n`);
  try {
    for (const qos of [0, 1] as const) {
      const times: Record<"raw" | "source", number[]> = { raw: [], source: [] };
      for (let round = 0; round < ROUNDS; round++) {
        for (const who of ["raw", "source"] as const) {
          const clientId = `bench_${who}_${qos}_${round}`;
          await prepare(broker.url, clientId, qos);
          times[who].push(
            who === "raw"
              ? await drainRaw(broker.url, clientId)
              : await drainSource(broker.url, clientId, qos),
          );
        }
      }
      const raw = median(times.raw);
      const source = median(times.source);
      console.log(
        `QoS ${qos}: raw mqtt.js ${rate(raw)} msg/s, MqttSource ${rate(source)} msg/s, ratio ${
          (raw / source).toFixed(3)
        } (runs ms raw ${times.raw.map(Math.round)}, source ${times.source.map(Math.round)})`,
      );
    }
    await memory(broker.url);
  } finally {
    await broker.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rate = (ms: number) => Math.round(N / (ms / 1000));

/** One line per message for mosquitto_pub -l: a 64-byte payload each. */
const LINE = "x".repeat(64);

/**
 * Creates the persistent session and fills it with N messages. mosquitto_pub
 * publishes them (one per line of stdin), when it is installed: mqtt.js publishing tens of
 * thousands of messages in a row stalled here on Deno and Bun alike (not investigated).
 */
async function prepare(url: string, clientId: string, qos: 0 | 1) {
  const topic = `bench/${clientId}`;
  const subscriber = await mqtt.connectAsync(url, { clientId, clean: false });
  await subscriber.subscribeAsync(topic, { qos });
  await subscriber.endAsync();
  await publish(url, topic, N);
}

/** Publishes `count` 64-byte QoS 1 messages to `topic`. */
async function publish(url: string, topic: string, count: number) {
  const { port } = new URL(url);
  const child = spawn("mosquitto_pub", [
    "-h",
    "127.0.0.1",
    "-p",
    port,
    "-t",
    topic,
    "-q",
    "1",
    "-l",
  ], {
    stdio: ["pipe", "ignore", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  for (let i = 0; i < count; i += 1000) {
    const lines = `${LINE}\n`.repeat(Math.min(1000, count - i));
    if (!child.stdin!.write(lines)) {
      await new Promise((resolve) => child.stdin!.once("drain", resolve));
    }
  }
  child.stdin!.end();
  if ((await exited) !== 0) throw new Error("mosquitto_pub failed");
}

async function drainRaw(url: string, clientId: string): Promise<number> {
  const started = performance.now();
  const client = mqtt.connect(url, { clientId, clean: false });
  let count = 0;
  await new Promise<void>((resolve) =>
    client.on("message", (_topic, payload) => {
      if (payload.length === 64 && ++count === N) resolve();
    })
  );
  const elapsed = performance.now() - started;
  await client.endAsync();
  return elapsed;
}

async function drainSource(url: string, clientId: string, qos: 0 | 1): Promise<number> {
  const started = performance.now();
  const source = new MqttSource(url, {
    topic: `bench/${clientId}`,
    clientId,
    qos,
    qos0Overflow: "block",
  });
  let count = 0;
  for await (const message of source) {
    if (message.payload.length === 64 && ++count === N) break;
  }
  return performance.now() - started;
}

async function memory(url: string) {
  const args = typeof Deno === "object"
    ? ["run", "-A", fileURLToPath(import.meta.url), "--memory-child", url]
    : [fileURLToPath(import.meta.url), "--memory-child", url];
  const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (chunk) => (out += chunk));
  await new Promise<void>((resolve) => {
    const check = () => (out.includes("ready") ? resolve() : setTimeout(check, 20));
    check();
  });
  await publish(url, "memory", MEMORY_MESSAGES);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  child.stdin!.end();
  await new Promise((resolve) => child.once("exit", resolve));
  const { baseline, peak, stats } = JSON.parse(out.slice(out.indexOf("{")));
  console.log(
    `\nMemory: ${MEMORY_MESSAGES} QoS 1 messages published to a source that reads nothing: peak RSS growth ${
      ((peak - baseline) / 2 ** 20).toFixed(1)
    } MB (baseline ${(baseline / 2 ** 20).toFixed(1)} MB); source stats ${JSON.stringify(stats)}`,
  );
}

async function memoryChild(url: string) {
  const source = new MqttSource(url, { topic: "memory", qos: 1, clientId: "bench_memory" });
  await source.ready;
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  console.log("ready");
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once("end", resolve));
  clearInterval(sampler);
  console.log(JSON.stringify({ baseline, peak, stats: { ...source.stats } }));
  await source.cancel();
}

if (process.argv.includes("--memory-child")) await memoryChild(process.argv.at(-1)!);
else await main();
