// NATS server's MQTT listener as a test broker: Debian's nats-server spawned with a temp
// config on random 127.0.0.1 ports, JetStream on (its MQTT sessions, retained messages
// and QoS 1 queues live in JetStream streams, kept in the temp folder). One server
// (startNats), or a cluster of three whose nodes can be killed and restarted
// (startNatsCluster), for failover across brokers.
import mqtt, { type MqttClient } from "mqtt";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  type BrokerProcess,
  brokerProcess,
  freePort,
  skipUnless,
  type TestBroker,
  waitForPort,
} from "./broker.ts";

/** Whether nats-server can be spawned here. */
export const hasNats: boolean = spawnSync("nats-server", ["--version"]).error === undefined;

/** The `skip` option of a test that needs nats-server ({@linkcode skipUnless}). */
export function skipWithoutNats(): string | false {
  return skipUnless(hasNats, "nats-server is not installed (apt-get install nats-server)");
}

/**
 * Starts nats-server with its MQTT listener on a random port of 127.0.0.1. `ackWait` is
 * its `mqtt.ack_wait`: NATS resends an unacknowledged QoS 1 message only after that long,
 * even when the session resumes (30 s by default; 2 s here, so tests need not wait).
 */
export async function startNats(
  { ackWait = "2s" }: { ackWait?: string } = {},
): Promise<TestBroker & BrokerProcess & { natsUrl: string }> {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-nats-"));
  const [port, client] = await freePorts(2);
  const config = [
    // Its NATS client port, for JetStream clients.
    `listen: 127.0.0.1:${client}`,
    // MQTT needs JetStream, and JetStream a server name.
    "server_name: mqtt_streams_test",
    `jetstream { store_dir: "${join(dir, "jetstream")}" }`,
    `mqtt { listen: 127.0.0.1:${port}, ack_wait: "${ackWait}" }`,
  ];
  writeFileSync(join(dir, "nats.conf"), config.join("\n") + "\n");
  const broker = await brokerProcess("nats-server", ["-c", join(dir, "nats.conf")], port, dir);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    natsUrl: `nats://127.0.0.1:${client}`,
    port,
    ...broker,
    [Symbol.asyncDispose]: broker.close,
  };
}

/** One server of a {@linkcode NatsCluster}. */
export interface NatsNode {
  /** Its `server_name`: n1, n2, … */
  name: string;
  /** Its MQTT port on 127.0.0.1. */
  port: number;
  /** mqtt://127.0.0.1:port */
  url: string;
  /** Its NATS client address (for JetStream clients): nats://127.0.0.1:port */
  natsUrl: string;
  /** Whether its process runs. */
  readonly alive: boolean;
  /** Kills its process with SIGKILL (a crash: nothing saved, no goodbye) and waits for the exit. */
  kill(): Promise<void>;
  /**
   * Starts it again with the same config, ports and store folder (killing it first if it
   * still runs), and waits until it has routes to the other live nodes, sees a JetStream
   * meta leader, and an MQTT round trip through it works (a persistent QoS 1 subscriber on
   * it gets a message published through another node). Throws, with the logs, after 30 s.
   */
  restart(): Promise<void>;
  /** What it printed (stdout and stderr), every run of it. */
  log(): string;
}

/** A cluster of nats-server nodes with MQTT and JetStream, from {@linkcode startNatsCluster}. */
export interface NatsCluster extends AsyncDisposable {
  nodes: NatsNode[];
  /** Every node's MQTT address in one connection string: "mqtt://127.0.0.1:p1,127.0.0.1:p2,…" */
  url: string;
  /** Every node's NATS client address, for a JetStream client's `servers`. */
  natsServers: string[];
  /** The node of `name` (its `server_name`: n1, n2, …); throws for another name. */
  node(name: string): NatsNode;
  /** Every node's log, each headed by its name. */
  log(): string;
  /** Stops every node still running (SIGTERM, SIGKILL after 2 s) and removes their folders. */
  close(): Promise<void>;
}

/** Options of {@linkcode startNatsCluster}. */
export interface NatsClusterOptions {
  /** How many nodes, 2 or more; 3 by default (MQTT state is kept on up to 3 of them). */
  nodes?: number;
  /** `mqtt.ack_wait` of every node, as in {@linkcode startNats}; "2s" by default. */
  ackWait?: string;
  /** How long starting, and each restart(), may take; 30 s by default. */
  timeoutMs?: number;
}

