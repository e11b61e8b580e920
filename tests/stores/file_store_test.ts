// The file store on its own (src/stores/): mqtt.js's Store behaviour, what a reopened
// folder holds, damaged and torn logs, compaction (off the put path, and a process killed or
// a step failing at each of its steps), fsync=always, and the folder's lock.
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync } from "node:fs";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { setImmediate } from "node:timers";
import type { Readable } from "node:stream";
import { afterEach, beforeEach, describe, test } from "node:test";
import { Store } from "mqtt";
import { MqttSource, MqttStreamError } from "../../mod.ts";
import { openFileStores } from "../../src/stores/file_store.ts";
import { FileStore, type FileStoreInit } from "../../src/stores/_log_store.ts";
import type { CompactionStep } from "../../src/stores/_compaction.ts";
import { crc32, putRecord, scanLog, tableCrc32 } from "../../src/stores/_log.ts";
import type { StoredPacket } from "../../src/stores/store.ts";
import { startAedes } from "../../testing/broker.ts";
import { kill, sleep, spawnScript, waitFor, within } from "../../testing/helpers.ts";

type Callback = (error?: Error | null, packet?: StoredPacket) => void;
/** What both stores offer: mqtt.js's Store interface. */
interface AnyStore {
  put(packet: StoredPacket, cb?: Callback): unknown;
  get(packet: { messageId?: number }, cb: Callback): unknown;
  del(packet: { messageId?: number }, cb?: Callback): unknown;
  createStream(): Readable;
  close(cb?: () => void): void;
}

const temporary = () => mkdtempSync(join(tmpdir(), "mqtt-streams-store-"));

const publish = (messageId: number, payload: string | Uint8Array = "world"): StoredPacket => ({
  cmd: "publish",
  topic: "hello",
  payload,
  qos: 1,
  messageId,
  dup: false,
  retain: false,
});

const put = (store: AnyStore, packet: StoredPacket) =>
  new Promise<void>((resolve, reject) =>
    store.put(packet, (error) => (error ? reject(error) : resolve()))
  );

/** Every packet the store streams, in order. */
function streamed(store: AnyStore): Promise<StoredPacket[]> {
  return new Promise((resolve, reject) => {
    const packets: StoredPacket[] = [];
    store.createStream()
      .on("data", (packet: StoredPacket) => packets.push(packet))
      .on("end", () => resolve(packets))
      .on("error", reject);
  });
}

const nextTask = () => new Promise<void>((resolve) => setImmediate(resolve));

const call = (fn: (cb: Callback) => void) =>
  new Promise<{ error?: Error | null; packet?: StoredPacket }>((resolve) =>
    fn((error, packet) => resolve({ error, packet }))
  );

/** mqtt.js's own store tests (test/node/abstract_store.ts), run against any store. */
function storeBehaviour(name: string, build: () => AnyStore, teardown = () => {}) {
  describe(`${name} behaves as mqtt.js's Store`, () => {
    let store: AnyStore;
    beforeEach(() => {
      store = build();
    });
    afterEach(async () => {
      await new Promise<void>((resolve) => store.close(resolve));
      teardown();
    });

    test("puts and streams in-flight packets", async () => {
      await put(store, publish(42));
      assert.deepEqual(await streamed(store), [publish(42)]);
    });

    test("supports destroying the stream", async () => {
      await put(store, publish(42));
      const stream = store.createStream();
      const closed = new Promise((resolve) => stream.on("close", resolve));
      stream.destroy();
      await within(closed, 1000, "'close' after destroy()");
    });

    test("adds and deletes in-flight packets", async () => {
      await put(store, publish(42));
      await call((cb) => store.del(publish(42), cb));
      assert.deepEqual(await streamed(store), []);
    });

    test("replaces a packet on put with the same messageId", async () => {
      await put(store, { ...publish(42), qos: 2 });
      await put(store, { cmd: "pubrel", messageId: 42 });
      assert.deepEqual(await streamed(store), [{ cmd: "pubrel", messageId: 42 }]);
    });

    test("returns the original packet on del", async () => {
      await put(store, publish(42));
      const { error, packet } = await call((cb) => store.del({ messageId: 42 }, cb));
      assert.equal(error, null);
      assert.deepEqual(packet, publish(42));
    });

    test("gets a packet with the same messageId", async () => {
      await put(store, publish(42));
      const { error, packet } = await call((cb) => store.get({ messageId: 42 }, cb));
      assert.equal(error, null);
      assert.deepEqual(packet, publish(42));
    });

    test("answers get and del of an unknown messageId with 'missing packet'", async () => {
      for (const fn of [store.get, store.del]) {
        const { error } = await call((cb) => fn.call(store, { messageId: 7 }, cb));
        assert.equal(error?.message, "missing packet");
      }
    });

    test("streams packets in the order they were first put", async () => {
      for (const id of [5, 1, 9]) await put(store, publish(id));
      await put(store, publish(1, "again"));
      assert.deepEqual((await streamed(store)).map((p) => [p.messageId, p.payload]), [
        [5, "world"],
        [1, "again"],
        [9, "world"],
      ]);
    });
  });
}

