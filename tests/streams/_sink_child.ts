// Run by sink_test.ts in a child process: publishes three records through a sink with the
// default connectionCacheTimeout (10 minutes), then ends its work. It never calls exit():
// the process must end by itself, which it does only if the idle cached connection lets
// it (its socket and timers unref'd).
import process from "node:process";
import { MqttSink } from "../../mod.ts";

const sink = new MqttSink(process.argv[process.argv.length - 1]);
await ReadableStream.from(["a", "b", "c"]).pipeTo(sink);
console.log(`published ${sink.stats.acked}`);
