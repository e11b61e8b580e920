// Reads what a chaos run's processes journaled and says, per workload, what was lost, duplicated,
// reordered or hung. It runs after the run (check, formatReport) and during the drain phase, so it
// must tolerate journals still being written: a half-written last line is skipped.
// Only `node:` imports, so the same file runs under Deno and Bun.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** What the checker found for one workload (producer → broker → consumer path). */
export interface WorkloadReport {
  /** The workload's name, as in workloads.json and the records' `wl`. */
  wl: string;
  /** The QoS the workload publishes and subscribes with. */
  qos: number;
  /** The broker the workload goes through. */
  broker: string;
  /** Whether the broker keeps order on this path, so order is checked. */
  ordered: boolean;
  /** Distinct ids with a "sent" record (a resolved write()). */
  sent: number;
  /** Distinct ids read. */
  read: number;
  /** Ids sent but never read, in natural order (all of them), but for those in `brokerLost`. */
  lost: string[];
  /**
   * Ids sent but never read that the broker had acknowledged (PUBACK or PUBREC, seen on the
   * wire: "taken" records) in the second before it was SIGKILLed: lost by a broker that
   * acknowledges before it saves (mosquitto), not by the library. Not a problem of the verdict,
   * but reported.
   */
  brokerLost: string[];
  /**
   * Ids sent but never read by a sink without a store that was then aborted or failed, no more
   * than the `stats.failed` it counted: given up, and said so (docs/streams.md). Not a problem.
   */
  givenUp: number;
  /** Distinct ids read but never recorded sent (a producer killed between its write and its
   * journal line): informational. */
  extra: number;
  /**
   * Reads beyond the first of an id, in total (including `brokerDuplicates` and
   * `killedBeforeAck`).
   */
  duplicates: number;
  /**
   * QoS 2 reads beyond the first of an id that the broker sent again after it had sent its
   * PUBREL ("resent" records, seen on the wire; one excuses one read): a broker restarted from a
   * state saved before it got the client's PUBREC sends the PUBLISH again instead of the PUBREL
   * (MQTT 5 §4.3.3 says PUBREL), under a packet id that is free again, so no client can tell it
   * from a new message. Counted apart from the within/across figures, and not a problem of the
   * verdict.
   */
  brokerDuplicates: number;
  /**
   * QoS 2 reads beyond the first of an id whose earlier read was the last one its reader
   * incarnation recorded, at most a second before a client-kill of its process: a reader
   * records a message and then acknowledges it, and a SIGKILL between the two leaves the
   * message unacknowledged in its store, so the next incarnation gets it again when the
   * broker sends the PUBREL again. That is the consumer's own gap, which docs/persistence.md
   * says no library can close; one such read is excused per killed incarnation. Counted apart
   * from the within/across figures, and not a problem of the verdict.
   */
  killedBeforeAck: number;
  /** Of those not excused above, the reads whose reader incarnation had already read that id. */
  duplicatesWithin: number;
  /** Of those not excused above, the reads of an id read before only by other incarnations. */
  duplicatesAcross: number;
  /** First reads with a seq lower than the highest first-read seq before them on the same
   * (topic, producer incarnation); 0 for unordered workloads. */
  orderViolations: number;
  /** Up to 5, like "chaos/mq/a inc 3: seq 17 after 19". */
  orderExamples: string[];
  /** Operation → how many times it did not settle within its bound. */
  hangs: Record<string, number>;
  /** Operation → the longest it took among the "slow" records (ms). */
  slowest: Record<string, number>;
  /** "name code" → how many MqttStreamErrors the streams delivered. */
  errors: Record<string, number>;
  /** Errors a stream delivered that were not MqttStreamErrors (defects). */
  foreignErrors: number;
  /** Up to 5 of those, "name: message". */
  foreignExamples: string[];
  /** The longest time from the end of a fault affecting this workload to its next read (ms), over
   * the faults followed by a read; null if none. */
  recoveryMs: number | null;
}

