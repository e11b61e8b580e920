// Failover benchmark: how long a source is without messages when the broker node it reads
// from dies, and how many messages it then gets twice. Each round starts a 3-node NATS
// cluster (testing/nats.ts), subscribes a source (persistent session) through the cluster's
// connection string, publishes a steady stream through another node, kills the source's
// node with SIGKILL after 500 messages, and reads on until every message arrived.
//
//   deno run -A bench/failover.ts [--runtimes deno,bun] [--rounds 5] [--qos 1,2]
//
// The failover time runs from the SIGKILL to the first message read that arrived on the
// new node (messages that arrived before the source moved do not count). Printed as a
// Markdown table: median, min and max over the rounds; duplicates per failover likewise.
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { MqttSink, MqttSource } from "../mod.ts";
import { startNatsCluster } from "../testing/nats.ts";
import { median, RUNTIME, runUnder } from "./_measure.ts";

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runtimes: { type: "string", default: "deno,bun" },
    rounds: { type: "string", default: "5" },
    qos: { type: "string", default: "1,2" },
    child: { type: "boolean", default: false },
  },
});
const ROUNDS = Number(args.rounds);
const QOS = args.qos.split(",").map(Number) as (1 | 2)[];
/** Messages published a round, about 1,000 a second; the node dies after KILL_AT are read. */
const COUNT = 2_000;
const KILL_AT = 500;
const RESULT = "FAILOVER_RESULT ";
/** How long to read on after the last new message, for the copies NATS sends after ack_wait. */
const LATE_MS = 3_000;

interface Round {
  runtime: string;
  qos: number;
  /** ms from SIGKILL to the first message read that arrived on the new node. */
  failoverMs: number;
  /**
   * The dead node led a JetStream stream or consumer that holds MQTT state (sessions,
   * messages, a subscription's consumer): the cluster had to elect a new leader for it.
   */
  leaderDied: boolean;
  duplicates: number;
  lost: number;
}

/** One round: a fresh cluster, a source on node 1, its node killed mid-stream. */
async function round(qos: 1 | 2, n: number): Promise<Round> {
  await using cluster = await startNatsCluster();
  const source = new MqttSource(
    `${cluster.url}?topic=bench/failover&qos=${qos}&clientId=failover-${n}&connectBackoff=1000`,
  );
  const reader = source.getReader();
  const seen = new Set<string>();
  let duplicates = 0, killedAt = 0, failoverMs = NaN, movedAt = Infinity, leadersBefore = 0;
  // When the source landed on another node: messages that arrived before, on the dead
  // node's socket (read after the kill from the stream's queue or the kernel's buffer), do
  // not end the failover.
  const watch = setInterval(() => {
    if (source.stats.failovers > 0 && movedAt === Infinity) movedAt = Date.now();
  }, 2);
  try {
    await source.ready;
    // A connection up for less than connectBackoff (1 s) is treated as flapping and waits
    // before it moves on; a source in production has been up far longer.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const node = cluster.nodes.find((candidate) => candidate.url === source.stats.broker)!;
    // NATS takes QoS 2 publishes not at all: the publisher uses QoS 1 (and grants a QoS 2
    // subscription as QoS 1).
    const sink = new MqttSink(`${cluster.nodes[1].url}?topic=bench/failover&qos=1`);
    const publishing = (async () => {
      const writer = sink.getWriter();
      for (let i = 0; i < COUNT; i++) {
        await writer.write(String(i));
        if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await writer.close();
    })();
    const deadline = Date.now() + 120_000;
    while (seen.size < COUNT && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      const text = value.text();
      if (seen.has(text)) duplicates++;
      else seen.add(text);
      if (killedAt && Number.isNaN(failoverMs) && value.timestamp >= movedAt - 2) {
        failoverMs = Date.now() - killedAt;
      }
      if (!killedAt && seen.size === KILL_AT) {
        leadersBefore = elections(cluster.log());
        killedAt = Date.now();
        await node.kill();
      }
    }
    await publishing;
    // NATS sends what was in flight to the dead node again after its ack_wait (2 s here),
    // however soon the session resumed: those duplicates come after the last new message.
    const late = Date.now() + LATE_MS;
    for (;;) {
      const timer = new Promise<undefined>((resolve) =>
        setTimeout(() => resolve(undefined), Math.max(0, late - Date.now()))
      );
      const next = await Promise.race([reader.read(), timer]);
      if (!next || next.done) break;
      if (seen.has(next.value.text())) duplicates++;
    }
  } finally {
    clearInterval(watch);
    await reader.cancel();
  }
  const leaderDied = elections(cluster.log()) > leadersBefore;
  return {
    runtime: RUNTIME,
    qos,
    failoverMs,
    leaderDied,
    duplicates,
    lost: COUNT - seen.size,
  };
}

/** How often the cluster's logs announce a new leader of an MQTT stream or consumer. */
function elections(log: string): number {
  return log.match(/new (?:stream|consumer) leader for '\$G > \$MQTT_/g)?.length ?? 0;
}

if (args.child) {
  for (const qos of QOS) {
    for (let n = 1; n <= ROUNDS; n++) {
      const result = await round(qos, n);
      console.error(
        `${RUNTIME} QoS ${qos} round ${n}: failover ${result.failoverMs} ms${
          result.leaderDied ? " (a JetStream leader died)" : ""
        }, ${result.duplicates} duplicates, ${result.lost} lost`,
      );
      console.log(RESULT + JSON.stringify(result));
    }
  }
} else {
  const results: Round[] = [];
  for (const runtime of args.runtimes.split(",")) {
    results.push(
      ...await runUnder<Round>(runtime.trim(), fileURLToPath(import.meta.url), [
        "--child",
        "--rounds",
        args.rounds,
        "--qos",
        args.qos,
      ], RESULT),
    );
  }
  console.log(
    `\nFailover on a 3-node NATS cluster (nats-server 2.9.10, ack_wait 2 s), ${ROUNDS} rounds; node killed with SIGKILL after ${KILL_AT} of ${COUNT} messages:\n`,
  );
  console.log(
    "| runtime | subscribed QoS | failover ms, median (min–max) | no JetStream leader died: median (rounds) | one died: median (rounds) | duplicates per failover, median (min–max) | lost |",
  );
  console.log("|---|---|---|---|---|---|---|");
  const groups = Map.groupBy(results, (r) => `${r.runtime}\u0000${r.qos}`);
  const medianOf = (rounds: Round[]) =>
    rounds.length ? `${median(rounds.map((r) => r.failoverMs))} (${rounds.length})` : "–";
  for (const rounds of groups.values()) {
    const ms = rounds.map((r) => r.failoverMs);
    const dups = rounds.map((r) => r.duplicates);
    console.log(
      `| ${rounds[0].runtime} | ${rounds[0].qos}${rounds[0].qos === 2 ? " (granted 1)" : ""} | ${
        median(ms)
      } (${Math.min(...ms)}–${Math.max(...ms)}) | ${
        medianOf(rounds.filter((r) => !r.leaderDied))
      } | ${medianOf(rounds.filter((r) => r.leaderDied))} | ${median(dups)} (${Math.min(...dups)}–${
        Math.max(...dups)
      }) | ${rounds.reduce((sum, r) => sum + r.lost, 0)} |`,
    );
  }
}
