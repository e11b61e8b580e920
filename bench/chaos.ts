// The chaos run: every fault at once, for minutes, against real brokers, with a checker that
// reads what every side recorded and proves that nothing was lost.
//
//   deno task chaos [--seed N] [--minutes M] [--out DIR]
//   deno task chaos --check DIR     (the report of a kept run folder, read again)
//   npx --yes bun@1 bench/chaos.ts [--seed N] [--minutes M] [--out DIR]
//
// Brokers: mosquitto (persistence on, a lossless configuration) and a 3-node NATS cluster
// (JetStream, sessions replicated on every node). Workloads (bench/chaos/_worker.ts, each in
// processes of their own, every message with a unique id and a sequence number): QoS 1 and
// QoS 2 sink → mosquitto → source, a bridge mosquitto → NATS (source ack=manual → sink),
// sink → NATS → source, and three sinks sharing one connection. The faults
// (bench/chaos/_schedule.ts) come from the seed: proxies that cut at a packet type, delay or
// refuse; mosquitto and NATS nodes SIGKILLed and restarted; worker processes SIGKILLed and
// started again (persistence=file); the store's disk full; a reader stalled past keepAlive;
// an event loop blocked for a second; sinks aborted and sources cancelled mid-stream.
// After the faults the producers close, the consumers drain, and the checker
// (bench/chaos/_checker.ts) reports per workload: lost, duplicated, reordered, hung.
// Exit code 0 when nothing was lost, no QoS 2 message came twice, nothing hung, and every
// error was an MqttStreamError; 1 otherwise.
import type { ChildProcess } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { startMosquitto } from "../testing/broker.ts";
import { exited, kill, sleep, spawnScript } from "../testing/helpers.ts";
import { startNatsCluster } from "../testing/nats.ts";
import { check, formatReport } from "./chaos/_checker.ts";
import { mountDisk } from "./chaos/_disk.ts";
import { openJournal } from "./chaos/_journal.ts";
import { type FaultProxy, type PacketType, startFaultProxy } from "./chaos/_proxy.ts";
import { describe, type Fault, schedule, type Targets } from "./chaos/_schedule.ts";
import { wireTap } from "./chaos/_wire.ts";
import type {
  BridgeSpec,
  Command,
  ConsumerSpec,
  ProducerSpec,
  WorkerConfig,
} from "./chaos/_worker.ts";

const RUNTIME = typeof Deno === "object" ? "deno" : "bun";
const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seed: { type: "string" },
    minutes: { type: "string", default: "10" },
    out: { type: "string" },
    check: { type: "string" },
  },
});
if (args.check !== undefined) {
  // --check DIR: the report of a run folder kept with --out, read again (by a newer checker).
  console.log(formatReport(check(args.check)));
  process.exit(0);
}
const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
const minutes = Number(args.minutes);
if (!Number.isInteger(seed) || !(minutes > 0)) {
  console.error("usage: chaos.ts [--seed N (an integer)] [--minutes M (> 0)] [--out DIR]");
  process.exit(2);
}
const out = args.out ?? join(tmpdir(), `mqtt-streams-chaos-${seed}-${RUNTIME}-${Date.now()}`);
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "journal"), { recursive: true });
mkdirSync(join(out, "stores"), { recursive: true });

/** Seconds: a stalled reader waits longer than this (the schedule's stalls are 1.2–2 ×). */
const KEEP_ALIVE = 5;
/** Bytes: each stream holds at most maxInflight × this. */
const MAX_PACKET = 65_536;
/** An operation slower than this is reported, one pending this long hangs. */
const SLOW_MS = 10_000;
const HANG_MS = 60_000;
/** How long the consumers get, after the producers closed, to read what is missing. */
const DRAIN_MS = 120_000;

const cleanups: (() => Promise<void> | void)[] = [];
async function cleanUp(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch (error) {
      console.error(`cleaning up: ${(error as Error).message}`);
    }
  }
}
process.once("SIGINT", () => cleanUp().finally(() => process.exit(130)));

