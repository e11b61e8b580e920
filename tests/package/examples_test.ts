import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createConnection } from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { MqttSource } from "../../mod.ts";
import { freePort, startAedes, waitForPort } from "../../testing/broker.ts";
import { denoExecutable, spawnScript, within } from "../../testing/helpers.ts";

/** Runs an example in a child process of the same runtime; returns its exit code and output. */
function run(example: string): Promise<{ code: number | null; output: string }> {
  const child = spawnScript(new URL(`../../examples/${example}`, import.meta.url), []);
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  return new Promise((resolve) =>
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    })
  );
}

test("examples/demo.ts routes simulated sensors, prints live counts and stops by itself with a summary", async () => {
  const { code, output } = await run("demo.ts");
  assert.equal(code, 0, output);
  assert.match(output, /^live {2}temperature /m);
  const [, published, routed, rejected, missing] =
    output.match(/^summary: (\d+) published, (\d+) routed, (\d+) rejected, (\d+) missing/m) ?? [];
  assert.ok(Number(published) > 100, output);
  assert.equal(Number(routed) + Number(rejected), Number(published));
  assert.equal(missing, "0");
  assert.match(
    output,
    /^done .*humidity damp: \d+.*door open: \d+.*\| rejects: invalid \d+, no route \d+$/m,
  );
});

test("examples/bridge.ts bridges three readings with rewritten topics and exits by itself", async () => {
  const { code, output } = await run("bridge.ts");
  assert.equal(code, 0, output);
  assert.match(output, /cloud got site-7\/plant\/line-1\/temp: 71.5/);
  assert.equal(output.match(/^cloud got /gm)?.length, 3, output);
  assert.match(output, /"acked":3/);
});

test("examples/multiplex.ts routes two plants' formats into one tagged stream and dead-letters the invalid reading", async () => {
  const { code, output } = await run("multiplex.ts");
  assert.equal(code, 0, output);
  assert.match(
    output,
    /hub got pipeline\/south\/temperature\/b7: \{"source":"south","site":"b7","kind":"temperature","value":22\}/,
  );
  assert.match(output, /hub got pipeline\/north\/co2\/a1: .*"value":640/);
  assert.match(
    output,
    /hub got pipeline\/dead-letters: \{"stage":"route",.*"topic":"north\/a2\/co2"/,
  );
  assert.match(output, /router stats: \{"passed":3,"dropped":0,"deadLettered":1\}/);
});

test("examples/durable_log.ts logs every message with fdatasync and acknowledges each after its line is durable", async () => {
  const { code, output } = await run("durable_log.ts");
  assert.equal(code, 0, output);
  assert.match(output, /^logged 500 lines to .*; acked 500 after fdatasync$/m);
});

test("examples/edge_worker_run.ts posts to the edge worker: 202 when all lines are published, 400 naming a bad line", async () => {
  const { code, output } = await run("edge_worker_run.ts");
  assert.equal(code, 0, output);
  assert.match(output, /^POST 2 lines: 202 \{"published":2\}$/m);
  assert.match(
    output,
    /^POST a bad line: 400 \{"error":"line 2 is not JSON: not json","published":1\}$/m,
  );
  assert.equal(output.match(/^broker got ingest\/readings: /gm)?.length, 3, output);
});

test("examples/edge_worker.ts under `deno serve` with the README's permissions publishes a POST's lines", async () => {
  await using broker = await startAedes({ transport: "ws" });
  await using source = new MqttSource(`${broker.url}?topic=ingest/%23&qos=1`);
  await source.ready;
  const port = await freePort();
  const server = spawn(
    denoExecutable(),
    [
      "serve",
      `--port=${port}`,
      "--host=127.0.0.1",
      `--allow-net=127.0.0.1`,
      "--allow-env",
      fileURLToPath(new URL("../../examples/edge_worker.ts", import.meta.url)),
    ],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, MQTT_URL: `${broker.url}?topic=ingest/edge&qos=1`, NO_COLOR: "1" },
    },
  );
  let log = "";
  server.stderr!.on("data", (chunk) => (log += chunk));
  const ended = new Promise((resolve) => server.once("exit", resolve));
  try {
    await waitForPort(port, () => server.exitCode !== null, 30_000);
    const response = await fetch(`http://127.0.0.1:${port}/`, {
      method: "POST",
      body: '{"n":1}\n{"n":2}\n{"n":3}\n',
    });
    assert.equal(response.status, 202, log);
    assert.deepEqual(await response.json(), { published: 3 });
    const reader = source.getReader();
    for (const n of [1, 2, 3]) {
      const { value } = await within(reader.read(), 10_000, `line ${n} at the broker`);
      assert.deepEqual(value!.json(), { n });
    }
    reader.releaseLock();
  } finally {
    server.kill("SIGTERM");
    await ended;
  }
  // What was killed must be the server itself, not a launcher in front of it (npx under Bun).
  assert.equal(await listening(port), false, `deno serve still listens on ${port}`);
});

/** Whether anything accepts a connection on 127.0.0.1:`port` (after 200 ms for it to go). */
async function listening(port: number): Promise<boolean> {
  await new Promise((resolve) => setTimeout(resolve, 200));
  return await new Promise<boolean>((resolve) => {
    const socket = createConnection({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
