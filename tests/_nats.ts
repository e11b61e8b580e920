// NATS server's MQTT listener as a test broker: Debian's nats-server spawned with a temp
// config on random 127.0.0.1 ports, JetStream on (its MQTT sessions, retained messages
// and QoS 1 queues live in JetStream streams, kept in the temp folder).
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type TestBroker, waitForPort } from "./_broker.ts";

/** Whether nats-server can be spawned here. */
export const hasNats: boolean = spawnSync("nats-server", ["--version"]).error === undefined;

/**
 * The `skip` option of a test that needs nats-server: false (run) when it is installed or
 * when CI=true (a missing nats-server must fail in CI, not skip), else the printed reason.
 */
export function skipWithoutNats(): string | false {
  if (hasNats) return false;
  const ci = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env
    .CI;
  if (ci === "true") return false;
  const reason = "nats-server is not installed (apt-get install nats-server)";
  console.log(`skipping: ${reason}`);
  return reason;
}

/** Starts nats-server with its MQTT listener on a random port of 127.0.0.1. */
export async function startNats(): Promise<
  TestBroker & { log(): string; restart(downMs?: number): Promise<void> }
> {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-nats-"));
  const port = await freePort();
  const config = [
    // Its own client port is random too (-1); only the MQTT listener is used.
    "listen: 127.0.0.1:-1",
    // MQTT needs JetStream, and JetStream a server name.
    "server_name: mqtt_streams_test",
    `jetstream { store_dir: "${join(dir, "jetstream")}" }`,
    `mqtt { listen: 127.0.0.1:${port} }`,
  ];
  writeFileSync(join(dir, "nats.conf"), config.join("\n") + "\n");
  let log = "";
  let child!: ChildProcess;
  let exited!: Promise<void>;
  const launch = async () => {
    child = spawn("nats-server", ["-c", join(dir, "nats.conf")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (chunk) => (log += chunk));
    child.stderr!.on("data", (chunk) => (log += chunk));
    exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    await waitForPort(port, () => child.exitCode !== null, 10_000);
  };
  const stop = async () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    await exited;
  };
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };
  const restart = async (downMs = 0) => {
    await stop();
    await new Promise((resolve) => setTimeout(resolve, downMs));
    await launch();
  };
  try {
    await launch();
  } catch (error) {
    await close();
    throw new Error(`nats-server did not start: ${(error as Error).message}\n${log}`);
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    log: () => log,
    restart,
    close,
    [Symbol.asyncDispose]: close,
  };
}
