// A bridge between two brokers that rewrites topics (plant/... -> site-7/plant/...), at
// least once end to end: the source acknowledges a message (ack=manual) only after the
// sink's broker confirmed the copy, because toRecord gives the record it makes the
// message's ack(). Kill it at any point and run it again with the same clientId: what was
// not confirmed comes again. (The command line does the same: cli.ts bridge --map.) Two embedded brokers stand in for the edge and the cloud.
// Run: npx --yes deno@2 run --allow-net=127.0.0.1 --allow-env --allow-sys --allow-read examples/bridge.ts
import { type MqttMessage, MqttSink, MqttSource, toRecord } from "../mod.ts";
import { embeddedBroker } from "./_embedded_broker.ts";

const edge = await embeddedBroker();
const cloud = await embeddedBroker();
try {
  const bridgeSource = new MqttSource(
    `${edge.url}?topic=plant/%23&qos=1&clientId=bridge-7&ack=manual&maxInflight=32`,
  );
  const cloudReader = new MqttSource(`${cloud.url}?topic=site-7/%23&qos=1`);
  await Promise.all([bridgeSource.ready, cloudReader.ready]);
  const stop = new AbortController();
  const bridging = bridgeSource
    // toRecord gives each record the message's ack: acknowledged at the edge only once
    // the cloud confirmed the copy.
    .pipeThrough(toRecord((message: MqttMessage) => ({
      topic: `site-7/${message.topic}`,
      payload: message.payload,
      qos: message.qos,
      retain: message.retain,
    })))
    .pipeTo(new MqttSink(`${cloud.url}?qos=1`), { signal: stop.signal });

  // Readings arrive at the edge broker.
  const readings = [["line-1/temp", "71.5"], ["line-1/rpm", "1480"], ["line-2/temp", "69.0"]];
  await ReadableStream.from(
    readings.map(([path, value]) => ({ topic: `plant/${path}`, payload: value })),
  )
    .pipeTo(new MqttSink(`${edge.url}?qos=1`));

  let seen = 0;
  for await (const message of cloudReader) {
    console.log(`cloud got ${message.topic}: ${message.text()}`);
    if (++seen === readings.length) break;
  }
  console.log(`bridge source stats: ${JSON.stringify(bridgeSource.stats)}`);
  // Stopping the pipe cancels the source (a persistent session keeps its subscription)
  // and aborts the sink.
  stop.abort();
  await bridging.catch(() => {});
} finally {
  await edge.close();
  await cloud.close();
}
