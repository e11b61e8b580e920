// JSR readiness: `deno publish --dry-run` (no registry needed) checks the public API for
// slow types and lists the files that would be published.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runDeno } from "../../testing/helpers.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

test("deno publish --dry-run passes, with no slow types, and publishes the library only", () => {
  const { status, output } = runDeno(["publish", "--dry-run", "--allow-dirty"]);
  assert.equal(status, 0, output);
  assert.match(output, /Checking for slow types in the public API/);
  assert.match(output, /Success Dry run complete/);
  // One line a file: "   file:///…/src/connection/connection.ts (15.06KB)".
  const files = [...output.matchAll(/^\s+(file:\/\/\S+)/gm)]
    .map((match) => fileURLToPath(match[1]).slice(root.length));
  assert.ok(files.includes("mod.ts"), files.join("\n"));
  assert.ok(files.includes("src/connection/runtime/websocket.ts"), files.join("\n"));
  const stray = files.filter((file) => /^(tests|bench|examples|\.ci)\//.test(file));
  assert.deepEqual(stray, [], "test, bench or example files would be published");
});
