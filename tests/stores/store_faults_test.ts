// Faults of the file store, on real file systems: a full disk (a 256 KiB tmpfs) under a sink
// and under a source, a read-only folder; and errors that used to escape as plain Errors (a
// wrong PKCS12 key store password). Mounting needs root (as in CI): elsewhere these tests
// are skipped with the reason printed, except under CI=true, where they must run.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync } from "node:fs";
import { readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import mqtt from "mqtt";
import { MqttOptionsError, MqttSink, MqttSource, MqttStreamError } from "../../mod.ts";
import { checkKeyStorePassword } from "../../src/connection/_pkcs12.ts";
import { openFileStores } from "../../src/stores/file_store.ts";
import { makeCertificates, skipUnless, skipWithoutMosquitto } from "../../testing/broker.ts";
import { startAedes, startMosquitto } from "../../testing/broker.ts";
import { startHostile } from "../../testing/hostile.ts";
import { LOSSLESS, sleep, waitFor, within } from "../../testing/helpers.ts";

/** Runs `mount` or `umount` with `args`; its error output, or undefined when it worked. */
function run(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: "utf8" });
  if (result.error) return result.error.message;
  return result.status === 0 ? undefined : `${result.stderr}`.trim() || `exit ${result.status}`;
}

/** Why a tmpfs cannot be mounted here, or undefined when it can (tried once, on a probe). */
const cannotMount = (() => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-mount-probe-"));
  try {
    const refused = run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir]);
    if (refused === undefined) run("umount", [dir]);
    return refused;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();

const skipWithoutMount = () =>
  skipUnless(
    cannotMount === undefined,
    `mounting a tmpfs is not permitted here (run as root, as CI does): ${cannotMount}`,
  );

