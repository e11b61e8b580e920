// The demo: starts an embedded aedes broker on a random port, opens an MqttSource on a
// connection string, publishes a few sensor readings through an MqttSink, reads them back
// with `for await` (each QoS 1 message is acknowledged to the broker as it is read), and
// stops by itself.
// Run: npx --yes deno@2 task demo
import { Aedes } from "aedes";
import { createServer } from "node:net";
import { MqttSink, MqttSource } from "../mod.ts";

const broker = await Aedes.createBroker();
const server = createServer(broker.handle);
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as { port: number };

const url =
  `mqtt://demo:s3cret@127.0.0.1:${port}?topic=sensors/%2B/temperature&qos=1&clientId=demo&maxInflight=16`;
const source = new MqttSource(url);
console.log("options:", JSON.stringify(source.options));
const timeout = setTimeout(() => source.cancel(new Error("timed out")), 5000);
try {
  await source.ready; // subscribed: what is published from now on arrives
  const sites = ["north", "south", "east"];
  // A stream of records, each with its own topic, into a sink: pipeTo resolves once the
  // broker acknowledged every one (QoS 1).
  const sink = new MqttSink(`mqtt://127.0.0.1:${port}?qos=1`);
  await ReadableStream.from(sites.entries())
    .pipeThrough(
      new TransformStream<[number, string], { topic: string; payload: string }>({
        transform([i, site], controller) {
          const payload = JSON.stringify({ site, celsius: 20 + i * 1.5 });
          console.log(`publishing sensors/${site}/temperature: ${payload}`);
          controller.enqueue({ topic: `sensors/${site}/temperature`, payload });
        },
      }),
    )
    .pipeTo(sink);
  console.log(`published: sink stats ${JSON.stringify(sink.stats)}`);
  let count = 0;
  for await (const message of source) {
    const { site, celsius } = message.json<{ site: string; celsius: number }>();
    console.log(`received ${message.topic} qos=${message.qos}: ${site} ${celsius} °C`);
    if (++count === sites.length) break; // cancels the stream: unsubscribes, disconnects
  }
  console.log(`done: ${count} received, source stats ${JSON.stringify(source.stats)}`);
} finally {
  clearTimeout(timeout);
  await new Promise<void>((resolve) => broker.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
