// The logic of an MqttSource, as its ReadableStream's underlying source: queueing, acks
// on read, holding what arrives past the window, reconnect subscriptions and shutdown.
// Where an acknowledgement is kept and released: src/connection/_inbound.ts.
import { type Ack, Connection } from "../connection/connection.ts";
import { MqttStreamError, MqttSubscribeError } from "../errors.ts";
import { type IncomingPublish, type MqttMessage, receivedMessage } from "../message.ts";
import type { MqttOptions } from "../options/options.ts";
import { type MqttSourceStats, sourceStats } from "./stats.ts";
import type { MqttCredentialsInit } from "../connection/credentials.ts";
import { checkReauthenticate, type EngineInit } from "./_init.ts";
import { observeSource, type SourceObserver } from "./hooks.ts";
import { matchingFilters, type SubscriptionPlan, subscriptionPlan } from "./_overlap.ts";

/** A message in the stream's queue, with its acknowledgement. */
interface Unread {
  message: MqttMessage;
  ack?: Ack;
  /** Telemetry's end of a QoS 0 message, when it is read. */
  read?: () => void;
}

interface Held extends Unread {
  resume: () => void;
}

/** The source's logic, as the ReadableStream's underlying source. */
export class Receiver implements UnderlyingDefaultSource<MqttMessage> {
  readonly stats: MqttSourceStats;
  readonly options: MqttOptions;
  #counts = { received: 0, dropped: 0, redelivered: 0, duplicates: 0, overlapping: 0 };
  /** How the filters are subscribed, and which copies of a message are delivered. */
  #plan: SubscriptionPlan;
  readonly #signal?: AbortSignal;
  /** Aborts connecting when the stream is cancelled before the connection is up. */
  readonly #starting = new AbortController();
  #controller!: ReadableStreamDefaultController<MqttMessage>;
  #connection?: Connection;
  /** The messages in the stream's queue, in order, with their acknowledgements. */
  #unread: Unread[] = [];
  #held: Held[] = [];
  /** Paused packet readers whose held message is queued now, waiting for the low-water mark. */
  #resumes: (() => void)[] = [];
  #done = false;
  #pendingError?: unknown;
  /** Rejects when the source fails, for `ready`. */
  readonly #failed: Promise<never>;
  #rejectFailed!: (error: unknown) => void;

  /** What observes the source (telemetry, see hooks.ts), if anything does. */
  readonly #observer?: SourceObserver;

  /** The init's hooks, for the connection. */
  readonly #hooks: MqttCredentialsInit;

