// One process of the chaos run: the producers, consumers and bridges the orchestrator
// (bench/chaos.ts) gave it, each with its journal lines, and the faults it is told of on
// stdin (stall a reader, block the event loop, abort a sink, cancel a source, finish).
// The orchestrator may SIGKILL it at any moment and start it again with the next
// incarnation number: the streams with persistence=file then resume from their stores.
//
//   <runtime> bench/chaos/_worker.ts '<WorkerConfig as JSON>'
import process from "node:process";
import { createInterface } from "node:readline";
import {
  type MqttMessage,
  type MqttRecord,
  MqttSink,
  MqttSource,
  MqttStreamError,
} from "../../mod.ts";
import { sleep } from "../../testing/helpers.ts";
import { openJournal } from "./_journal.ts";

/** Writes numbered messages to `topics` (round-robin) through one sink. */
export interface ProducerSpec {
  wl: string;
  /** The sink's connection string (qos, clientId, persistence, maxInflight …). */
  url: string;
  topics: string[];
  qos: 0 | 1 | 2;
  /** Messages a second, over all topics. */
  rate: number;
  /**
   * Whether its sink keeps unacknowledged publishes for the next one (persistence=file). A sink
   * without a store that is aborted or fails gives its unacknowledged publishes up, counting
   * them in `stats.failed` (docs/streams.md): recorded, so the checker can tell them from a loss.
   */
  durable: boolean;
}

/** Reads a workload's messages and records each before acknowledging it. */
export interface ConsumerSpec {
  wl: string;
  /** The source's connection string, `ack=manual` (the record is written before the ack). */
  url: string;
}

/** Pipes a source (`ack=manual`) into a sink, rewriting `/in/` to `/out/` in the topic. */
export interface BridgeSpec {
  wl: string;
  from: string;
  to: string;
}

/** What one worker process runs. */
export interface WorkerConfig {
  proc: string;
  inc: number;
  journal: string;
  producers: ProducerSpec[];
  consumers: ConsumerSpec[];
  bridges: BridgeSpec[];
  /** Σ maxInflight × maxPacketSize over its streams, reported beside its memory. */
  bound: number;
  /** An operation that takes longer is recorded as slow… */
  slowMs: number;
  /** …and one still pending after this long as hung. */
  hangMs: number;
}

/** A command from the orchestrator, one JSON object a line on stdin. */
export type Command =
  | { cmd: "stall"; wl: string; ms: number }
  | { cmd: "block"; ms: number }
  | { cmd: "abort"; wl: string }
  | { cmd: "cancel"; wl: string }
  | { cmd: "finish"; role: "producers" | "all" };

const config = JSON.parse(process.argv.at(-1)!) as WorkerConfig;
const journal = openJournal(config.journal);
journal.record({ k: "start", proc: config.proc, inc: config.inc });

const PADDING = "x".repeat(2_048);

/** Operations in progress, for the watchdog. */
const pending = new Set<{ wl: string; op: string; since: number; hung: boolean }>();

/**
 * Resolves as `promise` does, recording the operation as slow when it took longer than
 * `slowMs` and as hung, once, when it is still pending after `hangMs`.
 */
async function watch<T>(wl: string, op: string, promise: Promise<T>): Promise<T> {
  const entry = { wl, op, since: Date.now(), hung: false };
  pending.add(entry);
  try {
    return await promise;
  } finally {
    pending.delete(entry);
    const ms = Date.now() - entry.since;
    if (ms > config.slowMs) journal.record({ k: "slow", wl, op, ms, hung: entry.hung });
  }
}

const watchdog = setInterval(() => {
  const now = Date.now();
  for (const entry of pending) {
    if (!entry.hung && now - entry.since > config.hangMs) {
      entry.hung = true;
      journal.record({ k: "hang", wl: entry.wl, op: entry.op, ms: now - entry.since });
    }
  }
  // Every tenth sample after a full collection (where the runtime offers one): what is still
  // reachable then is what the process holds, not what the collector has yet to free.
  const collected = ++samples % 10 === 0 && collect();
  const { rss, heapUsed } = process.memoryUsage();
  journal.record({
    k: "mem",
    proc: config.proc,
    inc: config.inc,
    rss,
    heap: heapUsed,
    bound: config.bound,
    ...(collected ? { gc: true } : {}),
  });
}, 1_000);

let samples = 0;
/** A full garbage collection: Bun.gc(true), or gc() under Deno with --expose-gc. */
function collect(): boolean {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun) return bun.gc(true), true;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) return gc(), true;
  return false;
}

