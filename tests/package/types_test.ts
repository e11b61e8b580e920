// Compile-time tests: tests/package/_inference.ts must type-check, and each snippet below must
// not, with the error that says why. Both runtimes run them with `deno check` (Deno's own
// executable, or `npx deno@2` under Bun).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { assertEachFailsToCheck, denoCheck } from "../../testing/helpers.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

const HEADER = `
import * as v from "valibot";
import { merge, type MqttMessage, route, toRecord, validate } from "${join(root, "mod.ts")}";
declare const source: ReadableStream<MqttMessage>;
const router = route({
  "sensors/+site/temperature": v.object({ celsius: v.number() }),
  "sensors/+site/humidity": v.object({ percent: v.number() }),
});
export {};
`;

/** Snippets that must not type-check, each with the error it must raise. */
const MUST_FAIL: Record<string, { code: string; error: RegExp }> = {
  "a field of another route's schema": {
    code: `for await (const r of source.pipeThrough(router)) {
      if (r.route === "sensors/+site/temperature") console.log(r.value.percent);
    }`,
    error: /Property 'percent' does not exist on type '\{ celsius: number; \}'/,
  },
  "a route that is not among the routes": {
    code: `for await (const r of source.pipeThrough(router)) {
      if (r.route === "sensors/+site/pressure") console.log(r);
    }`,
    error: /This comparison appears to be unintentional/,
  },
  "a parameter the filter does not name": {
    code: `for await (const r of source.pipeThrough(router)) console.log(r.params.plant);`,
    error: /Property 'plant' does not exist on type 'RouteParams<"sensors\/\+site\/temperature">'/,
  },
  "a validated value used as another type": {
    code:
      `for await (const { value } of source.pipeThrough(validate(v.object({ celsius: v.number() })))) {
      const text: string = value.celsius; console.log(text);
    }`,
    error: /Type 'number' is not assignable to type 'string'/,
  },
  "something that is not a schema": {
    code: `validate({ parse: (x: unknown) => x });`,
    error: /'parse' does not exist in type 'StandardSchemaV1/,
  },
  "a source name merge was not given": {
    code:
      `for await (const c of merge({ edge: source })) if (c.source === "cloud") console.log(c);`,
    error: /This comparison appears to be unintentional/,
  },
  "a record without a payload": {
    code: `source.pipeThrough(toRecord((m: MqttMessage) => ({ topic: m.topic })));`,
    error: /Property 'payload' is missing/,
  },
};

test("tests/package/_inference.ts type-checks: routes, validate, merge and toRecord infer their types", () => {
  const { status, output } = denoCheck([join(root, "tests/package/_inference.ts")]);
  assert.equal(status, 0, output);
});

test("each misuse of the transforms' types fails to type-check with the error that says why", () => {
  assertEachFailsToCheck(
    Object.fromEntries(
      Object.entries(MUST_FAIL).map(([name, { code, error }]) => [
        name,
        { source: `${HEADER}\n${code}`, error },
      ]),
    ),
  );
});