/** The ports of one node, all on 127.0.0.1. */
interface NodePorts {
  mqtt: number;
  cluster: number;
  /** Its monitoring endpoint (/jsz, /routez, /healthz). */
  http: number;
  /** Its NATS client port (JetStream clients). */
  client: number;
}

/**
 * Every cluster node process running, SIGKILLed when this process exits: a test that
 * fails or times out before its cluster closes leaves no nats-server behind.
 */
const liveNodes = new Set<ChildProcess>();
let exitHook = false;

function track(child: ChildProcess): void {
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const node of liveNodes) node.kill("SIGKILL");
    });
  }
  liveNodes.add(child);
  child.once("exit", () => liveNodes.delete(child));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `count` distinct ports that were free a moment ago. */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/**
 * Starts a cluster of `nodes` nats-server processes (3 by default) on random ports of
 * 127.0.0.1, each with its own temp folder (config and JetStream store), routes to all the
 * others, a monitoring port and an MQTT listener. Resolves once the cluster serves
 * persistent MQTT sessions: every node sees the same JetStream meta leader, and on every
 * node a persistent QoS 1 subscriber got a message published through the next node (which
 * also makes NATS create the MQTT streams of the account). Throws, with every node's log,
 * when that takes more than `timeoutMs` (30 s), stopping what it started.
 */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  // A port picked free can be taken before its node binds it (by an outgoing connection's
  // ephemeral port): then the cluster starts again on other ports, up to 3 times.
  for (let attempt = 1;; attempt++) {
    try {
      return await startCluster(options);
    } catch (error) {
      if (attempt === 3 || !/address already in use/.test((error as Error).message)) throw error;
    }
  }
}

async function startCluster(
  { nodes: count = 3, ackWait = "2s", timeoutMs = 30_000 }: NatsClusterOptions,
): Promise<NatsCluster> {
  if (!Number.isInteger(count) || count < 2) {
    throw new RangeError(`a NATS cluster needs 2 nodes or more, not ${count}`);
  }
  const deadline = Date.now() + timeoutMs;
  const clusterName = `mqtt_streams_test_${crypto.randomUUID().slice(0, 8)}`;
  const ports = await freePorts(4 * count);
  const portsOf = (i: number): NodePorts => ({
    mqtt: ports[4 * i],
    cluster: ports[4 * i + 1],
    http: ports[4 * i + 2],
    client: ports[4 * i + 3],
  });
  const nodes: ClusterNode[] = [];
  const cluster: NatsCluster = {
    nodes,
    url: "mqtt://" + Array.from({ length: count }, (_, i) => `127.0.0.1:${portsOf(i).mqtt}`)
      .join(","),
    natsServers: Array.from({ length: count }, (_, i) => `nats://127.0.0.1:${portsOf(i).client}`),
    node(name) {
      const node = nodes.find((n) => n.name === name);
      if (!node) throw new Error(`no node ${name} in the cluster (${nodes.map((n) => n.name)})`);
      return node;
    },
    log: () => nodes.map((n) => `--- ${n.name} ---\n${n.log()}`).join("\n"),
    close: once(async () => {
      await Promise.all(nodes.map((node) => node.stop()));
    }),
    [Symbol.asyncDispose]: () => cluster.close(),
  };
  try {
    for (let i = 0; i < count; i++) {
      const routes = Array.from({ length: count }, (_, j) => j)
        .filter((j) => j !== i)
        .map((j) => portsOf(j).cluster);
      nodes.push(
        clusterNode(`n${i + 1}`, portsOf(i), routes, nodes, {
          clusterName,
          ackWait,
          replicas: Math.min(3, count),
          timeoutMs,
        }),
      );
    }
    for (const node of nodes) node.launch();
    for (const node of nodes) await node.listening(deadline);
    await metaLeader(nodes, deadline);
    // The first round trip makes NATS create the account's MQTT streams (about 1 s, and
    // 0.5 s more for the first QoS 1 consumer); the others can then run side by side.
    await roundTrip(nodes[0], nodes[1 % count], deadline);
    await Promise.all(
      nodes.slice(1).map((node, i) => roundTrip(node, nodes[(i + 2) % count], deadline)),
    );
  } catch (error) {
    await cluster.close();
    throw new Error(
      `the NATS cluster did not come up: ${(error as Error).message}\n${cluster.log()}`,
      { cause: error },
    );
  }
  return cluster;
}

