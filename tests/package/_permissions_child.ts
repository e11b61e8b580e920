// Child of tests/package/permissions_test.ts, run by Deno with only the permissions the README
// documents: round-trips one QoS 1 message to the broker in argument 1, the sink with the
// options in argument 2 (persistence=file, ...), prints "received <text>" and exits.
import { MqttSink, MqttSource } from "../../mod.ts";

const [url, sinkOptions = ""] = Deno.args;
const topic = `permissions/${crypto.randomUUID().slice(0, 8)}`;
const source = new MqttSource(`${url}?topic=${topic}&qos=1`);
await source.ready;
const writer = new MqttSink(`${url}?topic=${topic}&qos=1${sinkOptions}`).getWriter();
await writer.write("with the documented permissions");
await writer.close();
for await (const message of source) {
  console.log(`received ${message.text()}`);
  break;
}
