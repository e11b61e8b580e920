// examples/jetstream_bridge.ts against real parts: Debian's mosquitto (MQTT 5) in front, a
// 3-node NATS cluster (Debian's nats-server, JetStream) behind, the bridge in a child
// process of the test's runtime so that it can be SIGKILLed. The JetStream client that
// checks the stream is the official @nats-io one, as the bridge's is.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { connect, nanos, type NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, jetstream, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { MqttSink } from "../../mod.ts";
import { skipWithoutMosquitto, startMosquitto, type TestBroker } from "../../testing/broker.ts";
import {
  exited,
  kill,
  LOSSLESS,
  sleep,
  spawnScript,
  waitFor,
  within,
} from "../../testing/helpers.ts";
import { type NatsCluster, skipWithoutNats, startNatsCluster } from "../../testing/nats.ts";

const BRIDGE = new URL("../../examples/jetstream_bridge.ts", import.meta.url);

/** One run of the bridge: its process, what it printed, and its last stats line. */
interface Bridge {
  child: ChildProcess;
  output(): string;
  /** The last stats line it printed (stored, duplicates, retried, unidentified, inflight). */
  stats(): Record<string, number> | undefined;
}

/** Starts the bridge and waits for its `ready` line (30 s at most). */
async function startBridge(mqttUrl: string, cluster: NatsCluster): Promise<Bridge> {
  const child = spawnScript(BRIDGE, [
    mqttUrl,
    cluster.natsServers.join(","),
    "mqtt",
    "--id=user-property:msg-id",
  ]);
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  const bridge: Bridge = {
    child,
    output: () => output,
    stats() {
      const lines = output.split("\n").filter((line) => line.startsWith("{"));
      return lines.length ? JSON.parse(lines[lines.length - 1]) : undefined;
    },
  };
  const ended = exited(child).then(({ code }) => {
    throw new Error(`the bridge exited (${code}): ${output}`);
  });
  ended.catch(() => {});
  try {
    await Promise.race([
      waitFor(() => output.includes("ready"), "the bridge ready", 30_000),
      ended,
    ]);
  } catch (error) {
    await kill(child);
    throw new Error(`${(error as Error).message}; it printed: ${output}`, { cause: error });
  }
  return bridge;
}

/** A stream of 3 replicas capturing mqtt.>, with a 2-minute duplicate window. */
async function addStream(jsm: JetStreamManager, name: string): Promise<void> {
  await jsm.streams.add({
    name,
    subjects: ["mqtt.>"],
    num_replicas: 3,
    duplicate_window: nanos(120_000),
  });
}

/** How many messages the stream holds (0 while it cannot answer). */
async function count(jsm: JetStreamManager, name: string): Promise<number> {
  try {
    return (await jsm.streams.info(name)).state.messages;
  } catch {
    return 0;
  }
}

/** Every message of the stream: its payload as text, and how many times each appears. */
async function contents(nc: NatsConnection, name: string, expected: number) {
  // A durable pull consumer without acknowledgements: NATS 2.9 times out the ordered
  // consumer's create request of @nats-io/jetstream 3.
  const jsm = await jetstreamManager(nc);
  for (let attempt = 1;; attempt++) {
    try {
      await jsm.consumers.add(name, { durable_name: "check", ack_policy: AckPolicy.None });
      break;
    } catch (error) {
      if (attempt === 5) throw error;
    }
  }
  const consumer = await jetstream(nc).consumers.get(name, "check");
  const seen = new Map<string, number>();
  let total = 0;
  for (let round = 0; round < 50 && total < expected; round++) {
    const batch = await consumer.fetch({ max_messages: 1_000, expires: 2_000 });
    for await (const message of batch) {
      const text = message.string();
      seen.set(text, (seen.get(text) ?? 0) + 1);
      total++;
    }
  }
  return { seen, total };
}

/** What a test of the bridge runs against, from {@linkcode withBridge}. */
interface Scene {
  mosquitto: TestBroker;
  cluster: NatsCluster;
  nc: NatsConnection;
  jsm: JetStreamManager;
  /** The bridge's source: plant/#, MQTT 5, the given clientId, a window of 64. */
  mqttUrl: string;
  /** Every run of the bridge, the first already ready; all SIGKILLed at the end. */
  bridges: Bridge[];
}

/**
 * Runs `body` against mosquitto (lossless), a 3-node NATS cluster with the stream MQTT
 * (3 replicas) and a bridge of `clientId` started; stops everything after.
 */
async function withBridge(clientId: string, body: (scene: Scene) => Promise<void>) {
  await using mosquitto = await startMosquitto({ lines: LOSSLESS });
  await using cluster = await startNatsCluster();
  const nc = await connect({ servers: cluster.natsServers, maxReconnectAttempts: -1 });
  const bridges: Bridge[] = [];
  try {
    const jsm = await jetstreamManager(nc);
    await addStream(jsm, "MQTT");
    const mqttUrl =
      `${mosquitto.url}?topic=plant/%23&clientId=${clientId}&mqttVersion=5&maxInflight=64`;
    bridges.push(await startBridge(mqttUrl, cluster));
    await body({ mosquitto, cluster, nc, jsm, mqttUrl, bridges });
  } finally {
    for (const bridge of bridges) await kill(bridge.child);
    await nc.close();
  }
}

