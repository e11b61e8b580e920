// MQTT into NATS JetStream, at least once: the Bahir connector's best practice (land MQTT
// in a replicated log) with a log that replicates. A WritableStream of MqttMessages from a
// source with ack=manual: each message is acknowledged to its MQTT broker only once
// JetStream confirmed it (its PubAck, sent when the stream's replicas have it), so a bridge
// killed at any point loses nothing: what it had not confirmed, the broker sends again.
//
// What comes again can already be in the stream (stored, but the process died before the
// MQTT acknowledgement left). JetStream removes such copies itself when each message has an
// id (its Nats-Msg-Id) and the copy comes within the stream's `duplicate_window` (2 minutes
// by default): `messageId` gives that id from the MQTT message. MQTT has no message id of
// its own (a packet id is reused as soon as its message is acknowledged), so it has to come
// from the producer: a user property (MQTT 5; userPropertyId) or, when every payload is
// unique (a device id and a sequence number in it), the payload itself (digestId).
//
// The JetStream client is the user's (`@nats-io/jetstream` on a connection of
// `@nats-io/transport-node`, or `@nats-io/transport-deno`); this file is the only one of the
// project that imports `@nats-io`, and mod.ts never imports it.
// Run it: examples/jetstream_bridge.ts. Its test: tests/examples/jetstream_bridge_test.ts.
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { MqttPublishError } from "../mod.ts";
import type { MqttMessage } from "../mod.ts";

/** The JetStream message id of an MQTT message, or undefined when it has none. */
export type MessageId = (message: MqttMessage) => string | undefined | Promise<string | undefined>;

/** Options of {@linkcode JetStreamSink}. */
export interface JetStreamSinkOptions {
  /**
   * The subject each message is stored under: a function of the message, or a prefix that
   * {@linkcode topicSubject} maps the topic under. The topic itself travels in the
   * `Mqtt-Topic` header either way.
   */
  subject: string | ((message: MqttMessage) => string);
  /** Each message's id, for JetStream's deduplication; none by default (copies stay). */
  messageId?: MessageId;
  /** Publishes awaiting their PubAck at once. @default 64 */
  maxInflight?: number;
  /** How long one publish waits for its PubAck, in ms. @default 5000 */
  ackTimeoutMs?: number;
  /**
   * How long a message may keep failing (no quorum, a leader election, a lost connection)
   * before the sink errors, in ms. Keep it under the stream's `duplicate_window`, so that a
   * publish that landed unconfirmed and its retry are still known as one. @default 60000
   */
  retryForMs?: number;
}

/** What a {@linkcode JetStreamSink} did, counted since it started. */
export interface JetStreamSinkStats {
  /** Messages the stream stored (PubAck, not a duplicate) and that were acknowledged to MQTT. */
  stored: number;
  /** Messages the stream already had (PubAck `duplicate`), acknowledged to MQTT too. */
  duplicates: number;
  /** Publishes that failed and were tried again. */
  retried: number;
  /** Messages without an id: JetStream cannot tell a copy of one from a new message. */
  unidentified: number;
  /** Publishes awaiting their PubAck now. */
  inflight: number;
}

/**
 * A WritableStream that stores MQTT messages in a JetStream stream and acknowledges each
 * to its MQTT broker (`message.ack()`) only once JetStream confirmed it. Pipe a source with
 * `ack=manual` into it. Up to `maxInflight` publishes await their PubAck at once (the MQTT
 * acknowledgements still leave in arrival order: the source keeps that order); a publish
 * that fails is tried again with backoff for `retryForMs`, then the stream errors with an
 * MqttPublishError and no later message is acknowledged. Closing waits for every PubAck;
 * aborting stops the retries, and what was not confirmed is never acknowledged.
 */
export class JetStreamSink extends WritableStream<MqttMessage> {
  readonly #stats: Omit<JetStreamSinkStats, "inflight">;
  readonly #inflight: Set<Promise<void>>;

