// Compile-time: the generated MqttOptions and the options' schema's output type agree
// (tests/options/_types.ts type-checks), and the check bites: an interface whose field has
// another type, or another optionality, fails it. Both runtimes run it with `deno check`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assertEachFailsToCheck, denoCheck } from "../../testing/helpers.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const TYPES = join(root, "tests/options/_types.ts");

test("MqttOptions and the options' schema's output type are mutually assignable, field by field", () => {
  const { status, output } = denoCheck([TYPES]);
  assert.equal(status, 0, output);
});

/** Interfaces that differ from the schema's output in one field, each with the error it must raise. */
const MUST_FAIL: Record<string, { options: string; error: RegExp }> = {
  "a field of another type": {
    options: `Omit<Real, "qos"> & { qos: number }`,
    error: /Types of property 'qos' are incompatible/,
  },
  "an optional field the schema always sets": {
    options: `Omit<Real, "keepAlive"> & { keepAlive?: number }`,
    error: /Types of property 'keepAlive' are incompatible/,
  },
  "a field the schema does not have": {
    options: `Real & { keepAliveMs?: number }`,
    error: /Types of property 'keepAliveMs' are incompatible/,
  },
};

test("an interface that differs from the schema's output in one field fails to type-check", () => {
  const source = readFileSync(TYPES, "utf8").replaceAll(`"../../`, `"${root}/`);
  const real = /^import type \{ MqttOptions \} from ("[^"]+");$/m;
  assert.match(source, real);
  assertEachFailsToCheck(
    Object.fromEntries(
      Object.entries(MUST_FAIL).map(([name, { options, error }]) => [name, {
        source: source.replace(
          real,
          `import type { MqttOptions as Real } from $1;\ntype MqttOptions = ${options};`,
        ),
        error,
      }]),
    ),
  );
});
