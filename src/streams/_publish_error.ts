// Why a publish failed, in the words of an MqttPublishError: which refusals may clear up by
// themselves (retried within publishAttempts) and which would repeat (not retried).
import { MqttPublishError } from "../errors.ts";
import type { Unsettled } from "../connection/connection.ts";
import type { MqttOptions } from "../options/options.ts";
import { showValue } from "../_redact.ts";
import type { Publish } from "../record.ts";

/**
 * PUBACK/PUBREC reason codes that may clear up by themselves (MQTT 5 §3.4.2.1): retried
 * within publishAttempts. Every other code of 0x80 or more is a refusal that would
 * repeat (not authorized, topic name invalid, packet too large, QoS not supported, ...).
 */
const TRANSIENT_REFUSALS = new Set([
  0x80, // unspecified error
  0x89, // server busy
  0x91, // packet identifier in use
  0x96, // message rate too high
  0x97, // quota exceeded
]);

/** The error.type of a publish that failed without a reason code (its connection failed). */
export const FAILED = "MqttPublishError";

/** Whether a refusal's reason code may clear up by itself, so that a retry may succeed. */
export function isTransient(reasonCode: number): boolean {
  return TRANSIENT_REFUSALS.has(reasonCode);
}

/**
 * The error a sink fails with when `publish` did not complete after `attempts`: a refusal
 * that would repeat says so; anything else says how many attempts were made.
 */
export function publishError(
  options: MqttOptions,
  publish: Publish,
  failure: Unsettled,
  attempts: number,
): MqttPublishError {
  const { reasonCode: code, reason, error } = failure;
  const where = `Cannot publish to '${showValue(publish.topic)}' on ${options.brokerUrl}`;
  if (code !== undefined && !isTransient(code)) {
    return new MqttPublishError(
      `${where}: the broker refused it with reason code 0x${
        code.toString(16)
      } (${reason}); not retried, as that refusal would repeat`,
      publish.topic,
      { cause: error, reasonCode: code },
    );
  }
  const why = code !== undefined ? `reason code 0x${code.toString(16)} (${reason})` : error.message;
  return new MqttPublishError(
    `${where} after ${attempts} attempt${
      attempts === 1 ? "" : "s"
    } (publishAttempts=${options.publishAttempts}): ${why}`,
    publish.topic,
    { cause: error, reasonCode: code },
  );
}