/** What the checker found for a whole run. */
export interface ChaosReport {
  /** One per workload: workloads.json's order, then any other workload the journals name. */
  workloads: WorkloadReport[];
  /** Fault kind → how many the orchestrator executed. */
  faults: Record<string, number>;
  /** One per process name, sorted: its incarnations and memory peaks (bytes). */
  processes: {
    proc: string;
    incarnations: number;
    peakRss: number;
    peakHeap: number;
    /**
     * The largest heap growth of one incarnation over its first sample (a second after it
     * started, its streams open): what the messages it held weighed, to compare with `bound`.
     */
    heapGrowth: number;
    /**
     * The same growth over the samples taken right after a full collection (every tenth, where
     * the runtime allows one): what the process kept reachable. null without such samples.
     */
    retainedGrowth: number | null;
    bound: number;
  }[];
  /** Journal lines that were not a JSON object, or lacked the fields their kind needs. */
  badLines: number;
  /** ok = no loss at QoS ≥ 1, no QoS 2 duplicate, no hang, no foreign error, no order violation
   * on an ordered workload; one sentence per problem. */
  verdict: { ok: boolean; problems: string[] };
}

/** A workload as workloads.json describes it. */
interface WorkloadSpec {
  wl: string;
  qos: number;
  ordered: boolean;
  broker: string;
}

/** A journal line that parsed into an object: fields are checked where they are used. */
type Rec = Record<string, unknown>;

/** A read record with where it sits in the merged order of all journals. */
interface ReadRec {
  rec: Rec;
  /** The highest t of its file up to and including it: sorting on it keeps each file's order. */
  key: number;
}

/** The journals' records: sent, read (in merged read order) and the other kinds. */
interface Parsed {
  sent: Rec[];
  reads: ReadRec[];
  others: Rec[];
  badLines: number;
}

/** The number of examples a report keeps and a problem sentence lists. */
const EXAMPLES = 5;
/**
 * A message the broker acknowledged this long before a SIGKILL, or up to CRASH_SLACK_MS after
 * the kill was started (the signal takes a moment), may have died with it unsaved.
 */
const CRASH_WINDOW_MS = 1_000;
const CRASH_SLACK_MS = 100;

/** "a:3:17" before "a:3:100", which a plain string sort gets wrong. */
const natural = new Intl.Collator("en", { numeric: true });

/** Workloads journaled without a wl (a process-level hang or error) are reported under this. */
const NO_WORKLOAD = "(unknown)";

const isString = (v: unknown): v is string => typeof v === "string";
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** The file's text, or "" if it does not exist (yet): the checker also runs mid-run. */
function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return "";
    throw error;
  }
}

/** Parses JSON lines; `onBad` hears of each non-empty line that is not a JSON object. */
function parseLines(text: string, onRecord: (rec: Rec) => void, onBad: () => void) {
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // A writer SIGKILLed mid-line leaves a truncated last line; anywhere else it is a defect
      // of the writer. Either way the fragment says nothing reliable: skip it and count it.
      onBad();
      // If the next incarnation appended to the same file, its first record is glued onto the
      // fragment: recover it from the first `{"k":` (the writers put k first) that parses.
      value = undefined;
      for (let at = line.indexOf('{"k":', 1); at > 0; at = line.indexOf('{"k":', at + 1)) {
        try {
          value = JSON.parse(line.slice(at));
          break;
        } catch {
          // not there either
        }
      }
      if (value === undefined) continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) onBad();
    else onRecord(value as Rec);
  }
}

/** The journal files, sorted so that a report does not depend on the directory's order. */
function journalFiles(dir: string): string[] {
  const folder = join(dir, "journal");
  if (!existsSync(folder)) return [];
  return readdirSync(folder)
    .filter((name) => name.endsWith(".jsonl"))
    .sort()
    .map((name) => join(folder, name));
}

/** workloads.json, or [] while it does not exist. */
function readWorkloads(dir: string): WorkloadSpec[] {
  const text = readText(join(dir, "workloads.json"));
  if (text.trim() === "") return [];
  const list = JSON.parse(text) as Rec[];
  return list.map((w) => ({
    wl: String(w.wl),
    qos: isNumber(w.qos) ? w.qos : 0,
    ordered: w.ordered === true,
    broker: isString(w.broker) ? w.broker : "",
  }));
}