/** Records an error a stream delivered; whether it is an MqttStreamError is the point. */
function failed(wl: string, error: unknown): void {
  const e = error as { name?: string; code?: string; message?: string };
  journal.record({
    k: "error",
    wl,
    name: e?.name ?? typeof error,
    code: e?.code,
    mqtt: error instanceof MqttStreamError,
    message: String(e?.message ?? error).slice(0, 300),
  });
}

/** Per stream role and workload ("w:" writers, "r:" readers, "b:" bridges + the workload). */
interface Control {
  stallUntil: number;
  /** Each aborts its sink or cancels its source now; its loop then opens a new one. */
  interrupts: Set<() => Promise<void>>;
}
const controls = new Map<string, Control>();
function control(wl: string): Control {
  let found = controls.get(wl);
  if (!found) controls.set(wl, found = { stallUntil: 0, interrupts: new Set() });
  return found;
}

let finishingProducers = false;
let finishingAll = false;
/** Interrupts every stream of `wl`, recording what fails. */
function interrupt(key: string): void {
  const wl = key.slice(2);
  for (const stop of control(key).interrupts) stop().catch((error) => failed(wl, error));
}

/** Pauses in progress, ended early when finishing starts. */
const pauses = new Set<() => void>();
/**
 * Waits `ms`, or less if finishing starts. (Not Promise.race with a promise that stays pending
 * for the whole run: each race adds a reaction to it that lives as long as it does, which is a
 * leak of one closure a message; the chaos run's heap figures found it.)
 */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pauses.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    pauses.add(done);
  });
}
/** Ends the pauses, when finishing starts. */
function wake(): void {
  for (const done of pauses) done();
}

/**
 * Records, once an incarnation, that a reader's subscriptions are in place: the orchestrator
 * starts the producers only then, so the first messages have a session to wait in.
 */
const announced = new Set<string>();
let readersLeft = config.inc > 1 ? 0 : config.consumers.length + config.bridges.length;
let readersSubscribed!: () => void;
/** This process's own producers wait for its readers likewise (first incarnation). */
const readersReady = new Promise<void>((resolve) => (readersSubscribed = resolve));
if (readersLeft === 0) readersSubscribed();
function announce(wl: string, source: MqttSource): void {
  if (announced.has(wl)) return;
  announced.add(wl);
  source.ready.then(() => {
    journal.record({ k: "ready", proc: config.proc, wl });
    if (--readersLeft === 0) readersSubscribed();
  }, () => {
    announced.delete(wl); // the next source of this workload says it
  });
}

/** Writes numbered messages round-robin over its topics; each topic's seq counts up. */
async function produce(spec: ProducerSpec): Promise<void> {
  const seqs = new Map(spec.topics.map((topic) => [topic, 0]));
  const gap = 1_000 / spec.rate;
  let turn = 0;
  /** Names each sink of this producer in this incarnation. */
  let sinks = 0;
  await readersReady;
  while (!finishingProducers) {
    const sink = new MqttSink(spec.url);
    const name = `${config.inc}/${spec.topics.join(",")}#${sinks++}`;
    const writer = sink.getWriter();
    let broken = false;
    let aborted = false;
    const closed = writer.closed.catch((error) => {
      broken = true;
      if (!aborted) failed(spec.wl, error);
    });
    let aborting: Promise<void> | undefined;
    const stop = () => {
      aborted = true;
      return aborting = watch(spec.wl, "abort", writer.abort(new Error("chaos: abort")));
    };
    control(`w:${spec.wl}`).interrupts.add(stop);
    let next = Date.now();
    while (!broken && !aborted && !finishingProducers) {
      // Rejects once the stream failed or was aborted: `broken` or `aborted` is set by then.
      await writer.ready.catch(() => closed);
      if (broken || aborted || finishingProducers) break;
      const topic = spec.topics[turn++ % spec.topics.length];
      const seq = seqs.get(topic)!;
      seqs.set(topic, seq + 1);
      const id = `${topic}:${config.inc}:${seq}`;
      // Up to 2 KiB of padding, so that what a stream buffers weighs something.
      const pad = PADDING.slice(0, Math.floor(Math.random() * PADDING.length));
      const payload = JSON.stringify({ id, wl: spec.wl, topic, seq, inc: config.inc, pad });
      watch(spec.wl, "write", writer.write({ topic, payload, qos: spec.qos })).then(
        () =>
          journal.record({
            k: "sent",
            wl: spec.wl,
            id,
            topic,
            seq,
            inc: config.inc,
            qos: spec.qos,
            sink: name,
          }),
        () => {}, // the stream's error reaches `closed`, recorded once there
      );
      next += gap;
      const wait = next - Date.now();
      if (wait > 0) await pause(wait);
      else if (wait < -1_000) next = Date.now(); // behind after a stall: do not burst
    }
    control(`w:${spec.wl}`).interrupts.delete(stop);
    if (finishingProducers && !broken && !aborted) {
      await watch(spec.wl, "close", writer.close()).catch((error) => failed(spec.wl, error));
      return;
    }
    await aborting?.catch(() => {}); // its failure is recorded where it was awaited
    await closed;
    if (!spec.durable) {
      journal.record({ k: "abandoned", wl: spec.wl, sink: name, failed: sink.stats.failed });
    }
    writer.releaseLock();
    await sleep(broken ? 500 : 0);
  }
}

