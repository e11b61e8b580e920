// Run by persistence_test.ts in a child process: writes `count` numbered records through
// an MqttSink (persistence=file in the URL) and prints each number once its write()
// resolved, then closes the sink and prints its stats. The test SIGKILLs it mid-run.
import process from "node:process";
import { MqttSink } from "../../mod.ts";

const [url, first, count] = process.argv.slice(-3);
const sink = new MqttSink(url);
const writer = sink.getWriter();
for (let n = Number(first); n < Number(first) + Number(count); n++) {
  await writer.ready;
  writer.write(String(n)).then(() => console.log(n));
  // A pause now and then, so that the kill lands while publishes are in flight.
  if (n % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 10));
}
await writer.close();
const { recovered, failed, damaged } = sink.stats;
console.log(`closed recovered=${recovered} failed=${failed} damaged=${damaged}`);