/** A {@linkcode NatsNode} with what the cluster needs to run it. */
interface ClusterNode extends NatsNode {
  ports: NodePorts;
  /** Spawns its process. */
  launch(): void;
  /** Waits until it accepts MQTT connections; throws when its process exits. */
  listening(deadline: number): Promise<void>;
  /** Stops it for good (SIGTERM, SIGKILL after 2 s) and removes its folder; safe to repeat. */
  stop(): Promise<void>;
}

function clusterNode(
  name: string,
  ports: NodePorts,
  routes: number[],
  all: ClusterNode[],
  { clusterName, ackWait, replicas, timeoutMs }: {
    clusterName: string;
    ackWait: string;
    replicas: number;
    timeoutMs: number;
  },
): ClusterNode {
  const dir = mkdtempSync(join(tmpdir(), `mqtt-streams-nats-${name}-`));
  const config = [
    // For JetStream clients; picked with the others: NATS's own random pick (-1) could
    // take the MQTT port another node is about to bind.
    `listen: 127.0.0.1:${ports.client}`,
    `http: 127.0.0.1:${ports.http}`,
    `server_name: ${name}`,
    `jetstream { store_dir: "${join(dir, "jetstream")}" }`,
    "cluster {",
    // A name of its own: should another cluster (another test process) take one of these
    // ports, its nodes cannot join this one.
    `  name: ${clusterName}`,
    `  listen: 127.0.0.1:${ports.cluster}`,
    `  routes: [${routes.map((port) => `nats-route://127.0.0.1:${port}`).join(", ")}]`,
    "}",
    "mqtt {",
    `  listen: 127.0.0.1:${ports.mqtt}`,
    `  ack_wait: "${ackWait}"`,
    // Without it NATS 2.9 gives the MQTT streams (sessions, messages, retained) one
    // replica a configured route, capped at 3 (mqttDetermineReplicas): 2 here, where each
    // node lists the two others; a stream on 2 replicas has no quorum once either dies,
    // and no session resumes anywhere ("JetStream system temporarily unavailable").
    `  stream_replicas: ${replicas}`,
    "}",
  ];
  writeFileSync(join(dir, "nats.conf"), config.join("\n") + "\n");
  let log = "";
  let runs = 0;
  let child: ChildProcess | undefined;
  let running = false;
  let exited: Promise<void> = Promise.resolve();
  let stopped = false;
  const node: ClusterNode = {
    name,
    port: ports.mqtt,
    url: `mqtt://127.0.0.1:${ports.mqtt}`,
    natsUrl: `nats://127.0.0.1:${ports.client}`,
    ports,
    get alive() {
      return running;
    },
    log: () => log,
    launch() {
      if (stopped) throw new Error(`${name} was stopped with the cluster`);
      if (runs++ > 0) log += `--- ${name} restarted ---\n`;
      const spawned = spawn("nats-server", ["-c", join(dir, "nats.conf")], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = spawned;
      running = true;
      track(spawned);
      spawned.stdout!.on("data", (chunk) => (log += chunk));
      spawned.stderr!.on("data", (chunk) => (log += chunk));
      exited = new Promise<void>((resolve) => {
        const ended = () => {
          running = false;
          resolve();
        };
        spawned.once("exit", (code, signal) => {
          log += `--- ${name} exited (${signal ?? `code ${code}`}) ---\n`;
          ended();
        });
        spawned.once("error", (error) => {
          log += `nats-server could not be spawned: ${error.message}\n`;
          ended();
        });
      });
    },
    async listening(deadline) {
      await waitForPort(ports.mqtt, () => !running, Math.max(0, deadline - Date.now()));
    },
    async kill() {
      if (running) child!.kill("SIGKILL");
      await exited;
    },
    async restart() {
      const deadline = Date.now() + timeoutMs;
      await node.kill();
      node.launch();
      try {
        await node.listening(deadline);
        const others = all.filter((other) => other !== node && other.alive);
        await waitUntil(deadline, `${name} to route to ${others.length} live nodes`, async () => {
          const routez = await monitor(ports.http, "routez");
          return (routez?.num_routes ?? 0) >= others.length;
        });
        await metaLeader([node, ...others], deadline);
        await roundTrip(node, others[0] ?? node, deadline);
      } catch (error) {
        throw new Error(
          `${name} did not come back: ${(error as Error).message}\n` +
            all.map((n) => `--- ${n.name} ---\n${n.log()}`).join("\n"),
          { cause: error },
        );
      }
    },
    stop: once(async () => {
      stopped = true;
      if (running) {
        child!.kill("SIGTERM");
        const timer = setTimeout(() => running && child!.kill("SIGKILL"), 2_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    }),
  };
  return node;
}

/** `fn` run at most once: later calls get the first call's promise. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let promise: Promise<void> | undefined;
  return () => (promise ??= fn());
}

/** What the monitoring endpoints used here answer (/jsz, /routez), in part. */
interface MonitorReply {
  meta_cluster?: { leader?: string };
  num_routes?: number;
}

/** GET http://127.0.0.1:port/path of a node's monitoring port, as JSON; undefined when it fails. */
async function monitor(port: number, path: string): Promise<MonitorReply | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/${path}`, {
      signal: AbortSignal.timeout(2_000),
    });
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    return await response.json();
  } catch {
    return undefined;
  }
}

/** Polls `condition` every 100 ms until it holds; throws, naming `what`, at `deadline`. */
async function waitUntil(
  deadline: number,
  what: string,
  condition: () => Promise<boolean>,
): Promise<void> {
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Waits until every one of `nodes` names the same JetStream meta leader, one of them. */
async function metaLeader(nodes: ClusterNode[], deadline: number): Promise<void> {
  const names = nodes.map((node) => node.name);
  await waitUntil(deadline, `a JetStream meta leader among ${names.join(", ")}`, async () => {
    const leaders = await Promise.all(
      nodes.map(async (node) => (await monitor(node.ports.http, "jsz"))?.meta_cluster?.leader),
    );
    const [first] = leaders;
    return first !== undefined && names.includes(first) &&
      leaders.every((leader) => leader === first);
  });
}

/**
 * Retries, until `deadline`, an MQTT round trip: a persistent session (clean: false) on
 * `subscriber` subscribes at QoS 1 and gets a QoS 1 message published through `publisher`;
 * then the probe's session is removed (connect with clean: true).
 */
async function roundTrip(
  subscriber: NatsNode,
  publisher: NatsNode,
  deadline: number,
): Promise<void> {
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      await probe(subscriber.url, publisher.url, Math.min(5_000, deadline - Date.now()));
      return;
    } catch (error) {
      last = error;
      await sleep(200);
    }
  }
  throw new Error(
    `no MQTT round trip from ${publisher.name} to ${subscriber.name}: ${
      (last as Error | undefined)?.message ?? "no time left"
    }`,
  );
}

/** One round trip of {@linkcode roundTrip}, failing after `ms`. */
async function probe(subscriberUrl: string, publisherUrl: string, ms: number): Promise<void> {
  const id = `probe-${crypto.randomUUID().slice(0, 8)}`;
  const topic = `probe/${id}`;
  const clients: MqttClient[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the probe took more than ${ms} ms`)), ms);
  });
  const open = (url: string, clientId: string, clean: boolean) => {
    const client = mqtt.connect(url, {
      clientId,
      clean,
      reconnectPeriod: 0,
      connectTimeout: ms,
      keepalive: 10,
    });
    clients.push(client);
    return Promise.race([
      timeout,
      new Promise<MqttClient>((resolve, reject) => {
        client.once("connect", () => resolve(client));
        // Kept for the client's life: an "error" event without a listener would throw.
        client.on("error", reject);
        client.on("close", () => reject(new Error(`${url} closed the connection`)));
      }),
    ]);
  };
  try {
    const work = (async () => {
      const sub = await open(subscriberUrl, id, false);
      const received = new Promise<void>((resolve) =>
        sub.on("message", (t, payload) => t === topic && payload.toString() === id && resolve())
      );
      const granted = await sub.subscribeAsync(topic, { qos: 1 });
      if (granted[0]?.qos !== 1) throw new Error(`subscription granted ${granted[0]?.qos}`);
      const pub = await open(publisherUrl, `${id}-pub`, true);
      await pub.publishAsync(topic, id, { qos: 1 });
      await received;
      await Promise.all([sub.endAsync(), pub.endAsync()]);
      // The probe leaves no session behind.
      const clean = await open(subscriberUrl, id, true);
      await clean.endAsync();
    })();
    // When the time runs out first, what fails after is nobody's (no unhandled rejection).
    work.catch(() => {});
    await Promise.race([timeout, work]);
  } finally {
    clearTimeout(timer);
    for (const client of clients) client.end(true);
  }
}
