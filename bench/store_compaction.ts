// Put latency of the file store while its log is compacted: the store of a baseline commit
// (c19d053, which rewrites and fsyncs the log inside the put that crosses the threshold)
// against the one in src/stores/, in the same run, on the same disk (a temporary folder).
//
//   npx --yes deno@2 run -A bench/store_compaction.ts [--pairs 50000] [--rounds 3]
//     [--baseline c19d053] [--only batch,window,always]
//
// Cases (1 KiB payloads, the outgoing store as a sink uses it, batched dels):
// - batch: put/del pairs with fsync=batch (the default): the log holds ~nothing live and is
//   compacted each time it passes 1 MiB (about every 1,000 pairs).
// - window: the same with 1,000 packets in flight (put i, del i − 1000): 1 MiB live, so each
//   compaction rewrites 1 MiB, when the log passes 4 MiB.
// - always: fsync=always, 64 puts in flight, each del'd when its put is called back.
//
// Measured per put: the time put() itself takes (the task that runs it stalls every other
// stream of the process); with fsync=batch, the put's round: put, del and one turn of the
// event loop, which includes whatever ran in between (a compaction in a sync's callback, or
// an asynchronous compaction's slices); put → callback; and, from a 5 ms interval timer, how
// late the event loop ran it. The baseline is loaded from `git show <ref>:src/stores/_log_store.ts`, its
// imports pointed at the current src/stores/ (whose on-disk format it shares).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { setImmediate } from "node:timers";
import { FileStore } from "../src/stores/_log_store.ts";
import type { FsyncMode, StoredPacket } from "../src/stores/store.ts";

type Callback = (error?: Error | null) => void;
/** What the bench calls on either store. */
interface Store {
  put(packet: StoredPacket, cb?: Callback): unknown;
  del(packet: { messageId?: number }, cb?: Callback): unknown;
  close(cb?: (error?: Error) => void): void;
}
type StoreClass = new (
  path: string,
  fsync: FsyncMode,
  init?: { batchDeletes?: boolean },
) => Store;

/** Self-contained (no broker, no harness): "Deno 2.9.6", "Bun 1.4.5" or "Node 20.19.0". */
const RUNTIME = typeof Deno === "object"
  ? `Deno ${Deno.version.deno}`
  : process.versions.bun
  ? `Bun ${process.versions.bun}`
  : `Node ${process.versions.node}`;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];

function flag(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : process.argv[at + 1];
}

const PAIRS = Number(flag("pairs", "50000"));
const ROUNDS = Number(flag("rounds", "3"));
const BASELINE = flag("baseline", "c19d053");
const ONLY = flag("only", "batch,window,always").split(",");
const PAYLOAD = new Uint8Array(1024).map((_, i) => (i * 31) & 0xff);

/** The baseline's FileStore, from git, importing the current on-disk format. */
async function loadBaseline(ref: string, scratch: string): Promise<StoreClass> {
  const root = new URL("../", import.meta.url);
  const source = execFileSync("git", ["show", `${ref}:src/stores/_log_store.ts`], {
    cwd: root,
    encoding: "utf8",
  });
  const stores = new URL("src/stores/", root).href;
  const rewritten = source
    .replaceAll(`from "./`, `from "${stores}`)
    .replaceAll(`from "../`, `from "${new URL("src/", root).href}`);
  const file = join(scratch, "baseline_log_store.ts");
  writeFileSync(file, rewritten);
  const module = await import(new URL(`file://${file}`).href);
  return module.FileStore as StoreClass;
}

interface Run {
  /** µs each put() call took. */
  call: number[];
  /** µs from put() to its callback. */
  callback: number[];
  /** fsync=batch: µs from put() until the loop had its next turn (put, del, one task's wait). */
  round: number[];
  /** ms the 5 ms timer ran late. */
  late: number[];
  /** Compactions seen (the log's inode changed). */
  compactions: number;
  seconds: number;
}

const packet = (messageId: number): StoredPacket => ({
  cmd: "publish",
  topic: "bench/store",
  payload: PAYLOAD,
  qos: 1,
  messageId,
  dup: false,
  retain: false,
});

