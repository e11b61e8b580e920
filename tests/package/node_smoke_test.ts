// Node users of the JSR package get JavaScript built from mod.ts. This test builds one
// (esbuild: mod.ts and our modules in one ES module, npm packages left as imports, as
// JSR leaves them) and runs tests/package/_node_smoke_child.mjs on it under Node (20 here): round trips at
// each QoS over TCP and ws://, a file store, and a routed pipeline.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { runToEnd } from "../../testing/helpers.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
// Inside node_modules, so that Node resolves the bundle's imports of mqtt and valibot.
const out = `${root}node_modules/.cache/mqtt-streams/mod.mjs`;

test("under Node, the public API round-trips over TCP and ws://, with a file store and a route", async () => {
  mkdirSync(`${root}node_modules/.cache/mqtt-streams`, { recursive: true });
  try {
    await esbuild.build({
      entryPoints: [`${root}mod.ts`],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      packages: "external",
      outfile: out,
      logLevel: "silent",
    });
  } finally {
    await esbuild.stop();
  }
  const { code, output } = await runToEnd("node", [
    `${root}tests/package/_node_smoke_child.mjs`,
    out,
  ]);
  assert.equal(code, 0, output);
  const result = JSON.parse(output.trim().split("\n").at(-1)!);
  console.log(output.trim());
  assert.match(result.node, /^v\d+/);
  assert.deepEqual(
    { ...result, node: undefined },
    {
      node: undefined,
      "tcp qos0": 20,
      "tcp qos1": 20,
      "tcp qos2": 20,
      "ws qos1": 20,
      "file store qos1": 20,
      routed: ["plant/+site/temp@a", "plant/+site/hum@b"],
    },
  );
});
