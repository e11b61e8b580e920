// Debian's RabbitMQ (3.10, `apt-get install rabbitmq-server`) with its MQTT plugin, on random
// 127.0.0.1 ports: a broker that speaks MQTT 3.1.1 only, as many deployed ones do. The Debian
// wrapper runs the server as the `rabbitmq` user, so its folders are given to that user; it
// gets a node name, AMQP, MQTT and distribution ports of its own, and an epmd of its own
// (Erlang would start one as a daemon that outlives the test), all stopped by close().
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, skipUnless, type TestBroker, waitForPort } from "./broker.ts";

const SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/** Whether RabbitMQ (and the epmd it needs) can be started here. */
export const hasRabbitMQ: boolean = existsSync(SERVER) &&
  spawnSync("epmd", ["-help"]).error === undefined;

/** The `skip` option of a test that needs RabbitMQ (see skipUnless). */
export function skipWithoutRabbitMQ(): string | false {
  return skipUnless(hasRabbitMQ, "RabbitMQ is not installed (apt-get install rabbitmq-server)");
}

/** How long RabbitMQ may take to listen: it boots an Erlang VM and elects an MQTT Raft leader. */
const START_MS = 60_000;

/** Starts RabbitMQ with the MQTT plugin on a random port of 127.0.0.1; anonymous clients allowed. */
export async function startRabbitMQ(): Promise<TestBroker & { log(): string }> {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-rabbitmq-"));
  const [mqtt, amqp, dist, epmdPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  mkdirSync(join(dir, "mnesia"));
  mkdirSync(join(dir, "log"));
  writeFileSync(join(dir, "enabled_plugins"), "[rabbitmq_mqtt].\n");
  writeFileSync(
    join(dir, "rabbitmq.conf"),
    [
      `listeners.tcp.default = 127.0.0.1:${amqp}`,
      `mqtt.listeners.tcp.default = 127.0.0.1:${mqtt}`,
      "mqtt.allow_anonymous = true",
      "loopback_users = none",
    ].join("\n") + "\n",
  );
  const cookie = join(dir, ".erlang.cookie");
  writeFileSync(cookie, `mqttstreams${mqtt}`);
  chmodSync(cookie, 0o400);
  // As root, the server runs as the rabbitmq user (as the Debian wrapper does), which must own
  // its folders; as anyone else, as that user, in folders it already owns.
  const root = process.getuid?.() === 0;
  if (root) spawnSync("chown", ["-R", "rabbitmq:rabbitmq", dir]);
  const env = {
    ...process.env,
    HOME: dir,
    ERL_EPMD_PORT: String(epmdPort),
    // The script then execs the Erlang VM: one process, which SIGTERM stops cleanly.
    RUNNING_UNDER_SYSTEMD: "1",
    RABBITMQ_NODENAME: `mqttstreams${mqtt}@localhost`,
    RABBITMQ_DIST_PORT: String(dist),
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_FEATURE_FLAGS_FILE: join(dir, "feature_flags"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_PID_FILE: join(dir, "pid"),
    RABBITMQ_LOGS: "-",
  };
  let log = "";
  const start = (command: string, args: string[]) => {
    const child = spawn(command, args, { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (chunk) => (log += chunk));
    child.stderr!.on("data", (chunk) => (log += chunk));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    return { child, exited };
  };
  const processes: { child: ChildProcess; exited: Promise<void> }[] = [];
  const close = async () => {
    // The server first (SIGTERM: it stops cleanly), then its epmd; SIGKILL if one hangs.
    for (const { child, exited } of [...processes].reverse()) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        exited,
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            child.kill("SIGKILL");
            resolve();
          }, 20_000);
        }),
      ]);
      clearTimeout(timer);
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const epmd = start("epmd", ["-port", String(epmdPort)]);
    processes.push(epmd);
    await waitForPort(epmdPort, () => epmd.child.exitCode !== null, 10_000);
    const asUser = root ? ["setpriv", "--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups"] : [];
    const [command, ...args] = [...asUser, SERVER];
    const server = start(command, args);
    processes.push(server);
    await waitForPort(mqtt, () => server.child.exitCode !== null, START_MS);
  } catch (error) {
    await close();
    throw new Error(`RabbitMQ did not start: ${(error as Error).message}\n${log}`);
  }
  return {
    url: `mqtt://127.0.0.1:${mqtt}`,
    port: mqtt,
    log: () => log,
    close,
    [Symbol.asyncDispose]: close,
  };
}
