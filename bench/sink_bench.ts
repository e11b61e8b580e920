// MqttSink against raw mqtt.js publishing, same broker, same run.
//
//   deno run -A bench/sink_bench.ts      (or: npx --yes bun@1 bench/sink_bench.ts)
//
// Three publishers send N records (64-byte payloads) to mosquitto, a separate process:
//   window:  raw mqtt.js with at most W publishes unconfirmed (the sink's own window);
//   sink:    ReadableStream.from(records).pipeTo(new MqttSink(...maxInflight=W));
//   serial:  raw mqtt.js awaiting each publishAsync in turn (no window at all).
// The clock stops when every QoS 1 publish is acknowledged; at QoS 0, when the broker
// answered a PINGREQ sent after the last one (what MqttSink.close() waits for), so every
// publisher has the broker read all it sent. Rounds alternate the publishers; medians are
// reported, and the ratios sink ÷ window (1.0 = as fast as raw mqtt.js with the same
// window) and window ÷ serial (what the window buys).
import mqtt, { type MqttClient } from "mqtt";
import process from "node:process";
import { MqttSink } from "../mod.ts";
import { hasMosquitto, startMosquitto } from "../tests/_broker.ts";

const N = Number(process.env.BENCH_MESSAGES ?? 50_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 60);
const runtime = typeof Deno === "object"
  ? `Deno ${Deno.version.deno}`
  : `Bun ${process.versions.bun}`;
const TOPIC = "bench/sink";

type Who = "window" | "sink" | "serial";

async function main() {
  if (!hasMosquitto) throw new Error("the benchmark needs mosquitto (apt-get install mosquitto)");
  await using broker = await startMosquitto({ lines: [`max_inflight_messages ${WINDOW}`] });
  const records = Array.from({ length: N }, (_, i) => {
    const payload = new Uint8Array(64);
    new DataView(payload.buffer).setUint32(0, i);
    return payload;
  });
  console.log(
    `${runtime}, broker: mosquitto 2 (separate process), ${N} records of 64 bytes, window ${WINDOW}, median of ${ROUNDS} rounds\n`,
  );
  const raw = await mqtt.connectAsync(broker.url, { clean: true });
  try {
    for (const qos of [0, 1] as const) {
      const url = `${broker.url}?topic=${TOPIC}&qos=${qos}&maxInflight=${WINDOW}`;
      const run: Record<Who, () => Promise<void>> = {
        window: () => windowed(raw, records, qos),
        sink: () => ReadableStream.from(records).pipeTo(new MqttSink(url)),
        serial: () => serial(raw, records, qos),
      };
      await run.window(); // warm-up: JIT, and the sink's cached connection
      await run.sink();
      const times: Record<Who, number[]> = { window: [], sink: [], serial: [] };
      for (let round = 0; round < ROUNDS; round++) {
        const order: Who[] = round % 2
          ? ["sink", "window", "serial"]
          : ["window", "sink", "serial"];
        for (const who of order) {
          const started = performance.now();
          await run[who]();
          if (qos === 0 && who !== "sink") await ping(raw);
          times[who].push(performance.now() - started);
        }
      }
      const [window, sink, serialMs] = [
        median(times.window),
        median(times.sink),
        median(times.serial),
      ];
      console.log(
        `QoS ${qos}: mqtt.js window ${rate(window)} msg/s, MqttSink ${
          rate(sink)
        } msg/s, mqtt.js serial ${rate(serialMs)} msg/s; sink ÷ window ${
          (window / sink).toFixed(3)
        }, window ÷ serial ${(serialMs / window).toFixed(2)}\n  runs ms: window ${
          times.window.map(Math.round)
        }, sink ${times.sink.map(Math.round)}, serial ${times.serial.map(Math.round)}`,
      );
    }
  } finally {
    await raw.endAsync();
  }
}

/** Raw mqtt.js with at most WINDOW publishes unconfirmed: the baseline the sink must match. */
function windowed(client: MqttClient, records: Uint8Array[], qos: 0 | 1): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = 0;
    let unconfirmed = 0;
    let pumping = false;
    const done = (error?: Error) => {
      if (error) return reject(error);
      unconfirmed--;
      if (next === records.length && unconfirmed === 0) resolve();
      else pump();
    };
    // A QoS 0 callback runs inside publish() when the socket takes the bytes at once:
    // loop instead of recursing.
    const pump = () => {
      if (pumping) return;
      pumping = true;
      while (unconfirmed < WINDOW && next < records.length) {
        unconfirmed++;
        client.publish(TOPIC, records[next++] as unknown as string, { qos }, done);
      }
      pumping = false;
    };
    pump();
  });
}

/** Raw mqtt.js awaiting each publish in turn. */
async function serial(client: MqttClient, records: Uint8Array[], qos: 0 | 1): Promise<void> {
  for (const record of records) {
    await client.publishAsync(TOPIC, record as unknown as string, { qos });
  }
}

/** One PINGREQ / PINGRESP round trip: the broker has read everything sent before. */
function ping(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    const onPacket = (packet: { cmd: string }) => {
      if (packet.cmd !== "pingresp") return;
      client.removeListener("packetreceive", onPacket);
      resolve();
    };
    client.on("packetreceive", onPacket);
    client.sendPing();
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const rate = (ms: number) => Math.round(N / (ms / 1000)).toLocaleString("en-US");

await main();