/** Reads every journal. */
function parseJournals(dir: string): Parsed {
  const parsed: Parsed = { sent: [], reads: [], others: [], badLines: 0 };
  for (const file of journalFiles(dir)) {
    // Read records are merged across files by t, but a file's own order is the order its reader
    // saw them in, even if its clock stepped back: the key is the running max of t in the file.
    let key = -Infinity;
    parseLines(readText(file), (rec) => {
      switch (rec.k) {
        case "sent":
          if (isString(rec.wl) && isString(rec.id)) parsed.sent.push(rec);
          else parsed.badLines++;
          break;
        case "read":
          if (isString(rec.wl) && isString(rec.id)) {
            if (isNumber(rec.t) && rec.t > key) key = rec.t;
            parsed.reads.push({ rec, key });
          } else parsed.badLines++;
          break;
        default:
          parsed.others.push(rec);
      }
    }, () => parsed.badLines++);
  }
  // Array.prototype.sort is stable, so equal keys keep file order, then line order.
  parsed.reads.sort((a, b) => a.key - b.key);
  return parsed;
}

/** What the proxies saw: message id → when the broker took it, when it sent it again after PUBREL. */
interface Wire {
  taken: Map<string, number[]>;
  resent: Map<string, number[]>;
}

/** A workload's running tally while the records are walked. */
class Tally {
  sent = new Set<string>();
  /** id → the sink that wrote it, when the producer said. */
  sinkOf = new Map<string, string>();
  /** A sink without a store that was aborted or failed → its `stats.failed` then. */
  abandoned = new Map<string, number>();
  /** id → the reader incarnation(s) that read it: a string while read once, the usual case. */
  readBy = new Map<string, string | Set<string>>();
  readTimes: number[] = [];
  duplicates = 0;
  /**
   * Every read beyond the first of an id: when, whether by an incarnation that had read it, and
   * the incarnations that had.
   */
  repeats: { id: string; t: number; within: boolean; earlier: string[] }[] = [];
  /** Reader incarnation → the last read it recorded (so far, in read order). */
  lastRead = new Map<string, { id: string; t: number }>();
  /** "topic\npinc" → the highest first-read seq so far. */
  highest = new Map<string, number>();
  orderViolations = 0;
  orderExamples: string[] = [];
  hangs: Record<string, number> = {};
  slowest: Record<string, number> = {};
  errors: Record<string, number> = {};
  foreignErrors = 0;
  foreignExamples: string[] = [];

  constructor(public spec: WorkloadSpec) {}

  /** One read record, in merged read order. */
  read(rec: Rec) {
    const id = rec.id as string;
    const by = `${isString(rec.reader) ? rec.reader : ""}\n${String(rec.inc)}`;
    if (isNumber(rec.t)) this.readTimes.push(rec.t);
    this.lastRead.set(by, { id, t: isNumber(rec.t) ? rec.t : 0 });
    const before = this.readBy.get(id);
    if (before === undefined) {
      this.readBy.set(id, by);
      this.firstRead(rec);
      return;
    }
    this.duplicates++;
    const same = typeof before === "string" ? before === by : before.has(by);
    const earlier = typeof before === "string" ? [before] : [...before];
    this.repeats.push({ id, t: isNumber(rec.t) ? rec.t : 0, within: same, earlier });
    if (!same) {
      if (typeof before === "string") this.readBy.set(id, new Set([before, by]));
      else before.add(by);
    }
  }

  /** Only first reads count for order: a redelivery of an older seq is a duplicate, not a
   * reordering. */
  private firstRead(rec: Rec) {
    if (!this.spec.ordered) return;
    if (!isString(rec.topic) || !isNumber(rec.seq)) return;
    const stream = `${rec.topic}\n${String(rec.pinc)}`;
    const highest = this.highest.get(stream);
    if (highest === undefined || rec.seq > highest) this.highest.set(stream, rec.seq);
    else if (rec.seq < highest) {
      this.orderViolations++;
      if (this.orderExamples.length < EXAMPLES) {
        this.orderExamples.push(`${rec.topic} inc ${rec.pinc}: seq ${rec.seq} after ${highest}`);
      }
    }
  }

