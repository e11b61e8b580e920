// A consumer group's aggregate rate: 1, 2 and 4 member processes, each an MqttSource on
// `$share/g…/groups/…/#` at QoS 1 (MQTT 5 §4.8.2), on mosquitto with `max_queued_messages 0`
// (it drops nothing) and `max_inflight_messages 60` (each member's window, maxInflight 60).
// Two cases: members that only read (100,000 × 64 B), and members that await 1 ms of work
// for each message, as one that writes each to a database does (10,000 × 64 B).
//
// What is timed is the consumer side alone. The members' sessions are made first (a raw
// client subscribes under each clientId and leaves), then the messages are published into
// them: mosquitto hands a shared subscription's messages to its members in turn, connected
// or not, so each session holds its share before any member runs. Publishing while the
// members read would also time the publisher and the broker's intake, and on a 2-core
// machine a publisher process takes CPU from the members it is meant to feed: the figure
// would say less about the group.
//
// The members are four processes of this runtime, started once and warmed up by an untimed
// round (a long-running group is warm); a round hands the first n of them a session each (a
// line on their stdin), and they connect at once and drain their share. The clock runs from
// the first message any member read to the last message of the last member, so it leaves
// out connecting and subscribing, which costs each member the same whatever the group's size.
// Rounds alternate the group sizes; the table shows the median.
//
//   deno run -A bench/groups.ts [--quick] [--rounds 3]
//   bun bench/groups.ts [--quick]
import { type ChildProcess, spawn } from "node:child_process";
import { cpus } from "node:os";
import process from "node:process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { MqttSource } from "../mod.ts";
import { startMosquitto } from "../testing/broker.ts";
import { alternate, childArgs, median, RUNTIME, within } from "./_measure.ts";
import { payloads, publishWindowed } from "./_raw.ts";

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    member: { type: "boolean", default: false },
  },
});
const GROUPS = [1, 2, 4];
/** A case: what each member does with a message, and how many messages the group reads. */
interface Case {
  name: string;
  workMs: number;
  count: number;
}
const CASES: Case[] = [
  { name: "read only", workMs: 0, count: args.quick ? 2_000 : 100_000 },
  { name: "1 ms of awaited work a message", workMs: 1, count: args.quick ? 400 : 10_000 },
];
const SIZE = 64;
const ROUNDS = Number(args.rounds ?? (args.quick ? 1 : 3));
/** A member ends a drain once nothing came for this long after its last message (untimed). */
const IDLE_MS = args.quick ? 300 : 1_000;
const PREFIX = "GROUP_MEMBER ";

/** A drain a member is handed: its session, and the work it does for each message. */
interface Job {
  url: string;
  clientId: string;
  filter: string;
  workMs: number;
}

/** What a member reports of a drain: epoch milliseconds, so members' clocks compare. */
interface MemberResult {
  count: number;
  /** When it was handed the job (it connects then), and its first and last message. */
  start: number;
  first: number;
  end: number;
  /** CPU seconds (user + system) the process spent from the start to its last message. */
  cpu: number;
}

const now = () => performance.timeOrigin + performance.now();

/** A member drains `job`'s session until its share has stopped coming. */
async function drain({ url, clientId, filter, workMs }: Job): Promise<MemberResult> {
  const start = now();
  const cpuBefore = process.cpuUsage();
  const source = new MqttSource(url, { topic: filter, clientId, mqttVersion: "5", qos: "1" });
  const reader = source.getReader();
  let count = 0, first = start, end = start;
  // One timer, not one a message: it cancels the reader once the share has stopped coming,
  // which ends the loop below (a read after cancel() is done).
  const watch = setInterval(() => {
    const idle = count > 0 ? now() - end > IDLE_MS : now() - start > 60_000;
    if (idle) reader.cancel().catch((error) => console.error(`cancel: ${error}`));
  }, 50);
  try {
    while (!(await reader.read()).done) {
      if (count++ === 0) first = now();
      if (workMs) await new Promise((resolve) => setTimeout(resolve, workMs));
      end = now();
    }
  } finally {
    clearInterval(watch);
  }
  const { user, system } = process.cpuUsage(cpuBefore);
  return { count, start, first, end, cpu: (user + system) / 1e6 };
}

/** A member process: a job a line on stdin, a result line for each; ends with stdin. */
async function serve(): Promise<void> {
  console.log("loaded");
  for await (const line of createInterface({ input: process.stdin })) {
    console.log(PREFIX + JSON.stringify(await drain(JSON.parse(line))));
  }
  process.exit(0);
}

/** A member process started from here, and the results it printed. */
interface Member {
  child: ChildProcess;
  loaded(): Promise<void>;
  drain(job: Job): Promise<MemberResult>;
}

