// What is generated from the options' schema is up to date: the MqttOptions interface that
// JSR documents, and the option table of docs/options.md, so the two agree by construction.
// (tests/package/docs_test.ts checks the table cell by cell too; tests/options/types_test.ts
// proves the interface's types are the schema's.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  MQTT_OPTIONS_MODULE,
  mqttOptionsModule,
  OPTIONS_PAGE,
  optionsTable,
  withTable,
} from "./_generate.ts";
import { describeOption, OPTION_NAMES } from "../../src/options/options.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const read = (path: string) => readFileSync(`${root}/${path}`, "utf8");
const REGENERATE =
  "run: npx --yes deno@2 run --allow-read --allow-write tests/options/_generate.ts";

test("src/options/mqtt_options.ts is the interface the schema generates", () => {
  assert.equal(read(MQTT_OPTIONS_MODULE), mqttOptionsModule(), `out of date; ${REGENERATE}`);
});

test("docs/options.md holds the option table the schema generates", () => {
  const page = read(OPTIONS_PAGE);
  assert.equal(page, withTable(page, optionsTable()), `out of date; ${REGENERATE}`);
});

test("each option's doc, allowed values and default appear in the interface's JSDoc", () => {
  const source = mqttOptionsModule().replace(/\n\s+\* ?/g, " ");
  for (const name of OPTION_NAMES) {
    const { doc, meta } = describeOption(name);
    assert.ok(source.includes(doc), `${name}: its doc`);
    assert.ok(source.includes(`Allowed: ${meta.allowed}.`), `${name}: what is allowed`);
    if (meta.defaultText) assert.ok(source.includes(`@default {${meta.defaultText}}`), name);
  }
});