  /** hang, slow and error records. */
  other(rec: Rec) {
    const op = isString(rec.op) ? rec.op : "?";
    if (rec.k === "hang") this.hangs[op] = (this.hangs[op] ?? 0) + 1;
    else if (rec.k === "slow") {
      const ms = isNumber(rec.ms) ? rec.ms : 0;
      this.slowest[op] = Math.max(this.slowest[op] ?? 0, ms);
    } else if (rec.k === "error") {
      const name = isString(rec.name) ? rec.name : "Error";
      // Only an explicit mqtt:true vouches for an MqttStreamError: a record that does not say is
      // counted as a defect rather than hidden.
      if (rec.mqtt === true) {
        const key = isString(rec.code) && rec.code !== "" ? `${name} ${rec.code}` : name;
        this.errors[key] = (this.errors[key] ?? 0) + 1;
      } else {
        this.foreignErrors++;
        if (this.foreignExamples.length < EXAMPLES) {
          this.foreignExamples.push(`${name}: ${isString(rec.message) ? rec.message : ""}`);
        }
      }
    }
  }

  /** The longest time from a fault's end to the workload's next read, over `faults`. */
  recovery(faults: Rec[]): number | null {
    const times = this.readTimes.sort((a, b) => a - b);
    let longest: number | null = null;
    for (const fault of faults) {
      if (!Array.isArray(fault.affects) || !fault.affects.includes(this.spec.wl)) continue;
      if (!isNumber(fault.end)) continue;
      // The first read strictly after the fault healed: binary search over sorted read times.
      let lo = 0;
      let hi = times.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (times[mid] <= fault.end) lo = mid + 1;
        else hi = mid;
      }
      if (lo === times.length) continue;
      const ms = times[lo] - fault.end;
      if (longest === null || ms > longest) longest = ms;
    }
    return longest;
  }

  report(faults: Rec[], wire: Wire): WorkloadReport {
    const { taken, resent } = wire;
    const kills = faults.filter((f) =>
      f.kind === "broker-kill" && isNumber(f.start) && Array.isArray(f.affects) &&
      f.affects.includes(this.spec.wl)
    ).map((f) => f.start as number);
    const byCrash = (id: string) =>
      (taken.get(id) ?? []).some((t) =>
        kills.some((kill) => t >= kill - CRASH_WINDOW_MS && t <= kill + CRASH_SLACK_MS)
      );
    const lost: string[] = [];
    const brokerLost: string[] = [];
    for (const id of this.sent) {
      if (!this.readBy.has(id)) (byCrash(id) ? brokerLost : lost).push(id);
    }
    // A sink without a store that was aborted or failed gave its unacknowledged publishes up,
    // counting them in stats.failed (docs/streams.md): its lost messages are excused when they
    // are no more than that count, and all count as lost when they are more.
    const bySink = new Map<string, string[]>();
    for (const id of lost) {
      const sink = this.sinkOf.get(id);
      if (sink !== undefined && this.abandoned.has(sink)) {
        bySink.set(sink, [...bySink.get(sink) ?? [], id]);
      }
    }
    const givenUp = new Set<string>();
    for (const [sink, ids] of bySink) {
      if (ids.length <= this.abandoned.get(sink)!) ids.forEach((id) => givenUp.add(id));
    }
    if (givenUp.size > 0) lost.splice(0, lost.length, ...lost.filter((id) => !givenUp.has(id)));
    lost.sort(natural.compare);
    brokerLost.sort(natural.compare);
    let brokerDuplicates = 0, killedBeforeAck = 0, within = 0, across = 0;
    /** id → how many of its "resent" records have excused a read. */
    const used = new Map<string, number>();
    const clientKills = faults.filter((f) =>
      f.kind === "client-kill" && isNumber(f.start) && Array.isArray(f.affects) &&
      f.affects.includes(this.spec.wl)
    ).map((f) => f.start as number);
    /** Killed reader incarnations whose last read has excused a read. */
    const unacked = new Set<string>();
    // The earlier read was the last its incarnation recorded, and the process was SIGKILLed
    // right after: between its record and its ack(), as the workers do them one after the other.
    const killedBefore = (repeat: (typeof this.repeats)[number]) =>
      repeat.earlier.find((by) => {
        const last = this.lastRead.get(by);
        return !unacked.has(by) && last?.id === repeat.id &&
          clientKills.some((kill) =>
            last.t >= kill - CRASH_WINDOW_MS && last.t <= kill + CRASH_SLACK_MS
          );
      });
    for (const repeat of this.repeats) {
      const times = this.spec.qos === 2 ? resent.get(repeat.id) ?? [] : [];
      const excused = used.get(repeat.id) ?? 0;
      // The broker's extra PUBLISH passed the proxy before the reader could read it.
      const byRestart = times.filter((t) => t <= repeat.t).length > excused;
      const killed = this.spec.qos === 2 && !byRestart && !repeat.within
        ? killedBefore(repeat)
        : undefined;
      if (byRestart) {
        used.set(repeat.id, excused + 1);
        brokerDuplicates++;
      } else if (killed !== undefined) {
        unacked.add(killed);
        killedBeforeAck++;
      } else if (repeat.within) within++;
      else across++;
    }
    let extra = 0;
    for (const id of this.readBy.keys()) if (!this.sent.has(id)) extra++;
    return {
      wl: this.spec.wl,
      qos: this.spec.qos,
      broker: this.spec.broker,
      ordered: this.spec.ordered,
      sent: this.sent.size,
      read: this.readBy.size,
      lost,
      brokerLost,
      givenUp: givenUp.size,
      extra,
      duplicates: this.duplicates,
      brokerDuplicates,
      killedBeforeAck,
      duplicatesWithin: within,
      duplicatesAcross: across,
      orderViolations: this.orderViolations,
      orderExamples: this.orderExamples,
      hangs: this.hangs,
      slowest: this.slowest,
      errors: this.errors,
      foreignErrors: this.foreignErrors,
      foreignExamples: this.foreignExamples,
      recoveryMs: this.recovery(faults),
    };
  }
}

