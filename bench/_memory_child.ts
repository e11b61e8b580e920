// The process whose memory bench/_probes.ts measures: it subscribes and reads nothing
// until its stdin ends, sampling its RSS every 20 ms, then prints the baseline and peak.
//   _memory_child.ts <url> <source|naive> <topic> <clientId>
import mqtt from "mqtt";
import process from "node:process";

const [url, kind, topic, clientId] = process.argv.slice(-4);

// A function, not top-level await: tsx runs this file as CommonJS under Node.
async function main() {
  let close: () => Promise<unknown>;
  if (kind === "source") {
    const { MqttSource } = await import("../mod.ts");
    const source = new MqttSource(url, { topic, clientId, qos: 1 });
    await source.ready;
    close = () => source.cancel();
  } else {
    const queue: Uint8Array[] = [];
    const client = await mqtt.connectAsync(url, { clientId, clean: true });
    client.on("message", (_topic, payload) => queue.push(payload));
    await client.subscribeAsync(topic, { qos: 1 });
    close = () => client.endAsync();
  }
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  console.log("ready");
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once("end", resolve));
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  console.log(JSON.stringify({ baseline, peak }));
  await close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