const idOf = (i: number) => (i % 60_000) + 1;
const yieldTask = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Runs one case on a fresh log with `Class`. */
async function runCase(Class: StoreClass, name: string): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-bench-store-"));
  const path = join(dir, "outgoing.log");
  const fsync: FsyncMode = name === "always" ? "always" : "batch";
  const store = new Class(path, fsync, { batchDeletes: true });
  const run: Run = { call: [], callback: [], round: [], late: [], compactions: 0, seconds: 0 };
  let inode = statSync(path).ino;
  const watch = () => {
    const now = statSync(path).ino;
    if (now !== inode) run.compactions++;
    inode = now;
  };
  let expected = performance.now() + 5;
  const ticker = setInterval(() => {
    const now = performance.now();
    run.late.push(Math.max(0, now - expected));
    expected = now + 5;
  }, 5);
  const started = performance.now();
  try {
    if (name === "always") await windowed(store, run, 64, PAIRS, watch);
    else await sequential(store, run, name === "window" ? 1000 : 0, watch);
  } finally {
    clearInterval(ticker);
    run.seconds = (performance.now() - started) / 1000;
    await new Promise<void>((resolve) => store.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
  return run;
}

/** fsync=batch: a put, then the del of the put `live` before, one pair a task. */
async function sequential(store: Store, run: Run, live: number, watch: () => void) {
  for (let i = 0; i < PAIRS + live; i++) {
    const t0 = performance.now();
    if (i < PAIRS) {
      store.put(packet(idOf(i)), () => run.callback.push((performance.now() - t0) * 1000));
      run.call.push((performance.now() - t0) * 1000);
    }
    if (i >= live) store.del({ messageId: idOf(i - live) });
    await yieldTask();
    if (i < PAIRS) run.round.push((performance.now() - t0) * 1000);
    if (i % 64 === 0) watch();
  }
}

/** fsync=always: `window` puts in flight, each del'd once it is called back. */
async function windowed(
  store: Store,
  run: Run,
  window: number,
  count: number,
  watch: () => void,
) {
  let outstanding = 0;
  let wake: (() => void) | undefined;
  for (let i = 0; i < count; i++) {
    while (outstanding >= window) await new Promise<void>((resolve) => (wake = resolve));
    outstanding++;
    const id = idOf(i);
    const t0 = performance.now();
    store.put(packet(id), () => {
      run.callback.push((performance.now() - t0) * 1000);
      outstanding--;
      store.del({ messageId: id });
      wake?.();
      wake = undefined;
    });
    run.call.push((performance.now() - t0) * 1000);
    if (i % 64 === 0) watch();
  }
  while (outstanding > 0) await new Promise<void>((resolve) => (wake = resolve));
}

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const sorted = Float64Array.from(xs).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** The figures of one run, by name. */
function figures(run: Run): Record<string, number> {
  return {
    "put() p50 µs": percentile(run.call, 0.5),
    "put() p99 µs": percentile(run.call, 0.99),
    "put() p99.9 µs": percentile(run.call, 0.999),
    "put() max µs": percentile(run.call, 1),
    ...(run.round.length === 0 ? {} : {
      "put round p50 µs": percentile(run.round, 0.5),
      "put round p99 µs": percentile(run.round, 0.99),
      "put round p99.9 µs": percentile(run.round, 0.999),
      "put round max µs": percentile(run.round, 1),
      "put rounds ≥ 2 ms": run.round.filter((us) => us >= 2000).length,
    }),
    "put→callback p50 µs": percentile(run.callback, 0.5),
    "put→callback p99 µs": percentile(run.callback, 0.99),
    "put→callback p99.9 µs": percentile(run.callback, 0.999),
    "put→callback max µs": percentile(run.callback, 1),
    "timer late p99 ms": percentile(run.late, 0.99),
    "timer late max ms": percentile(run.late, 1),
    "compactions": run.compactions,
    "seconds": run.seconds,
  };
}

const fmt = (x: number) =>
  x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3);

const scratch = mkdtempSync(join(tmpdir(), "mqtt-streams-bench-baseline-"));
try {
  const subjects: Record<string, StoreClass> = {
    [`baseline ${BASELINE}`]: await loadBaseline(BASELINE, scratch),
    "src/stores": FileStore as unknown as StoreClass,
  };
  const names = Object.keys(subjects);
  console.log(
    `${RUNTIME}, ${tmpdir()}, ${PAIRS} pairs × 1 KiB, ${ROUNDS} rounds (after a warm-up), ` +
      `alternating ${names.join(" / ")}`,
  );
  for (const name of ONLY) {
    const runs: Record<string, Record<string, number>[]> = {};
    for (const subject of names) runs[subject] = [];
    for (let round = 0; round <= ROUNDS; round++) {
      const order = round % 2 === 0 ? names : [...names].reverse();
      for (const subject of order) {
        const result = figures(await runCase(subjects[subject], name));
        if (round > 0) runs[subject].push(result);
      }
    }
    console.log(`\n## ${name}: median (min–max) of ${ROUNDS} runs; ratio = src / baseline`);
    console.log(`| figure | ${names.join(" | ")} | ratio |`);
    console.log(`|---|${names.map(() => "---|").join("")}---|`);
    for (const figure of Object.keys(runs[names[0]][0])) {
      const cells = names.map((subject) => {
        const values = runs[subject].map((r) => r[figure]);
        return {
          median: median(values),
          text: `${fmt(median(values))} (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`,
        };
      });
      const ratio = cells[0].median === 0 ? "-" : fmt(cells[1].median / cells[0].median);
      console.log(`| ${figure} | ${cells.map((c) => c.text).join(" | ")} | ${ratio} |`);
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
