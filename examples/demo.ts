// The demo: an embedded aedes broker, simulated sensors publishing through an MqttSink,
// and one pipeline, MqttSource → route(schemas) → counts, that prints live per-route
// counts and rejects, then stops by itself after a few seconds with a summary.
// Run: npx --yes deno@2 task demo
import * as v from "valibot";
import { type MqttDeadLetter, type MqttRecord, MqttSink, MqttSource, route } from "../mod.ts";
import { embeddedBroker } from "./_embedded_broker.ts";

const SECONDS = 3;
const broker = await embeddedBroker();
const { url } = broker;

// Each kind of reading has its schema; the router checks every message against the one
// of the first filter its topic matches, and names the wildcards it matched.
const router = route({
  "sensors/+site/temperature": v.object({ celsius: v.pipe(v.number(), v.minValue(-60)) }),
  "sensors/+site/humidity": v.object({
    percent: v.pipe(v.number(), v.minValue(0), v.maxValue(100)),
  }),
  "sensors/+site/door": v.picklist(["open", "closed"]),
}, {
  // Rejected messages go to a stream of their own; an MqttSink there would republish them.
  onInvalid: new WritableStream<MqttDeadLetter>({
    write(letter) {
      const why = letter.issues[0].message.startsWith("no route") ? "no route" : "invalid";
      rejects.set(why, (rejects.get(why) ?? 0) + 1);
    },
  }),
});
const counts = new Map<string, number>();
const rejects = new Map<string, number>();
const source = new MqttSource(url, { topic: ["sensors/#"], qos: 1, clientId: "demo-pipeline" });
console.log(`broker ${url}; the pipeline subscribes to ${source.options.topic.join(", ")}`);
console.log(`routes: ${router.filters.join(", ")}`);

const stop = new AbortController();
const pipeline = (async () => {
  for await (const reading of source.pipeThrough(router, { signal: stop.signal })) {
    // `reading` is a union told apart by `route`; each branch has its schema's type.
    const key = reading.route === "sensors/+site/temperature"
      ? `temperature ${reading.value.celsius < 0 ? "below 0" : "0 and up"}`
      : reading.route === "sensors/+site/humidity"
      ? `humidity ${reading.value.percent > 60 ? "damp" : "dry"}`
      : `door ${reading.value}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
})().catch((error) => {
  if (!stop.signal.aborted) throw error;
});
await source.ready;

/** One simulated reading: mostly valid, now and then malformed or on a topic no route has. */
function reading(i: number): MqttRecord {
  const site = ["north", "south", "east"][i % 3];
  const roll = (i * 7919) % 100; // a fixed sequence, so every run counts the same
  if (roll < 4) return { topic: `sensors/${site}/temperature`, payload: '{"celsius":"hot"}' };
  if (roll < 7) return { topic: `sensors/${site}/pressure`, payload: '{"hPa":1013}' };
  if (roll < 45) {
    return {
      topic: `sensors/${site}/temperature`,
      payload: JSON.stringify({ celsius: roll - 25 }),
    };
  }
  if (roll < 85) {
    return { topic: `sensors/${site}/humidity`, payload: JSON.stringify({ percent: roll }) };
  }
  return { topic: `sensors/${site}/door`, payload: JSON.stringify(roll % 2 ? "open" : "closed") };
}

const sensors = new MqttSink(url, { qos: 1 });
const writer = sensors.getWriter();
const show = () =>
  `${[...counts].map(([k, n]) => `${k}: ${n}`).join(", ")} | rejects: ${
    [...rejects].map(([k, n]) => `${k} ${n}`).join(", ") || "none"
  }`;
const live = setInterval(() => console.log(`live  ${show()}`), 500);
let published = 0;
const until = Date.now() + SECONDS * 1000;
while (Date.now() < until) {
  for (let burst = 0; burst < 20; burst++) await writer.write(reading(published++));
  await new Promise((resolve) => setTimeout(resolve, 10));
}
await writer.close(); // resolves once the broker acknowledged every reading
const handled = () => [...counts.values(), ...rejects.values()].reduce((a, b) => a + b, 0);
for (let i = 0; i < 500 && handled() < published; i++) {
  await new Promise((resolve) => setTimeout(resolve, 10));
}
clearInterval(live);
stop.abort(); // cancels the source: it unsubscribes and disconnects
await pipeline;
console.log(`done  ${show()}`);
console.log(
  `summary: ${published} published, ${router.stats.passed} routed, ${router.stats.deadLettered} rejected, ${
    published - handled()
  } missing; sink ${JSON.stringify(sensors.stats)}`,
);
await broker.close();
