// Many sources, each with its own schema, through one tagged pipeline: the Bahir
// connector's best practice 2. Two plants publish on their own brokers in their own formats; one process
// merges them (each message tagged with its plant), routes each kind of reading to its
// schema, dead-letters what fails, and publishes one normalized stream to a hub broker,
// where every record carries its source in its topic: pipeline/{plant}/{kind}/{site}.
// Run: npx --yes deno@2 run --allow-net=127.0.0.1 --allow-env --allow-sys --allow-read examples/multiplex.ts
import * as v from "valibot";
import { merge, MqttSink, MqttSource, route, toRecord } from "../mod.ts";
import { embeddedBroker } from "./_embedded_broker.ts";

const [north, south, hub] = [
  await embeddedBroker(),
  await embeddedBroker(),
  await embeddedBroker(),
];
try {
  // The plants' own formats: north reports Celsius and ppm, south Fahrenheit.
  const router = route({
    "north/+site/temp": v.object({ c: v.number() }),
    "north/+site/co2": v.object({ ppm: v.pipe(v.number(), v.integer()) }),
    "south/+site/temperature": v.object({ fahrenheit: v.number() }),
  }, { onInvalid: new MqttSink(`${hub.url}?topic=pipeline/dead-letters&qos=1`) });
  const sources = {
    north: new MqttSource(`${north.url}?topic=north/%23&qos=1&clientId=mux-north&ack=manual`),
    south: new MqttSource(`${south.url}?topic=south/%23&qos=1&clientId=mux-south&ack=manual`),
  };
  const hubReader = new MqttSource(`${hub.url}?topic=pipeline/%23&qos=1`);
  await Promise.all([sources.north.ready, sources.south.ready, hubReader.ready]);

  const stop = new AbortController();
  const piping = merge(sources)
    .pipeThrough(router)
    .pipeThrough(toRecord((r) => {
      // One shape downstream, whatever the source's: the branch's type says which.
      const [kind, value] = r.route === "north/+site/temp"
        ? ["temperature", r.value.c]
        : r.route === "north/+site/co2"
        ? ["co2", r.value.ppm]
        : ["temperature", Math.round((r.value.fahrenheit - 32) * 5 / 9 * 10) / 10];
      return {
        topic: `pipeline/${r.source}/${kind}/${r.params.site}`,
        payload: JSON.stringify({ source: r.source, site: r.params.site, kind, value }),
        qos: 1,
      };
    }))
    .pipeTo(new MqttSink(`${hub.url}?qos=1`), { signal: stop.signal });

  await ReadableStream.from([
    { topic: "north/a1/temp", payload: '{"c":21.5}' },
    { topic: "north/a1/co2", payload: '{"ppm":640}' },
    { topic: "north/a2/co2", payload: '{"ppm":"high"}' }, // invalid: dead-lettered
  ]).pipeTo(new MqttSink(`${north.url}?qos=1`));
  await ReadableStream.from([{ topic: "south/b7/temperature", payload: '{"fahrenheit":71.6}' }])
    .pipeTo(new MqttSink(`${south.url}?qos=1`));

  let seen = 0;
  for await (const message of hubReader) {
    console.log(`hub got ${message.topic}: ${message.text()}`);
    if (++seen === 4) break;
  }
  console.log(`router stats: ${JSON.stringify(router.stats)}`);
  stop.abort();
  await piping.catch(() => {});
} finally {
  await Promise.all([north.close(), south.close(), hub.close()]);
}