/** Runs `fn` with a fresh tmpfs of mount options `options` (e.g. "size=256k"), unmounted after. */
async function withTmpfs(options: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-tmpfs-"));
  const refused = run("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]);
  if (refused !== undefined) {
    rmSync(dir, { recursive: true, force: true });
    assert.fail(`mount -t tmpfs -o ${options} failed: ${refused}`);
  }
  try {
    await fn(dir);
  } finally {
    // A file still open (a failed test) makes it busy: detach it then (-l).
    if (run("umount", [dir]) !== undefined) run("umount", ["-l", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Remounts the tmpfs at `dir` with `options` (a new size, or read-only). */
function remount(dir: string, options: string): void {
  const refused = run("mount", ["-o", `remount,${options}`, dir]);
  if (refused !== undefined) assert.fail(`mount -o remount,${options} failed: ${refused}`);
}

/** Fills the file system of `dir` with a file, then frees `spare` bytes of it again. */
function fill(dir: string, spare: number): string {
  const file = join(dir, "filler");
  const fd = openSync(file, "w");
  const chunk = new Uint8Array(4096);
  let size = 0;
  try {
    for (;;) size += writeSync(fd, chunk);
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOSPC") throw error;
  }
  ftruncateSync(fd, Math.max(0, size - spare));
  closeSync(fd);
  return file;
}

/** Whether `error` is STORE_FAILED naming `path` and the OS code `code`. */
function storeFailed(error: unknown, path: string, code: string): boolean {
  return error instanceof MqttStreamError && error.code === "STORE_FAILED" &&
    error.message.includes(path) && error.message.includes(code);
}

/**
 * A sink with persistence=file on a 256 KiB tmpfs writes until the disk is full. Every write
 * that resolved reaches a subscriber from this very process, before the stream errors (a
 * one-shot or serverless process never restarts); the next process with the same clientId
 * and folder, with room again, finds nothing left to send, so nothing arrives twice.
 */
async function fullDiskSink(
  broker: { url: string },
  qos: 1 | 2,
  maxInflight: number,
): Promise<void> {
  const subscriber = await mqtt.connectAsync(broker.url);
  const arrived = new Map<string, number>();
  subscriber.on("message", (_topic, payload) => {
    const text = payload.toString();
    arrived.set(text, (arrived.get(text) ?? 0) + 1);
  });
  await subscriber.subscribeAsync("full/out", { qos });
  try {
    await withTmpfs("size=256k", async (dir) => {
      const folder = join(dir, "store");
      const url = `${broker.url}?topic=full/out&qos=${qos}&clientId=full-sink&persistence=file` +
        `&localStorage=${folder}&connectionCacheTimeout=0&maxInflight=${maxInflight}`;
      const payload = (n: number) => `${n} `.padEnd(200, ".");
      const sink = new MqttSink(url);
      const writer = sink.getWriter();
      const resolved: number[] = [];
      const rejected: number[] = [];
      let lastResolvedAt = performance.now();
      let failure: { error: unknown; at: number; acked: number } | undefined;
      const arrivedOf = (numbers: number[]) => numbers.filter((n) => arrived.has(payload(n)));
      writer.closed.catch((error) =>
        failure ??= { error, at: performance.now(), acked: sink.stats.acked }
      );
      let written = 0;
      // 256 KiB holds about 750 of these records: 5,000 is a bound, never reached.
      while (written < 5000 && failure === undefined) {
        try {
          await within(writer.ready, 5000, `writer.ready after ${resolved.length} resolved`);
        } catch (error) {
          // The stream's error (ready may reject before closed does): stop writing.
          if (error instanceof MqttStreamError) break;
          throw error;
        }
        const n = written++;
        writer.write(payload(n)).then(() => {
          resolved.push(n);
          lastResolvedAt = performance.now();
        }, () => rejected.push(n));
      }
      await sleep(200);
      assert.ok(failure, `the stream failed (${written} written, ${resolved.length} resolved)`);
      const { error, at } = failure;
      assert.ok(
        storeFailed(error, join(folder, "outgoing.log"), "ENOSPC"),
        `STORE_FAILED naming the log and ENOSPC: ${error}`,
      );
      const ms = at - lastResolvedAt;
      // No restart: what resolved was promised, and this process is the one to deliver it.
      await waitFor(() => arrivedOf(resolved).length === resolved.length, "", 3000).catch(
        () => {},
      );
      const stranded = resolved.length - arrivedOf(resolved).length;
      console.log(
        `${resolved.length} writes resolved, ${rejected.length} rejected; the stream errored ${
          ms.toFixed(0)
        } ms after the last resolved, when the broker had acknowledged ${failure.acked}; ${stranded} never arrived without a restart: ${
          (error as Error).message
        }`,
      );
      assert.equal(stranded, 0, `${stranded} resolved writes never reached the broker`);
      assert.equal(failure.acked, resolved.length, "the stream errored once all were acknowledged");
      assert.ok(ms < 1000, `errored ${ms} ms after the last write that resolved`);
      assert.equal(resolved.length + rejected.length, written, "every write settled");
      assert.ok(rejected.length > 0, "the write not stored rejected");
      assert.ok(
        Math.max(...resolved) < Math.min(...rejected),
        "no write resolved after one rejected",
      );
      // Settles at once (an errored stream's close() rejects with a TypeError).
      await assert.rejects(
        within(writer.close(), 1000, "close()"),
        (error: Error) => !error.message.includes("took more than"),
      );
      await waitFor(() => !existsSync(join(folder, "lock")), "the store's lock released", 5000);

      // Room again: the next process with this clientId and folder finds every publish
      // acknowledged (the drained log was emptied), so it sends nothing twice.
      remount(dir, "size=4m");
      const next = new MqttSink(url);
      // mqtt.js sends what the store recovered before anything written after it: once this
      // write is acknowledged, the broker has them all.
      const nextWriter = next.getWriter();
      await within(nextWriter.write("after the restart"), 10_000, "the next sink's write");
      await within(nextWriter.close(), 10_000, "the next sink's close()");
      await waitFor(() => arrived.has("after the restart"), "the next sink's write to arrive");
      const twice = resolved.filter((n) => (arrived.get(payload(n)) ?? 0) > 1);
      console.log(
        `the next sink sent ${next.stats.recovered} recovered publishes again; ${twice.length} arrived twice`,
      );
      assert.equal(next.stats.recovered, 0, "nothing was left to send again");
      assert.deepEqual(twice, [], "nothing arrived twice");
      assert.equal(next.stats.failed, 0);
    });
  } finally {
    await subscriber.endAsync(true);
  }
}

describe("a full disk under persistence=file", { timeout: 120_000 }, () => {
  const sinkTitle = (what: string) =>
    `MqttSink ${what}: a full disk errors the stream with STORE_FAILED naming the log and ENOSPC within 1 s; the write not stored rejects; every write that resolved reaches the broker first, without a restart, and never twice`;

  test(sinkTitle("QoS 1 (aedes)"), { skip: skipWithoutMount() }, async () => {
    await using broker = await startAedes();
    await fullDiskSink(broker, 1, 60);
  });

  test(
    sinkTitle("QoS 2 (mosquitto)"),
    { skip: skipWithoutMount() || skipWithoutMosquitto() },
    async () => {
      // Ten in flight: mosquitto drops an MQTT 3.1.1 publisher with more QoS 2 publishes in
      // flight than max_inflight_messages (20).
      await using broker = await startMosquitto({ lines: LOSSLESS });
      await fullDiskSink(broker, 2, 10);
    },
  );

  test(
    "MqttSink: a broker that never acknowledges holds a failed store's drain for connectionTimeout only; every resolved write was sent, and the stream then errors with STORE_FAILED",
    { skip: skipWithoutMount() },
    async () => {
      // A raw server that takes every PUBLISH and acknowledges none.
      const received = new Set<string>();
      await using silent = await startHostile(async (conn) => {
        conn.connack();
        for await (const packet of conn.packets(60_000)) {
          if (packet.cmd === "publish") received.add(new TextDecoder().decode(packet.payload));
        }
      });
      await withTmpfs("size=64k", async (dir) => {
        const folder = join(dir, "store");
        const sink = new MqttSink(
          `${silent.url}?topic=full/silent&qos=1&clientId=silent-sink&persistence=file` +
            `&localStorage=${folder}&connectionTimeout=1&maxInflight=100`,
        );
        const writer = sink.getWriter();
        const payload = (n: number) => `${n} `.padEnd(4096, ".");
        const resolved: number[] = [];
        let lastResolvedAt = performance.now();
        let failure: { error: unknown; at: number } | undefined;
        writer.closed.catch((error) => (failure ??= { error, at: performance.now() }));
        // 64 KiB holds about 15 of these records: 100 is a bound, never reached.
        for (let n = 0; n < 100 && failure === undefined; n++) {
          const written = writer.write(payload(n)).then(() => {
            resolved.push(n);
            lastResolvedAt = performance.now();
          });
          if (await within(written.then(() => true, () => false), 5000, `write ${n}`)) continue;
          break;
        }
        await waitFor(() => failure !== undefined, "the stream to error", 5000);
        const { error, at } = failure!;
        const ms = at - lastResolvedAt;
        const unsent = resolved.filter((n) => !received.has(payload(n)));
        console.log(
          `${resolved.length} writes resolved, all sent but ${unsent.length}; none acknowledged; the stream errored ${
            ms.toFixed(0)
          } ms after the last resolved (connectionTimeout=1)`,
        );
        assert.ok(
          storeFailed(error, join(folder, "outgoing.log"), "ENOSPC"),
          `STORE_FAILED naming the log and ENOSPC: ${error}`,
        );
        assert.ok(resolved.length > 0, "some writes resolved before the disk was full");
        assert.deepEqual(unsent, [], "every resolved write was sent");
        assert.equal(sink.stats.acked, 0);
        assert.ok(ms >= 900 && ms < 3000, `errored ${ms} ms after the last resolved write`);
        await waitFor(() => !existsSync(join(folder, "lock")), "the store's lock released", 5000);
      });
    },
  );

  test(
    "MqttSource: a QoS 2 message its store cannot hold errors the stream with STORE_FAILED naming the log and ENOSPC, and is not acknowledged: every message arrives after a restart",
    {
      skip: skipWithoutMount() || skipWithoutMosquitto(),
    },
    async () => {
      // mosquitto: aedes 1.x withholds the first QoS 2 message it queues for an offline client.
      await using broker = await startMosquitto({ lines: LOSSLESS });
      const publisher = await mqtt.connectAsync(broker.url);
      try {
        await withTmpfs("size=256k", async (dir) => {
          const folder = join(dir, "store");
          const url = `${broker.url}?topic=full/in&qos=2&clientId=full-source&persistence=file` +
            `&localStorage=${folder}`;
          const total = 30;
          const payload = (n: number) => `${n} `.padEnd(2048, ".");
          const read = new Set<string>();
          const first = new MqttSource(url);
          const reader = first.getReader();
          await within(first.ready, 5000, "the source subscribing");
          // Ten at a time: mosquitto drops an MQTT 3.1.1 publisher with more QoS 2 publishes
          // in flight than max_inflight_messages (20), and its clean session with them.
          const publish = (from: number) =>
            Promise.all(
              Array.from(
                { length: 10 },
                (_, i) => publisher.publishAsync("full/in", payload(from + i), { qos: 2 }),
              ),
            );
          const readOne = async () => {
            const { value, done } = await within(reader.read(), 5000, `read ${read.size + 1}`);
            if (done) assert.fail(`the source ended without an error after ${read.size}`);
            read.add(value.text());
          };
          // Ten while there is room.
          await publish(0);
          while (read.size < 10) await readOne();
          // 16 KiB left: a few of the next 20 messages of 2 KiB fit, the rest do not.
          fill(dir, 16 * 1024);
          const publishing = performance.now();
          await publish(10);
          await publish(20);
          let failure: { error: unknown; at: number } | undefined;
          while (failure === undefined) {
            try {
              await readOne();
            } catch (error) {
              if (error instanceof MqttStreamError) failure = { error, at: performance.now() };
              else throw error;
            }
          }
          const { error, at } = failure;
          assert.ok(
            storeFailed(error, join(folder, "incoming.log"), "ENOSPC"),
            `STORE_FAILED naming the log and ENOSPC: ${error}`,
          );
          const ms = at - publishing;
          console.log(
            `${read.size} of ${total} read before the stream errored (${
              ms.toFixed(0)
            } ms after the disk was full and the publishes began): ${(error as Error).message}`,
          );
          assert.ok(ms < 1000, `errored ${ms} ms after the publishes began`);
          assert.ok(read.size < total, "the messages not stored were not delivered");
          await waitFor(() => !existsSync(join(folder, "lock")), "the store's lock released", 5000);

          // Room again: the session resumes, and what was not acknowledged comes again.
          rmSync(join(dir, "filler"));
          await using second = new MqttSource(url);
          const again = second.getReader();
          while (read.size < total) {
            const { value } = await within(again.read(), 10_000, `read ${read.size} of ${total}`);
            read.add(value!.text());
          }
          assert.equal(read.size, total);
        });
      } finally {
        await publisher.endAsync(true);
      }
    },
  );
});

describe("the file store on a full disk", () => {
  test(
    "a put it cannot write is never called back, `failure` names the log and ENOSPC, and closing still releases the folder's lock",
    {
      skip: skipWithoutMount(),
    },
    async () => {
      await withTmpfs("size=64k", async (dir) => {
        const folder = join(dir, "store");
        const stores = openFileStores(folder, "batch");
        const answers: (Error | null | undefined)[] = [];
        let unanswered = -1;
        // 64 KiB holds fewer than 16 of these: 100 is a bound, never reached.
        for (let id = 1; id <= 100 && unanswered === -1; id++) {
          const before = answers.length;
          stores.outgoing.put(
            { cmd: "publish", topic: "t", qos: 1, messageId: id, payload: new Uint8Array(4096) },
            (error) => answers.push(error),
          );
          if (answers.length === before) unanswered = id;
        }
        assert.notEqual(unanswered, -1, "a put was left unanswered");
        let failure: unknown;
        stores.failure.then((error) => (failure = error));
        assert.equal(answers.filter((error) => error).length, 0, "every put answered was stored");
        const later = answers.length;
        stores.outgoing.put({ cmd: "publish", topic: "t", qos: 1, messageId: 999 }, (error) => {
          answers.push(error);
        });
        await sleep(100);
        assert.equal(answers.length, later, "no put is called back after the failure");
        assert.ok(
          storeFailed(failure, join(folder, "outgoing.log"), "ENOSPC"),
          `failure names the log and ENOSPC: ${failure}`,
        );
        await within(stores.close(), 1000, "close()");
        assert.equal(existsSync(join(folder, "lock")), false, "the lock is released");
      });
    },
  );
});

describe("a failed file store finishing what it took", () => {
  test(
    "it still takes the PUBREL of a publish it holds (in memory), holds nothing it could not store, and once it holds nothing its log is emptied: the next process sends nothing again",
    { skip: skipWithoutMount() },
    async () => {
      await withTmpfs("size=64k", async (dir) => {
        const folder = join(dir, "store");
        const stores = openFileStores(folder, "batch");
        const packet = (id: number) => ({
          cmd: "publish",
          topic: "t",
          qos: 2,
          messageId: id,
          payload: new Uint8Array(4096),
        });
        const stored: number[] = [];
        let unstored = -1;
        // 64 KiB holds fewer than 16 of these: 100 is a bound, never reached.
        for (let id = 1; id <= 100 && unstored === -1; id++) {
          let called = false;
          stores.outgoing.put(packet(id), () => (called = true));
          if (called) stored.push(id);
          else unstored = id;
        }
        await within(stores.failure, 1000, "the failure");
        assert.deepEqual(stores.outgoing.ids(), stored, "the put not stored is not held");
        let drained = false;
        stores.drained().then(() => (drained = true));
        // PUBREC came for the first: its PUBREL replaces it, in memory, and is called back.
        let released = false;
        stores.outgoing.put({ cmd: "pubrel", messageId: stored[0] }, () => (released = true));
        assert.ok(released, "the PUBREL of a publish it holds is called back");
        let answered = false;
        stores.outgoing.put({ cmd: "pubrel", messageId: 9999 }, () => (answered = true));
        assert.ok(!answered, "a PUBREL of a publish it does not hold is not");
        assert.equal(
          (await new Promise<{ cmd?: string }>((resolve) =>
            stores.outgoing.get({ messageId: stored[0] }, (_, p) => resolve(p!))
          )).cmd,
          "pubrel",
        );
        const log = join(folder, "outgoing.log");
        assert.ok(statSync(log).size > 0);
        for (const id of stored.slice(0, -1)) stores.outgoing.del({ messageId: id });
        await sleep(10);
        assert.ok(!drained && statSync(log).size > 0, "not drained while one is held");
        stores.outgoing.del({ messageId: stored.at(-1) });
        await sleep(10);
        assert.ok(drained, "drained() resolves once it holds nothing");
        assert.equal(statSync(log).size, 0, "the log is emptied");
        await within(stores.close(), 1000, "close()");
        const next = openFileStores(folder, "batch");
        assert.equal(next.recovery.outgoing, 0, "nothing to send again");
        await next.close();
      });
    },
  );
});

describe("a read-only store folder", () => {
  test(
    "an existing read-only folder is STORE_FAILED naming the folder and EROFS, not a raw EROFS",
    {
      skip: skipWithoutMount(),
    },
    async () => {
      await using broker = await startAedes();
      await withTmpfs("size=64k", async (dir) => {
        const folder = join(dir, "store");
        mkdirSync(folder);
        remount(dir, "ro");
        const sink = new MqttSink(broker.url, {
          topic: "ro/x",
          clientId: "read-only",
          persistence: "file",
          localStorage: folder,
        });
        await assert.rejects(
          within(sink.getWriter().write("x"), 5000, "the write"),
          (error: unknown) => {
            assert.ok(storeFailed(error, folder, "EROFS"), `STORE_FAILED naming it: ${error}`);
            return true;
          },
        );
      });
    },
  );
});

describe("errors that were not MqttStreamError", () => {
  test("a wrong PKCS12 key store password is an MqttOptionsError naming ssl.key.store.password, without the password", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-p12-"));
    try {
      const certificates = makeCertificates(dir);
      const password = "not-the-right-one";
      // Nothing listens there: the key store is read before any connection is tried.
      const sink = new MqttSink("mqtts://127.0.0.1:1", {
        topic: "p12/x",
        connectAttempts: 1,
        "ssl.key.store": certificates.clientP12,
        "ssl.key.store.password": password,
      });
      await assert.rejects(
        within(sink.getWriter().write("x"), 5000, "the write"),
        (error: unknown) => {
          assert.ok(error instanceof MqttStreamError, `an MqttStreamError: ${error}`);
          assert.equal(error.code, "INVALID_OPTION");
          assert.equal((error as { option?: string }).option, "ssl.key.store.password");
          assert.match(error.message, /ssl\.key\.store\.password/);
          assert.ok(!`${error.message}${error.stack}`.includes(password), error.message);
          return true;
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the PKCS12 key store check lets the right password through, and asks for one when none is given", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-p12-"));
    try {
      const certificates = makeCertificates(dir);
      const store = new Uint8Array(readFileSync(certificates.clientP12));
      await checkKeyStorePassword(store, certificates.p12Password);
      await assert.rejects(
        checkKeyStorePassword(store, undefined),
        (error: unknown) =>
          error instanceof MqttOptionsError && error.option === "ssl.key.store.password" &&
          /needs a password/.test(error.message),
      );
      // What the check cannot read is left to the TLS layer, which says what it is.
      await checkKeyStorePassword(new TextEncoder().encode("not DER"), "x");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