/** "a, b, c, d, e, …" from the first EXAMPLES of `items`. */
function some(items: string[], total = items.length): string {
  return items.slice(0, EXAMPLES).join(", ") + (total > EXAMPLES ? ", …" : "");
}

/** "close 1, write 2". */
function byOp(counts: Record<string, number>): string {
  return Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)).map(([op, n]) =>
    `${op} ${n}`
  ).join(", ");
}

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

/** One sentence per thing that fails the run. */
function problemsOf(w: WorkloadReport): string[] {
  const problems: string[] = [];
  if (w.qos >= 1 && w.lost.length > 0) {
    problems.push(`${w.wl}: ${w.lost.length} resolved writes lost (${some(w.lost)})`);
  }
  const duplicates = w.duplicatesWithin + w.duplicatesAcross;
  if (w.qos === 2 && duplicates > 0) {
    problems.push(
      `${w.wl}: ${duplicates} QoS 2 duplicates (${w.duplicatesWithin} within an incarnation, ` +
        `${w.duplicatesAcross} across incarnations)`,
    );
  }
  if (w.ordered && w.orderViolations > 0) {
    problems.push(
      `${w.wl}: ${w.orderViolations} order violations (${
        some(w.orderExamples, w.orderViolations)
      })`,
    );
  }
  const hangs = sum(w.hangs);
  if (hangs > 0) problems.push(`${w.wl}: ${hangs} operations hung (${byOp(w.hangs)})`);
  if (w.foreignErrors > 0) {
    problems.push(
      `${w.wl}: ${w.foreignErrors} errors that are not MqttStreamErrors (${
        some(w.foreignExamples, w.foreignErrors)
      })`,
    );
  }
  return problems;
}