  /**
   * @param js The JetStream client, on the user's NATS connection.
   * @param options Where messages go, their ids, and the limits.
   */
  constructor(js: JetStreamClient, options: JetStreamSinkOptions) {
    const {
      maxInflight = 64,
      ackTimeoutMs = 5_000,
      retryForMs = 60_000,
      messageId = () => undefined,
    } = options;
    const subjectOf = typeof options.subject === "string"
      ? topicSubject(options.subject)
      : options.subject;
    const stats = { stored: 0, duplicates: 0, retried: 0, unidentified: 0 };
    const inflight = new Set<Promise<void>>();
    const stop = new AbortController();
    let failure: MqttPublishError | undefined;
    let fail: (error: MqttPublishError) => void = () => {};

    /** Publishes until confirmed, then acknowledges to MQTT; records a final failure. */
    const store = async (message: MqttMessage): Promise<void> => {
      let id: string | undefined;
      let subject: string;
      try {
        id = await messageId(message);
        subject = subjectOf(message);
      } catch (error) {
        // The user's function failed: the message cannot be stored, so it is not acknowledged.
        return fail(
          new MqttPublishError(
            `Cannot store the message in JetStream: its subject or id failed: ${
              (error as Error).message
            }`,
            message.topic,
            { cause: error },
          ),
        );
      }
      if (id === undefined) stats.unidentified++;
      const head = headers();
      head.set("Mqtt-Topic", message.topic);
      const deadline = Date.now() + retryForMs;
      for (let attempt = 1;; attempt++) {
        try {
          const ack = await js.publish(subject, message.payload, {
            headers: head,
            timeout: ackTimeoutMs,
            ...(id === undefined ? {} : { msgID: id }),
          });
          if (ack.duplicate) stats.duplicates++;
          else stats.stored++;
          // A failure of another message meanwhile: stop acknowledging (see below).
          if (!failure) message.ack();
          return;
        } catch (error) {
          if (stop.signal.aborted || failure) return;
          // 200 ms doubling to 1 s: a leader election takes seconds, and a publish that
          // waits longer than it must delays everything behind it (MQTT acknowledgements
          // leave in order).
          const backoff = Math.min(1_000, 100 * 2 ** attempt);
          if (Date.now() >= deadline) {
            return fail(
              new MqttPublishError(
                `Cannot store the message in JetStream (subject ${subject}) after ${attempt} attempts in ${
                  Math.round(retryForMs / 1000)
                } s (retryForMs): ${(error as Error).message}`,
                message.topic,
                { cause: error },
              ),
            );
          }
          stats.retried++;
          // The last attempt is made at the deadline.
          await sleep(Math.min(backoff, deadline - Date.now()), stop.signal);
        }
      }
    };

    super({
      start(controller) {
        // The first final failure errors the stream. Later messages are not acknowledged,
        // so that the broker still holds them when the pipeline is started again.
        fail = (error) => {
          failure ??= error;
          controller.error(error);
        };
      },
      async write(message) {
        while (inflight.size >= maxInflight) await Promise.race(inflight);
        if (failure) throw failure;
        const task: Promise<void> = store(message).finally(() => inflight.delete(task));
        inflight.add(task);
      },
      async close() {
        await Promise.all(inflight);
        if (failure) throw failure;
      },
      async abort(reason) {
        stop.abort(reason);
        await Promise.all(inflight);
      },
    });
    this.#stats = stats;
    this.#inflight = inflight;
  }

  /** A snapshot of what the sink did. */
  get stats(): JetStreamSinkStats {
    return { ...this.#stats, inflight: this.#inflight.size };
  }
}

/**
 * The subject of a topic under `prefix`: its levels become tokens ("a/b" under "mqtt" is
 * "mqtt.a.b"). What a NATS token cannot hold (".", "*", ">", white space, an empty level)
 * becomes "_"; the exact topic is in the `Mqtt-Topic` header.
 */
export function topicSubject(prefix: string): (message: MqttMessage) => string {
  return ({ topic }) =>
    [prefix, ...topic.split("/").map((level) => level.replace(/[.*>\s]/g, "_") || "_")]
      .join(".");
}

/** The id in an MQTT 5 user property of the producer's (its first value, if it repeats). */
export function userPropertyId(name: string): MessageId {
  return ({ properties }) => {
    const value = properties?.userProperties?.[name];
    return Array.isArray(value) ? value[0] : value;
  };
}

/**
 * The SHA-256 of the topic and payload as the id: right only when no two messages the
 * producers mean as two have the same topic and payload within the `duplicate_window`.
 */
export const digestId: MessageId = async ({ topic, payload }) => {
  const head = new TextEncoder().encode(`${topic}\u0000`);
  const bytes = new Uint8Array(head.length + payload.length);
  bytes.set(head);
  bytes.set(payload, head.length);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
};

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
