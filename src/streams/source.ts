/**
 * {@linkcode MqttSource}: a `ReadableStream` of the messages of one or more subscriptions,
 * acknowledged to the broker when the consumer reads them.
 *
 * @module
 */
import { MqttOptionsError } from "../errors.ts";
import type { MqttTelemetryInit } from "./hooks.ts";
import type { MqttCredentialsInit } from "../connection/credentials.ts";
import { checkHooks, splitInit } from "./_init.ts";
import type { MqttMessage } from "../message.ts";
import { Receiver } from "./_receiver.ts";
import type { MqttSourceStats } from "./stats.ts";
import {
  type MqttConnection,
  type MqttOptions,
  type MqttOptionsInit,
  parseConnectionString,
} from "../options/options.ts";

export type { MqttSourceStats };

/** The options of an {@linkcode MqttSource}: any connection option, and a signal. */
export type MqttSourceInit = MqttOptionsInit & MqttTelemetryInit & MqttCredentialsInit & {
  /** Aborting it unsubscribes (unless the session is persistent), disconnects and errors the stream with the signal's reason. */
  signal?: AbortSignal;
};

/**
 * Subscribes to MQTT topic filters as a `ReadableStream<MqttMessage>`.
 *
 * The stream's `highWaterMark` is `maxInflight` (MQTT 5: the CONNECT's Receive Maximum).
 * A QoS 1/2 message is acknowledged to the broker when the consumer reads it (`ack=read`)
 * or calls `message.ack()` (`ack=manual`), in arrival order; until then the broker's window
 * holds the rest, so a stalled consumer costs at most `maxInflight` messages and keeps its
 * connection. Reconnects follow `autoReconnect`, `connectAttempts` and `connectBackoff`;
 * a fixed `clientId` with `cleanSession=false` resumes the session without losing QoS 1/2
 * messages. Cancelling (or `await using`, or aborting `signal`) unsubscribes (unless the
 * session is persistent) and disconnects.
 *
 * @example Options are checked at once
 * ```ts
 * import { MqttSource } from "@mqtt-streams/core";
 *
 * try {
 *   new MqttSource("mqtt://localhost?topic=a/b&qos=3");
 * } catch (error) {
 *   console.log((error as Error).message); // Cannot configure MQTT as 'qos' must be 0, 1 or 2: ...
 * }
 * ```
 *
 * @example Read temperatures
 * ```ts ignore
 * import { MqttSource } from "@mqtt-streams/core";
 *
 * await using source = new MqttSource("mqtt://localhost:1883?topic=sensors/%2B/temp&qos=1");
 * for await (const message of source) console.log(message.topic, message.text());
 * ```
 *
 * @example Acknowledge after processing
 * ```ts ignore
 * import { MqttSource } from "@mqtt-streams/core";
 *
 * const source = new MqttSource("mqtt://localhost?topic=jobs/%23&clientId=worker-1&ack=manual");
 * for await (const job of source) {
 *   await handle(job.json());
 *   job.ack(); // the broker redelivers it if we crash before this line
 * }
 * declare function handle(job: unknown): Promise<void>;
 * ```
 *
 * @example JSON checked against a schema, the invalid ones set aside
 * ```ts ignore
 * import { decodeJson, MqttSink, MqttSource, validate } from "@mqtt-streams/core";
 * import * as v from "valibot"; // deno add npm:valibot, or npm install valibot
 *
 * const Reading = v.object({ celsius: v.number() });
 * const deadLetters = new MqttSink("mqtt://localhost?topic=dead/sensors&qos=1");
 * const readings = new MqttSource("mqtt://localhost?topic=sensors/%23&qos=1")
 *   .pipeThrough(decodeJson({ onInvalid: deadLetters }))
 *   .pipeThrough(validate(Reading, { onInvalid: "drop" }));
 * for await (const { message, value } of readings) console.log(message.topic, value.celsius);
 * ```
 *
 * @example A persistent session: what arrives while the process is down waits for it
 * ```ts ignore
 * import { MqttSource } from "@mqtt-streams/core";
 *
 * // A fixed clientId keeps the session (cleanSession=false); the next run receives the backlog.
 * const source = new MqttSource("mqtt://localhost?topic=orders/%23&qos=1&clientId=orders-1");
 * for await (const order of source) console.log(order.text());
 * ```
 *
 * @example A shared subscription: a group of consumers splits one topic (MQTT 5 §4.8.2)
 * ```ts ignore
 * import { MqttSource } from "@mqtt-streams/core";
 *
 * // Run it on several hosts: each message of jobs/# goes to one member of the group.
 * const topic = encodeURIComponent("$share/workers/jobs/#");
 * const jobs = new MqttSource(`mqtt://localhost?topic=${topic}&mqttVersion=5&clientId=w-1`);
 * for await (const job of jobs) console.log(job.topic);
 * ```
 *
 * @example Stop cleanly on Ctrl-C
 * ```ts ignore
 * import process from "node:process";
 * import { MqttSource } from "@mqtt-streams/core";
 *
 * const stop = new AbortController();
 * process.once("SIGINT", () => stop.abort()); // Deno, Bun and Node all provide node:process
 * const source = new MqttSource("mqtt://localhost?topic=sensors/%23", { signal: stop.signal });
 * try {
 *   for await (const message of source) console.log(message.topic);
 * } catch (error) {
 *   if (!stop.signal.aborted) throw error; // aborting ends the loop with the signal's reason
 * }
 * ```
 */