/** Reads and records every message, acknowledging each after its record. */
async function consume(spec: ConsumerSpec): Promise<void> {
  const ctl = control(`r:${spec.wl}`);
  while (!finishingAll) {
    const source = new MqttSource(spec.url);
    announce(spec.wl, source);
    const reader = source.getReader();
    let cancelled: Promise<void> | undefined;
    const stop = () => (cancelled = watch(spec.wl, "cancel", reader.cancel()));
    ctl.interrupts.add(stop);
    try {
      for (;;) {
        const stalled = ctl.stallUntil - Date.now();
        if (stalled > 0) await sleep(stalled);
        const { done, value } = await reader.read();
        // A cancelled stream's read ends at once; the source lets its store go when cancel()
        // resolves, and only then may the next source open it.
        if (done) break;
        const message = value as MqttMessage;
        const body = JSON.parse(message.text());
        journal.record({
          k: "read",
          wl: spec.wl,
          reader: spec.wl,
          inc: config.inc,
          id: body.id,
          topic: body.topic,
          seq: body.seq,
          pinc: body.inc,
          qos: message.qos,
          dup: message.dup,
        });
        message.ack();
      }
    } catch (error) {
      if (!cancelled) failed(spec.wl, error);
      await sleep(500);
    } finally {
      ctl.interrupts.delete(stop);
      await cancelled?.catch(() => {}); // its failure is recorded where it was awaited
    }
  }
}

/** source (ack=manual) → sink: each message acknowledged once the sink's broker has it. */
async function bridge(spec: BridgeSpec): Promise<void> {
  const ctl = control(`b:${spec.wl}`);
  while (!finishingAll) {
    const abort = new AbortController();
    let stopped = false;
    const source = new MqttSource(spec.from);
    announce(spec.wl, source);
    const piped = source
      .pipeThrough(
        new TransformStream<MqttMessage, MqttRecord>({
          transform(message, controller) {
            controller.enqueue({
              topic: message.topic.replace("/in/", "/out/"),
              payload: message.payload,
              qos: message.qos,
              ack: () => message.ack(),
            });
          },
        }),
      )
      .pipeTo(new MqttSink(spec.to), { signal: abort.signal });
    const stop = async () => {
      stopped = true;
      abort.abort(new Error("chaos: stop the bridge"));
      await watch(spec.wl, "abort", piped.catch(() => {}));
    };
    ctl.interrupts.add(stop);
    try {
      await piped;
    } catch (error) {
      if (!stopped) failed(spec.wl, error);
      await sleep(stopped ? 0 : 500);
    } finally {
      ctl.interrupts.delete(stop);
    }
  }
}

/** Blocks the event loop for `ms`: no timer, socket or promise of this process runs. */
function block(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) { /* busy on purpose */ }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  const command = JSON.parse(line) as Command;
  switch (command.cmd) {
    case "stall":
      control(`r:${command.wl}`).stallUntil = Date.now() + command.ms;
      break;
    case "block":
      block(command.ms);
      break;
    case "abort":
      interrupt(`w:${command.wl}`);
      interrupt(`b:${command.wl}`);
      break;
    case "cancel":
      interrupt(`r:${command.wl}`);
      break;
    case "finish":
      finishingProducers = true;
      if (command.role === "all") {
        finishingAll = true;
        for (const { wl } of config.consumers) interrupt(`r:${wl}`);
        for (const { wl } of config.bridges) interrupt(`b:${wl}`);
      }
      wake();
      break;
  }
});

const producers = Promise.all(config.producers.map(produce));
const others = Promise.all([...config.consumers.map(consume), ...config.bridges.map(bridge)]);
await producers;
journal.record({ k: "done", proc: config.proc, role: "producers" });
await others;
clearInterval(watchdog);
lines.close();
journal.record({ k: "done", proc: config.proc, role: "all" });
journal.close();
