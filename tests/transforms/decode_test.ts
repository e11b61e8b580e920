import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeJson, decodeText } from "../../mod.ts";
import { drain, message, underEachPolicy } from "./_transforms.ts";

underEachPolicy("decodeText", (options) => decodeText(options), {
  good: (acks) => [message("door/front", "open", acks), message("door/back", "closed", acks)],
  bad: (acks) => [message("door/side", new Uint8Array([0xff, 0xfe]), acks)],
  check: (outputs, good) => {
    assert.deepEqual(outputs.map((o) => o.value), good.map((m) => m.text()));
    assert.deepEqual(outputs.map((o) => o.message), good);
  },
  issue: /the payload is not valid UTF-8/,
});

underEachPolicy("decodeJson", (options) => decodeJson<{ celsius: number }>(options), {
  good: (
    acks,
  ) => [message("t/1", '{"celsius":21.5}', acks), message("t/2", '{"celsius":-3}', acks)],
  bad: (acks) => [message("t/3", "{celsius:", acks), message("t/4", new Uint8Array([0xc3]), acks)],
  check: (outputs, good) => {
    assert.deepEqual(
      outputs.map((o) => o.value.celsius),
      good.map((m) => m.json<{ celsius: number }>().celsius),
    );
    assert.deepEqual(outputs.map((o) => o.message.topic), good.map((m) => m.topic));
  },
  issue: /the payload is not JSON/,
});

test("decodeJson keeps the source name merge gave a message", async () => {
  const m = message("a", "1");
  const { chunks } = await drain(
    ReadableStream.from([{ message: m, source: "edge" }]).pipeThrough(decodeJson()),
  );
  assert.deepEqual(chunks, [{ value: 1, message: m, source: "edge" }]);
});

test("decodeText refuses an onInvalid policy it does not know, naming the option and the value", () => {
  assert.throws(
    () => decodeText({ onInvalid: "skip" as "drop" }),
    /^TypeError: Cannot create decodeText\(\) as 'onInvalid' must be "error", "drop" or a WritableStream: current value is "skip"$/,
  );
});
