/**
 * The errors mqtt-streams throws. Callers catch {@linkcode MqttStreamError} and branch on
 * its `code`; the subclasses exist for `instanceof` checks on the four families.
 *
 * @module
 */
import { redactText } from "./_redact.ts";

/**
 * What went wrong, as a stable string a caller can branch on.
 *
 * @example
 * ```ts
 * import type { MqttErrorCode } from "@mqtt-streams/core";
 *
 * const retryable = (code: MqttErrorCode) => code === "CONNECT_REFUSED" || code === "CONNECT_TIMEOUT";
 * console.log(retryable("CONNECT_AUTH")); // false
 * ```
 */
export type MqttErrorCode =
  /** An option or connection string is invalid. */
  | "INVALID_OPTION"
  /** Nothing listens at the broker's address (ECONNREFUSED, unknown host, ...). */
  | "CONNECT_REFUSED"
  /** No CONNACK arrived within `connectionTimeout`. */
  | "CONNECT_TIMEOUT"
  /** The broker refused the username, password or client certificate. */
  | "CONNECT_AUTH"
  /** The TLS handshake failed (unknown CA, wrong host name, bad certificate). */
  | "CONNECT_TLS"
  /** The broker refused the connection for another reason (CONNACK code). */
  | "CONNECT_REJECTED"
  /** The connection dropped while connecting, or the attempt was aborted. */
  | "CONNECT_CLOSED"
  /** A publish failed after its attempts, or was refused by the broker. */
  | "PUBLISH_FAILED"
  /** A chunk written to a sink is not a publishable record (shape, topic, QoS, properties). */
  | "INVALID_RECORD"
  /** The broker refused a subscription (SUBACK failure code). */
  | "SUBSCRIBE_REFUSED"
  /** The broker or the client broke the MQTT protocol. */
  | "PROTOCOL"
  /** Another process (or another stream of this one) holds the file store's folder. */
  | "STORE_LOCKED"
  /** The file store could not read or write its folder (permissions, disk full, ...). */
  | "STORE_FAILED"
  /** A transform met a message it cannot decode, validate or route (`onInvalid: "error"`). */
  | "INVALID_MESSAGE"
  /** The runtime denies a permission mqtt-streams needs (Deno without --allow-env). */
  | "PERMISSION"
  /** The stream was aborted or cancelled without a reason of its own, or disposed while held. */
  | "ABORTED";

/**
 * Options every mqtt-streams error accepts.
 *
 * @example
 * ```ts
 * import { MqttStreamError } from "@mqtt-streams/core";
 *
 * const error = new MqttStreamError("PROTOCOL", "Unexpected packet", { cause: new Error("PUBREL") });
 * console.log(error.cause instanceof Error); // true
 * ```
 */
export interface MqttStreamErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * The base class of every error mqtt-streams raises.
 *
 * @example Branch on the code
 * ```ts
 * import { MqttStreamError, parseConnectionString } from "@mqtt-streams/core";
 *
 * try {
 *   parseConnectionString("mqtt://localhost?qos=3");
 * } catch (error) {
 *   if (error instanceof MqttStreamError) console.log(error.code); // "INVALID_OPTION"
 * }
 * ```
 */
export class MqttStreamError extends Error {
  /** What went wrong, stable across releases. */
  readonly code: MqttErrorCode;