// --- brokers and proxies ---------------------------------------------------------------

const mosquitto = await startMosquitto({
  persistence: true,
  lines: [
    // Lossless: no subscriber queue limit, and no in-flight window, so that nothing is
    // dropped and the broker keeps the order (DESIGN: mosquitto 2.0.11 reorders past its
    // window, eclipse/mosquitto#2306).
    "max_queued_messages 0",
    "max_inflight_messages 0",
    // Saves its state after every change: a SIGKILL loses only what arrived since.
    "autosave_on_changes true",
    "autosave_interval 1",
  ],
});
cleanups.push(() => mosquitto.close());
const nats = await startNatsCluster({ nodes: 3, ackWait: "2s" });
cleanups.push(() => nats.close());

const wire = openJournal(join(out, "journal", "wire.jsonl"));
cleanups.push(() => wire.close());
/** What the orchestrator saw hang: a worker that did not exit, a reader that never caught up. */
const orchestrator = openJournal(join(out, "journal", "orchestrator.jsonl"));
cleanups.push(() => orchestrator.close());
const proxies = new Map<string, FaultProxy>();
for (const proc of ["pub", "sub", "bridge", "shared"]) {
  // What mosquitto acknowledged and sent again, to tell its doings in a SIGKILL from the library's.
  const proxy = await startFaultProxy(mosquitto.port, { tap: wireTap("mosquitto", wire) });
  proxies.set(`proxy-${proc}`, proxy);
  cleanups.push(() => proxy.close());
}
const via = (proc: string) => proxies.get(`proxy-${proc}`)!.url;

const diskDir = join(out, "disk");
const disk = mountDisk(diskDir, 16);
if (typeof disk === "string") console.log(`disk-full is not injected in this run: ${disk}`);
else cleanups.push(() => disk.unmount());
const storeDir = (proc: string, name: string) =>
  proc === "pub" && typeof disk !== "string"
    ? join(diskDir, name)
    : join(out, "stores", `${proc}-${name}`);

// --- workloads ---------------------------------------------------------------------------

const common = `keepAlive=${KEEP_ALIVE}&maxPacketSize=${MAX_PACKET}`;
const fileStore = (proc: string, name: string) =>
  `persistence=file&localStorage=${encodeURIComponent(storeDir(proc, name))}`;
const natsUrl = nats.url;

interface Plan {
  producers: ProducerSpec[];
  consumers: ConsumerSpec[];
  bridges: BridgeSpec[];
  /** Σ maxInflight of its streams. */
  inflight: number;
  killable: boolean;
}
/**
 * A producer of the `pub` process: client id chaos-pub-`name`, `extra` options, and a file
 * store of that name on the small disk.
 */
function producer(
  wl: string,
  name: string,
  broker: string,
  extra: string,
  topics: string[],
  qos: 1 | 2,
  rate: number,
): ProducerSpec {
  const options = extra ? `&${extra}` : "";
  return {
    wl,
    url: `${broker}?qos=${qos}&clientId=chaos-pub-${name}${options}&${common}&${
      fileStore("pub", name)
    }`,
    topics,
    qos,
    rate,
    durable: true,
  };
}

