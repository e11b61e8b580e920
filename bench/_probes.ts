// The latency and memory probes: each a whole run with its own clients (and, for memory,
// its own process, so one run's heap does not inflate the next's).
import mqtt from "mqtt";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { childArgs } from "./_measure.ts";
import { connect, payloads, publishWindowed } from "./_raw.ts";

/** The library's module. */
type Library = typeof import("../mod.ts");

/** Subscribes `clientId` to `topic` at QoS 1, calling `arrive` a message; resolves with a stop. */
export type Subscribe = (
  url: string,
  clientId: string,
  topic: string,
  arrive: (payload: Uint8Array) => void,
) => Promise<() => Promise<unknown>>;

/** Raw mqtt.js: a 'message' listener. */
export const rawSubscribe: Subscribe = async (url, clientId, topic, arrive) => {
  const client = await mqtt.connectAsync(url, { clientId, clean: true });
  client.on("message", (_topic, payload) => arrive(payload));
  await client.subscribeAsync(topic, { qos: 1 });
  return () => client.endAsync();
};

/** An MqttSource read by `for await` until `total` messages; its stop waits for the loop. */
export function sourceSubscribe(lib: Library, total: number): Subscribe {
  return async (url, clientId, topic, arrive) => {
    const source = new lib.MqttSource(url, { topic, clientId, qos: 1 });
    await source.ready;
    const reading = (async () => {
      let read = 0;
      for await (const message of source) {
        arrive(message.payload);
        if (++read === total) break;
      }
    })();
    return () => reading;
  };
}

/**
 * Publishes at `perSecond` for `seconds` (QoS 1, each payload stamped with its send time)
 * to one subscriber, made by `subscribe` (raw mqtt.js, an MqttSource, a peer). Returns every
 * message's milliseconds from publish to the consumer.
 */
export async function latencyRun(
  url: string,
  subscribe: Subscribe,
  perSecond: number,
  seconds: number,
  clientId: string,
): Promise<number[]> {
  const topic = `bench/${clientId}`;
  const total = perSecond * seconds;
  const samples: number[] = [];
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const arrive = (payload: Uint8Array) => {
    const sentAt = new DataView(payload.buffer, payload.byteOffset, 8).getFloat64(0);
    samples.push(performance.now() - sentAt);
    if (samples.length === total) finish();
  };
  const stop = await subscribe(url, clientId, topic, arrive);
  const publisher = await connect(url);
  try {
    const started = performance.now();
    let sent = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor((performance.now() - started) * perSecond / 1000));
        for (; sent < due; sent++) {
          const payload = new Uint8Array(64);
          new DataView(payload.buffer).setFloat64(0, performance.now());
          publisher.publish(topic, payload as unknown as string, { qos: 1 });
        }
        if (sent < total) setTimeout(tick, 1);
        else resolve();
      };
      tick();
    });
    await finished;
  } finally {
    await stop();
    await publisher.endAsync();
  }
  return samples;
}

/**
 * Starts a child process that subscribes (QoS 1) and reads nothing (`kind` "source": an
 * MqttSource; "naive": raw mqtt.js pushing every message onto an array, what a naive
 * wrapper does), publishes `count` messages to it, and returns the child's peak RSS growth
 * in MB over the RSS it had once subscribed.
 */
export async function memoryRun(
  url: string,
  kind: "source" | "naive",
  count: number,
  clientId: string,
  quick: boolean,
): Promise<number> {
  const script = fileURLToPath(new URL("./_memory_child.ts", import.meta.url));
  const topic = `bench/${clientId}`;
  const child = spawn(process.execPath, childArgs(script, [url, kind, topic, clientId]), {
    stdio: ["pipe", "pipe", "inherit"],
  });
  let out = "";
  child.stdout!.on("data", (chunk) => (out += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const until = async (word: string) => {
    while (!out.includes(word)) {
      if (child.exitCode !== null) throw new Error(`the memory child exited early: ${out}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  try {
    await until("ready");
    const publisher = await connect(url);
    await publishWindowed(publisher, topic, payloads(count, 64), 1, 50);
    await publisher.endAsync();
    // Time for what the broker still sends (the naive child takes it all) to arrive.
    await new Promise((resolve) => setTimeout(resolve, quick ? 300 : 2000));
  } finally {
    child.stdin!.end();
  }
  if ((await exited) !== 0) throw new Error(`the memory child failed: ${out}`);
  const { baseline, peak } = JSON.parse(out.slice(out.indexOf("{")));
  return (peak - baseline) / 2 ** 20;
}
