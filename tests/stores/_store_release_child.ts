// Run by store_release_test.ts in a child process (Deno with the least flags the docs list,
// Bun, or Node through a bundle): publishes three records through an MqttSink whose URL
// (the second to last argument) asks for persistence=file, then ends as the last argument
// says, and prints "published <acked>" before it does:
// - "close": pipes them, which closes the sink; the process then ends by itself.
// - "exit": writes them without closing the sink, and calls process.exit(0) with the
//   connection and the store still open.
import process from "node:process";
import { MqttSink } from "../../mod.ts";

const [url, mode] = process.argv.slice(-2);
const sink = new MqttSink(url);
if (mode === "close") {
  await ReadableStream.from(["a", "b", "c"]).pipeTo(sink);
  console.log(`published ${sink.stats.acked}`);
} else {
  const writer = sink.getWriter();
  await Promise.all(["a", "b", "c"].map((record) => writer.write(record)));
  // A write resolves once stored; wait for the broker, so the next run recovers nothing.
  while (sink.stats.acked < 3) await new Promise((resolve) => setTimeout(resolve, 10));
  console.log(`published ${sink.stats.acked}`);
  process.exit(0);
}