const plans: Record<string, Plan> = {
  pub: {
    killable: true,
    inflight: 4 + 60 + 60 + 60,
    consumers: [],
    bridges: [],
    producers: [
      producer("mq-q1", "q1", via("pub"), "maxInflight=4", ["chaos/q1/a", "chaos/q1/b"], 1, 60),
      producer("mq-q2", "q2", via("pub"), "mqttVersion=5", ["chaos/q2/a", "chaos/q2/b"], 2, 60),
      producer("br", "br", via("pub"), "", ["chaos/br/in/a"], 1, 30),
      producer("nats", "nats", natsUrl, "", ["chaos/nats/a", "chaos/nats/b"], 1, 40),
    ],
  },
  sub: {
    killable: true,
    inflight: 4 + 60 + 60 + 60,
    producers: [],
    bridges: [],
    consumers: [{
      wl: "mq-q1",
      url: `${via("sub")}?topic=chaos/q1/%23&qos=1&clientId=chaos-sub-q1&maxInflight=4&` +
        `ack=manual&${common}&${fileStore("sub", "q1")}`,
    }, {
      wl: "mq-q2",
      url: `${via("sub")}?topic=chaos/q2/%23&qos=2&clientId=chaos-sub-q2&mqttVersion=5&` +
        `ack=manual&${common}&${fileStore("sub", "q2")}`,
    }, {
      wl: "nats",
      url: `${natsUrl}?topic=chaos/nats/%23&qos=1&clientId=chaos-sub-nats&ack=manual&${common}&${
        fileStore("sub", "nats")
      }`,
    }, {
      wl: "br",
      url: `${natsUrl}?topic=chaos/br/out/%23&qos=1&clientId=chaos-sub-br&ack=manual&${common}&${
        fileStore("sub", "br")
      }`,
    }],
  },
  bridge: {
    killable: true,
    inflight: 120,
    producers: [],
    consumers: [],
    bridges: [{
      wl: "br",
      from: `${
        via("bridge")
      }?topic=chaos/br/in/%23&qos=1&clientId=chaos-bridge-in&ack=manual&${common}&${
        fileStore("bridge", "in")
      }`,
      to: `${natsUrl}?qos=1&clientId=chaos-bridge-out&${common}&${fileStore("bridge", "out")}`,
    }],
  },
  shared: {
    // Memory persistence: a SIGKILL would lose what it holds, so it is never killed.
    killable: false,
    inflight: 3 * 60 + 60,
    // Three sinks with one connection string share one connection (the connection cache).
    producers: ["a", "b", "c"].map((topic) => ({
      wl: "sh",
      url: `${via("shared")}?qos=1&clientId=chaos-shared-pub&${common}`,
      topics: [`chaos/sh/${topic}`],
      qos: 1 as const,
      rate: 20,
      durable: false,
    })),
    consumers: [{
      wl: "sh",
      url: `${
        via("shared")
      }?topic=chaos/sh/%23&qos=1&clientId=chaos-shared-sub&ack=manual&${common}`,
    }],
    bridges: [],
  },
};
writeFileSync(
  join(out, "workloads.json"),
  JSON.stringify(
    [
      {
        wl: "mq-q1",
        qos: 1,
        ordered: true,
        broker: "mosquitto",
        description: "QoS 1, 3.1.1, maxInflight 4",
      },
      { wl: "mq-q2", qos: 2, ordered: true, broker: "mosquitto", description: "QoS 2, MQTT 5" },
      {
        wl: "br",
        qos: 1,
        ordered: false,
        broker: "mosquitto → NATS",
        description: "bridge, ack=manual",
      },
      { wl: "nats", qos: 1, ordered: false, broker: "NATS cluster", description: "QoS 1, 3 nodes" },
      {
        wl: "sh",
        qos: 1,
        ordered: true,
        broker: "mosquitto",
        description: "3 sinks, 1 connection, memory",
      },
    ],
    null,
    2,
  ),
);

// --- worker processes ---------------------------------------------------------------------

const WORKER = new URL("./chaos/_worker.ts", import.meta.url);

/** A worker process and its incarnations. */
class Worker {
  child?: ChildProcess;
  inc = 0;
  /** Whether the current incarnation runs (spawned, and neither killed nor finished). */
  up = false;
  /** Told to finish: it exits on its own now. */
  #finishing = false;
  constructor(readonly proc: string, readonly plan: Plan) {}

