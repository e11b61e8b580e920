import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { optionsTable } from "./_options_table.ts";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

/** A Markdown table's rows as trimmed cells, so column padding (deno fmt) does not matter. */
function cells(table: string): string[][] {
  return table.trim().split("\n").filter((line) => !/^\|[\s|:-]+\|$/.test(line)).map((line) =>
    line.replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((cell) => cell.trim())
  );
}

test("the README's option table agrees with the schema", () => {
  const start = readme.search(/^\| option +\| default/m);
  assert.ok(start >= 0, "the README has no option table");
  const end = readme.indexOf("\n\n", start);
  assert.deepEqual(cells(readme.slice(start, end < 0 ? undefined : end)), cells(optionsTable()));
});

test("the README names the two commands a newcomer runs", () => {
  assert.match(readme, /npx --yes deno@2 task demo/);
  assert.match(readme, /npx --yes deno@2 task test/);
});