/** Reads the run folder `dir` and reports per workload, per fault kind and per process. */
export function check(dir: string): ChaosReport {
  const specs = readWorkloads(dir);
  const { sent, reads, others, badLines } = parseJournals(dir);
  const tallies = new Map<string, Tally>();
  for (const spec of specs) tallies.set(spec.wl, new Tally(spec));
  // A workload the journals name but workloads.json does not is still reported, not dropped.
  const tally = (rec: Rec) => {
    const wl = isString(rec.wl) ? rec.wl : NO_WORKLOAD;
    let t = tallies.get(wl);
    if (!t) {
      t = new Tally({ wl, qos: isNumber(rec.qos) ? rec.qos : 0, ordered: false, broker: "" });
      tallies.set(wl, t);
    }
    return t;
  };
  for (const rec of sent) {
    const t = tally(rec);
    t.sent.add(rec.id as string);
    if (isString(rec.sink)) t.sinkOf.set(rec.id as string, rec.sink);
  }
  for (const { rec } of reads) tally(rec).read(rec);

  const procs = new Map<
    string,
    {
      incs: Set<unknown>;
      peakRss: number;
      peakHeap: number;
      bound: number;
      /** Incarnation → its first heap sample. */
      firstHeap: Map<unknown, number>;
      heapGrowth: number;
      /** Likewise over the samples taken after a full collection. */
      firstRetained: Map<unknown, number>;
      retainedGrowth: number | null;
    }
  >();
  const proc = (rec: Rec) => {
    const name = isString(rec.proc) ? rec.proc : "?";
    let p = procs.get(name);
    if (!p) {
      p = {
        incs: new Set(),
        peakRss: 0,
        peakHeap: 0,
        bound: 0,
        firstHeap: new Map(),
        heapGrowth: 0,
        firstRetained: new Map(),
        retainedGrowth: null,
      };
      procs.set(name, p);
    }
    return p;
  };
  for (const rec of others) {
    switch (rec.k) {
      case "hang":
      case "slow":
      case "error":
        tally(rec).other(rec);
        break;
      case "abandoned":
        if (isString(rec.sink) && isNumber(rec.failed)) {
          tally(rec).abandoned.set(rec.sink, rec.failed);
        }
        break;
      case "start":
        proc(rec).incs.add(rec.inc);
        break;
      case "mem": {
        // An incarnation that sampled memory started even if its start line was lost.
        const p = proc(rec);
        p.incs.add(rec.inc);
        if (isNumber(rec.rss)) p.peakRss = Math.max(p.peakRss, rec.rss);
        if (isNumber(rec.heap)) {
          p.peakHeap = Math.max(p.peakHeap, rec.heap);
          const first = p.firstHeap.get(rec.inc);
          if (first === undefined) p.firstHeap.set(rec.inc, rec.heap);
          else p.heapGrowth = Math.max(p.heapGrowth, rec.heap - first);
          if (rec.gc === true) {
            const base = p.firstRetained.get(rec.inc);
            if (base === undefined) p.firstRetained.set(rec.inc, rec.heap);
            else p.retainedGrowth = Math.max(p.retainedGrowth ?? 0, rec.heap - base);
          }
        }
        if (isNumber(rec.bound)) p.bound = Math.max(p.bound, rec.bound);
        break;
      }
    }
  }

  const faultRecs: Rec[] = [];
  const faults: Record<string, number> = {};
  parseLines(readText(join(dir, "faults.jsonl")), (rec) => {
    faultRecs.push(rec);
    const kind = isString(rec.kind) ? rec.kind : "?";
    faults[kind] = (faults[kind] ?? 0) + 1;
  }, () => {});

  const wire: Wire = { taken: new Map(), resent: new Map() };
  for (const rec of others) {
    if ((rec.k !== "taken" && rec.k !== "resent") || !isString(rec.id) || !isNumber(rec.t)) {
      continue;
    }
    const map = rec.k === "taken" ? wire.taken : wire.resent;
    const times = map.get(rec.id);
    if (times) times.push(rec.t);
    else map.set(rec.id, [rec.t]);
  }
  const workloads = [...tallies.values()].map((t) => t.report(faultRecs, wire));
  const problems = workloads.flatMap(problemsOf);
  return {
    workloads,
    faults,
    processes: [...procs.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, p]) => ({
      proc: name,
      incarnations: p.incs.size,
      peakRss: p.peakRss,
      peakHeap: p.peakHeap,
      heapGrowth: p.heapGrowth,
      retainedGrowth: p.retainedGrowth,
      bound: p.bound,
    })),
    badLines,
    verdict: { ok: problems.length === 0, problems },
  };
}