  start(): void {
    this.inc++;
    const config: WorkerConfig = {
      proc: this.proc,
      inc: this.inc,
      journal: join(out, "journal", `${this.proc}.${this.inc}.jsonl`),
      producers: this.plan.producers,
      consumers: this.plan.consumers,
      bridges: this.plan.bridges,
      bound: this.plan.inflight * MAX_PACKET,
      slowMs: SLOW_MS,
      hangMs: HANG_MS,
    };
    const log = join(out, `${this.proc}.log`);
    // --expose-gc under Deno, so that the worker can sample its heap after a full collection.
    const child = spawnScript(WORKER, [JSON.stringify(config)], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    }, { DENO_V8_FLAGS: "--expose-gc" });
    const write = (chunk: Uint8Array) => appendFileSync(log, chunk);
    child.stdout!.on("data", write);
    child.stderr!.on("data", write);
    child.stdin!.on("error", () => {}); // a killed child's pipe: the command is lost with it
    this.child = child;
    this.up = true;
    exited(child).then(({ code, signal }) => {
      if (this.child !== child || !this.up || this.#finishing) return;
      // Nobody killed it and it was not told to finish: it crashed (an uncaught error, an
      // unhandled rejection). A defect, whatever its cause: recorded, and started again.
      orchestrator.record({
        k: "error",
        wl: this.proc,
        name: "WorkerExit",
        mqtt: false,
        message: `${this.proc} exited by itself (code ${code}, signal ${signal}): see ${log}`,
      });
      this.up = false;
      setTimeout(() => this.start(), 500);
    });
  }

  /** Tells it to finish its producers, or everything; a worker with nothing else exits then. */
  finish(role: "producers" | "all"): void {
    const readers = this.plan.consumers.length + this.plan.bridges.length;
    if (role === "all" || readers === 0) this.#finishing = true;
    this.send({ cmd: "finish", role });
  }

  send(command: Command): boolean {
    if (!this.up || !this.child) return false;
    this.child.stdin!.write(JSON.stringify(command) + "\n");
    return true;
  }

  async crash(downMs: number): Promise<void> {
    this.up = false;
    await kill(this.child!);
    await sleep(downMs);
    this.start();
  }

  /** Waits up to `ms` for it to end on its own; SIGKILLs it after that. Whether it ended. */
  async ended(ms: number): Promise<boolean> {
    const child = this.child!;
    const done = await Promise.race([exited(child).then(() => true), sleep(ms).then(() => false)]);
    if (!done) await kill(child);
    this.up = false;
    return done;
  }
}

const workers = new Map(
  Object.entries(plans).map(([proc, plan]) => [proc, new Worker(proc, plan)]),
);
cleanups.push(async () => {
  for (const worker of workers.values()) {
    if (worker.child && worker.up) await kill(worker.child);
  }
});

// --- the schedule ---------------------------------------------------------------------------

const targets: Targets = {
  proxies: [...proxies.keys()],
  mosquitto: "mosquitto",
  natsNodes: nats.nodes.map((node) => node.name),
  killable: [...workers.values()].filter((w) => w.plan.killable).map((w) => w.proc),
  processes: [...workers.keys()],
  disk: typeof disk !== "string",
  readers: Object.entries(plans).flatMap(([proc, plan]) =>
    plan.consumers.map(({ wl }) => ({ wl, proc }))
  ),
  writers: Object.entries(plans).flatMap(([proc, plan]) =>
    [...plan.producers, ...plan.bridges].map(({ wl }) => ({ wl, proc }))
  ).filter((w, i, all) => all.findIndex((o) => o.wl === w.wl && o.proc === w.proc) === i),
  keepAlive: KEEP_ALIVE,
};
const durationMs = Math.round(minutes * 60_000);
const faults = schedule(seed, durationMs, targets);
const header = [
  `chaos run: seed ${seed}, ${minutes} min, ${RUNTIME}, ${faults.length} faults, results in ${out}`,
  ...faults.map(describe),
];
console.log(header.join("\n"));
writeFileSync(
  join(out, "schedule.json"),
  JSON.stringify({ seed, minutes, RUNTIME, faults }, null, 2),
);

