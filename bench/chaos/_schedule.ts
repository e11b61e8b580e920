// The chaos run's schedule: which fault strikes what, when and for how long, drawn from a
// seeded PRNG so that `--seed N` replays the same schedule (the kernel's timing is not
// replayed: where a fault lands among the packets is up to the run). Faults overlap across
// targets; one target has at most one fault at a time, and a process that is being killed
// is not also stalled or blocked.
import { prng } from "../../testing/helpers.ts";

/** Every kind of fault the run injects. */
export type FaultKind =
  | "cut"
  | "delay"
  | "refuse"
  | "broker-kill"
  | "nats-kill"
  | "client-kill"
  | "disk-full"
  | "stall"
  | "block"
  | "abort"
  | "cancel";

/** One scheduled fault. */
export interface Fault {
  /** ms from the start of the run. */
  at: number;
  kind: FaultKind;
  /** A proxy, "mosquitto", a NATS node, a process, "disk", or a workload. */
  target: string;
  /** How long it lasts (a delay, an outage, a stall); for a cut, how long it stays armed. */
  ms: number;
  /** For a cut: the packet type it cuts at ("random" = at once), and "before" or "after" it. */
  detail?: string;
}

/** What can be struck in this run. */
export interface Targets {
  /** The fault proxies, each in front of one broker for one process. */
  proxies: string[];
  /** The mosquitto broker's name, if it may be killed. */
  mosquitto?: string;
  natsNodes: string[];
  /** Processes that may be SIGKILLed (they use persistence=file). */
  killable: string[];
  /** Every worker process (for a blocked event loop). */
  processes: string[];
  /** Whether the store's disk can be filled. */
  disk: boolean;
  /** Consumer workloads (stall, cancel) with their process. */
  readers: { wl: string; proc: string }[];
  /** Producer and bridge workloads (abort) with their process. */
  writers: { wl: string; proc: string }[];
  /** keepAlive of the workloads, seconds: a stall lasts longer. */
  keepAlive: number;
}

/** Packet types a cut may strike at; "random" cuts at once, wherever the traffic is. */
export const CUT_AT = [
  "connect",
  "connack",
  "subscribe",
  "suback",
  "publish",
  "puback",
  "pubrec",
  "pubrel",
  "pubcomp",
  "random",
] as const;

/** How often each kind is drawn, relative to the others. */
const WEIGHTS: Record<FaultKind, number> = {
  "cut": 30,
  "delay": 8,
  "refuse": 4,
  "broker-kill": 7,
  "nats-kill": 5,
  "client-kill": 12,
  "disk-full": 5,
  "stall": 8,
  "block": 8,
  "abort": 5,
  "cancel": 6,
};

/** Mean ms between two faults. */
const MEAN_GAP_MS = 1_500;

/**
 * Draws the faults of a run of `durationMs` from `seed`. The same seed and targets give the
 * same list.
 */
export function schedule(seed: number, durationMs: number, targets: Targets): Fault[] {
  const random = prng(seed);
  const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo));
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  /** Until when each target (and each process, by its name) is taken. */
  const busy = new Map<string, number>();
  const free = (at: number, ...keys: string[]) => keys.every((k) => (busy.get(k) ?? 0) <= at);
  const take = (until: number, ...keys: string[]) => keys.forEach((k) => busy.set(k, until));

  const kinds = (Object.keys(WEIGHTS) as FaultKind[]).filter((kind) =>
    (kind !== "broker-kill" || targets.mosquitto) &&
    (kind !== "nats-kill" || targets.natsNodes.length > 0) &&
    (kind !== "disk-full" || targets.disk) &&
    (kind !== "client-kill" || targets.killable.length > 0)
  );
  const total = kinds.reduce((sum, kind) => sum + WEIGHTS[kind], 0);
  const draw = (): FaultKind => {
    let r = random() * total;
    for (const kind of kinds) if ((r -= WEIGHTS[kind]) < 0) return kind;
    return kinds[kinds.length - 1];
  };

  const faults: Fault[] = [];
  // The first seconds are calm, so every stream is connected before the first fault.
  let at = 3_000;
  for (;;) {
    at += Math.round(-Math.log(1 - random()) * MEAN_GAP_MS);
    if (at >= durationMs) break;
    const kind = draw();
    let fault: Fault | undefined;
    switch (kind) {
      case "cut": {
        const target = pick(targets.proxies);
        const detail = `${pick(CUT_AT)} ${random() < 0.5 ? "before" : "after"}`;
        if (free(at, target)) fault = { at, kind, target, ms: 5_000, detail };
        break;
      }
      case "delay":
        fault = { at, kind, target: pick(targets.proxies), ms: between(200, 3_000) };
        break;
      case "refuse":
        fault = { at, kind, target: pick(targets.proxies), ms: between(500, 4_000) };
        break;
      case "broker-kill":
        fault = { at, kind, target: targets.mosquitto!, ms: between(0, 4_000) };
        break;
      case "nats-kill":
        // One node down at a time: the cluster keeps its replicated state on the other two.
        if (free(at, "nats")) {
          fault = { at, kind, target: pick(targets.natsNodes), ms: between(1_000, 5_000) };
        }
        break;
      case "client-kill":
        fault = { at, kind, target: pick(targets.killable), ms: between(0, 2_000) };
        break;
      case "disk-full":
        fault = { at, kind, target: "disk", ms: between(3_000, 12_000) };
        break;
      case "stall": {
        const { wl, proc } = pick(targets.readers);
        const ms = between(1_200, 2_000) * targets.keepAlive;
        if (free(at, wl, proc)) fault = { at, kind, target: wl, ms };
        break;
      }
      case "block":
        fault = { at, kind, target: pick(targets.processes), ms: 1_000 };
        break;
      case "abort":
      case "cancel": {
        const { wl, proc } = pick(kind === "abort" ? targets.writers : targets.readers);
        if (free(at, wl, proc)) fault = { at, kind, target: wl, ms: 0 };
        break;
      }
    }
    if (!fault || !free(at, fault.target)) continue;
    // A killed process is also busy: nothing is sent to it while it restarts.
    const keys = [fault.target];
    if (fault.kind === "nats-kill") keys.push("nats");
    const reader = [...targets.readers, ...targets.writers].find((r) => r.wl === fault.target);
    if (reader) {
      if (!free(at, reader.proc)) continue;
      keys.push(reader.proc);
    }
    // Room to recover after an outage before the same target is struck again.
    take(at + fault.ms + (kind.endsWith("kill") ? 8_000 : 1_000), ...keys);
    faults.push(fault);
  }
  return faults;
}

/** One line of a fault, for the printed schedule. */
export function describe(fault: Fault): string {
  const seconds = (fault.at / 1_000).toFixed(1).padStart(6);
  const detail = fault.detail ? ` at ${fault.detail}` : "";
  return `${seconds}s ${fault.kind} ${fault.target}${detail}${fault.ms ? ` ${fault.ms} ms` : ""}`;
}
