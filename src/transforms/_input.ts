// What every transform reads of its input: the message, and the source name merge gave it.
// This module is browser compatible.
import { MqttMessage } from "../message.ts";

/**
 * What the transforms read: an {@linkcode MqttMessage}, or an object that carries one
 * (what `decodeText`, `validate`, `route` and `merge` yield), so they chain.
 *
 * @example
 * ```ts
 * import { MqttMessage, type MqttInput } from "@mqtt-streams/core";
 *
 * const message = new MqttMessage("a/b", new TextEncoder().encode("1"));
 * const inputs: MqttInput[] = [message, { message, source: "edge" }];
 * console.log(inputs.length); // 2
 * ```
 */
export type MqttInput = MqttMessage | {
  /** The message. */
  readonly message: MqttMessage;
  /** A value decoded from it, which `validate` and `route` check instead of parsing JSON. */
  readonly value?: unknown;
  /** The name of the source it came from, set by `merge`. */
  readonly source?: string;
};

/** The message of an input. */
export function inputMessage(input: MqttInput): MqttMessage {
  return input instanceof MqttMessage ? input : input.message;
}

/** `{ source }` of an input that has one, else `{}`: outputs carry it on. */
export function inputSource(input: MqttInput): { source?: string } {
  return input instanceof MqttMessage || input.source === undefined ? {} : { source: input.source };
}
