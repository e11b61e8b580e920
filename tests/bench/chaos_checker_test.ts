// The chaos checker on synthetic run folders: what it counts as lost, duplicated (within and
// across incarnations), reordered, hung and foreign, and the recovery it computes from faults.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ChaosReport, check, formatReport } from "../../bench/chaos/_checker.ts";

interface Workload {
  wl: string;
  qos: number;
  ordered: boolean;
  broker: string;
}

interface Run {
  workloads: Workload[];
  /** File name → its lines: objects are written as JSON, strings as they are. */
  journal: Record<string, (object | string)[]>;
  faults?: object[];
}

const Q1: Workload = { wl: "mq-q1", qos: 1, ordered: true, broker: "mosquitto" };
const Q2: Workload = { wl: "mq-q2", qos: 2, ordered: true, broker: "mosquitto" };
const Q0: Workload = { wl: "mq-q0", qos: 0, ordered: true, broker: "mosquitto" };
const UNORDERED: Workload = { wl: "nats-q1", qos: 1, ordered: false, broker: "nats" };

/** Writes the run folder, hands it to `fn`, and removes it whatever happens. */
function withRun(run: Run, fn: (dir: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), "chaos-checker-"));
  try {
    mkdirSync(join(dir, "journal"));
    writeFileSync(join(dir, "workloads.json"), JSON.stringify(run.workloads));
    for (const [name, lines] of Object.entries(run.journal)) {
      const text = lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n");
      writeFileSync(join(dir, "journal", name), text);
    }
    if (run.faults) {
      writeFileSync(join(dir, "faults.jsonl"), run.faults.map((f) => JSON.stringify(f)).join("\n"));
    }
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const topic = (wl: string) => `chaos/${wl}/a`;
const id = (wl: string, pinc: number, seq: number) => `${wl}/a:${pinc}:${seq}`;

/** A "sent" record of message `seq` of producer incarnation `inc`. */
function sent(w: Workload, inc: number, seq: number, t = seq) {
  return {
    k: "sent",
    wl: w.wl,
    id: id(w.wl, inc, seq),
    topic: topic(w.wl),
    seq,
    inc,
    qos: w.qos,
    t,
  };
}

/** A "read" record by consumer incarnation `inc` of message `seq` of producer incarnation
 * `pinc`. */
function read(w: Workload, inc: number, pinc: number, seq: number, t = 100 + seq) {
  return {
    k: "read",
    wl: w.wl,
    reader: w.wl,
    inc,
    id: id(w.wl, pinc, seq),
    topic: topic(w.wl),
    seq,
    pinc,
    qos: w.qos,
    t,
  };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The journal of producer incarnation `inc` of `w`: seq 0 to `n` - 1, each sent at `t0` + seq. */
function producer(w: Workload, inc: number, n: number, t0 = 0): Record<string, object[]> {
  return { [`${w.wl}-producer-${inc}.jsonl`]: range(n).map((seq) => sent(w, inc, seq, t0 + seq)) };
}

/** Producer and consumer journals of `n` messages of `w`, each read once in order. */
function clean(w: Workload, n: number): Record<string, object[]> {
  return {
    ...producer(w, 1, n),
    [`${w.wl}-consumer-1.jsonl`]: range(n).map((seq) => read(w, 1, 1, seq)),
  };
}

const workload = (report: ChaosReport, wl: string) => report.workloads.find((w) => w.wl === wl)!;

/**
 * A test of the checker on the run folder `run` describes, built when the test runs (so a slip in
 * it fails that test alone); `fn` gets the checker's report while the folder still exists.
 */
function scenario(name: string, run: () => Run, fn: (report: ChaosReport) => void) {
  test(name, () => withRun(run(), (dir) => fn(check(dir))));
}

scenario("a clean run is ok", () => ({
  workloads: [Q1, Q2],
  journal: {
    ...clean(Q1, 20),
    ...clean(Q2, 20),
    "w-mq-1.jsonl": [
      { k: "start", proc: "w-mq", inc: 1, t: 0 },
      { k: "mem", proc: "w-mq", inc: 1, rss: 50 << 20, heap: 10 << 20, bound: 3932160, t: 1 },
      { k: "mem", proc: "w-mq", inc: 1, rss: 60 << 20, heap: 8 << 20, bound: 3932160, t: 2 },
      {
        k: "mem",
        proc: "w-mq",
        inc: 2,
        rss: 40 << 20,
        heap: 4 << 20,
        bound: 3932160,
        gc: true,
        t: 4,
      },
      {
        k: "mem",
        proc: "w-mq",
        inc: 2,
        rss: 50 << 20,
        heap: 7 << 20,
        bound: 3932160,
        gc: true,
        t: 5,
      },
      { k: "start", proc: "w-mq", inc: 2, t: 3 },
      { k: "future-kind", whatever: true },
    ],
  },
}), (report) => {
  assert.deepEqual(report.verdict, { ok: true, problems: [] });
  assert.equal(report.badLines, 0);
  assert.deepEqual(report.workloads.map((w) => [w.wl, w.sent, w.read, w.lost.length]), [
    ["mq-q1", 20, 20, 0],
    ["mq-q2", 20, 20, 0],
  ]);
  assert.deepEqual(report.processes, [
    {
      proc: "w-mq",
      incarnations: 2,
      peakRss: 60 << 20,
      peakHeap: 10 << 20,
      // Over each incarnation's first sample: 10 → 8 is none, 4 → 7 is 3 MiB.
      heapGrowth: 3 << 20,
      // The same over the samples taken after a full collection (inc 2's).
      retainedGrowth: 3 << 20,
      bound: 3932160,
    },
  ]);
});

scenario(
  "a lost QoS 1 message is a problem naming its id; QoS 0 loss is reported, not a problem",
  () => {
    const journal = { ...clean(Q1, 10), ...clean(Q0, 10) };
    journal["mq-q1-consumer-1.jsonl"].splice(7, 1);
    journal["mq-q0-consumer-1.jsonl"].splice(3, 2);
    return { workloads: [Q1, Q0], journal };
  },
  (report) => {
    const [q1, q0] = report.workloads;
    assert.deepEqual(q1.lost, ["mq-q1/a:1:7"]);
    assert.deepEqual(q0.lost, ["mq-q0/a:1:3", "mq-q0/a:1:4"]);
    assert.equal(report.verdict.ok, false);
    assert.deepEqual(report.verdict.problems, ["mq-q1: 1 resolved writes lost (mq-q1/a:1:7)"]);
  },
);

scenario("lost ids are sorted naturally, all kept, and the problem lists five", () => {
  const journal = clean(Q1, 120);
  journal["mq-q1-consumer-1.jsonl"] = journal["mq-q1-consumer-1.jsonl"].slice(0, 100);
  return { workloads: [Q1], journal };
}, (report) => {
  assert.equal(report.workloads[0].lost.length, 20);
  assert.equal(report.workloads[0].lost[0], "mq-q1/a:1:100");
  assert.equal(report.workloads[0].lost[19], "mq-q1/a:1:119");
  assert.equal(
    report.verdict.problems[0],
    "mq-q1: 20 resolved writes lost (mq-q1/a:1:100, mq-q1/a:1:101, mq-q1/a:1:102, " +
      "mq-q1/a:1:103, mq-q1/a:1:104, …)",
  );
});

scenario(
  "QoS 2 duplicates within one incarnation and across incarnations are counted apart",
  () => ({
    workloads: [Q2],
    journal: {
      ...producer(Q2, 1, 6),
      "mq-q2-consumer-1.jsonl": [
        ...range(4).map((seq) => read(Q2, 1, 1, seq)),
        read(Q2, 1, 1, 2, 110), // the same incarnation reads seq 2 again: within
      ],
      "mq-q2-consumer-2.jsonl": [
        read(Q2, 2, 1, 3, 200), // seq 3 was read only by incarnation 1: across
        read(Q2, 2, 1, 3, 201), // and now incarnation 2 had read it too: within
        read(Q2, 2, 1, 4, 202),
        read(Q2, 2, 1, 5, 203),
      ],
    },
  }),
  (report) => {
    const w = report.workloads[0];
    assert.deepEqual([w.duplicates, w.duplicatesWithin, w.duplicatesAcross], [3, 2, 1]);
    assert.deepEqual([w.sent, w.read, w.lost.length, w.orderViolations], [6, 6, 0, 0]);
    assert.deepEqual(report.verdict.problems, [
      "mq-q2: 3 QoS 2 duplicates (2 within an incarnation, 1 across incarnations)",
    ]);
  },
);

scenario(
  "a loss or QoS 2 duplicate the broker's SIGKILL explains (wire records) is reported apart; others are not excused",
  () => ({
    workloads: [Q2],
    journal: {
      "pub.1.jsonl": range(6).map((seq) => sent(Q2, 1, seq, 500 + seq)),
      "sub.1.jsonl": [
        ...[0, 1, 3, 4, 5].map((seq) => read(Q2, 1, 1, seq, 600 + seq)),
        read(Q2, 1, 1, 0, 2_500), // the broker sent it again after its PUBREL (below)
        read(Q2, 1, 1, 1, 2_501), // a "resent" only after this read: not the broker's doing
        read(Q2, 1, 1, 4, 900), // nothing on the wire: the library's doing
      ],
      "wire.jsonl": [
        { k: "taken", id: id(Q2.wl, 1, 2), broker: "mosquitto", t: 950 }, // then never read
        { k: "taken", id: id(Q2.wl, 1, 5), broker: "mosquitto", t: 505 },
        { k: "resent", id: id(Q2.wl, 1, 0), broker: "mosquitto", t: 2_400 },
        { k: "resent", id: id(Q2.wl, 1, 1), broker: "mosquitto", t: 2_600 },
      ],
    },
    faults: [{ kind: "broker-kill", start: 1_000, end: 2_000, affects: ["mq-q2"] }],
  }),
  (report) => {
    const w = report.workloads[0];
    assert.deepEqual(w.brokerLost, [id(Q2.wl, 1, 2)]);
    assert.deepEqual(w.lost, []);
    assert.deepEqual([w.duplicates, w.brokerDuplicates, w.duplicatesWithin], [3, 1, 2]);
    assert.deepEqual(report.verdict.problems, [
      "mq-q2: 2 QoS 2 duplicates (2 within an incarnation, 0 across incarnations)",
    ]);
  },
);

scenario(
  "a QoS 2 message read again because its reader was SIGKILLed between recording and acknowledging it is reported apart; no other duplicate is",
  () => ({
    workloads: [Q2],
    journal: {
      ...producer(Q2, 1, 6),
      // Incarnation 1 records seq 2 last: killed at 605, before its ack() deleted it from the store.
      "sub.1.jsonl": [0, 1, 2].map((seq) => read(Q2, 1, 1, seq, 600 + seq)),
      "sub.2.jsonl": [
        read(Q2, 2, 1, 2, 1_400), // the broker's PUBREL again, the store still had it: excused
        read(Q2, 2, 1, 1, 1_401), // not incarnation 1's last read: acknowledged, so across
        read(Q2, 2, 1, 3, 1_402),
        read(Q2, 2, 1, 4, 1_403),
        read(Q2, 2, 1, 4, 1_404), // within one incarnation: never excused
        read(Q2, 2, 1, 5, 1_405), // its last read, but its kill came 3.6 s later: across below
      ],
      "sub.3.jsonl": [
        read(Q2, 3, 1, 5, 6_000),
        read(Q2, 3, 1, 2, 6_001), // incarnation 1's kill has excused its one read already
      ],
    },
    faults: [
      { kind: "client-kill", target: "sub", start: 605, end: 1_300, affects: ["mq-q1", "mq-q2"] },
      { kind: "client-kill", target: "sub", start: 5_000, end: 5_600, affects: ["mq-q2"] },
    ],
  }),
  (report) => {
    const w = report.workloads[0];
    assert.deepEqual(
      [w.duplicates, w.killedBeforeAck, w.brokerDuplicates, w.duplicatesWithin, w.duplicatesAcross],
      [5, 1, 0, 1, 3],
    );
    assert.deepEqual(report.verdict.problems, [
      "mq-q2: 4 QoS 2 duplicates (1 within an incarnation, 3 across incarnations)",
    ]);
    assert.ok(
      formatReport(report).includes(
        "- mq-q2: 1 QoS 2 messages read again after their reader was SIGKILLed between " +
          "recording and acknowledging them",
      ),
    );
  },
);

scenario(
  "the one QoS 2 duplicate of the chaos run's reader killed between its record and its ack leaves the verdict ok",
  () => ({
    workloads: [Q2],
    journal: {
      ...producer(Q2, 1, 4),
      "sub.1.jsonl": [0, 1].map((seq) => read(Q2, 1, 1, seq, 600 + seq)),
      "sub.2.jsonl": [1, 2, 3].map((seq) => read(Q2, 2, 1, seq, 1_400 + seq)),
    },
    faults: [{ kind: "client-kill", target: "sub", start: 604, end: 1_300, affects: ["mq-q2"] }],
  }),
  (report) => {
    const w = report.workloads[0];
    assert.deepEqual([w.duplicates, w.killedBeforeAck, w.duplicatesAcross], [1, 1, 0]);
    assert.deepEqual(report.verdict, { ok: true, problems: [] });
  },
);

scenario(
  "what an aborted sink without a store gave up is excused up to its stats.failed, and no more",
  () => {
    const sinkOf = (seq: number) => (seq < 3 ? "1/a#0" : "1/a#1");
    return {
      workloads: [Q1],
      journal: {
        "shared.1.jsonl": [
          ...range(6).map((seq) => ({ ...sent(Q1, 1, seq), sink: sinkOf(seq) })),
          ...[0, 3].map((seq) => read(Q1, 1, 1, seq)),
          // The first sink gave up 2 (seq 1 and 2 were never read): excused.
          { k: "abandoned", wl: Q1.wl, sink: "1/a#0", failed: 2, t: 50 },
          // The second said 1, but 2 of its messages are missing (seq 4 and 5): both lost.
          { k: "abandoned", wl: Q1.wl, sink: "1/a#1", failed: 1, t: 60 },
        ],
      },
    };
  },
  (report) => {
    const w = report.workloads[0];
    assert.equal(w.givenUp, 2);
    assert.deepEqual(w.lost, [id(Q1.wl, 1, 4), id(Q1.wl, 1, 5)]);
  },
);

scenario("QoS 1 duplicates are counted but do not fail the run", () => {
  const journal = clean(Q1, 5);
  journal["mq-q1-consumer-2.jsonl"] = [read(Q1, 2, 1, 3, 200), read(Q1, 2, 1, 4, 201)];
  return { workloads: [Q1], journal };
}, (report) => {
  const w = report.workloads[0];
  assert.deepEqual([w.duplicates, w.duplicatesWithin, w.duplicatesAcross], [2, 0, 2]);
  assert.equal(w.orderViolations, 0, "a redelivery of older seqs is not a reordering");
  assert.equal(report.verdict.ok, true);
});

scenario(
  "an order violation is found on an ordered workload and ignored on an unordered one",
  () => {
    const reordered = (w: Workload) => ({
      ...producer(w, 1, 5),
      [`${w.wl}-consumer-1.jsonl`]: [0, 2, 1, 3, 4].map((seq, i) => read(w, 1, 1, seq, 100 + i)),
    });
    return { workloads: [Q1, UNORDERED], journal: { ...reordered(Q1), ...reordered(UNORDERED) } };
  },
  (report) => {
    const [q1, unordered] = report.workloads;
    assert.equal(q1.orderViolations, 1);
    assert.deepEqual(q1.orderExamples, ["chaos/mq-q1/a inc 1: seq 1 after 2"]);
    assert.equal(unordered.orderViolations, 0);
    assert.deepEqual(unordered.orderExamples, []);
    assert.deepEqual(report.verdict.problems, [
      "mq-q1: 1 order violations (chaos/mq-q1/a inc 1: seq 1 after 2)",
    ]);
  },
);

scenario(
  "order is per producer incarnation, merges journals by t, and keeps each file's order",
  () => ({
    workloads: [Q1],
    journal: {
      ...producer(Q1, 1, 3),
      ...producer(Q1, 2, 3, 50),
      // Sorts first by name but was written later: merged by t, its reads come after the others'.
      "a-consumer-2.jsonl": [
        read(Q1, 2, 1, 2, 300),
        read(Q1, 2, 2, 0, 301), // a new producer incarnation starts at seq 0 again
        read(Q1, 2, 2, 1, 302),
        read(Q1, 2, 2, 2, 299), // the clock stepped back: the file's order still holds
      ],
      "b-consumer-1.jsonl": [read(Q1, 1, 1, 0, 100), read(Q1, 1, 1, 1, 101)],
    },
  }),
  (report) => {
    const w = report.workloads[0];
    assert.deepEqual([w.read, w.lost.length, w.orderViolations], [6, 0, 0]);
  },
);

scenario("a truncated last line is skipped and counted", () => {
  const journal: Record<string, (object | string)[]> = clean(Q2, 5);
  journal["mq-q2-consumer-1.jsonl"].push('{"k":"read","wl":"mq-q2","reader":"mq-q2","in');
  return { workloads: [Q2], journal };
}, (report) => {
  assert.equal(report.badLines, 1);
  assert.equal(report.workloads[0].read, 5);
  assert.equal(report.verdict.ok, true);
  assert.match(formatReport(report), /1 journal lines could not be read/);
});

scenario("a record glued onto a truncated line by the next incarnation is still read", () => {
  const journal: Record<string, (object | string)[]> = clean(Q2, 3);
  const lines = journal["mq-q2-consumer-1.jsonl"];
  lines[1] = '{"k":"read","wl":"mq-q2","rea' + JSON.stringify(lines[1]);
  return { workloads: [Q2], journal };
}, (report) => {
  assert.equal(report.badLines, 1);
  assert.equal(report.workloads[0].read, 3);
  assert.equal(report.verdict.ok, true);
});

scenario(
  "a hang and a foreign error fail the run; MqttStreamErrors and slow operations do not",
  () => {
    const journal: Record<string, object[]> = clean(Q1, 3);
    // The same refusal twice: errors are counted by name and code.
    const refused = (t: number) => ({
      k: "error",
      wl: "mq-q1",
      name: "MqttConnectError",
      code: "CONNECT_REFUSED",
      mqtt: true,
      message: "refused",
      t,
    });
    journal["mq-q1-events.jsonl"] = [
      { k: "hang", wl: "mq-q1", op: "close", ms: 60000, t: 10 },
      { k: "slow", wl: "mq-q1", op: "read", ms: 12000, t: 11 },
      { k: "slow", wl: "mq-q1", op: "read", ms: 9000, t: 12 },
      refused(13),
      refused(14),
      { k: "error", wl: "mq-q1", name: "TypeError", mqtt: false, message: "x is undefined", t: 15 },
    ];
    return { workloads: [Q1], journal };
  },
  (report) => {
    const w = report.workloads[0];
    assert.deepEqual(w.hangs, { close: 1 });
    assert.deepEqual(w.slowest, { read: 12000 });
    assert.deepEqual(w.errors, { "MqttConnectError CONNECT_REFUSED": 2 });
    assert.equal(w.foreignErrors, 1);
    assert.deepEqual(w.foreignExamples, ["TypeError: x is undefined"]);
    assert.deepEqual(report.verdict.problems, [
      "mq-q1: 1 operations hung (close 1)",
      "mq-q1: 1 errors that are not MqttStreamErrors (TypeError: x is undefined)",
    ]);
  },
);

scenario(
  "recovery is the longest time from a fault's end to the next read of an affected workload",
  () => ({
    workloads: [Q1, Q2],
    journal: {
      ...producer(Q1, 1, 4),
      "mq-q1-consumer-1.jsonl": [900, 1500, 2000, 2100].map((t, seq) => read(Q1, 1, 1, seq, t)),
      ...clean(Q2, 2),
    },
    faults: [
      { kind: "cut", target: "mosquitto-a", start: 800, end: 1000, affects: ["mq-q1", "mq-q2"] },
      { kind: "broker-kill", target: "mosquitto", start: 1600, end: 1800, affects: ["mq-q1"] },
      // No read of mq-q1 after it: skipped rather than counted as never recovered.
      { kind: "cut", target: "mosquitto-a", start: 4000, end: 5000, affects: ["mq-q1"] },
      // Does not affect mq-q1, however long its gap.
      { kind: "stall", target: "w-nats", start: 0, end: 10, affects: ["nats-q1"] },
    ],
  }),
  (report) => {
    assert.equal(workload(report, "mq-q1").recoveryMs, 500);
    // mq-q2's reads are at t 100 and 101, all before the cut ended.
    assert.equal(workload(report, "mq-q2").recoveryMs, null);
    assert.deepEqual(report.faults, { cut: 2, "broker-kill": 1, stall: 1 });
  },
);

scenario("formatReport shows the tables and the verdict", () => {
  const journal: Record<string, object[]> = { ...clean(Q1, 4), ...clean(Q2, 4) };
  journal["mq-q1-consumer-1.jsonl"].pop();
  journal["w-mq-1.jsonl"] = [
    { k: "start", proc: "w-mq", inc: 1, t: 0 },
    { k: "mem", proc: "w-mq", inc: 1, rss: 64 << 20, heap: 16 << 20, bound: 3932160, t: 1 },
  ];
  const faults = [{ kind: "cut", start: 0, end: 0, affects: ["mq-q1"] }];
  return { workloads: [Q1, Q2], journal, faults };
}, (report) => {
  const markdown = formatReport(report);
  for (
    const header of [
      "| workload | broker | QoS | sent | read | lost | lost by a broker crash | " +
      "given up (stats.failed) | " +
      "dup QoS 2 (within/across) | QoS 2 sent again by a restarted broker | dup QoS 1 | " +
      "order violations | hangs | non-MqttStreamError | longest recovery s |",
      "| fault | count |",
      "| process | incarnations | peak RSS MiB | peak heap MiB | heap growth MiB | retained growth MiB | bound MiB |",
    ]
  ) assert.ok(markdown.includes(header), `${header} in\n${markdown}`);
  assert.ok(
    markdown.includes(
      "| mq-q1 | mosquitto | 1 | 4 | 3 | 1 | 0 | 0 | – | – | 0 | 0 | 0 | 0 | 0.1 |",
    ),
  );
  assert.ok(
    markdown.includes(
      "| mq-q2 | mosquitto | 2 | 4 | 4 | 0 | 0 | 0 | 0 (0/0) | 0 | – | 0 | 0 | 0 | – |",
    ),
  );
  assert.ok(markdown.includes("| cut | 1 |"));
  assert.ok(markdown.includes("| w-mq | 1 | 64.0 | 16.0 | 0.0 | – | 3.8 |"));
  assert.match(
    markdown,
    /## Verdict\n\n\*\*failed\*\*: 1 problems\n\n- mq-q1: 1 resolved writes lost \(mq-q1\/a:1:3\)/,
  );
});