describe(
  "examples/jetstream_bridge.ts: MQTT into a replicated JetStream stream, at least once",
  { skip: skipWithoutMosquitto() || skipWithoutNats() },
  () => {
    test("10,000 QoS 1 messages: the stream leader and the bridge SIGKILLed mid-way, every message stored once", async () => {
      await withBridge("js-bridge", async ({ mosquitto, cluster, nc, jsm, mqttUrl, bridges }) => {
        const total = 10_000;
        const writer = new MqttSink(`${mosquitto.url}?qos=1&mqttVersion=5&maxInflight=20`)
          .getWriter();
        // The producer is paced (about 1,000 messages a second) so that the faults land
        // while messages flow: at a quarter, the node leading the stream is SIGKILLed; at three
        // quarters, the bridge, which is started again with the same clientId.
        let leader: string | undefined;
        let before: Record<string, number> | undefined;
        let [killedAt, recovered] = [0, 0];
        for (let i = 0; i < total; i++) {
          if (i === total / 4) {
            leader = (await jsm.streams.info("MQTT")).cluster?.leader;
            assert.ok(leader, "the stream has a leader");
            killedAt = Date.now();
            await cluster.node(leader).kill();
          }
          if (i === (3 * total) / 4) {
            // Once JetStream has a new leader and the bridge stores again, SIGKILL it with
            // publishes in flight: some stored, not yet acknowledged to mosquitto.
            await waitFor(
              () => (bridges[0].stats()?.stored ?? 0) > total / 4 + 200,
              "the bridge storing again after the leader died",
              60_000,
            );
            recovered = Date.now() - killedAt;
            before = bridges[0].stats();
            await kill(bridges[0].child);
            bridges.push(await startBridge(mqttUrl, cluster));
          }
          await within(
            writer.write({
              topic: `plant/line-${i % 4}/reading`,
              payload: String(i),
              properties: { userProperties: { "msg-id": String(i) } },
            }),
            30_000,
            `write ${i}`,
          );
          if (i % 10 === 9) await sleep(10);
        }
        await within(writer.close(), 30_000, "the producer done");
        await waitFor(async () => (await count(jsm, "MQTT")) >= total, "all stored", 60_000);
        // Give the restarted bridge time to store what it would store twice, and bring the
        // killed node back (the stream's third replica catches up).
        await sleep(1_000);
        await cluster.node(leader!).restart();
        const { seen, total: stored } = await contents(nc, "MQTT", total);
        const info = (await jsm.streams.info("MQTT")).cluster;
        bridges[1].child.kill("SIGTERM");
        await within(exited(bridges[1].child), 10_000, "the bridge stopped");
        const after = bridges[1].stats();
        const missing = Array.from({ length: total }, (_, i) => String(i))
          .filter((i) => !seen.has(i));
        console.log(
          `jetstream: ${stored} stored of ${total}; leader ${leader} killed, now ${info?.leader}, the bridge stored again within ${recovered} ms; first bridge (last stats before SIGKILL) ${
            JSON.stringify(before)
          }; second bridge ${JSON.stringify(after)}`,
        );
        assert.deepEqual(missing.slice(0, 10), [], `${missing.length} missing`);
        assert.equal(stored, total, "each message stored once");
        assert.equal(seen.size, total);
        assert.ok(after, bridges[1].output());
        assert.equal(after.unidentified, 0);
        assert.equal(after.inflight, 0);
      });
    });

    test("while the stream has no quorum nothing is acknowledged to mosquitto: a bridge killed then loses nothing", async () => {
      await withBridge("js-quorum", async ({ mosquitto, cluster, nc, jsm, mqttUrl, bridges }) => {
        const sink = new MqttSink(`${mosquitto.url}?qos=1&mqttVersion=5`);
        const writer = sink.getWriter();
        const publish = async (from: number, to: number) => {
          for (let i = from; i < to; i++) {
            await writer.write({
              topic: "plant/line-1/reading",
              payload: String(i),
              properties: { userProperties: { "msg-id": String(i) } },
            });
          }
        };
        await publish(0, 100);
        await waitFor(
          async () => (await count(jsm, "MQTT")) >= 100,
          "the first 100 stored",
          30_000,
        );
        // The stream's leader and one more replica die: 1 of 3 left, no quorum.
        const leader = (await jsm.streams.info("MQTT")).cluster!.leader!;
        const other = cluster.nodes.find((node) => node.name !== leader)!;
        await cluster.node(leader).kill();
        await other.kill();
        await publish(100, 400);
        // The bridge has them all, and JetStream takes none: it keeps trying.
        await waitFor(
          () => (bridges[0].stats()?.retried ?? 0) > 0 && bridges[0].stats()?.inflight === 64,
          "the bridge retrying a full window",
          30_000,
        );
        const held = bridges[0].stats();
        await kill(bridges[0].child);
        await cluster.node(leader).restart();
        await other.restart();
        // Everything the dead bridge held, mosquitto sends again to the new one.
        bridges.push(await startBridge(mqttUrl, cluster));
        await waitFor(async () => (await count(jsm, "MQTT")) >= 400, "all 400 stored", 60_000);
        await within(writer.close(), 10_000, "the producer closed");
        const { seen, total: stored } = await contents(nc, "MQTT", 400);
        console.log(
          `no quorum: the killed bridge held ${
            JSON.stringify(held)
          }; stored ${stored}, ${seen.size} distinct`,
        );
        assert.equal(seen.size, 400);
        assert.equal(stored, 400);
      });
    });
  },
);