  constructor(options: MqttOptions, { signal, telemetry, hooks }: EngineInit) {
    this.options = options;
    this.#signal = signal;
    this.#hooks = hooks;
    this.#failed = new Promise((_, reject) => (this.#rejectFailed = reject));
    this.#failed.catch(() => {});
    this.stats = sourceStats(
      this.#counts,
      this.#unread,
      this.#held,
      () => this.#connection,
      options,
    );
    // Provisional, until the broker's CONNACK says whether it takes identifiers: a resumed
    // session's backlog may come before the first SUBSCRIBE.
    this.#plan = subscriptionPlan(options.topic, options.qos, options.mqttVersion === 5);
    const counts = this.#counts;
    this.#observer = observeSource({
      options,
      stats: this.stats,
      overflowDropped: () => counts.dropped,
    }, telemetry);
  }

  /** Settles when the first subscription is in place (or the start failed). */
  ready!: Promise<void>;
  #resolveSubscribed!: () => void;
  /**
   * Whether the broker confirmed the subscriptions (SUBACK) in the session it holds now.
   * Until it has, every connect subscribes: a drop before the SUBACK leaves it unknown
   * whether a persistent session has them, though the broker says it resumed the session.
   */
  #subscribed = false;

  /**
   * Resolves once connected. The subscription is not awaited here: a resumed session
   * delivers its backlog at once, and while the queue is full mqtt.js reads no further
   * packets (SUBACK included) until a read makes room, which `pull` is what sees, and the
   * stream calls `pull` only after `start` has resolved.
   */
  start(controller: ReadableStreamDefaultController<MqttMessage>): Promise<void> {
    this.#controller = controller;
    const subscribed = new Promise<void>((resolve) => (this.#resolveSubscribed = resolve));
    const opened = this.#open();
    this.#opened = opened;
    this.ready = opened.then(() => Promise.race([subscribed, this.#failed]));
    // The stream reports a failure itself; `ready` is for callers who want to wait.
    this.ready.catch(() => {});
    return opened;
  }

  /** Settles once connected (or the start failed). */
  #opened?: Promise<void>;

  /**
   * Re-authenticates the connection once it is open (MQTT 5 enhanced authentication, see
   * Connection.reauthenticate).
   */
  async reauthenticate(): Promise<void> {
    checkReauthenticate(this.options);
    await this.#opened;
    await this.#connection!.reauthenticate();
  }

  async #open(): Promise<void> {
    const starting = this.#starting.signal;
    const connection = await Connection.open(this.options, {
      signal: this.#signal ? AbortSignal.any([this.#signal, starting]) : starting,
      deliver: (packet, ack) => this.#deliver(packet, ack),
      hooks: this.#hooks,
    });
    this.#connection = connection;
    if (this.#done) return void await connection.end(true);
    connection.closed.then((error) => error && this.#fail(error));
    connection.onClose(() => this.#admit());
    connection.onConnect((resumed) => {
      // A broker without our session (restarted without persistence, or a clean session)
      // has forgotten the subscriptions: subscribe again, and fail loudly if refused.
      if (!resumed) this.#subscribed = false;
      this.#subscribe();
    });
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
    this.#subscribe();
  }

  /**
   * Subscribes on the current connection unless the session has the subscriptions. Only a
   * refusal is fatal: a connection that drops first subscribes again when it is back, and
   * the connection counts that drop as a failed attempt (see Connection.subscribe).
   */
  #subscribe(): void {
    if (this.#subscribed || this.#done) return;
    const { qos, topic } = this.options;
    const connection = this.#connection!;
    const plan = subscriptionPlan(topic, qos, connection.subscriptionIdentifiers);
    this.#plan = plan;
    connection.subscribe(plan.subscriptions, qos).then((granted) => {
      plan.granted(granted);
      this.#subscribed = true;
      this.#resolveSubscribed();
    }, (error) => {
      if (error instanceof MqttSubscribeError) this.#fail(error);
    });
  }

  /** One message from the broker: queued, dropped (QoS 0 when full), or held until there is room. */
  #deliver(packet: IncomingPublish, ack: Ack | undefined): void | Promise<void> {
    if (this.#done) return;
    this.#counts.received++;
    if (packet.dup) this.#counts.redelivered++;
    const ids = (packet.properties as { subscriptionIdentifier?: number | number[] } | undefined)
      ?.subscriptionIdentifier;
    if (this.#plan.isCopy(packet.topic, ids)) {
      // Another matching subscription's copy is the one delivered: acknowledged unread (in
      // arrival order, behind what is still unread), so the broker's window stays free.
      this.#counts.duplicates++;
      return ack?.release();
    }
    if (this.#plan.mayRepeat(packet.topic)) this.#counts.overlapping++;
    if (packet.qos === 0 && this.options.qos0Overflow === "drop" && !this.#hasRoom(0, 0)) {
      this.#counts.dropped++;
      return;
    }
    const arrival = this.#observer?.arrived(packet, ack);
    const acknowledgement = arrival?.ack ?? ack;
    const message = receivedMessage(
      packet,
      acknowledgement && (() => {
        acknowledgement.release();
        this.#admit();
      }),
      arrival?.context,
      () => matchingFilters(this.options.topic, packet.topic),
    );
    const unread: Unread = { message, ack: acknowledgement, read: arrival?.read };
    if (this.#held.length === 0 && this.#hasRoom(packet.qos, ack ? 1 : 0)) {
      return this.#enqueue(unread);
    }
    // Returning a promise stops mqtt.js reading packets until there is room: TCP then
    // holds the rest at the broker, and the connection is kept alive meanwhile (see
    // connection/_inbound.ts). Memory stays at maxInflight messages, plus this one.
    return new Promise((resume) => this.#held.push({ ...unread, resume }));
  }

  /**
   * Whether a message of `qos` fits: the queue has room and, for QoS 1/2, fewer than
   * maxInflight messages are unacknowledged (`own` = 1 when its ack is already counted).
   */
  #hasRoom(qos: number, own: number): boolean {
    if (this.#unread.length >= this.options.maxInflight) return false;
    if (qos === 0) return true;
    // Held messages' acks are counted by the inbound side but not yet in the queue.
    const heldAcks = this.#held.filter((held) => held.ack).length;
    const unacked = (this.#connection?.unacked ?? 0) - heldAcks - own;
    return unacked < this.options.maxInflight;
  }

  #enqueue(unread: Unread): void {
    this.#unread.push(unread);
    this.#controller.enqueue(unread.message);
  }

  /** Moves held messages into the queue while there is room, and lets mqtt.js read on. */
  #admit(): void {
    while (this.#held.length && !this.#done) {
      const next = this.#held[0];
      if (!this.#hasRoom(next.message.qos, 0)) break;
      this.#held.shift();
      this.#enqueue(next);
      this.#resumes.push(next.resume);
    }
    this.#resumeBelowLowWater();
  }

  /**
   * Lets mqtt.js read on once the queue is down to half: resuming at the first free slot
   * would pause and resume once a message while a backlog drains.
   */
  #resumeBelowLowWater(): void {
    if (this.#resumes.length === 0) return;
    if (this.#done || this.#unread.length <= this.options.maxInflight >> 1) {
      for (const resume of this.#resumes.splice(0)) resume();
    }
  }

  /** Called after every read: what left the queue was read, and is acknowledged with ack=read. */
  pull(): void {
    const queued = this.options.maxInflight - (this.#controller.desiredSize ?? 0);
    const read = this.#unread.length - queued;
    // shift, not splice: this runs for every message read, and splice makes an array.
    const release = this.options.ack === "read";
    for (let i = 0; i < read; i++) {
      const unread = this.#unread.shift()!;
      if (release) unread.ack?.release();
      unread.read?.();
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
    this.#stopBehind();
  };

  /**
   * Stops behind an error the stream already carries (an abort, a failed connection): a
   * failure to end the connection then (its store could not close) has no one left to
   * reach; cancel() and close() await #stop and reject with it.
   */
  #stopBehind(): void {
    this.#stop().catch(() => {});
  }

  /** The connection is over for good: what was received stays readable, then the error. */
  #fail(error: unknown): void {
    if (this.#done) return;
    this.#rejectFailed(error);
    this.#stopBehind();
    if (this.#unread.length === 0) this.#controller.error(error);
    else this.#pendingError = error;
  }

  async #stop(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#starting.abort(
      new MqttStreamError("ABORTED", "The source was cancelled while connecting"),
    );
    this.#signal?.removeEventListener("abort", this.#onAbort);
    for (const { resume } of this.#held.splice(0)) resume();
    this.#resumeBelowLowWater();
    this.#observer?.close();
    const connection = this.#connection;
    if (connection) {
      // A persistent session keeps its subscriptions for the next run; a clean one ends
      // with them (it may outlive the connection: MQTT 5 sessionExpiryInterval).
      if (this.options.cleanSession) {
        connection.unsubscribe(this.#plan.subscriptions.map(({ filter }) => filter));
      }
      await connection.end();
    }
  }
}
