import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnScript } from "./_helpers.ts";

/** Runs an example in a child process of the same runtime; returns its exit code and output. */
function run(example: string): Promise<{ code: number | null; output: string }> {
  const child = spawnScript(new URL(`../examples/${example}`, import.meta.url), []);
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

test("examples/demo.ts publishes three readings through a sink and reads them back", async () => {
  const { code, output } = await run("demo.ts");
  assert.equal(code, 0, output);
  assert.match(output, /published: sink stats \{"published":3,"acked":3,/);
  assert.equal(output.match(/^received /gm)?.length, 3, output);
});

test("examples/bridge.ts bridges three readings with rewritten topics and exits by itself", async () => {
  const { code, output } = await run("bridge.ts");
  assert.equal(code, 0, output);
  assert.match(output, /cloud got site-7\/plant\/line-1\/temp: 71.5/);
  assert.equal(output.match(/^cloud got /gm)?.length, 3, output);
  assert.match(output, /"acked":3/);
});
