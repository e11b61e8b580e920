// Run by persistence_test.ts in a child process: reads a QoS 2 MqttSource (persistence=file
// and ack=manual in the URL), printing each message's text before it acknowledges it, and
// slowly, so that many messages are between PUBREC and PUBCOMP when the test SIGKILLs it.
// Prints "ready" with what the store recovered once subscribed; the test ends it.
import process from "node:process";
import { MqttSource } from "../../mod.ts";

const source = new MqttSource(process.argv[process.argv.length - 1]);
await source.ready;
console.log(`ready recovered=${source.stats.recovered} damaged=${source.stats.damaged}`);
for await (const message of source) {
  console.log(message.text());
  message.ack();
  await new Promise((resolve) => setTimeout(resolve, 1));
}
