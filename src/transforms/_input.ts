// What every transform reads of its input: the message, and the source name merge gave it.
import { MqttMessage } from "../message.ts";
import type { MqttInput } from "./mqtt_transform.ts";

/** The message of an input. */
export function messageOf(input: MqttInput): MqttMessage {
  return input instanceof MqttMessage ? input : input.message;
}

/** `{ source }` of an input that has one, else `{}`: outputs carry it on. */
export function sourceOf(input: MqttInput): { source?: string } {
  return input instanceof MqttMessage || input.source === undefined ? {} : { source: input.source };
}
