/**
 * {@linkcode MqttTransform}: the `TransformStream` that the decode, validate and route
 * transforms return, with their `onInvalid` policy and counters.
 *
 * @module
 */
// This module is browser compatible.
import { MqttInvalidMessageError, type MqttIssue } from "../errors.ts";
import type { MqttMessage } from "../message.ts";
import { DeadLetters, type MqttDeadLetter } from "./_dead_letter.ts";
import { inputMessage, inputSource, type MqttInput } from "./_input.ts";

export type { MqttDeadLetter, MqttInput };

/**
 * A value decoded from a message, with the message beside it (for its topic, its
 * properties and its `ack()`), and the name of its source when it came through `merge`.
 *
 * @typeParam T The value's type.
 *
 * @example
 * ```ts
 * import { MqttMessage, type MqttValue } from "@mqtt-streams/core";
 *
 * const message = new MqttMessage("sensors/north/temp", new TextEncoder().encode("21.5"));
 * const decoded: MqttValue<number> = { value: message.json(), message };
 * console.log(decoded.value); // 21.5
 * ```
 */
export interface MqttValue<T> {
  /** The decoded (and validated) value. */
  readonly value: T;
  /** The message it came from. */
  readonly message: MqttMessage;
  /** The name of its source, when it came through `merge`. */
  readonly source?: string;
}

/**
 * What a transform does with a message it cannot decode, validate or route:
 * - `"error"`: error the stream with an `MqttInvalidMessageError` naming the topic and
 *   the issues (the message is not acknowledged);
 * - `"drop"`: acknowledge it, count it in `stats.dropped`, and go on;
 * - a `WritableStream`: write it there as an {@linkcode MqttDeadLetter} (an `MqttSink`
 *   republishes it, with the issues as MQTT 5 user properties) and acknowledge it once
 *   the stream took it (an `MqttSink`: once its broker confirmed it). The transform
 *   closes that stream when its input ends and aborts it when it fails, as `pipeTo` does
 *   with its destination, so give each transform a stream of its own.
 *
 * @example
 * ```ts
 * import type { OnInvalid } from "@mqtt-streams/core";
 *
 * const policies: OnInvalid[] = ["error", "drop", new WritableStream()];
 * console.log(policies.length); // 3
 * ```
 */
export type OnInvalid = "error" | "drop" | WritableStream<MqttDeadLetter>;

/**
 * Options of the decode, validate and route transforms.
 *
 * @example
 * ```ts
 * import { decodeJson, type MqttTransformOptions } from "@mqtt-streams/core";
 *
 * const options: MqttTransformOptions = { onInvalid: "drop" };
 * console.log(decodeJson(options).stats); // { passed: 0, dropped: 0, deadLettered: 0 }
 * ```
 */
export interface MqttTransformOptions {
  /** What to do with a message that is invalid (or, for `route`, matches no route). @default {"error"} */
  onInvalid?: OnInvalid;
}

/**
 * Counters of a transform. A message is either passed on or refused; refused messages
 * are dropped, dead-lettered, or (policy "error") end the stream.
 *
 * @example
 * ```ts
 * import type { MqttTransformStats } from "@mqtt-streams/core";
 *
 * const stats: MqttTransformStats = { passed: 9, dropped: 1, deadLettered: 0 };
 * console.log(stats.passed + stats.dropped); // 10
 * ```
 */
export interface MqttTransformStats {
  /** Messages passed on. */
  passed: number;
  /** Invalid messages dropped (`onInvalid: "drop"`), each acknowledged. */
  dropped: number;
  /** Invalid messages handed to the dead-letter stream. */
  deadLettered: number;
}

/** What one step of a transform makes of its input: an output, or the issues. */
export type Outcome<O> = { value: O } | { issues: MqttIssue[] };

/**
 * A `TransformStream` of messages with an `onInvalid` policy and counters; `decodeText`,
 * `decodeJson`, `validate` and `route` return one. It keeps the backpressure of a plain
 * `TransformStream`: it reads a message only when its reader wants one.
 *
 * @typeParam I What it reads.
 * @typeParam O What it yields.
 *
 * @example Count what a transform dropped
 * ```ts
 * import { decodeJson, MqttMessage } from "@mqtt-streams/core";
 *
 * const text = (s: string) => new TextEncoder().encode(s);
 * const decode = decodeJson({ onInvalid: "drop" });
 * const values = await Array.fromAsync(
 *   ReadableStream.from([new MqttMessage("a", text("1")), new MqttMessage("a", text("{oops"))])
 *     .pipeThrough(decode),
 * );
 * console.log(values.map((v) => v.value), decode.stats.dropped); // [ 1 ] 1
 * ```
 */
export class MqttTransform<I extends MqttInput, O> extends TransformStream<I, O> {
  readonly #stats: MqttTransformStats;

  /**
   * Creates the transform. The transform functions make these; this is public for
   * transforms of your own with the same policy.
   *
   * @param stage The transform's name, for errors and dead letters.
   * @param step What it makes of one input: an output, or the issues (maybe async).
   * @param options The `onInvalid` policy.
   * @throws {TypeError} When `onInvalid` is not "error", "drop" or a WritableStream.
   */
  constructor(
    stage: string,
    step: (input: I) => Outcome<O> | Promise<Outcome<O>>,
    options: MqttTransformOptions = {},
  ) {
    const policy = checkPolicy(stage, options.onInvalid);
    const stats: MqttTransformStats = { passed: 0, dropped: 0, deadLettered: 0 };
    const letters = typeof policy === "string" ? undefined : new DeadLetters(policy);
    let fail: (error: unknown) => void = () => {};
    const settle = (
      input: I,
      outcome: Outcome<O>,
      controller: TransformStreamDefaultController<O>,
    ) => {
      if ("value" in outcome) {
        stats.passed++;
        controller.enqueue(outcome.value);
        return;
      }
      const message = inputMessage(input);
      if (policy === "error") {
        throw new MqttInvalidMessageError(stage, message.topic, outcome.issues);
      }
      if (policy === "drop") {
        stats.dropped++;
        message.ack(); // handled: with ack=manual, later messages' acks wait for this one
        return;
      }
      stats.deadLettered++;
      return letters!.write(
        { message, issues: outcome.issues, stage, ...inputSource(input) },
        fail,
      );
    };
    super({
      start(controller) {
        fail = (error) => controller.error(error);
      },
      transform(input, controller) {
        const outcome = step(input);
        return outcome instanceof Promise
          ? outcome.then((outcome) => settle(input, outcome, controller))
          : settle(input, outcome, controller);
      },
      flush: () => letters?.close(),
      cancel: (reason: unknown) => letters?.abort(reason),
    } as Transformer<I, O>);
    this.#stats = stats;
  }

  /** Live counters: passed, dropped, deadLettered. */
  get stats(): MqttTransformStats {
    return this.#stats;
  }
}

function checkPolicy(stage: string, policy: unknown): OnInvalid {
  if (policy === undefined) return "error";
  if (policy === "error" || policy === "drop" || policy instanceof WritableStream) return policy;
  throw new TypeError(
    `Cannot create ${stage}() as 'onInvalid' must be "error", "drop" or a WritableStream: current value is ${
      typeof policy === "string" ? JSON.stringify(policy) : String(policy)
    }`,
  );
}
