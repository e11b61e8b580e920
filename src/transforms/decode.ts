/**
 * {@linkcode decodeText} and {@linkcode decodeJson}: message payloads as text or JSON
 * values, with the message kept beside each value.
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
import { parseJson, utf8 } from "./json_line.ts";

/**
 * Decodes each message's payload as UTF-8 text. A payload that is not valid UTF-8 is
 * invalid and follows `onInvalid`.
 *
 * @param options The `onInvalid` policy. @default {{ onInvalid: "error" }}
 * @returns A transform from messages to `{ value: string, message }`.
 * @throws {TypeError} When `onInvalid` is not "error", "drop" or a WritableStream.
 *
 * @example
 * ```ts
 * import { decodeText, MqttMessage } from "@mqtt-streams/core";
 *
 * const message = new MqttMessage("door/front", new TextEncoder().encode("open"));
 * for await (const { value, message: m } of ReadableStream.from([message]).pipeThrough(decodeText())) {
 *   console.log(m.topic, value); // door/front open
 * }
 * ```
 */
export function decodeText(
  options?: MqttTransformOptions,
): MqttTransform<MqttInput, MqttValue<string>> {
  return new MqttTransform<MqttInput, MqttValue<string>>("decodeText", (input) => {
    const message = inputMessage(input);
    const value = utf8(message.payload);
    return value === undefined
      ? { issues: [{ message: "the payload is not valid UTF-8" }] }
      : { value: { value, message, ...inputSource(input) } };
  }, options);
}

/**
 * Parses each message's payload as JSON (UTF-8). A payload that is not JSON is invalid and
 * follows `onInvalid`. The value is typed `T` without being checked; {@linkcode validate}
 * checks it against a schema.
 *
 * @typeParam T The type to give the values. @default {unknown}
 * @param options The `onInvalid` policy. @default {{ onInvalid: "error" }}
 * @returns A transform from messages to `{ value: T, message }`.
 * @throws {TypeError} When `onInvalid` is not "error", "drop" or a WritableStream.
 *
 * @example
 * ```ts
 * import { decodeJson, MqttMessage } from "@mqtt-streams/core";
 *
 * const message = new MqttMessage("sensors/north", new TextEncoder().encode('{"celsius":21.5}'));
 * const decoded = ReadableStream.from([message]).pipeThrough(decodeJson<{ celsius: number }>());
 * for await (const { value } of decoded) console.log(value.celsius); // 21.5
 * ```
 */
export function decodeJson<T = unknown>(
  options?: MqttTransformOptions,
): MqttTransform<MqttInput, MqttValue<T>> {
  return new MqttTransform("decodeJson", (input) => {
    const message = inputMessage(input);
    const parsed = parseJson(message.payload);
    return "issues" in parsed
      ? parsed
      : { value: { value: parsed.value as T, message, ...inputSource(input) } };
  }, options);
}
