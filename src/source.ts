/**
 * {@linkcode MqttSource}: a `ReadableStream` of the messages of one or more subscriptions,
 * acknowledged to the broker when the consumer reads them.
 *
 * @module
 */
import type { IPublishPacket } from "mqtt";
import { type Ack, Connection } from "./client.ts";
import {
  MqttConnectError,
  MqttOptionsError,
  type MqttStreamError,
  MqttSubscribeError,
} from "./errors.ts";
import { messageOf, type MqttMessage } from "./message.ts";
import {
  type MqttConnection,
  type MqttOptions,
  type MqttOptionsInit,
  parseConnectionString,
} from "./options.ts";

/** The options of an {@linkcode MqttSource}: any connection option, and a signal. */
export type MqttSourceInit = MqttOptionsInit & {
  /** Aborting it unsubscribes (unless the session is persistent), disconnects and errors the stream with the signal's reason. */
  signal?: AbortSignal;
};

/** Counters of an {@linkcode MqttSource}; live, read them at any time. */
export interface MqttSourceStats {
  /** Messages that arrived from the broker, dropped ones included. */
  readonly received: number;
  /** PUBACKs / PUBCOMPs sent to the broker. */
  readonly acked: number;
  /** QoS 0 messages dropped because the queue was full (`qos0Overflow=drop`). */
  readonly dropped: number;
  /** Messages that arrived with DUP set: possibly seen before, after a reconnect. */
  readonly redelivered: number;
  /** Reconnects after the first connect. */
  readonly reconnects: number;
  /** Messages in the stream's queue, not yet read: at most `maxInflight`. */
  readonly buffered: number;
  /**
   * Messages that arrived while the queue or the window was full and wait outside the queue
   * while the source has stopped reading from the broker (0 or 1 unless reconnects overlap).
   */
  readonly held: number;
  /**
   * QoS 1/2 messages that arrived while `maxInflight` messages were already unacknowledged:
   * the broker sent past the window (MQTT 3.1.1 has none; some MQTT 5 brokers over-send).
   */
  readonly beyondWindow: number;
}

interface Held {
  message: MqttMessage;
  ack?: Ack;
  resume: () => void;
}

/** The source's logic, as the ReadableStream's underlying source. */
class Receiver implements UnderlyingDefaultSource<MqttMessage> {
  readonly stats: MqttSourceStats;
  readonly options: MqttOptions;
  #counts = { received: 0, dropped: 0, redelivered: 0 };
  readonly #signal?: AbortSignal;
  #controller!: ReadableStreamDefaultController<MqttMessage>;
  #connection?: Connection;
  /** The messages in the stream's queue, in order, with their acknowledgements. */
  #unread: { message: MqttMessage; ack?: Ack }[] = [];
  #held: Held[] = [];
  #heldAcks = 0;
  /** Paused packet readers whose held message is queued now, waiting for the low-water mark. */
  #resumes: (() => void)[] = [];
  #done = false;
  #pendingError?: unknown;

  constructor(options: MqttOptions, signal?: AbortSignal) {
    this.options = options;
    this.#signal = signal;
    const counts = this.#counts;
    // deno-lint-ignore no-this-alias
    const self = this;
    this.stats = {
      get received() {
        return counts.received;
      },
      get dropped() {
        return counts.dropped;
      },
      get redelivered() {
        return counts.redelivered;
      },
      get acked() {
        return self.#connection?.inbound?.acked ?? 0;
      },
      get reconnects() {
        return self.#connection?.reconnects ?? 0;
      },
      get buffered() {
        return self.#unread.length;
      },
      get held() {
        return self.#held.length;
      },
      get beyondWindow() {
        return self.#connection?.inbound?.beyondWindow ?? 0;
      },
    };
  }

  /** Settles when the first subscription is in place (or the start failed). */
  ready!: Promise<void>;
  #subscribed?: Promise<void>;

