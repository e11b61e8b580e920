/**
 * {@linkcode MqttSink}: a `WritableStream` that publishes what is written to it, with a
 * window of acknowledged publishes in flight.
 *
 * @module
 */
import { MqttOptionsError, MqttStreamError } from "../errors.ts";
import type { MqttTelemetryInit } from "./hooks.ts";
import type { MqttCredentialsInit } from "../connection/credentials.ts";
import { checkHooks, splitInit } from "./_init.ts";
import { Publisher } from "./_publisher.ts";
import type { MqttSinkStats } from "./stats.ts";
import {
  type MqttConnection,
  type MqttOptions,
  type MqttOptionsInit,
  parseConnectionString,
} from "../options/options.ts";
import { type MqttSinkChunk, recordSinks } from "../record.ts";
import { topicNameProblem } from "../options/_topic.ts";
import { showValue } from "../_redact.ts";

export type { MqttSinkChunk, MqttSinkStats };

/**
 * The options of an {@linkcode MqttSink}: any connection option, and a signal.
 *
 * @example
 * ```ts
 * import type { MqttSinkInit } from "@mqtt-streams/core";
 *
 * const init: MqttSinkInit = { qos: 2, maxInflight: 20, signal: AbortSignal.timeout(60_000) };
 * console.log(init.qos); // 2
 * ```
 */
export type MqttSinkInit = MqttOptionsInit & MqttTelemetryInit & MqttCredentialsInit & {
  /** Aborting it aborts the sink: it disconnects at once and errors with the signal's reason. */
  signal?: AbortSignal;
};

/**
 * Publishes what is written to it: a `WritableStream<MqttRecord | Uint8Array | string>`.
 *
 * A bare payload goes to the sink's `topic` at its `qos`; an {@linkcode MqttRecord} sets
 * its own topic, QoS, retain flag and MQTT 5 properties. Up to
 * `min(maxInflight, the broker's Receive Maximum)` QoS 1/2 publishes are in flight at
 * once: `write()` resolves when a publish is sent, the next write waits while the window
 * is full or the connection is down, and `close()` resolves when every publish is
 * acknowledged and the broker has read the QoS 0 ones. Publishes unacknowledged when the
 * connection drops are sent again after the reconnect; a refusal that may clear up is
 * retried within `publishAttempts`; one that would repeat (not authorized, topic name
 * invalid, ...) errors the stream with an `MqttPublishError` at once.
 *
 * Sinks with the same connection identity share one connection, which stays open
 * `connectionCacheTimeout` ms after the last of them closed, without keeping the process
 * alive; with `persistence=file` it ends with the last of them instead, so that `close()`
 * and `abort()` resolve once the store's folder is free for the next process.
 * `abort(reason)` (or `writer.abort(reason)`, or aborting `signal`) disconnects at once,
 * unless another sink shares the connection, in every state (connecting, a full
 * window, reconnecting): a write that waits rejects with `reason`, and unsettled publishes
 * are counted in `stats.failed`. Writing an `MqttMessage` from a source with `ack: "manual"` acknowledges it to
 * its broker only once this sink's broker confirmed it: `source.pipeTo(sink)` is an
 * at-least-once bridge.
 *
 * @example Options are checked at once
 * ```ts
 * import { MqttSink } from "@mqtt-streams/core";
 *
 * try {
 *   new MqttSink("mqtt://localhost?topic=out/%23");
 * } catch (error) {
 *   console.log((error as Error).message); // Cannot publish as 'topic' must be a topic name: ...
 * }
 * ```
 *
 * @example Publish readings
 * ```ts ignore
 * import { MqttSink } from "@mqtt-streams/core";
 *
 * const readings = ReadableStream.from([{ celsius: 21.5 }, { celsius: 22 }]);
 * await readings
 *   .pipeThrough(new TransformStream({ transform: (r, c) => c.enqueue(JSON.stringify(r)) }))
 *   .pipeTo(new MqttSink("mqtt://localhost:1883?topic=sensors/north/temp&qos=1"));
 * ```
 *
 * @example Bridge two brokers, at least once
 * ```ts ignore
 * import { MqttSink, MqttSource } from "@mqtt-streams/core";
 *
 * await new MqttSource("mqtt://edge:1883?topic=plant/%23&clientId=bridge&ack=manual")
 *   .pipeTo(new MqttSink("mqtts://cloud:8883"));
 * ```
 *
 * @example TLS with the broker's CA file
 * ```ts ignore
 * import { MqttSink } from "@mqtt-streams/core";
 *
 * // ssl.ca: a PEM path, PEM text or bytes; client certificates go in ssl.cert and ssl.key.
 * const sink = new MqttSink("mqtts://broker.example:8883?topic=out&ssl.ca=/etc/mqtt/ca.pem");
 * await ReadableStream.from(["hello"]).pipeTo(sink);
 * ```
 *
 * @example Route each record to a topic of its own
 * ```ts ignore
 * import { MqttSink, type MqttRecord } from "@mqtt-streams/core";
 *
 * const readings = [{ site: "north", celsius: 21.5 }, { site: "south", celsius: 19 }];
 * await ReadableStream.from(readings)
 *   .pipeThrough(new TransformStream<typeof readings[number], MqttRecord>({
 *     transform: (r, c) => c.enqueue({ topic: `sensors/${r.site}/temp`, payload: `${r.celsius}` }),
 *   }))
 *   .pipeTo(new MqttSink("mqtt://localhost?qos=1"));
 * ```
 *
 * @example Finish what is in flight on Ctrl-C
 * ```ts ignore
 * import process from "node:process";
 * import { MqttSink } from "@mqtt-streams/core";
 *
 * const writer = new MqttSink("mqtt://localhost?topic=ticks&qos=1").getWriter();
 * let stopping = false;
 * process.once("SIGINT", () => (stopping = true));
 * for (let n = 0; !stopping; n++) await writer.write(`${n}`);
 * await writer.close(); // resolves once the broker acknowledged every publish
 * ```
 */