/** Starts this script as a member process. */
function startMember(index: number): Member {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, childArgs(script, ["--member"]), {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const results: MemberResult[] = [];
  let loaded = false, partial = "", gone = false;
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop()!;
    for (const line of lines) {
      if (line === "loaded") loaded = true;
      if (line.startsWith(PREFIX)) results.push(JSON.parse(line.slice(PREFIX.length)));
    }
  });
  child.once("exit", () => (gone = true));
  const until = (done: () => boolean, ms: number, what: string) =>
    within(
      (async () => {
        while (!done()) {
          if (gone) throw new Error(`member ${index} exited while ${what}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })(),
      ms,
      `member ${index} ${what}`,
    );
  return {
    child,
    loaded: () => until(() => loaded, 60_000, "loading"),
    async drain(job) {
      const before = results.length;
      child.stdin!.write(JSON.stringify(job) + "\n");
      await until(() => results.length > before, 120_000, `draining ${job.clientId}`);
      return results[before];
    },
  };
}

/** One round: ms from the group's first message to its last, the split, the members' CPU. */
async function round(
  url: string,
  members: Member[],
  { workMs, count }: Case,
): Promise<{ ms: number; split: number[]; cpu: number }> {
  const run = crypto.randomUUID().slice(0, 8);
  const filter = `$share/g${run}/groups/${run}/#`;
  const ids = members.map((_, i) => `groups-${run}-${i}`);
  for (const clientId of ids) {
    const client = await mqtt.connectAsync(url, {
      clientId,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 0xffffffff },
    });
    await client.subscribeAsync(filter, { qos: 1 });
    await client.endAsync();
  }
  const publisher = await mqtt.connectAsync(url, { clean: true });
  try {
    await publishWindowed(publisher, `groups/${run}/jobs`, payloads(count, SIZE), 1, 50);
  } finally {
    await publisher.endAsync();
  }
  const results = await Promise.all(
    members.map((member, i) => member.drain({ url, clientId: ids[i], filter, workMs })),
  );
  const read = results.reduce((sum, r) => sum + r.count, 0);
  if (read !== count) throw new Error(`${members.length} members read ${read} of ${count}`);
  return {
    ms: Math.max(...results.map((r) => r.end)) - Math.min(...results.map((r) => r.first)),
    split: results.map((r) => r.count),
    cpu: results.reduce((sum, r) => sum + r.cpu, 0),
  };
}

/** The Markdown table of a case: a row a group size. */
function table(
  { name, count, workMs }: Case,
  runs: Record<string, number[]>,
  rounds: Map<number, { split: number[]; cpu: number[] }>,
): string {
  const thousands = (x: number) => Math.round(x).toLocaleString("en-US");
  const rate = (ms: number) => count / (ms / 1000);
  const one = rate(median(runs["1"]));
  const rows = GROUPS.map((n) => {
    const ms = runs[String(n)];
    const { split, cpu } = rounds.get(n)!;
    // The spread of the rounds, slowest to fastest, as the other benchmarks print it.
    const spread = ms.length > 1
      ? ` (${thousands(rate(Math.max(...ms)))}–${thousands(rate(Math.min(...ms)))})`
      : "";
    return [
      n,
      thousands(count),
      (median(ms) / 1000).toFixed(2),
      thousands(rate(median(ms))) + spread,
      (rate(median(ms)) / one).toFixed(2),
      split.map(thousands).join(" / "),
      median(cpu).toFixed(2),
    ];
  });
  return [
    `### ${name}: ${RUNTIME}, mosquitto 2.0, MQTT 5 \`$share\`, QoS 1, ${
      thousands(count)
    } × ${SIZE} B`,
    "",
    `On ${cpus().length} CPU cores, shared by mosquitto and every member; the median of ` +
    `${ROUNDS} round(s). ` +
    (workMs ? `Each member awaits a ${workMs} ms timer after each message it reads. ` : "") +
    "CPU: the members' user + system seconds together, from their start to their last message.",
    "",
    "| members | messages | seconds | msg/s | ratio to 1 member | per-member split | members' CPU, s |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((cells) => `| ${cells.join(" | ")} |`),
    "",
  ].join("\n");
}

if (args.member) {
  await serve();
} else {
  await using broker = await startMosquitto({
    lines: ["max_queued_messages 0", "max_inflight_messages 60"],
  });
  const pool = Array.from({ length: Math.max(...GROUPS) }, (_, i) => startMember(i));
  try {
    await Promise.all(pool.map((member) => member.loaded()));
    // Untimed: loads the library's code paths and lets the JIT compile them in every member.
    if (!args.quick) await round(broker.url, pool, { name: "warm-up", workMs: 0, count: 20_000 });
    for (const which of CASES) {
      const rounds = new Map<number, { split: number[]; cpu: number[] }>();
      const subjects = Object.fromEntries(GROUPS.map((n) => [
        String(n),
        async () => {
          const { ms, split, cpu } = await round(broker.url, pool.slice(0, n), which);
          const mine = rounds.get(n) ?? { split, cpu: [] };
          mine.cpu.push(cpu);
          rounds.set(n, mine);
          return ms;
        },
      ]));
      const runs = await alternate(subjects, ROUNDS, false);
      console.log(table(which, runs, rounds));
    }
  } finally {
    for (const member of pool) member.child.kill("SIGKILL");
  }
}