export class MqttSource extends ReadableStream<MqttMessage> {
  readonly #receiver: Receiver;

  /**
   * Creates the stream; it connects and subscribes at once, and the first read waits for
   * the subscription.
   *
   * @param connection A connection string, a `URL`, or an options object.
   * @param init Options merged over the connection's, and `signal`.
   * @throws {MqttOptionsError} When an option is invalid, or no `topic` is given.
   */
  constructor(connection: MqttConnection, init: MqttSourceInit = {}) {
    const { overrides, engine } = splitInit(init);
    const options = parseConnectionString(connection, overrides);
    checkHooks(engine.hooks, options);
    if (options.topic.length === 0) {
      throw new MqttOptionsError(
        "topic",
        "Cannot subscribe as 'topic' must name at least one topic filter: current value is none (add ?topic=a/b to the URL)",
      );
    }
    const receiver = new Receiver(options, engine);
    super(receiver, new CountQueuingStrategy({ highWaterMark: options.maxInflight }));
    this.#receiver = receiver;
  }

  /** Live counters: received, acked, dropped, redelivered, reconnects, buffered, held, beyondWindow. */
  get stats(): MqttSourceStats {
    return this.#receiver.stats;
  }

  /**
   * Resolves once connected and subscribed, so that what is published from then on
   * arrives; rejects with the error that failed the start. Reading does not need it, and
   * must not wait for it when a resumed session may have a backlog: the broker sends that
   * backlog before the SUBACK, and past `maxInflight` messages the source reads no further
   * from the connection until some are read, so `ready` would wait for the reader.
   *
   * @example Wait for the subscription
   * ```ts ignore
   * import { MqttSource } from "@mqtt-streams/core";
   *
   * const source = new MqttSource("mqtt://localhost?topic=replies/%23");
   * await source.ready; // now it is safe to send the requests whose replies we read
   * ```
   */
  get ready(): Promise<void> {
    return this.#receiver.ready;
  }

  /**
   * MQTT 5 enhanced authentication: authenticates the connection again (§4.12.1, AUTH 0x19)
   * with the init's `authenticate` function, without dropping it; messages keep flowing.
   * While the connection is down, it waits for the next one, whose CONNECT authenticates
   * afresh. `reauthenticateInterval` does this on a timer.
   *
   * @returns Resolves once the broker accepted the new authentication.
   * @throws {MqttOptionsError} When no `authenticationMethod` is set.
   * @throws {MqttStreamError} The error the source failed with, if it fails first.
   *
   * @example Renew a token before it expires
   * ```ts ignore
   * import { MqttSource } from "@mqtt-streams/core";
   *
   * const source = new MqttSource("mqtts://broker.example?topic=t&mqttVersion=5&authenticationMethod=OAUTH2-JWT", {
   *   authenticate: async ({ step }) => step === "success" ? undefined : await freshToken(),
   * });
   * setInterval(() => source.reauthenticate().catch(console.error), 50 * 60_000);
   * declare function freshToken(): Promise<string>;
   * ```
   */
  reauthenticate(): Promise<void> {
    return this.#receiver.reauthenticate();
  }

  /** The validated options the source runs with. */
  get options(): MqttOptions {
    return this.#receiver.options;
  }

  /**
   * Releases everything: cancels the stream, or, while a reader holds it (`for await`),
   * unsubscribes, disconnects and ends it after the messages already queued.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.locked) await this.cancel();
    else await this.#receiver.close();
  }
}