  /**
   * Creates an error.
   *
   * @param code What went wrong.
   * @param message A sentence that says what to do about it.
   * @param options The cause, if any.
   */
  constructor(code: MqttErrorCode, message: string, options?: MqttStreamErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * An option or connection string is invalid. The message names the option, the value
 * (secrets redacted) and what is allowed.
 *
 * @example
 * ```ts
 * import { MqttOptionsError, parseConnectionString } from "@mqtt-streams/core";
 *
 * try {
 *   parseConnectionString("mqtt://localhost?cleanSesion=true");
 * } catch (error) {
 *   if (error instanceof MqttOptionsError) console.log(error.option); // "cleanSesion"
 * }
 * ```
 */
export class MqttOptionsError extends MqttStreamError {
  /** The option (or URL part) at fault, as the caller spelled it. */
  readonly option: string;

  /**
   * Creates an options error.
   *
   * @param option The option at fault.
   * @param message The whole message.
   * @param options The cause, if any.
   */
  constructor(option: string, message: string, options?: MqttStreamErrorOptions) {
    super("INVALID_OPTION", message, options);
    // As the caller spelled it, which a malformed connection string can make hold a
    // password (`passwordhunter2` after a lost '='); and `option` shows in inspection.
    this.option = redactText(option);
  }
}

/**
 * Connecting to the broker failed after every attempt. The message names the broker
 * (without password) and the reason; `attempts` says how many were made.
 *
 * @example
 * ```ts
 * import { MqttConnectError } from "@mqtt-streams/core";
 *
 * const error = new MqttConnectError("CONNECT_REFUSED", "Cannot connect to mqtt://localhost:1883", 3);
 * console.log(error.attempts); // 3
 * ```
 */
export class MqttConnectError extends MqttStreamError {
  /** How many connection attempts were made. */
  readonly attempts: number;

  /**
   * Creates a connect error.
   *
   * @param code Which kind of failure.
   * @param message The whole message.
   * @param attempts How many attempts were made.
   * @param options The cause, if any.
   */
  constructor(
    code: MqttErrorCode,
    message: string,
    attempts: number,
    options?: MqttStreamErrorOptions,
  ) {
    super(code, message, options);
    this.attempts = attempts;
  }
}

/**
 * Options of a {@linkcode MqttPublishError}: the cause, and the broker's reason code.
 *
 * @example
 * ```ts
 * import type { MqttPublishErrorOptions } from "@mqtt-streams/core";
 *
 * const options: MqttPublishErrorOptions = { reasonCode: 0x87 };
 * console.log(options.reasonCode); // 135
 * ```
 */
export interface MqttPublishErrorOptions extends MqttStreamErrorOptions {
  /** The PUBACK / PUBREC / PUBCOMP reason code of the refusal (MQTT 5), if the broker sent one. */
  reasonCode?: number;
}

/**
 * A publish failed for good: refused by the broker for a reason that does not clear up
 * (MQTT 5 reason codes such as 0x87 not authorized or 0x90 topic name invalid), or still
 * failing after `publishAttempts`.
 *
 * @example
 * ```ts
 * import { MqttPublishError } from "@mqtt-streams/core";
 *
 * const error = new MqttPublishError("Cannot publish to 'a/b': not authorized (0x87)", "a/b", { reasonCode: 0x87 });
 * console.log(error.topic, error.reasonCode); // "a/b" 135
 * ```
 */
export class MqttPublishError extends MqttStreamError {
  /** The topic of the publish that failed. */
  readonly topic: string;
  /** The broker's reason code (MQTT 5), when it refused the publish with one. */
  readonly reasonCode: number | undefined;

  /**
   * Creates a publish error.
   *
   * @param message The whole message.
   * @param topic The topic of the publish.
   * @param options The cause and the reason code, if any.
   */
  constructor(message: string, topic: string, options?: MqttPublishErrorOptions) {
    super("PUBLISH_FAILED", message, options);
    this.topic = topic;
    this.reasonCode = options?.reasonCode;
  }
}

/**
 * A chunk written to an `MqttSink` cannot be published: it is not a string, a
 * `Uint8Array` or a record with a payload, or its topic, QoS, retain flag or properties
 * are invalid. The message says what is wrong with which chunk; `index` counts the
 * chunks written to the sink, from 0.
 *
 * @example
 * ```ts
 * import { MqttRecordError } from "@mqtt-streams/core";
 *
 * const error = new MqttRecordError("Cannot publish chunk #3 to 'a/+': ...", 3);
 * console.log(error.code, error.index); // "INVALID_RECORD" 3
 * ```
 */
export class MqttRecordError extends MqttStreamError {
  /** Which chunk written to the sink it was, counting from 0. */
  readonly index: number;

  /**
   * Creates a record error.
   *
   * @param message The whole message.
   * @param index Which chunk it was, counting from 0.
   */
  constructor(message: string, index: number) {
    super("INVALID_RECORD", message);
    this.index = index;
  }
}

/**
 * The broker refused to subscribe to a topic filter (SUBACK 0x80 or an MQTT 5 reason code
 * of 0x80 or more: not authorized, filter invalid, shared subscriptions not supported, ...).
 *
 * @example
 * ```ts
 * import { MqttSubscribeError } from "@mqtt-streams/core";
 *
 * const error = new MqttSubscribeError("Cannot subscribe to 'a/#': not authorized (0x87)", "a/#");
 * console.log(error.code, error.topic); // "SUBSCRIBE_REFUSED" "a/#"
 * ```
 */
export class MqttSubscribeError extends MqttStreamError {
  /** The topic filter the broker refused. */
  readonly topic: string;

  /**
   * Creates a subscribe error.
   *
   * @param message The whole message.
   * @param topic The topic filter.
   * @param options The cause, if any.
   */
  constructor(message: string, topic: string, options?: MqttStreamErrorOptions) {
    super("SUBSCRIBE_REFUSED", message, options);
    this.topic = topic;
  }
}

/**
 * The broker or the client broke the MQTT protocol (for example, a broker that exceeds
 * the receive maximum).
 *
 * @example
 * ```ts
 * import { MqttProtocolError } from "@mqtt-streams/core";
 *
 * const error = new MqttProtocolError("Duplicate CONNACK");
 * console.log(error.code); // "PROTOCOL"
 * ```
 */
export class MqttProtocolError extends MqttStreamError {
  /**
   * Creates a protocol error.
   *
   * @param message The whole message.
   * @param options The cause, if any.
   */
  constructor(message: string, options?: MqttStreamErrorOptions) {
    super("PROTOCOL", message, options);
  }
}

/**
 * One problem a transform found with a message: what is wrong, and where in its value.
 *
 * @example
 * ```ts
 * import type { MqttIssue } from "@mqtt-streams/core";
 *
 * const issue: MqttIssue = { message: "Invalid type: Expected number but received \"hot\"", path: ["celsius"] };
 * console.log(issue.path); // [ "celsius" ]
 * ```
 */
export interface MqttIssue {
  /** What is wrong. */
  readonly message: string;
  /** Where in the value, as keys from its root; absent when the whole message is at fault. */
  readonly path?: readonly (string | number)[];
}

/**
 * A transform (`decodeJson`, `validate`, `route`, ...) met a message it cannot decode,
 * validate or route, and its `onInvalid` policy is `"error"`. The message names the topic
 * and each issue with its path.
 *
 * @example
 * ```ts
 * import { MqttInvalidMessageError } from "@mqtt-streams/core";
 *
 * const error = new MqttInvalidMessageError("validate", "sensors/north/temp", [
 *   { message: "Invalid type: Expected number but received string", path: ["celsius"] },
 * ]);
 * console.log(error.message); // Cannot validate the message on 'sensors/north/temp': celsius: Invalid type: ...
 * ```
 */
export class MqttInvalidMessageError extends MqttStreamError {
  /** The transform that refused it: "decodeText", "decodeJson", "validate" or "route". */
  readonly stage: string;
  /** The topic of the message. */
  readonly topic: string;
  /** What is wrong with it. */
  readonly issues: readonly MqttIssue[];

  /**
   * Creates an invalid-message error.
   *
   * @param stage The transform that refused the message.
   * @param topic The topic of the message.
   * @param issues What is wrong with it.
   * @param options The cause, if any.
   */
  constructor(
    stage: string,
    topic: string,
    issues: readonly MqttIssue[],
    options?: MqttStreamErrorOptions,
  ) {
    super(
      "INVALID_MESSAGE",
      `Cannot ${
        stage === "route" ? "route" : stage === "validate" ? "validate" : "decode"
      } the message on '${topic}': ${formatIssues(issues)}`,
      options,
    );
    this.stage = stage;
    this.topic = topic;
    this.issues = issues;
  }
}

/** Issues as one line: "celsius: expected a number; site: required". */
export function formatIssues(issues: readonly MqttIssue[]): string {
  return issues.map((issue) =>
    issue.path?.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message
  ).join("; ");
}
