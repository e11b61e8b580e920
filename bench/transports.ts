// MQTT over WebSocket against MQTT over TCP, same broker, same run: an aedes in a Node
// process of its own serves both (bench/_aedes.mjs --ws). Two cases, QoS 1, 64 B:
// draining a persistent session through an MqttSource, and piping records into an
// MqttSink (window 60) until close() confirms them. Alternating, median of the rounds.
//
//   deno run -A bench/transports.ts [--quick] [--rounds 5]
//   bun bench/transports.ts
import { spawn } from "node:child_process";
import process from "node:process";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { MqttSink, MqttSource } from "../mod.ts";
import { alternate, median, rate, RUNTIME, timed } from "./_measure.ts";
import { payloads, prefill } from "./_raw.ts";

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: { quick: { type: "boolean", default: false }, rounds: { type: "string" } },
});
const COUNT = args.quick ? 500 : 20_000;
const ROUNDS = Number(args.rounds ?? (args.quick ? 1 : 5));
const records = payloads(COUNT, 64);

const child = spawn("node", [fileURLToPath(new URL("./_aedes.mjs", import.meta.url)), "--ws"], {
  stdio: ["pipe", "pipe", "inherit"],
});
const [tcp, ws] = await new Promise<string[]>((resolve, reject) => {
  let out = "";
  child.once("exit", (code) => reject(new Error(`aedes exited with ${code}`)));
  child.stdout!.on("data", (chunk) => {
    out += chunk;
    if (out.includes("\n")) resolve(out.trim().split(" "));
  });
});

let session = 0;
/** Fills a fresh session over TCP (untimed), then times an MqttSource draining it over `url`. */
async function drain(url: string): Promise<number> {
  const clientId = `bench-transport-${++session}`;
  const topic = `bench/transport/${session}`;
  await prefill(tcp, topic, [clientId], records, 1);
  const source = new MqttSource(`${url}?topic=${topic}&qos=1&clientId=${clientId}`);
  const ms = await timed(async () => {
    let read = 0;
    for await (const _ of source) if (++read === COUNT) break;
  });
  return rate(COUNT, ms);
}

/** Times records piped into an MqttSink over `url` until close() confirmed them all. */
async function publish(url: string): Promise<number> {
  const ms = await timed(() =>
    ReadableStream.from(records).pipeTo(
      new MqttSink(`${url}?topic=bench/transport/sink&qos=1&maxInflight=60`),
    )
  );
  return rate(COUNT, ms);
}

try {
  const runs = await alternate({
    "source tcp": () => drain(tcp),
    "source ws": () => drain(ws),
    "sink tcp": () => publish(tcp),
    "sink ws": () => publish(ws),
  }, ROUNDS);
  const k = (x: number) => `${Math.round(x / 1000)}k`;
  console.log(
    `\n${RUNTIME}, aedes 1.2 in its own Node process, ${
      COUNT.toLocaleString("en")
    } × 64 B QoS 1, median of ${ROUNDS}\n`,
  );
  console.log("| case | mqtt:// msg/s | ws:// msg/s | ws ÷ tcp |");
  console.log("| --- | --- | --- | --- |");
  for (const name of ["source", "sink"] as const) {
    const [a, b] = [median(runs[`${name} tcp`]), median(runs[`${name} ws`])];
    console.log(`| ${name} | ${k(a)} | ${k(b)} | ${(b / a).toFixed(2)} |`);
  }
} finally {
  child.stdin!.end();
  await new Promise((resolve) => child.once("exit", resolve));
}