/** The workloads each fault reaches, for the recovery times. */
function affects(fault: Fault): string[] {
  const wlsOf = (proc: string) => {
    const plan = plans[proc];
    return [...new Set([...plan.producers, ...plan.consumers, ...plan.bridges].map((s) => s.wl))];
  };
  switch (fault.kind) {
    case "cut":
    case "delay":
    case "refuse":
      return wlsOf(fault.target.replace("proxy-", ""));
    case "broker-kill":
      return ["mq-q1", "mq-q2", "br", "sh"];
    case "nats-kill":
      return ["nats", "br"];
    case "client-kill":
    case "block":
      return wlsOf(fault.target);
    case "disk-full":
      return wlsOf("pub");
    default:
      return [fault.target];
  }
}

/** The process that holds a workload's stream of the kind a fault strikes. */
function ownerOf(fault: Fault): Worker {
  const list = fault.kind === "abort" ? targets.writers : targets.readers;
  return workers.get(list.find((r) => r.wl === fault.target)!.proc)!;
}

/** Settles once the NATS node killed last serves again. */
let natsDown = Promise.resolve();

/** Carries out one fault; a note on what happened. */
async function inject(fault: Fault): Promise<string> {
  switch (fault.kind) {
    case "cut": {
      const proxy = proxies.get(fault.target)!;
      const [type, when] = fault.detail!.split(" ");
      if (type === "random") return `cut ${proxy.cutNow()} connections`;
      const cut = await proxy.cutAt(type as PacketType, {
        after: when === "after",
        withinMs: fault.ms,
      });
      return cut ? "cut" : "no such packet while armed";
    }
    case "delay":
      await proxies.get(fault.target)!.delay(fault.ms);
      return "";
    case "refuse":
      await proxies.get(fault.target)!.refuse(fault.ms);
      return "";
    case "broker-kill":
      await mosquitto.restart(fault.ms, "SIGKILL");
      return "";
    case "nats-kill": {
      // One node down at a time, whatever a restart took (up to 30 s: it waits until the node
      // serves again): with two of three down the cluster has no quorum, and stops.
      const previous = natsDown;
      let up!: () => void;
      natsDown = new Promise<void>((resolve) => (up = resolve));
      const waited = Date.now();
      await previous;
      const queued = Date.now() - waited;
      const node = nats.nodes.find((n) => n.name === fault.target)!;
      try {
        await node.kill();
        await sleep(fault.ms);
        await node.restart();
      } finally {
        up();
      }
      return queued > 100 ? `waited ${queued} ms for the previous node to serve again` : "";
    }
    case "client-kill":
      await workers.get(fault.target)!.crash(fault.ms);
      return "";
    case "disk-full": {
      if (typeof disk === "string") return "not injected";
      const bytes = disk.fill();
      await sleep(fault.ms);
      disk.free();
      return `filled with ${bytes} bytes`;
    }
    case "stall":
      return ownerOf(fault).send({ cmd: "stall", wl: fault.target, ms: fault.ms })
        ? ""
        : "skipped: its process was down";
    case "block": {
      const worker = workers.get(fault.target)!;
      return worker.send({ cmd: "block", ms: fault.ms }) ? "" : "skipped: its process was down";
    }
    case "abort":
    case "cancel":
      return ownerOf(fault).send({ cmd: fault.kind, wl: fault.target })
        ? ""
        : "skipped: its process was down";
  }
}

