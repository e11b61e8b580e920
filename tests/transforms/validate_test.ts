import { test } from "node:test";
import assert from "node:assert/strict";
import * as v from "valibot";
import { z } from "zod";
import { decodeText, MqttInvalidMessageError, validate } from "../../mod.ts";
import { drain, message, underEachPolicy } from "./_transforms.ts";

const Reading = v.object({ site: v.string(), celsius: v.pipe(v.number(), v.maxValue(150)) });

underEachPolicy("validate", (options) => validate(Reading, options), {
  good: (acks) => [
    message("t/north", '{"site":"north","celsius":21.5}', acks),
    message("t/south", '{"site":"south","celsius":19}', acks),
  ],
  bad: (acks) => [
    message("t/east", '{"site":"east","celsius":"hot"}', acks),
    message("t/west", "not json", acks),
  ],
  check: (outputs, good) => {
    assert.deepEqual(outputs.map((o) => o.value), good.map((m) => m.json()));
    assert.deepEqual(outputs.map((o) => o.message), good);
  },
  issue: /celsius: Invalid type: Expected number but received "hot"/,
});

test("validate names the path of a nested issue and every issue of a message", async () => {
  const Batch = v.object({
    readings: v.array(v.object({ celsius: v.number() })),
    site: v.string(),
  });
  const { error } = await drain(
    ReadableStream.from([message("b/1", '{"readings":[{"celsius":1},{"celsius":null}]}')])
      .pipeThrough(validate(Batch)),
  );
  assert.ok(error instanceof MqttInvalidMessageError);
  assert.deepEqual(error.issues.map((issue) => issue.path), [["readings", 1, "celsius"], ["site"]]);
  assert.match(
    error.message,
    /^Cannot validate the message on 'b\/1': readings\.1\.celsius: .*; site: /,
  );
});

test("validate yields the schema's output: defaults filled in and transformations applied", async () => {
  const Schema = v.object({
    celsius: v.number(),
    unit: v.optional(v.string(), "C"),
    at: v.pipe(v.string(), v.transform((s) => new Date(s))),
  });
  const { chunks } = await drain(
    ReadableStream.from([message("t", '{"celsius":1,"at":"2026-01-01T00:00:00Z"}')])
      .pipeThrough(validate(Schema)),
  );
  assert.equal(chunks[0].value.unit, "C");
  assert.ok(chunks[0].value.at instanceof Date);
});

test("validate accepts a zod schema, through Standard Schema v1", async () => {
  const Door = z.object({ open: z.boolean() });
  const check = validate(Door, { onInvalid: "drop" });
  const { chunks } = await drain(
    ReadableStream.from([message("d/1", '{"open":true}'), message("d/2", '{"open":"yes"}')])
      .pipeThrough(check),
  );
  assert.deepEqual(chunks.map((c) => c.value), [{ open: true }]);
  assert.deepEqual(check.stats, { passed: 1, dropped: 1, deadLettered: 0 });
});

test("validate waits for an async schema and keeps the order of the messages", async () => {
  const Slow = v.pipeAsync(
    v.number(),
    v.checkAsync(async (n) => {
      await new Promise((resolve) => setTimeout(resolve, 5 - n));
      return n % 2 === 0;
    }, "odd"),
  );
  const check = validate(Slow, { onInvalid: "drop" });
  const { chunks } = await drain(
    ReadableStream.from([0, 1, 2, 3, 4].map((n) => message(`n/${n}`, String(n)))).pipeThrough(
      check,
    ),
  );
  assert.deepEqual(chunks.map((c) => c.value), [0, 2, 4]);
  assert.equal(check.stats.dropped, 2);
});

test("validate checks the value a decoder put beside the message instead of parsing JSON", async () => {
  const { chunks } = await drain(
    ReadableStream.from([message("door", "open")])
      .pipeThrough(decodeText())
      .pipeThrough(validate(v.picklist(["open", "closed"]))),
  );
  assert.equal(chunks[0].value, "open");
});

test("validate refuses what is not a Standard Schema, saying what it needs", () => {
  assert.throws(
    () => validate({ parse: () => 1 } as never),
    /^TypeError: Cannot create validate\(\) as 'schema' must be a Standard Schema v1 object \(a valibot, zod or arktype schema\): current value is an object with keys parse$/,
  );
});