/** A Markdown table from a header row and body rows. */
function table(header: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

const mib = (bytes: number) => (bytes / 1048576).toFixed(1);

/**
 * Markdown: a table of workloads, notes on what the table does not show (errors, slow operations,
 * extra reads, examples), a table of faults by kind, a table of processes, then the verdict.
 */
export function formatReport(report: ChaosReport): string {
  const out: string[] = ["## Workloads", ""];
  out.push(table(
    [
      "workload",
      "broker",
      "QoS",
      "sent",
      "read",
      "lost",
      "lost by a broker crash",
      "given up (stats.failed)",
      "dup QoS 2 (within/across)",
      "QoS 2 sent again by a restarted broker",
      "dup QoS 1",
      "order violations",
      "hangs",
      "non-MqttStreamError",
      "longest recovery s",
    ],
    report.workloads.map((w) => {
      const hangs = sum(w.hangs);
      return [
        w.wl,
        w.broker || "–",
        w.qos,
        w.sent,
        w.read,
        w.lost.length,
        w.brokerLost.length,
        w.givenUp,
        // QoS 0 duplicates, should there be any, go with QoS 1's: neither promises exactly once.
        w.qos === 2
          ? `${
            w.duplicatesWithin + w.duplicatesAcross
          } (${w.duplicatesWithin}/${w.duplicatesAcross})`
          : "–",
        w.qos === 2 ? w.brokerDuplicates : "–",
        w.qos === 2 ? "–" : w.duplicates,
        w.ordered ? w.orderViolations : "–",
        hangs > 0 ? `${hangs} (${byOp(w.hangs)})` : 0,
        w.foreignErrors,
        w.recoveryMs === null ? "–" : (w.recoveryMs / 1000).toFixed(1),
      ];
    }),
  ));

  const notes: string[] = [];
  for (const w of report.workloads) {
    if (w.brokerLost.length > 0) {
      notes.push(
        `${w.wl}: acknowledged by the broker in the second before it was SIGKILLed, never read: ${
          some(w.brokerLost)
        }`,
      );
    }
    if (w.killedBeforeAck > 0) {
      notes.push(
        `${w.wl}: ${w.killedBeforeAck} QoS 2 messages read again after their reader was SIGKILLed ` +
          "between recording and acknowledging them",
      );
    }
    if (w.extra > 0) notes.push(`${w.wl}: ${w.extra} ids read that were never recorded sent`);
    if (Object.keys(w.errors).length > 0) {
      const errors = Object.entries(w.errors).sort(([a], [b]) => a.localeCompare(b));
      notes.push(`${w.wl}: MqttStreamErrors ${errors.map(([e, n]) => `${e} ×${n}`).join(", ")}`);
    }
    if (Object.keys(w.slowest).length > 0) {
      const slow = Object.entries(w.slowest).sort(([a], [b]) => a.localeCompare(b));
      notes.push(`${w.wl}: slowest ${slow.map(([op, ms]) => `${op} ${ms} ms`).join(", ")}`);
    }
    if (w.orderExamples.length > 0) notes.push(`${w.wl}: order ${w.orderExamples.join("; ")}`);
    if (w.foreignExamples.length > 0) {
      notes.push(`${w.wl}: non-MqttStreamErrors ${w.foreignExamples.join("; ")}`);
    }
  }
  if (report.badLines > 0) {
    notes.push(`${report.badLines} journal lines could not be read (truncated by a kill?)`);
  }
  if (notes.length > 0) out.push("", ...notes.map((n) => `- ${n}`));

  out.push("", "## Faults", "");
  out.push(table(
    ["fault", "count"],
    Object.entries(report.faults).sort(([a], [b]) => a.localeCompare(b)),
  ));

  out.push("", "## Processes", "");
  out.push(table(
    [
      "process",
      "incarnations",
      "peak RSS MiB",
      "peak heap MiB",
      "heap growth MiB",
      "retained growth MiB",
      "bound MiB",
    ],
    report.processes.map((p) => [
      p.proc,
      p.incarnations,
      mib(p.peakRss),
      mib(p.peakHeap),
      mib(p.heapGrowth),
      p.retainedGrowth === null ? "–" : mib(p.retainedGrowth),
      mib(p.bound),
    ]),
  ));

  out.push("", "## Verdict", "");
  if (report.verdict.ok) {
    out.push(
      "**ok**: no loss at QoS ≥ 1, no QoS 2 duplicate, no order violation, no hang, " +
        "no non-MqttStreamError.",
    );
  } else {
    out.push(`**failed**: ${report.verdict.problems.length} problems`, "");
    out.push(...report.verdict.problems.map((p) => `- ${p}`));
  }
  return out.join("\n") + "\n";
}
