// Compile-time: the generated MqttOptions and the options' schema's output type agree
// (tests/options/_types.ts type-checks), and the check bites: an interface whose field has
// another type, or another optionality, fails it. Both runtimes run it with `deno check`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runDeno } from "../../testing/helpers.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const TYPES = join(root, "tests/options/_types.ts");

/** Runs `deno check` on `files`; returns its exit code and output. */
function denoCheck(files: string[]): { status: number | null; output: string } {
  return runDeno(["check", "--quiet", "--config", join(root, "deno.json"), ...files]);
}

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
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-options-types-"));
  try {
    const source = readFileSync(TYPES, "utf8").replaceAll(`"../../`, `"${root}/`);
    const real = /^import type \{ MqttOptions \} from ("[^"]+");$/m;
    assert.match(source, real);
    const files = Object.entries(MUST_FAIL).map(([name, { options }], i) => {
      const file = join(dir, `must_fail_${i}.ts`);
      writeFileSync(
        file,
        `// ${name}\n${
          source.replace(
            real,
            `import type { MqttOptions as Real } from $1;\ntype MqttOptions = ${options};`,
          )
        }`,
      );
      return file;
    });
    const { status, output } = denoCheck(files);
    assert.notEqual(status, 0, output);
    const errors = output.split(/\n\n+/);
    Object.entries(MUST_FAIL).forEach(([name, { error }], i) => {
      const mine = errors.filter((text) => text.includes(`must_fail_${i}.ts:`));
      assert.ok(mine.length > 0, `${name}: type-checked, but must not\n${output}`);
      assert.ok(mine.some((text) => error.test(text)), `${name}: not ${error}\n${mine.join("\n")}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
