// Run by sink_test.ts in a child process: aborts a sink that is still connecting (to a
// port where nothing listens, with attempts forever). It never calls exit(): the process
// must end by itself, which it does only if connecting really stopped.
import process from "node:process";
import { MqttSink } from "../../mod.ts";

const [url] = process.argv.slice(-1);
const started = Date.now();
const sink = new MqttSink(url, { connectAttempts: -1, connectBackoff: 100 });
await sink.abort(new Error("enough"));
console.log(`aborted in ${Date.now() - started} ms`);
