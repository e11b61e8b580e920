/**
 * {@linkcode validate}: message values checked against a schema (valibot, or any
 * Standard Schema v1 library such as zod or arktype), typed by its output.
 *
 * @module
 */
// This module is browser compatible.
import {
  type MqttInput,
  MqttTransform,
  type MqttTransformOptions,
  type MqttValue,
} from "./mqtt_transform.ts";
import { inputMessage, inputSource } from "./_input.ts";
import type { InferOutput, StandardSchemaV1 } from "./standard_schema.ts";
import { checkInput, checkSchema } from "./_schema.ts";

/**
 * Checks each message against `schema` and yields `{ value, message }` with the schema's
 * output (defaults filled in, transformations applied) as `value`. It checks the value a
 * decoder put beside the message (after `decodeText()`, the text), else the payload
 * parsed as JSON. A payload that is not JSON, or a value the schema refuses, is invalid
 * and follows `onInvalid`; the error or dead letter names the topic and each issue with
 * its path.
 *
 * @typeParam S The schema; the values are typed by its output.
 * @param schema A valibot schema, or any Standard Schema v1 object (zod, arktype, ...).
 * @param options The `onInvalid` policy. @default {{ onInvalid: "error" }}
 * @returns A transform from messages to `{ value, message }`.
 * @throws {TypeError} When `schema` is not a Standard Schema v1 object, or `onInvalid`
 * is not "error", "drop" or a WritableStream.
 *
 * @example Typed readings, the invalid ones dropped and counted
 * ```ts
 * import { MqttMessage, validate } from "@mqtt-streams/core";
 * import * as v from "valibot";
 *
 * const Reading = v.object({ celsius: v.number() });
 * const text = (s: string) => new TextEncoder().encode(s);
 * const check = validate(Reading, { onInvalid: "drop" });
 * const readings = ReadableStream.from([
 *   new MqttMessage("sensors/north", text('{"celsius":21.5}')),
 *   new MqttMessage("sensors/south", text('{"celsius":"hot"}')),
 * ]).pipeThrough(check);
 * for await (const { value, message } of readings) console.log(message.topic, value.celsius); // sensors/north 21.5
 * console.log(check.stats); // { passed: 1, dropped: 1, deadLettered: 0 }
 * ```
 */
export function validate<S extends StandardSchemaV1>(
  schema: S,
  options?: MqttTransformOptions,
): MqttTransform<MqttInput, MqttValue<InferOutput<S>>> {
  checkSchema("validate", "'schema'", schema);
  return new MqttTransform("validate", (input) =>
    checkInput(schema, input, (value) => ({
      value: value as InferOutput<S>,
      message: inputMessage(input),
      ...inputSource(input),
    })), options);
}
