// The transforms' cost, without a broker: how many messages a second go through each
// transform in memory, against an identity TransformStream measured in the same run (the
// cost of a pipeThrough by itself). A broker delivers tens of thousands of messages a
// second (docs/performance.md), so these say whether a pipeline stage can keep up.
//
// With --broker it also drains a mosquitto session of 100,000 QoS 1 readings through an
// MqttSource alone and through MqttSource → route(), alternating, on the same broker.
//
//   deno run -A bench/transforms.ts [--quick] [--rounds 5] [--broker]
//   bun bench/transforms.ts
import process from "node:process";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import * as v from "valibot";
import { decodeJson, merge, MqttMessage, MqttSource, route, toRecord, validate } from "../mod.ts";
import { startMosquitto } from "../testing/broker.ts";
import { RUNTIME } from "./_measure.ts";
import { publishWindowed } from "./_raw.ts";

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    broker: { type: "boolean", default: false },
  },
});
const COUNT = args.quick ? 2_000 : 200_000;
const ROUNDS = Number(args.rounds ?? (args.quick ? 1 : 5));

const encoder = new TextEncoder();
const sites = ["north", "south", "east", "west"];
/** The same messages for every case: temperature and humidity readings, all valid. */
const messages = Array.from({ length: COUNT }, (_, i) =>
  i % 2 === 0
    ? new MqttMessage(
      `sensors/${sites[i % 4]}/temperature`,
      encoder.encode(JSON.stringify({ celsius: i % 40, at: i })),
    )
    : new MqttMessage(
      `sensors/${sites[i % 4]}/humidity`,
      encoder.encode(JSON.stringify({ percent: i % 100, at: i })),
    ));
const Temperature = v.object({ celsius: v.number(), at: v.number() });
const Humidity = v.object({
  percent: v.pipe(v.number(), v.minValue(0), v.maxValue(100)),
  at: v.number(),
});
const routes = {
  "sensors/+site/temperature": Temperature,
  "sensors/+site/humidity": Humidity,
  "sensors/+site/door": v.picklist(["open", "closed"]),
};

/** A stream of the messages that queues nothing ahead of its reader. */
const input = (from = messages) => {
  let i = 0;
  return new ReadableStream<MqttMessage>({
    pull(controller) {
      if (i === from.length) controller.close();
      else controller.enqueue(from[i++]);
    },
  }, { highWaterMark: 0 });
};

const CASES: Record<string, () => ReadableStream<unknown>> = {
  "identity TransformStream (baseline)": () => input().pipeThrough(new TransformStream()),
  "TransformStream enqueueing each": () =>
    input().pipeThrough(new TransformStream({ transform: (m, out) => out.enqueue(m) })),
  "decodeJson()": () => input().pipeThrough(decodeJson()),
  "validate(valibot object)": () => input().pipeThrough(validate(v.union([Temperature, Humidity]))),
  "route(3 filters, valibot)": () => input().pipeThrough(route(routes)),
  "route + toRecord": () =>
    input().pipeThrough(route(routes)).pipeThrough(
      toRecord((r) => ({ topic: `out/${r.params.site}`, payload: r.message.payload })),
    ),
  "merge(2 sources)": () =>
    merge({
      a: input(messages.slice(0, COUNT / 2)),
      b: input(messages.slice(COUNT / 2)),
    }),
};

async function measure(make: () => ReadableStream<unknown>): Promise<number> {
  const started = performance.now();
  let n = 0;
  const reader = make().getReader();
  for (let i = 0; i <= COUNT; i++) {
    const { done } = await reader.read();
    if (done) break;
    n++;
  }
  if (n !== COUNT) throw new Error(`expected ${COUNT} messages, got ${n}`);
  return COUNT / ((performance.now() - started) / 1000);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
const runs = new Map<string, number[]>(Object.keys(CASES).map((name) => [name, []]));
await measure(CASES["route(3 filters, valibot)"]); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  // The cases take turns, in reverse order every other round, so drift hits them all.
  const names = round % 2 ? Object.keys(CASES).reverse() : Object.keys(CASES);
  for (const name of names) runs.get(name)!.push(await measure(CASES[name]));
}
const baseline = median(runs.get("identity TransformStream (baseline)")!);
console.log(`\n${RUNTIME}: ${COUNT} messages a run, median of ${ROUNDS} runs\n`);
console.log("| stage | msg/s | ÷ identity |");
console.log("|---|---:|---:|");
for (const [name, values] of runs) {
  const rate = median(values);
  console.log(
    `| ${name} | ${Math.round(rate).toLocaleString("en")} | ${(rate / baseline).toFixed(2)} |`,
  );
}

if (args.broker) {
  const DRAIN = args.quick ? 2_000 : 100_000;
  await using broker = await startMosquitto({
    lines: ["max_queued_messages 0", "max_inflight_messages 60"],
  });
  const session = `${broker.url}?topic=sensors/%23&qos=1&clientId=bench-drain&maxInflight=60`;
  /** Fills the session (the source subscribed once, then left) with DRAIN readings. */
  const fill = async () => {
    const publisher = await mqtt.connectAsync(broker.url);
    await publishWindowed(
      publisher,
      "sensors/north/temperature",
      messages.slice(0, DRAIN).filter((_, i) => i % 2 === 0).map((m) => m.payload),
      1,
      50,
    );
    await publishWindowed(
      publisher,
      "sensors/south/humidity",
      messages.slice(0, DRAIN).filter((_, i) => i % 2 === 1).map((m) => m.payload),
      1,
      50,
    );
    await publisher.endAsync();
  };
  const drain = async (make: (source: MqttSource) => ReadableStream<unknown>) => {
    await fill();
    const started = performance.now();
    const source = new MqttSource(session);
    const reader = make(source).getReader();
    for (let i = 0; i < DRAIN; i++) await reader.read();
    const rate = DRAIN / ((performance.now() - started) / 1000);
    await reader.cancel();
    return rate;
  };
  const subscriber = new MqttSource(session); // makes the persistent session, subscribed
  await subscriber.ready;
  await subscriber.cancel();
  const alone: number[] = [];
  const routed: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const pair = [
      async () => alone.push(await drain((source) => source)),
      async () => routed.push(await drain((source) => source.pipeThrough(route(routes)))),
    ];
    for (const run of round % 2 ? pair.reverse() : pair) await run();
  }
  console.log(`\nmosquitto, ${DRAIN} QoS 1 readings drained from a session, median of ${ROUNDS}\n`);
  console.log("| pipeline | msg/s | ÷ source alone |");
  console.log("|---|---:|---:|");
  console.log(`| MqttSource | ${Math.round(median(alone)).toLocaleString("en")} | 1.00 |`);
  console.log(
    `| MqttSource → route() | ${Math.round(median(routed)).toLocaleString("en")} | ${
      (median(routed) / median(alone)).toFixed(2)
    } |`,
  );
}
