/**
 * {@linkcode toRecord}: messages (or decoded values) mapped to records for an `MqttSink`,
 * keeping the at-least-once acknowledgement of the original message.
 *
 * @module
 */
// This module is browser compatible.
import type { MqttRecord } from "../record.ts";
import type { MqttInput } from "./mqtt_transform.ts";
import { inputMessage } from "./_input.ts";

/**
 * What the function given to {@linkcode toRecord} returns: one record, several (one
 * message fanned out to several topics), or nothing (the message is skipped).
 *
 * @example
 * ```ts
 * import type { RecordsOf } from "@mqtt-streams/core";
 *
 * const none: RecordsOf = null;
 * const two: RecordsOf = [{ topic: "a", payload: "1" }, { topic: "b", payload: "1" }];
 * console.log(none, two.length); // null 2
 * ```
 */
export type RecordsOf = MqttRecord | readonly MqttRecord[] | null | undefined;

/**
 * Maps each input to the records to publish, and gives them the acknowledgement of the
 * input's message: with `ack: "manual"` on the source, the message is acknowledged to its
 * broker only once the sink confirmed every record made of it (and at once when `fn`
 * makes none). So `source.pipeThrough(toRecord(fn)).pipeTo(sink)` stays an at-least-once
 * bridge, whatever `fn` rewrites. A record's own `ack`, if it has one, is called too.
 * When `fn` throws (or rejects), the stream errors with that error.
 *
 * @typeParam I What it reads: messages, or what `decodeJson`, `validate` or `route` yield.
 * @param fn The mapping, maybe async.
 * @returns A transform from inputs to records.
 * @throws {TypeError} When `fn` is not a function.
 *
 * @example Rewrite topics for a bridge
 * ```ts
 * import { MqttMessage, toRecord } from "@mqtt-streams/core";
 *
 * let acked = false;
 * const message = new MqttMessage("plant/temp", new TextEncoder().encode("71"), { qos: 1, ack: () => (acked = true) });
 * const records = ReadableStream.from([message])
 *   .pipeThrough(toRecord((m: MqttMessage) => ({ topic: `site-7/${m.topic}`, payload: m.payload, qos: m.qos })));
 * for await (const record of records) {
 *   console.log(record.topic); // site-7/plant/temp
 *   record.ack?.(); // what the sink does once its broker confirmed the publish
 * }
 * console.log(acked); // true
 * ```
 */
export function toRecord<I extends MqttInput>(
  fn: (input: I) => RecordsOf | Promise<RecordsOf>,
): TransformStream<I, MqttRecord> {
  if (typeof fn !== "function") {
    throw new TypeError(
      `Cannot create toRecord() as 'fn' must be a function: current value is ${String(fn)}`,
    );
  }
  const emit = (
    input: I,
    made: RecordsOf,
    controller: TransformStreamDefaultController<MqttRecord>,
  ) => {
    const message = inputMessage(input);
    const records = made == null ? [] : Array.isArray(made) ? made : [made as MqttRecord];
    if (records.length === 0) return message.ack(); // nothing to wait for: it is handled
    let waiting = records.length;
    for (const record of records) {
      let acked = false;
      controller.enqueue({
        ...record,
        ack: () => {
          if (acked) return;
          acked = true;
          record.ack?.();
          if (--waiting === 0) message.ack();
        },
      });
    }
  };
  return new TransformStream<I, MqttRecord>({
    transform(input, controller) {
      const made = fn(input);
      return made instanceof Promise
        ? made.then((made) => emit(input, made, controller))
        : emit(input, made, controller);
    },
  });
}
