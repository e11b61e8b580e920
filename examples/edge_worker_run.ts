// Runs examples/edge_worker.ts here: an embedded broker over ws:// stands in for yours,
// two POSTs go to the worker's fetch handler, and a source shows what reached the broker.
// Run: npx --yes deno@2 run --allow-net=127.0.0.1 --allow-env --allow-read examples/edge_worker_run.ts
import { MqttSource } from "../mod.ts";
import { embeddedBroker } from "./_embedded_broker.ts";
import worker from "./edge_worker.ts";

const broker = await embeddedBroker({ webSocket: true });
try {
  const env = { MQTT_URL: `${broker.url}?topic=ingest/readings&qos=1` };
  const listener = new MqttSource(`${broker.url}?topic=ingest/%23&qos=1`);
  await listener.ready;
  const post = (body: string) =>
    worker.fetch(new Request("http://edge.example/", { method: "POST", body }), env);
  const ok = await post('{"site":"a1","celsius":21.5}\n{"site":"b7","celsius":19}\n');
  console.log(`POST 2 lines: ${ok.status} ${await ok.text()}`);
  const bad = await post('{"site":"c3","celsius":18}\nnot json\n{"site":"d4","celsius":17}\n');
  console.log(`POST a bad line: ${bad.status} ${await bad.text()}`);
  let seen = 0;
  for await (const message of listener) {
    console.log(`broker got ${message.topic}: ${message.text()}`);
    if (++seen === 3) break;
  }
} finally {
  await broker.close();
}
