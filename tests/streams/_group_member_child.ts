// Run by consumer_group_test.ts in a child process: one member of a consumer group, an
// MqttSource on a `$share/…` filter over MQTT 5 at QoS 1. It prints `ready` once subscribed
// and `got <payload>` (` dup` added when the broker set DUP) for every message it takes, so
// the parent can tell who got what; the parent SIGKILLs it, as a crash would.
//
//   _group_member_child.ts <broker URL> <clientId> <filter> [--stall] [--expiry S] [--window N]
//
// --stall: ack=manual and never ack, so the member holds what it took unacknowledged and
// the broker queues the rest of its share. --expiry: the MQTT 5 session expiry interval
// (seconds); without it, the library's default for a given clientId (kept for ever).
// --window: maxInflight, the most it holds unacknowledged (MQTT 5 Receive Maximum).
import process from "node:process";
import { parseArgs } from "node:util";
import { MqttSource } from "../../mod.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    stall: { type: "boolean", default: false },
    expiry: { type: "string" },
    window: { type: "string", default: "20" },
  },
});
const [url, clientId, topic] = positionals;
const source = new MqttSource(url, {
  topic,
  clientId,
  mqttVersion: "5",
  qos: "1",
  ack: values.stall ? "manual" : "read",
  maxInflight: Number(values.window),
  ...(values.expiry !== undefined && { sessionExpiryInterval: Number(values.expiry) }),
});
// Not awaited before reading: a resumed session's backlog arrives before the SUBACK, and
// past maxInflight unread messages `ready` would wait for this reader (see MqttSource.ready).
source.ready.then(() => console.log("ready"), (error: unknown) => {
  console.error(`member ${clientId}: ${error}`);
  process.exit(1);
});
for await (const message of source) {
  console.log(`got ${message.text()}${message.dup ? " dup" : ""}`);
}