/** Waits until every reader and bridge of `procs` has recorded that it subscribed. */
async function subscribed(procs: string[], ms: number): Promise<void> {
  const want = procs.flatMap((proc) =>
    [...plans[proc].consumers, ...plans[proc].bridges].map(({ wl }) => `${proc} ${wl}`)
  );
  const deadline = Date.now() + ms;
  for (;;) {
    const seen = new Set<string>();
    for (const proc of procs) {
      const path = join(out, "journal", `${proc}.1.jsonl`);
      const text = existsSync(path) ? readFileSync(path, "utf8") : "";
      for (const line of text.split("\n")) {
        if (line.includes('"k":"ready"')) {
          const { wl } = JSON.parse(line);
          seen.add(`${proc} ${wl}`);
        }
      }
    }
    if (want.every((key) => seen.has(key))) return;
    if (Date.now() > deadline) {
      throw new Error(`not subscribed within ${ms} ms: ${want.filter((k) => !seen.has(k))}`);
    }
    await sleep(200);
  }
}

// --- the run ------------------------------------------------------------------------------

const faultLog = join(out, "faults.jsonl");
let exitCode = 1;
try {
  // The readers first, so that every session exists before the first message is sent.
  const readers = ["sub", "bridge", "shared"];
  for (const proc of readers) workers.get(proc)!.start();
  await subscribed(readers, 30_000);
  workers.get("pub")!.start();
  const started = Date.now();
  const running: Promise<void>[] = [];
  for (const fault of faults) {
    const wait = started + fault.at - Date.now();
    if (wait > 0) await sleep(wait);
    const start = Date.now();
    running.push(
      inject(fault).then(
        (note) => note,
        (error) => `failed to inject: ${(error as Error).message}`,
      ).then((note) => {
        const entry = {
          kind: fault.kind,
          target: fault.target,
          detail: fault.detail,
          start,
          end: fault.kind === "stall" ? start + fault.ms : Date.now(),
          affects: affects(fault),
          note,
        };
        appendFileSync(faultLog, JSON.stringify(entry) + "\n");
        if (note.startsWith("failed")) console.log(`${describe(fault)}: ${note}`);
      }),
    );
  }
  await sleep(started + durationMs - Date.now());
  console.log("faults over: healing, then the producers close");
  await Promise.all(running);
  for (const worker of workers.values()) if (!worker.up) worker.start();
  // Room for every stream to reconnect before it is asked to finish.
  await sleep(5_000);
  for (const proc of ["pub", "shared"]) {
    workers.get(proc)!.finish("producers");
  }
  if (!(await workers.get("pub")!.ended(HANG_MS))) {
    orchestrator.record({ k: "hang", wl: "pub", op: "exit", ms: HANG_MS });
  }
  console.log("producers done: draining");
  const drainEnd = Date.now() + DRAIN_MS;
  // Done when nothing is missing but what a broker's SIGKILL took (see the checker); what is
  // still missing at the end was never read.
  const unread = () =>
    check(out).workloads.filter((w) => w.qos > 0 && w.lost.length > 0)
      .map((w) => [w.wl, w.lost.length] as const);
  let left = unread();
  while (left.length > 0 && Date.now() < drainEnd) {
    await sleep(3_000);
    left = unread();
  }
  // A reader still missing messages has not read them within DRAIN_MS of the producers closing:
  // its read hung, whatever else the checker finds.
  for (const [wl, lost] of left) {
    orchestrator.record({ k: "hang", wl, op: "read", ms: DRAIN_MS, missing: lost });
  }
  for (const proc of ["sub", "bridge", "shared"]) {
    workers.get(proc)!.finish("all");
  }
  for (const proc of ["sub", "bridge", "shared"]) {
    if (!(await workers.get(proc)!.ended(HANG_MS))) {
      orchestrator.record({ k: "hang", wl: proc, op: "exit", ms: HANG_MS });
    }
  }
  const report = check(out);
  const text = `${header[0]}\n\n${formatReport(report)}`;
  writeFileSync(join(out, "report.md"), text + "\n");
  writeFileSync(
    join(out, "report.json"),
    JSON.stringify({ seed, minutes, RUNTIME, report }, null, 2),
  );
  console.log(`\n${text}`);
  exitCode = report.verdict.ok ? 0 : 1;
} finally {
  await cleanUp();
}
console.log(`journals, logs and the report: ${out}`);
process.exitCode = exitCode;