  /**
   * Resolves once connected. The subscription is not awaited here: a resumed session
   * delivers its backlog at once, and while the queue is full mqtt.js reads no further
   * packets (SUBACK included) until a read makes room, which `pull` is what sees, and the
   * stream calls `pull` only after `start` has resolved.
   */
  start(controller: ReadableStreamDefaultController<MqttMessage>): Promise<void> {
    this.#controller = controller;
    const opened = this.#open();
    this.ready = opened.then(() => this.#subscribed);
    // The stream reports a failure itself; `ready` is for callers who want to wait.
    this.ready.catch(() => {});
    return opened;
  }

  async #open(): Promise<void> {
    const connection = await Connection.open(this.options, {
      signal: this.#signal,
      deliver: (packet, ack) => this.#deliver(packet, ack),
    });
    this.#connection = connection;
    if (this.#done) return void await connection.end(true);
    connection.closed.then((error) => error && this.#fail(error));
    const { client } = connection;
    client.on("close", () => this.#admit());
    client.on("connect", (connack) => {
      // A broker without our session (restarted without persistence, or a clean session)
      // has forgotten the subscriptions: subscribe again, and fail loudly if refused.
      const resumed = !this.options.cleanSession &&
        (this.options.mqttVersion < 4 || connack.sessionPresent);
      if (!resumed && !this.#done) this.#subscribe().catch((error) => this.#fail(error));
    });
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#subscribed = this.#subscribe();
    this.#subscribed.catch((error) => this.#fail(error));
  }

  async #subscribe(): Promise<void> {
    const { qos, topic, brokerUrl } = this.options;
    try {
      await this.#connection!.client.subscribeAsync(
        Object.fromEntries(topic.map((filter) => [filter, { qos }])),
      );
    } catch (error) {
      // mqtt.js rejects with the SUBACK when it refuses a filter; its codes follow our order.
      const granted = (error as { packet?: { granted?: number[] } }).packet?.granted ?? [];
      const refused = granted.findIndex((code) => code >= 0x80);
      if (refused !== -1) {
        const filter = topic[refused];
        throw new MqttSubscribeError(
          `Cannot subscribe to '${filter}' on ${brokerUrl}: the broker refused it (SUBACK 0x${
            granted[refused].toString(16)
          }${filter.startsWith("$share/") ? "; does it support shared subscriptions?" : ""})`,
          filter,
          { cause: error },
        );
      }
      throw new MqttConnectError(
        "CONNECT_CLOSED",
        `Cannot subscribe to ${topic.join(", ")} on ${brokerUrl}: ${(error as Error).message}`,
        1,
        { cause: error },
      );
    }
  }

  /** One message from the broker: queued, dropped (QoS 0 when full), or held until there is room. */
  #deliver(packet: IPublishPacket, ack: Ack | undefined): void | Promise<void> {
    if (this.#done) return;
    this.#counts.received++;
    if (packet.dup) this.#counts.redelivered++;
    const message = messageOf(
      packet,
      ack && (() => {
        ack.release();
        this.#admit();
      }),
    );
    if (packet.qos === 0 && this.options.qos0Overflow === "drop" && !this.#hasRoom(0, 0)) {
      this.#counts.dropped++;
      return;
    }
    if (this.#held.length === 0 && this.#hasRoom(packet.qos, ack ? 1 : 0)) {
      return this.#enqueue(message, ack);
    }
    if (ack) this.#heldAcks++;
    // Returning a promise stops mqtt.js reading packets until there is room: TCP then
    // holds the rest at the broker, and the connection is kept alive meanwhile (see
    // _client_inbound.ts). Memory stays at maxInflight messages, plus this one.
    return new Promise((resume) => this.#held.push({ message, ack, resume }));
  }

  /**
   * Whether a message of `qos` fits: the queue has room and, for QoS 1/2, fewer than
   * maxInflight messages are unacknowledged (`own` = 1 when its ack is already counted).
   */
  #hasRoom(qos: number, own: number): boolean {
    if (this.#unread.length >= this.options.maxInflight) return false;
    if (qos === 0) return true;
    const unacked = (this.#connection?.inbound?.unacked ?? 0) - this.#heldAcks - own;
    return unacked < this.options.maxInflight;
  }

  #enqueue(message: MqttMessage, ack: Ack | undefined): void {
    this.#unread.push({ message, ack });
    this.#controller.enqueue(message);
  }

  /** Moves held messages into the queue while there is room, and lets mqtt.js read on. */
  #admit(): void {
    while (this.#held.length && !this.#done) {
      const next = this.#held[0];
      if (!this.#hasRoom(next.message.qos, 0)) break;
      this.#held.shift();
      if (next.message.qos > 0) this.#heldAcks--;
      this.#enqueue(next.message, next.ack);
      this.#resumes.push(next.resume);
    }
    this.#resumeBelowLowWater();
  }

  /**
   * Lets mqtt.js read on once the queue is down to half: resuming at the first free slot
   * would pause and resume once a message while a backlog drains.
   */
  #resumeBelowLowWater(): void {
    if (this.#done || this.#unread.length <= this.options.maxInflight >> 1) {
      for (const resume of this.#resumes.splice(0)) resume();
    }
  }

  /** Called after every read: what left the queue was read, and is acknowledged with ack=read. */
  pull(): void {
    const queued = this.options.maxInflight - (this.#controller.desiredSize ?? 0);
    const read = this.#unread.length - Math.max(0, queued);
    if (read > 0) {
      const taken = this.#unread.splice(0, read);
      if (this.options.ack === "read") { for (const { ack } of taken) ack?.release(); }
    }
    this.#admit();
    if (this.#pendingError !== undefined && this.#unread.length === 0) {
      this.#controller.error(this.#pendingError);
    }
  }

  cancel(): Promise<void> {
    return this.#stop();
  }

  /** Stops, keeping what is queued readable, and ends the stream after it. */
  async close(): Promise<void> {
    await this.#stop();
    try {
      this.#controller.close();
    } catch {
      // Already closed or errored.
    }
  }

  #onAbort = () => {
    this.#controller.error(this.#signal!.reason);
    this.#stop();
  };

  /** The connection is over for good: what was received stays readable, then the error. */
  #fail(error: MqttStreamError | unknown): void {
    if (this.#done) return;
    this.#stop();
    if (this.#unread.length === 0) this.#controller.error(error);
    else this.#pendingError = error;
  }

  async #stop(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#signal?.removeEventListener("abort", this.#onAbort);
    for (const { resume } of this.#held.splice(0)) resume();
    this.#heldAcks = 0;
    this.#resumeBelowLowWater();
    const connection = this.#connection;
    if (!connection) return;
    if (this.options.cleanSession && connection.client.connected) {
      // A persistent session keeps its subscriptions for the next run; a clean one ends
      // with them. Bounded, so a silent broker cannot hold up cancel().
      await bounded(
        connection.client.unsubscribeAsync(this.options.topic),
        Math.min(5000, (this.options.connectionTimeout || 5) * 1000),
      );
    }
    await connection.end();
  }
}

/** Waits for `promise` at most `ms`, ignoring its outcome. */
async function bounded(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      promise.catch(() => {}),
      new Promise((resolve) => (timer = setTimeout(resolve, ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

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
    const { signal, ...overrides } = init;
    const options = parseConnectionString(connection, overrides);
    if (options.topic.length === 0) {
      throw new MqttOptionsError(
        "topic",
        "Cannot subscribe as 'topic' must name at least one topic filter: current value is none (add ?topic=a/b to the URL)",
      );
    }
    const receiver = new Receiver(options, signal);
    super(receiver, new CountQueuingStrategy({ highWaterMark: options.maxInflight }));
    this.#receiver = receiver;
  }

  /** Live counters: received, acked, dropped, redelivered, reconnects, buffered, held, beyondWindow. */
  get stats(): MqttSourceStats {
    return this.#receiver.stats;
  }

  /**
   * Resolves once connected and subscribed, so that what is published from then on
   * arrives; rejects with the error that failed the start. Reading does not need it.
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
