// Child of tests/connection/websocket_test.ts: round-trips QoS 1 messages over the wss:// broker
// given as argument 1, with no TLS option (the runtime trusts the CA: DENO_CERT under
// Deno), prints "received N" and exits on its own.
import process from "node:process";
import { MqttSink, MqttSource } from "../../mod.ts";

const [url, count] = [process.argv.at(-2)!, Number(process.argv.at(-1))];
const topic = `wss/${crypto.randomUUID().slice(0, 8)}`;
const source = new MqttSource(`${url}?topic=${topic}&qos=1`);
await source.ready;
const sink = new MqttSink(`${url}?topic=${topic}&qos=1`);
const writer = sink.getWriter();
for (let i = 0; i < count; i++) await writer.write(`m${i}`);
await writer.close();
let received = 0;
for await (const message of source) {
  if (message.text() !== `m${received}`) throw new Error(`out of order: ${message.text()}`);
  if (++received === count) break;
}
console.log(`received ${received}`);
