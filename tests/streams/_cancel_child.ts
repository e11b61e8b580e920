// Run by source_test.ts in a child process: opens a source, reads 3 messages, then lets go
// of it in the way argv[3] names. It never calls exit(): the process must end by itself,
// which it does only if no socket or timer is left behind.
import process from "node:process";
import { MqttSource } from "../../mod.ts";

const [url, how] = process.argv.slice(-2);
const controller = new AbortController();
const count = async (source: MqttSource) => {
  let n = 0;
  for await (const _ of source) if (++n === 3) break;
  return n;
};

if (how === "dispose") {
  await using source = new MqttSource(url, { topic: "feed" });
  const reader = source.getReader();
  for (let i = 0; i < 3; i++) await reader.read();
  console.log("read 3 messages");
  // `await using` disposes here while the reader still holds the stream.
} else if (how === "abort") {
  const source = new MqttSource(url, { topic: "feed", signal: controller.signal });
  const reader = source.getReader();
  for (let i = 0; i < 3; i++) await reader.read();
  console.log("read 3 messages");
  controller.abort();
  await reader.read().catch(() => {});
} else {
  // for await ... break cancels the stream.
  console.log(`read ${await count(new MqttSource(url, { topic: "feed" }))} messages`);
}
