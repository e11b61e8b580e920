import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { optionsTable } from "./_options_table.ts";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

test("the README's option table agrees with the schema", () => {
  const start = readme.indexOf("| option | default |");
  assert.ok(start >= 0, "the README has no option table");
  const end = readme.indexOf("\n\n", start);
  assert.equal(readme.slice(start, end < 0 ? undefined : end), optionsTable());
});

test("the README names the two commands a newcomer runs", () => {
  assert.match(readme, /npx --yes deno@2 task demo/);
  assert.match(readme, /npx --yes deno@2 task test/);
});
