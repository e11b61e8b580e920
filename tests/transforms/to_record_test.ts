import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeJson, type MqttMessage, type MqttValue, toRecord } from "../../mod.ts";
import { drain, message } from "./_transforms.ts";

test("toRecord acks the message only once the sink confirmed every record made of it", async () => {
  const acks = new Map<MqttMessage, number>();
  const m = message("plant/temp", "71", acks);
  const { chunks } = await drain(
    ReadableStream.from([m]).pipeThrough(
      toRecord((m: MqttMessage) => [
        { topic: `a/${m.topic}`, payload: m.payload },
        { topic: `b/${m.topic}`, payload: m.payload },
      ]),
    ),
  );
  assert.deepEqual(chunks.map((r) => r.topic), ["a/plant/temp", "b/plant/temp"]);
  chunks[0].ack?.();
  chunks[0].ack?.(); // a second call of the same record's ack counts once
  assert.equal(acks.get(m), undefined);
  chunks[1].ack?.();
  assert.equal(acks.get(m), 1);
});

test("toRecord acks at once a message it makes no record of", async () => {
  const acks = new Map<MqttMessage, number>();
  const skipped = message("noise", "x", acks);
  const { chunks } = await drain(ReadableStream.from([skipped]).pipeThrough(toRecord(() => null)));
  assert.equal(chunks.length, 0);
  assert.equal(acks.get(skipped), 1);
});

test("toRecord maps decoded values and keeps the message's ack, and a record's own ack", async () => {
  const acks = new Map<MqttMessage, number>();
  const m = message("t/1", '{"celsius":21.5}', acks);
  let own = 0;
  const { chunks } = await drain(
    ReadableStream.from([m])
      .pipeThrough(decodeJson<{ celsius: number }>())
      .pipeThrough(toRecord(async ({ value }: MqttValue<{ celsius: number }>) => {
        await Promise.resolve();
        return { topic: "f/1", payload: String(value.celsius * 9 / 5 + 32), ack: () => own++ };
      })),
  );
  assert.equal(chunks[0].payload, "70.7");
  chunks[0].ack?.();
  assert.deepEqual([own, acks.get(m)], [1, 1]);
});

test("toRecord errors the stream with what the function threw", async () => {
  const { error } = await drain(
    ReadableStream.from([message("t", "1")]).pipeThrough(toRecord(() => {
      throw new RangeError("no mapping for t");
    })),
  );
  assert.ok(error instanceof RangeError);
});

test("toRecord refuses what is not a function", () => {
  assert.throws(
    () => toRecord("a/b" as never),
    /^TypeError: Cannot create toRecord\(\) as 'fn' must be a function: current value is a\/b$/,
  );
});
