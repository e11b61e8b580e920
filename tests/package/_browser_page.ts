/// <reference lib="dom" />
// The browser page of tests/package/browser_test.ts, bundled by esbuild for the browser: it
// round-trips JSON readings through an MqttSink and an MqttSource over WebSocket to the
// broker named in the page's ?broker= parameter, lists them on the page, and leaves the
// outcome in `window.result` for the test to read.
import { decodeJson, MqttSink, MqttSource } from "../../mod.ts";

interface Result {
  received: number[];
  qos: number[];
  stats: { received: number; acked: number };
  sinkStats: { published: number; acked: number };
  error?: string;
}

const broker = new URL(location.href).searchParams.get("broker")!;
const count = Number(new URL(location.href).searchParams.get("count") ?? "20");
const list = document.getElementById("messages")!;
const status = document.getElementById("status")!;

async function run(): Promise<Result> {
  const topic = `browser/${crypto.randomUUID().slice(0, 8)}`;
  const source = new MqttSource(`${broker}?topic=${topic}&qos=1`);
  await source.ready;
  const sink = new MqttSink(`${broker}?topic=${topic}&qos=2`);
  const writer = sink.getWriter();
  for (let n = 0; n < count; n++) await writer.write(JSON.stringify({ n, at: Date.now() }));
  await writer.close();
  const received: number[] = [];
  const qos: number[] = [];
  const reader = source.pipeThrough(decodeJson<{ n: number }>()).getReader();
  while (received.length < count) {
    const { value, done } = await reader.read();
    if (done) break;
    received.push(value.value.n);
    qos.push(value.message.qos);
    const item = document.createElement("li");
    item.textContent = `${value.message.topic} ${value.message.text()}`;
    list.append(item);
  }
  await reader.cancel();
  return {
    received,
    qos,
    stats: { received: source.stats.received, acked: source.stats.acked },
    sinkStats: { published: sink.stats.published, acked: sink.stats.acked },
  };
}

const done = (result: Result) => {
  status.textContent = result.error ?? `${result.received.length} messages round-tripped`;
  (globalThis as { result?: Result }).result = result;
};
run().then(done, (error: Error) =>
  done({
    received: [],
    qos: [],
    stats: { received: 0, acked: 0 },
    sinkStats: { published: 0, acked: 0 },
    error: `${error.name}: ${error.message}`,
  }));
