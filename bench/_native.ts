// The native ceiling: mosquitto's own C clients (Debian mosquitto-clients) moving the same
// messages. Each figure includes starting and stopping the process (a few ms).
import { spawn, spawnSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { QoS } from "./_raw.ts";

/** Whether mosquitto_sub and mosquitto_pub can be spawned here. */
export const hasNativeClients: boolean = spawnSync("mosquitto_sub", ["--help"]).error ===
    undefined && spawnSync("mosquitto_pub", ["--help"]).error === undefined;

function run(command: string, args: string[], stdin: "ignore" | number): Promise<number> {
  const started = performance.now();
  const child = spawn(command, args, { stdio: [stdin, "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`${command} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

function hostArgs(url: string): string[] {
  const { hostname, port } = new URL(url);
  return ["-h", hostname, "-p", port || "1883"];
}

/** mosquitto_sub resuming the session `clientId` until `count` messages: milliseconds. */
export function drainNative(
  url: string,
  clientId: string,
  topic: string,
  count: number,
  qos: QoS,
): Promise<number> {
  return run("mosquitto_sub", [
    ...hostArgs(url),
    "-i",
    clientId,
    "-c",
    "-q",
    String(qos),
    "-t",
    topic,
    "-C",
    String(count),
  ], "ignore");
}

/**
 * mosquitto_pub -l publishing `count` lines of `size` - 1 bytes (the newline ends each)
 * read from a file: milliseconds until it exits, every publish confirmed.
 */
export async function publishNative(
  url: string,
  topic: string,
  count: number,
  size: number,
  qos: QoS,
): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-bench-"));
  const file = join(dir, "lines");
  writeFileSync(file, `${"x".repeat(size - 1)}\n`.repeat(count));
  const fd = openSync(file, "r");
  try {
    return await run("mosquitto_pub", [...hostArgs(url), "-q", String(qos), "-t", topic, "-l"], fd);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}
