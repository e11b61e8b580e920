// Node smoke test, run by tests/package/npm_test.ts as `node _node_smoke_child.mjs <mod.js>`: the
// public API of the npm package (installed from its tarball), under plain Node. Against an
// aedes in this process: a round trip at QoS 0, 1 and 2 over TCP, one over ws:// (the
// `ws` package: Node 20 has no WebSocket), a transform pipeline, and a sink with
// persistence=file. Prints one JSON line and exits on its own.
import { createServer } from "node:net";
import { createServer as createHttpServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Aedes } from "aedes";
import * as v from "valibot";
import { createWebSocketStream, WebSocketServer } from "ws";

const { MqttSink, MqttSource, decodeJson, route } = await import(
  pathToFileURL(process.argv[2]).href
);

const broker = await Aedes.createBroker();
const tcp = createServer(broker.handle);
const http = createHttpServer();
new WebSocketServer({ server: http }).on("connection", (socket) => {
  broker.handle(createWebSocketStream(socket));
});
const listen = (server) =>
  new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
const tcpUrl = `mqtt://127.0.0.1:${await listen(tcp)}`;
const wsUrl = `ws://127.0.0.1:${await listen(http)}`;

/** Publishes `count` JSON readings through a sink and reads them back through a source. */
async function roundTrip(url, qos, count, extra = "") {
  const topic = `node/${Math.random().toString(16).slice(2, 10)}`;
  const source = new MqttSource(`${url}?topic=${topic}&qos=${qos}`);
  await source.ready;
  const sink = new MqttSink(`${url}?topic=${topic}&qos=${qos}${extra}`);
  const writer = sink.getWriter();
  for (let n = 0; n < count; n++) await writer.write(JSON.stringify({ n }));
  await writer.close();
  const seen = [];
  for await (const { value } of source.pipeThrough(decodeJson())) {
    seen.push(value.n);
    if (seen.length === count) break;
  }
  if (seen.join() !== Array.from({ length: count }, (_, n) => n).join()) {
    throw new Error(`${url} QoS ${qos}: got ${seen.join()}`);
  }
  return seen.length;
}

const result = {};
for (const qos of [0, 1, 2]) result[`tcp qos${qos}`] = await roundTrip(tcpUrl, qos, 20);
result["ws qos1"] = await roundTrip(wsUrl, 1, 20);
const folder = mkdtempSync(join(tmpdir(), "mqtt-streams-node-"));
try {
  result["file store qos1"] = await roundTrip(
    tcpUrl,
    1,
    20,
    `&clientId=nodefile&persistence=file&localStorage=${encodeURIComponent(folder)}`,
  );
} finally {
  rmSync(folder, { recursive: true, force: true });
}

// A routed pipeline: two valibot schemas, with named wildcards.
const router = route({
  "plant/+site/temp": v.object({ celsius: v.number() }),
  "plant/+site/hum": v.object({ percent: v.number() }),
});
const source = new MqttSource(`${tcpUrl}?topic=plant/%23&qos=1`);
await source.ready;
const sink = new MqttSink(`${tcpUrl}?qos=1`);
const writer = sink.getWriter();
await writer.write({ topic: "plant/a/temp", payload: JSON.stringify({ celsius: 21 }) });
await writer.write({ topic: "plant/b/hum", payload: JSON.stringify({ percent: 40 }) });
await writer.close();
const routed = [];
for await (const chunk of source.pipeThrough(router)) {
  routed.push(`${chunk.route}@${chunk.params.site}`);
  if (routed.length === 2) break;
}
result.routed = routed;

console.log(JSON.stringify({ node: process.version, ...result }));
await new Promise((resolve) => broker.close(resolve));
tcp.close();
http.close();