export class MqttSink extends WritableStream<MqttSinkChunk> {
  readonly #publisher: Publisher;

  /**
   * Creates the sink; it connects at once (or takes a cached connection), and the first
   * write waits for it.
   *
   * @param connection A connection string, a `URL`, or an options object.
   * @param init Options merged over the connection's, and `signal`.
   * @throws {MqttOptionsError} When an option is invalid, or `topic` is not one topic name.
   */
  constructor(connection: MqttConnection, init: MqttSinkInit = {}) {
    const { overrides, engine } = splitInit(init);
    const options = parseConnectionString(connection, overrides);
    checkHooks(engine.hooks, options);
    if (options.topic.length > 1) {
      throw new MqttOptionsError(
        "topic",
        `Cannot publish as 'topic' must be one topic name for a sink: current value is ${
          showValue(options.topic)
        } (records can name their own topics)`,
      );
    }
    const problem = options.topic.length === 1 ? topicNameProblem(options.topic[0]) : undefined;
    if (problem) {
      throw new MqttOptionsError(
        "topic",
        `Cannot publish as 'topic' must be a topic name: current value is ${
          showValue(options.topic[0])
        } (${problem})`,
      );
    }
    const publisher = new Publisher(options, engine);
    super(publisher, new CountQueuingStrategy({ highWaterMark: options.maxInflight }));
    this.#publisher = publisher;
    recordSinks.set(this, { mqttVersion: options.mqttVersion });
  }

  /**
   * MQTT 5 enhanced authentication: authenticates the connection again (§4.12.1, AUTH 0x19)
   * with the init's `authenticate` function, without dropping it; messages keep flowing.
   * While the connection is down, it waits for the next one, whose CONNECT authenticates
   * afresh. `reauthenticateInterval` does this on a timer.
   *
   * @returns Resolves once the broker accepted the new authentication.
   * @throws {MqttOptionsError} When no `authenticationMethod` is set.
   * @throws {MqttStreamError} The error the sink failed with, if it fails first.
   *
   * @example Renew a token before it expires
   * ```ts ignore
   * import { MqttSink } from "@mqtt-streams/core";
   *
   * const sink = new MqttSink("mqtts://broker.example?topic=t&mqttVersion=5&authenticationMethod=OAUTH2-JWT", {
   *   authenticate: async ({ step }) => step === "success" ? undefined : await freshToken(),
   * });
   * setInterval(() => sink.reauthenticate().catch(console.error), 50 * 60_000);
   * declare function freshToken(): Promise<string>;
   * ```
   */
  reauthenticate(): Promise<void> {
    return this.#publisher.reauthenticate();
  }

  /**
   * Releases everything: closes the sink (waiting until every publish is acknowledged,
   * and failing if one is not) or, while a writer or a pipe holds it, aborts it.
   *
   * @example Close at the end of a scope
   * ```ts ignore
   * import { MqttSink } from "@mqtt-streams/core";
   *
   * await using sink = new MqttSink("mqtt://localhost?topic=out&qos=1");
   * const writer = sink.getWriter();
   * await writer.write("hello");
   * writer.releaseLock();
   * // leaving the scope closes the sink: "hello" is acknowledged by then
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#publisher.over) return;
    if (this.locked) {
      return await this.#publisher.abort(
        new MqttStreamError("ABORTED", "The sink was disposed while a writer or a pipe held it"),
      );
    }
    await this.close();
  }

  /** Live counters: published, acked, retried, inflight, failed, recovered, damaged. */
  get stats(): MqttSinkStats {
    return this.#publisher.stats;
  }

  /** The validated options the sink runs with. */
  get options(): MqttOptions {
    return this.#publisher.options;
  }
}