let folder = "";
storeBehaviour("mqtt.js's memory Store (the reference)", () => new Store() as unknown as AnyStore);
storeBehaviour(
  "FileStore",
  () => {
    folder = temporary();
    return new FileStore(join(folder, "outgoing.log"), "batch", { batchDeletes: true });
  },
  () => rmSync(folder, { recursive: true, force: true }),
);
storeBehaviour(
  "FileStore with fsync=always",
  () => {
    folder = temporary();
    return new FileStore(join(folder, "incoming.log"), "always");
  },
  () => rmSync(folder, { recursive: true, force: true }),
);

/** Opens the log at `path`, hands it to `fn`, and closes it. */
async function withStore<T>(
  path: string,
  fn: (store: FileStore) => T | Promise<T>,
  init?: { batchDeletes?: boolean },
): Promise<T> {
  const store = new FileStore(path, "batch", init);
  try {
    return await fn(store);
  } finally {
    await new Promise<void>((resolve) => store.close(() => resolve()));
  }
}

/** `value` with every byte array (Buffer or Uint8Array) as a plain array, for comparing. */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return Array.from(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

describe("FileStore on disk", () => {
  let dir: string;
  let log: string;
  beforeEach(() => {
    dir = temporary();
    log = join(dir, "outgoing.log");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("a reopened log holds exactly the packets put and not deleted, bytes and properties intact", async () => {
    const binary = new Uint8Array([0, 1, 2, 255, 254, 10, 13]);
    const v5: StoredPacket = {
      ...publish(3, "x"),
      qos: 2,
      properties: {
        correlationData: new Uint8Array([9, 8, 7]),
        userProperties: { a: "1", b: ["2", "3"] },
        contentType: "text/plain",
        messageExpiryInterval: 60,
      },
    };
    await withStore(log, async (store) => {
      await put(store, publish(1, binary));
      await put(store, publish(2, "é ünïcödé"));
      await put(store, v5);
      await put(store, { cmd: "pubrel", messageId: 4 });
      await put(store, publish(5, ""));
      await put(store, publish(6));
      store.del({ messageId: 6 });
      await put(store, publish(2, "replaced"));
    }, { batchDeletes: true });
    await withStore(log, async (store) => {
      assert.equal(store.recovered, 5);
      assert.deepEqual(store.damage, []);
      const packets = await streamed(store);
      assert.deepEqual(packets.map((p) => p.messageId), [1, 2, 3, 4, 5]);
      assert.deepEqual(new Uint8Array(packets[0].payload as Uint8Array), binary);
      assert.equal(packets[1].payload, "replaced");
      assert.deepEqual(plain(packets[2]), plain(v5));
      assert.deepEqual(packets[3], { cmd: "pubrel", messageId: 4 });
      assert.equal(packets[4].payload, "");
    });
  });

  test("a del still waiting to be written when the store closes is written", async () => {
    const store = new FileStore(log, "batch", { batchDeletes: true });
    await put(store, publish(1));
    await put(store, publish(2));
    store.del({ messageId: 1 });
    // Closed in the same task as the del, before its batch was written.
    const closed = new Promise<void>((resolve) => store.close(() => resolve()));
    assert.deepEqual(scanLog(readFileSync(log)).ops.map((op) => op.op), ["put", "put"]);
    await closed;
    await withStore(log, (store) => assert.deepEqual(store.ids(), [2]));
  });

  test("a bit flipped in a record's payload, length or checksum loses that record only, reported", async () => {
    const ids = Array.from({ length: 10 }, (_, i) => i + 1);
    await withStore(log, async (store) => {
      for (const id of ids) await put(store, publish(id, `payload ${id}`.repeat(5)));
    });
    const intact = readFileSync(log);
    const sizes = ids.map((id) => putRecord(publish(id, `payload ${id}`.repeat(5))).length);
    const start = (index: number) => sizes.slice(0, index).reduce((a, b) => a + b, 0);
    // Byte offsets within record #4 (id 5): its length field, its checksum, and its payload.
    for (
      const [where, at] of [["length", 4], ["checksum", 9], ["payload", sizes[4] - 3]] as const
    ) {
      const damaged = Buffer.from(intact);
      damaged[start(4) + at] ^= 0x10;
      writeFileSync(log, damaged);
      await withStore(log, async (store) => {
        assert.deepEqual(store.ids(), ids.filter((id) => id !== 5), `bit flipped in the ${where}`);
        assert.equal(store.recovered, 9);
        assert.equal(store.damage.length, 1, `one damaged stretch (${where})`);
        assert.equal(store.damage[0].kind, "damaged");
        assert.equal(store.damage[0].offset, start(4));
        assert.equal(store.damage[0].bytes, sizes[4]);
        for (const packet of await streamed(store)) {
          assert.equal(packet.payload, `payload ${packet.messageId}`.repeat(5));
        }
      });
      // Reopening rewrote the log without the damage: the next open finds none.
      await withStore(log, (store) => {
        assert.deepEqual(store.damage, []);
        assert.equal(store.recovered, 9);
      });
    }
  });

  test("a torn last write (truncated log) loses only the record that was being written", async () => {
    await withStore(log, async (store) => {
      for (let id = 1; id <= 5; id++) await put(store, publish(id));
    });
    const full = readFileSync(log);
    const last = putRecord(publish(5)).length;
    for (const cut of [1, 7, last - 1]) {
      writeFileSync(log, full.subarray(0, full.length - cut));
      await withStore(log, async (store) => {
        assert.deepEqual(store.ids(), [1, 2, 3, 4], `${cut} bytes cut`);
        assert.deepEqual(store.damage, [{
          offset: full.length - last,
          bytes: last - cut,
          kind: "torn",
        }]);
        // New records after a torn one are read back: the log was rewritten when opened.
        await put(store, publish(6));
      });
      await withStore(log, (store) => {
        assert.deepEqual(store.ids(), [1, 2, 3, 4, 6]);
        assert.deepEqual(store.damage, []);
      });
    }
  });

  test("garbage between records is skipped, and the records after it are kept", async () => {
    const records = [putRecord(publish(1)), putRecord(publish(2))];
    writeFileSync(
      log,
      Buffer.concat([records[0], Buffer.from("MQS1 not a record at all"), records[1]]),
    );
    await withStore(log, (store) => {
      assert.deepEqual(store.ids(), [1, 2]);
      assert.deepEqual(store.damage.map((d) => [d.kind, d.bytes]), [["damaged", 24]]);
    });
  });

  test("the log is compacted: 30,000 put/del cycles leave it near its live size", async () => {
    await withStore(log, async (store) => {
      await put(store, publish(65_000, "stays"));
      for (let i = 0; i < 30_000; i++) {
        const id = (i % 60_000) + 1;
        await put(store, publish(id, "x".repeat(100)));
        store.del({ messageId: id });
        // The compaction runs in the background: it needs the event loop to turn, as it
        // does between the packets of a real connection.
        await nextTask();
      }
    }, { batchDeletes: true });
    // 30,000 × (a put of ~180 bytes and a del of 15) is about 5.9 MB written in all.
    const size = statSync(log).size;
    assert.ok(size < 1.5 * 2 ** 20, `the log is ${size} bytes`);
    await withStore(log, (store) => assert.deepEqual(store.ids(), [65_000]));
  });

  test("fsync=always calls put back only after an fdatasync, never synchronously", async () => {
    const store = new FileStore(log, "always");
    try {
      let calledBack = false;
      const done = new Promise<void>((resolve) =>
        store.put(publish(1), () => {
          calledBack = true;
          resolve();
        })
      );
      assert.equal(calledBack, false);
      await within(done, 5000, "the synced put");
      const { ops } = scanLog(readFileSync(log));
      assert.deepEqual(ops.map((op) => op.messageId), [1]);
    } finally {
      await new Promise<void>((resolve) => store.close(() => resolve()));
    }
  });

  test("a folder that cannot be created is STORE_FAILED, naming it and what to check", () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "");
    assert.throws(
      () => openFileStores(join(file, "store"), "batch"),
      (error: unknown) =>
        error instanceof MqttStreamError && error.code === "STORE_FAILED" &&
        error.message.includes(join(file, "store")) &&
        /permissions and free space/.test(error.message),
    );
  });

  test("records checksum with CRC-32 as zlib computes it", () => {
    assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
    assert.equal(tableCrc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  });

  test("the runtime's native CRC-32 and the table agree on slices and continuations", () => {
    const bytes = crypto.getRandomValues(new Uint8Array(4096));
    for (const [start, end] of [[0, 4096], [0, 0], [1, 2], [7, 4001], [4095, 4096]]) {
      assert.equal(crc32(bytes, start, end), tableCrc32(bytes, start, end), `[${start}, ${end})`);
      const previous = tableCrc32(bytes, 0, start);
      assert.equal(crc32(bytes, start, end, previous), tableCrc32(bytes, 0, end));
    }
  });
});

describe("FileStore compaction, off the put path", () => {
  let dir: string;
  let log: string;
  beforeEach(() => {
    dir = temporary();
    log = join(dir, "outgoing.log");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const KIB = "k".repeat(1024);
  const STEPS: CompactionStep[] = [
    "opened",
    "slice",
    "copied",
    "synced",
    "frozen",
    "renamed",
    "done",
  ];

  /** A store and, beside it, the live packets it should hold (id → payload, in its order). */
  function modelled(path: string, init: FileStoreInit, fsync: "batch" | "always" = "batch") {
    const steps: CompactionStep[] = [];
    const model = new Map<number, string>();
    const store = new FileStore(path, fsync, {
      ...init,
      onCompaction: (step) => {
        steps.push(step);
        return init.onCompaction?.(step);
      },
    });
    return {
      store,
      model,
      steps,
      put(id: number, payload: string) {
        store.put(publish(id, payload));
        model.set(id, payload);
      },
      del(id: number) {
        store.del({ messageId: id });
        model.delete(id);
      },
      /** A put of a new packet, a del of the oldest and a replaced one: the compaction's tail. */
      churn(n: number) {
        this.put(5000 + n, `new ${n}`);
        this.del(model.keys().next().value!);
        this.put(model.keys().next().value!, `replaced ${n}`);
      },
      /** 300 live packets of 1 KiB (two slices), then put/del pairs until a compaction begins. */
      async untilCompacting() {
        for (let id = 1; id <= 300; id++) this.put(id, `${id} ${KIB}`);
        for (let n = 0; steps.length === 0; n++) {
          assert.ok(n < 20_000, "a compaction began");
          this.put(1000 + (n % 1000), KIB);
          this.del(1000 + (n % 1000));
          if (n % 50 === 0) await nextTask();
        }
      },
    };
  }

  /** What the log at `path` holds when opened: its packets' ids and payloads, in order. */
  async function reopened(path: string): Promise<[number, unknown][]> {
    return await withStore(path, async (store) => {
      assert.deepEqual(store.damage, []);
      return (await streamed(store)).map((p) => [p.messageId!, p.payload]);
    });
  }

  test("the put that makes the log due for compaction returns, called back, before anything is rewritten", async () => {
    const { store, steps } = modelled(log, { batchDeletes: true });
    try {
      const inode = statSync(log).ino;
      let calledBack = 0;
      // 1,200 put/del pairs of 1 KiB pass the 1 MiB at which a mostly dead log is compacted.
      for (let id = 1; id <= 1200; id++) {
        store.put(publish(id, KIB), () => calledBack++);
        store.del({ messageId: id });
      }
      assert.equal(calledBack, 1200);
      assert.equal(steps.length, 0, "no step of the compaction ran inside a put");
      assert.equal(statSync(log).ino, inode, "the log is not replaced yet");
      const grown = statSync(log).size;
      await waitFor(() => steps.includes("done"), "the compaction", 10_000);
      assert.notEqual(statSync(log).ino, inode);
      // What was appended after the put that made it due is copied too (the compaction's
      // tail): about the last 250 pairs.
      const size = statSync(log).size;
      assert.ok(size < grown / 3, `the log went from ${grown} to ${size} bytes`);
    } finally {
      await new Promise<void>((resolve) => store.close(() => resolve()));
    }
    assert.deepEqual(await reopened(log), []);
  });

  test("with fsync=always, a put made while a compaction is under way is called back without waiting for it", async () => {
    let resume!: () => void;
    const held = new Promise<void>((resolve) => (resume = resolve));
    const { store, steps } = modelled(log, {
      onCompaction: (step) => step === "copied" ? held : undefined,
    }, "always");
    try {
      for (let id = 1; !steps.includes("copied"); id++) {
        assert.ok(id < 5000, "a compaction began");
        await put(store, publish(id, KIB));
        store.del({ messageId: id });
      }
      await within(put(store, publish(9001, "during")), 5000, "the put during the compaction");
      assert.deepEqual(steps, ["opened", "copied"], "the compaction is still held");
      resume();
      await waitFor(() => steps.includes("done"), "the compaction", 10_000);
      await within(put(store, publish(9002, "after")), 5000, "the put after the compaction");
    } finally {
      resume();
      await new Promise<void>((resolve) => store.close(() => resolve()));
    }
    assert.deepEqual(await reopened(log), [[9001, "during"], [9002, "after"]]);
  });

  test("with fsync=always, a put made from the freeze to the rename is called back only once the rename is durable", async () => {
    const holds = new Map<CompactionStep, () => void>();
    const held = (step: CompactionStep) => new Promise<void>((resolve) => holds.set(step, resolve));
    const reached = new Map<CompactionStep, Promise<void>>();
    const arrived = new Map<CompactionStep, () => void>();
    for (const step of ["frozen", "renamed"] as const) {
      reached.set(step, new Promise((resolve) => arrived.set(step, resolve)));
    }
    const { store, steps } = modelled(log, {
      onCompaction: (step) => {
        if (!arrived.has(step)) return;
        arrived.get(step)!();
        return held(step);
      },
    }, "always");
    const calledBack: number[] = [];
    try {
      for (let id = 1; steps.length === 0; id++) {
        assert.ok(id < 5000, "a compaction began");
        // A put that straddles the freeze is called back only once the rename is durable,
        // which this test holds back: the loop stops waiting for it at the freeze (seen once
        // under Bun: the loop waited on such a put until the test's 120 s timeout).
        await Promise.race([put(store, publish(id, KIB)), reached.get("frozen")]);
        store.del({ messageId: id });
      }
      await within(reached.get("frozen")!, 10_000, "the freeze");
      store.put(publish(9001, "frozen"), () => calledBack.push(9001));
      // Long enough for several fdatasyncs, were the old log still synced.
      await sleep(200);
      assert.equal(calledBack.length, 0, "no sync of the old log calls back while frozen");
      holds.get("frozen")!();
      await within(reached.get("renamed")!, 10_000, "the rename");
      store.put(publish(9002, "renamed"), () => calledBack.push(9002));
      // The new log syncs both, but the folder is not synced: the rename may not be durable.
      await sleep(200);
      assert.equal(calledBack.length, 0, "nothing is called back before the rename is durable");
      holds.get("renamed")!();
      await waitFor(() => calledBack.length === 2, "both puts called back", 5000);
    } finally {
      for (const resume of holds.values()) resume();
      await new Promise<void>((resolve) => store.close(() => resolve()));
    }
    assert.deepEqual(await reopened(log), [[9001, "frozen"], [9002, "renamed"]]);
  });

  test("a process killed at any step of a compaction leaves a folder that reopens with exactly the live packets", async () => {
    const killed: { step: CompactionStep; folder: string; live: [number, string][] }[] = [];
    let n = 0;
    const it = modelled(log, {
      onCompaction: (step) => {
        // Packets put, deleted and replaced while the compaction runs, then the folder as a
        // SIGKILL here would leave it: with fsync=batch the kernel has every write.
        it.churn(n++);
        const folder = join(dir, `killed-${killed.length}-${step}`);
        mkdirSync(folder);
        for (const file of readdirSync(dir)) {
          if (file.startsWith("outgoing.log")) copyFileSync(join(dir, file), join(folder, file));
        }
        killed.push({ step, folder, live: Array.from(it.model) });
      },
    });
    try {
      await it.untilCompacting();
      await waitFor(() => it.steps.includes("done"), "the compaction", 10_000);
    } finally {
      await new Promise<void>((resolve) => it.store.close(() => resolve()));
    }
    assert.deepEqual(new Set(it.steps), new Set(STEPS), "every step was passed");
    for (const { step, folder, live } of killed) {
      const path = join(folder, "outgoing.log");
      assert.deepEqual(await reopened(path), live, `killed at "${step}"`);
      assert.equal(existsSync(`${path}.rewrite`), false, "reopening drops a compaction's file");
    }
    assert.deepEqual(await reopened(log), Array.from(it.model));
  });

  for (const failing of STEPS) {
    test(`a compaction failing at "${failing}" fails the store, whose folder reopens with exactly the live packets`, async () => {
      const it = modelled(log, {
        onCompaction: (step) => {
          it.churn(STEPS.indexOf(step));
          if (step === failing) throw new Error(`injected at ${step}`);
        },
      });
      let live: [number, string][];
      try {
        await it.untilCompacting();
        const error = await within(it.store.failure, 10_000, "the store's failure");
        live = Array.from(it.model);
        assert.equal(error.code, "STORE_FAILED");
        assert.match(error.message, new RegExp(`rewrite .*injected at ${failing}`));
      } finally {
        await new Promise<void>((resolve) => it.store.close(() => resolve()));
      }
      assert.equal(existsSync(`${log}.rewrite`), false, "the compaction's file is deleted");
      assert.deepEqual(await reopened(log), live);
    });
  }
});

describe("the store folder's lock", () => {
  let dir: string;
  beforeEach(() => {
    dir = temporary();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test("a second process gets STORE_LOCKED naming the holder's pid; once the holder is killed, its lock is taken over", async () => {
    const holder = spawnScript(new URL("./_lock_child.ts", import.meta.url), [dir]);
    let out = "";
    holder.stdout!.on("data", (chunk) => (out += chunk));
    try {
      await waitFor(() => out.includes("locked"), "the child to lock the folder", 15_000);
      assert.throws(
        () => openFileStores(dir, "batch"),
        (error: unknown) =>
          error instanceof MqttStreamError && error.code === "STORE_LOCKED" &&
          error.message.includes(`process ${holder.pid} `) && error.message.includes(dir),
      );
    } finally {
      await kill(holder);
    }
    const stores = openFileStores(dir, "batch");
    try {
      assert.equal(JSON.parse(readFileSync(join(dir, "lock"), "utf8")).pid, process.pid);
    } finally {
      await stores.close();
    }
    assert.equal(existsSync(join(dir, "lock")), false, "closing releases the lock");
  });

  test("a lock file left empty by a process killed while writing it is taken over", async () => {
    writeFileSync(join(dir, "lock"), "");
    const stores = openFileStores(dir, "batch");
    await stores.close();
  });

  test("a lock held on another host is never taken over: its liveness cannot be checked from here", () => {
    writeFileSync(join(dir, "lock"), JSON.stringify({ pid: 4242, host: "another-host.example" }));
    assert.throws(
      () => openFileStores(dir, "batch"),
      (error: unknown) =>
        error instanceof MqttStreamError && error.code === "STORE_LOCKED" &&
        error.message.includes("process 4242 on another-host.example") &&
        error.message.includes("delete the lock file if no process uses the folder"),
    );
  });

  test("a second store of the same process is refused, naming this process", async () => {
    const stores = openFileStores(dir, "batch");
    try {
      assert.throws(
        () => openFileStores(dir, "batch"),
        (error: unknown) =>
          error instanceof MqttStreamError && error.code === "STORE_LOCKED" &&
          error.message.includes(`this process (pid ${process.pid})`),
      );
    } finally {
      await stores.close();
    }
    // Released: it opens again.
    await openFileStores(dir, "batch").close();
  });

  test("two MqttSources with one clientId and folder: the second errors with STORE_LOCKED", async () => {
    await using broker = await startAedes();
    const url =
      `${broker.url}?topic=lock/x&clientId=lock-holder&persistence=file&localStorage=${dir}`;
    await using first = new MqttSource(url);
    await first.ready;
    await using second = new MqttSource(url);
    await assert.rejects(
      within(second.getReader().read(), 5000, "the second source's read"),
      (error: unknown) => error instanceof MqttStreamError && error.code === "STORE_LOCKED",
    );
  });
});
