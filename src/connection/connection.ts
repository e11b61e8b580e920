// The face of the connection: a Connection keeps its mqtt.js client private (behind the
// adapter, _mqtt.ts, the one file that knows mqtt.js's insides), opens it under
// connectAttempts / connectBackoff on the first connect and on every outage, subscribes,
// and ends it. Its two sides do the rest, behind the face: inbound (_inbound.ts: incoming
// messages, acknowledged when released) and outbound (_outbound.ts: publish and settle, the
// broker's window, batching, flush). Sources and sinks call the members of this face only.
import type { IClientOptions, IConnackPacket } from "mqtt";
import { MqttConnectError, MqttStreamError } from "../errors.ts";
import type { MqttOptions } from "../options/options.ts";
import type { Publish } from "../record.ts";
import { classify, endingError, oversizedError } from "./_classify.ts";
import { subscribe, type Subscription } from "./_subscribe.ts";
import { Idling } from "./_timers.ts";
import { type Attempting, Attempts } from "./_attempts.ts";
import { redirection } from "./_redirect.ts";
import { type Deliver, DeliveryFailed, Inbound } from "./_inbound.ts";
import { Outbound, type Unsettled } from "./_outbound.ts";
import { openStores, Persisted, storeOptions } from "./_stores.ts";
import { aimAt, quietLog, toClientOptions } from "./_client_options.ts";
import { guardIncoming, type Oversized } from "./_packet_size.ts";
import { adapt, type MqttAdapter } from "./_mqtt.ts";
import { type ConnectionStats, connectionStats } from "./_connection_stats.ts";
import type { FileStores } from "../stores/store.ts";
import { Credentials } from "./_credentials.ts";
import { Authentication } from "./_auth.ts";
import type { MqttCredentialsInit } from "./credentials.ts";

export type { Attempting } from "./_attempts.ts";
export type { Ack, Deliver } from "./_inbound.ts";
export type { ConnectionStats } from "./_connection_stats.ts";
export type { Unsettled } from "./_outbound.ts";
export type { Subscription } from "./_subscribe.ts";

/** How long a graceful end waits for the broker to close after DISCONNECT. */
const END_GRACE_MS = 500;

/**
 * Connections being opened, by the options object they were opened with: a stream holds
 * its connection only once open() resolves, and its stats show the attempts before that.
 */
const opening = new WeakMap<MqttOptions, Connection>();

/** Options of {@linkcode Connection.open}. */
export interface OpenOptions {
  /** Aborts connecting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Takes over incoming messages, with acknowledgements deferred until released (see
   * `_inbound.ts`). Installed before connecting, so that messages a resumed
   * session holds are not missed.
   */
  deliver?: Deliver;
  /** Functions called before every attempt: credentials, enhanced authentication, a signed URL. */
  hooks?: MqttCredentialsInit;
}

/**
 * A connection to one broker, under the attempts-and-backoff policy; its mqtt.js client is
 * private. `closed` settles when the connection is over: with undefined after `end()`, or
 * with the error that ended it: an MqttConnectError (attempts exhausted in an outage, a
 * permanent refusal, or a drop with autoReconnect=false) or an MqttProtocolError (the
 * broker broke the protocol), or the store's STORE_FAILED.
 */
export class Connection implements AsyncDisposable {
  readonly options: MqttOptions;
  readonly closed: Promise<MqttStreamError | undefined>;
  /** Incoming messages, when opened with `deliver`: their acknowledgements and counts. */
  readonly #inbound?: Inbound;
  /** Publishing: publish and settle, the broker's window, batching, flush. */
  readonly #outbound: Outbound;
  /** The file store (persistence=file), and what became of what it recovered. */
  readonly #persisted?: Persisted;
  readonly #mqtt: MqttAdapter;
  #settle!: (error: MqttStreamError | undefined) => void;
  #reconnects = 0;
  readonly #attempts: Attempts;
  #lastError: unknown;
  #over = false;
  readonly #idling: Idling;
  #onConnect: ((resumed: boolean) => void)[] = [];
  #onClose: (() => void)[] = [];
  #identifiers = false;
  readonly #stats: ConnectionStats;
  /** What each attempt connects with, from the init's hooks. */
  readonly #credentials: Credentials;
  /** MQTT 5 enhanced authentication, with authenticationMethod. */
  readonly #auth?: Authentication;
  /** Aborted when the connection is over: a hook still running is abandoned. */
  readonly #stop = new AbortController();

  private constructor(
    mqtt: MqttAdapter,
    options: MqttOptions,
    deliver?: Deliver,
    stores?: FileStores,
    hooks: MqttCredentialsInit = {},
  ) {
    const client = mqtt.client;
    this.#mqtt = mqtt;
    quietLog(client);
    this.options = options;
    this.#attempts = new Attempts(options, (timeout) => {
      // No CONNACK within the attempt's share of connectionTimeout: its close ends it.
      this.#lastError = timeout;
      mqtt.destroySocket();
    });
    this.closed = new Promise((resolve) => (this.#settle = resolve));
    if (deliver) this.#inbound = new Inbound(mqtt, deliver, options);
    if (stores) {
      // A store that cannot write (a full disk) ends the connection with its STORE_FAILED,
      // once what it took is acknowledged (bounded by connectionTimeout).
      this.#persisted = new Persisted(stores, mqtt, options.connectionTimeout, (error) => {
        this.#lastError = error;
        this.#fail("refused");
      });
    }
    this.#outbound = new Outbound(mqtt, options, this.closed);
    this.#idling = new Idling(mqtt);
    this.#credentials = new Credentials(options, hooks);
    if (this.#credentials.enhanced) {
      this.#auth = new Authentication(mqtt, this.#credentials, options, {
        signal: this.#stop.signal,
        fail: (error) => {
          this.#lastError = error;
          mqtt.destroySocket();
        },
        refuse: (error) => {
          this.#lastError = error;
          this.#fail("refused");
        },
      });
    }
    // mqtt.js's reconnects wait for the hooks (the first attempt waits in open()).
    if (this.#credentials.needed) mqtt.beforeReconnect(() => this.#prepare());
    this.#stats = connectionStats(
      () => this.#reconnects,
      this.#attempts,
      this.#inbound,
      this.#persisted,
    );
    // mqtt.js throws an 'error' event nobody listens to; this listener classifies every
    // error and ends the connection on a permanent one, so none is lost or hidden.
    client.on("error", (error) => {
      // A message whose deliver failed: not the connection's failure (see _inbound.ts).
      if (error instanceof DeliveryFailed) return;
      // A redirection not followed says more than the CONNACK 0x9C / 0x9D it came with.
      this.#lastError = this.#attempts.refused ?? error;
      if (this.#over) return;
      const { permanent, code } = classify(error, options);
      if (permanent) return this.#fail("refused");
      // A refused CONNACK: mqtt.js arms the next attempt as this event returns, before the
      // socket's close, where the next attempt's delay is set: it arms none now (a period of
      // 0), and the close arms it, so no attempt starts before the last one closed.
      if (code === "CONNECT_REJECTED") client.options.reconnectPeriod = 0;
    });
    // Prepended so it runs before mqtt.js's own 'close' handler, which arms the next
    // attempt with options.reconnectPeriod: we set that delay here, attempt by attempt.
    client.prependListener("close", () => this.#closedNow());
    client.on("packetreceive", (packet) => {
      const redirected = redirection(packet);
      if (redirected) this.#lastError = this.#attempts.redirect(redirected) ?? this.#lastError;
      if (packet.cmd === "connack") {
        this.#attempts.connack();
        this.#auth?.connack(packet.properties?.authenticationData);
        this.#identifiers = options.mqttVersion === 5 &&
          packet.properties?.subscriptionIdentifiersAvailable !== false;
        // The sides, in this order: what the inbound side delivered, what the store holds,
        // then the outbound side's repair, all before mqtt.js replays its store.
        const resumed = sessionResumed(options, packet);
        this.#inbound?.connack(resumed);
        this.#persisted?.connack(resumed);
        this.#outbound.connack(resumed);
        // The broker answered something after CONNACK: it serves this client.
      } else this.#attempts.answered();
    });
    client.on("reconnect", () => this.#attempts.retrying());
    client.on("connect", (connack) => {
      if (this.#attempts.connected()) this.#reconnects++;
      this.#lastError = undefined;
      this.#outbound.window.wake();
      const resumed = sessionResumed(options, connack);
      for (const listener of this.#onConnect) listener(resumed);
    });
    // After mqtt.js's own 'close' handler: the sides first, then the streams.
    client.on("close", () => {
      this.#inbound?.disconnected();
      this.#outbound.window.wake();
      for (const listener of this.#onClose) listener();
    });
    mqtt.eachAttempt(
      (clientOptions) => {
        // Each attempt: the broker it goes to, and its own errors only.
        aimAt(clientOptions, this.#attempts.aim(), options["ssl.servername"]);
        this.#credentials.apply(clientOptions);
        this.#auth?.attempt();
        this.#lastError = undefined;
      },
      (transport) =>
        guardIncoming(transport, options.maxPacketSize, (oversized) => this.#refuse(oversized)),
    );
  }

  /**
   * Connects, trying up to `connectAttempts` times with backoff.
   *
   * @throws {MqttConnectError} When every attempt failed, or the broker refused for good,
   *   or (before any attempt) the installed mqtt.js lacks a part of it this relies on.
   */
  static async open(options: MqttOptions, init: OpenOptions = {}): Promise<Connection> {
    const clientOptions = await toClientOptions(options);
    init.signal?.throwIfAborted();
    const stores = options.persistence === "file" ? await openStores(options) : undefined;
    const mqttOptions: IClientOptions = {
      ...clientOptions,
      ...(stores && storeOptions(stores)),
      manualConnect: true,
    };
    let mqtt: MqttAdapter;
    try {
      mqtt = await adapt(mqttOptions);
      // Aborted while the store opened or the client was made: its 'abort' event is gone,
      // and from here to listening for it nothing waits.
      init.signal?.throwIfAborted();
    } catch (error) {
      // Nothing connected: only the store's folder is held. Why nothing could connect is
      // what the caller can act on, so that is what it gets, even if the store fails to close.
      await stores?.close().catch(() => {});
      throw error;
    }
    const connection = new Connection(mqtt, options, init.deliver, stores, init.hooks);
    const connected = new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        connection.#over = true;
        connection.#stop.abort();
        connection.#attempts.stop();
        connection.#stopReconnecting();
        connection.#endNow();
        connection.#inbound?.dispose();
        connection.#closeStores();
        reject(init.signal!.reason);
      };
      init.signal?.addEventListener("abort", onAbort, { once: true });
      mqtt.client.once("connect", () => {
        init.signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      // `closed` never rejects.
      connection.closed.then((error) => {
        init.signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
      });
    });
    opening.set(options, connection);
    try {
      // The first attempt waits for the hooks too; one that failed armed the next, or ended it.
      const prepared = !connection.#credentials.needed || await connection.#prepare();
      try {
        if (prepared) mqtt.client.connect();
      } catch (error) {
        // The transport could not even be built (Bun's TLS throws on a key it cannot
        // decrypt): a permanent failure, said like any other.
        connection.#lastError = error;
        connection.#fail("refused");
      }
      await connected;
    } finally {
      opening.delete(options);
    }
    return connection;
  }

  /**
   * The connection that {@linkcode Connection.open} is opening with this very `options`
   * object, until it is open or has failed.
   */
  static opening(options: MqttOptions): Connection | undefined {
    return opening.get(options);
  }

  /**
   * While the connection is being made (the first connect, or again after a drop): the
   * attempt under way, or the next one between attempts. Undefined while connected, and
   * once the connection is over.
   */
  get connecting(): Attempting | undefined {
    if (this.#over || this.#mqtt.connected) return undefined;
    return this.#attempts.current;
  }

  /** Whether the connection is up now (between a CONNACK and the next close). */
  get connected(): boolean {
    return this.#mqtt.connected;
  }

  /**
   * Whether SUBSCRIBEs may carry Subscription Identifiers on the current connection: MQTT 5,
   * and the broker's CONNACK did not say it has none (§3.2.2.3.12).
   */
  get subscriptionIdentifiers(): boolean {
    return this.#identifiers;
  }

  /** What the connection counts: a live view (the same object each time), read when asked. */
  get stats(): ConnectionStats {
    return this.#stats;
  }

  /** Incoming QoS 1/2 messages delivered whose acknowledgement has not been sent. */
  get unacked(): number {
    return this.#inbound?.unacked ?? 0;
  }

  /**
   * Calls `listener` at every reconnect, once the broker accepted it (after mqtt.js sent
   * the session's unacknowledged publishes again), with whether it resumed the session.
   * Returns the function that removes it.
   */
  onConnect(listener: (resumed: boolean) => void): () => void {
    return listen(this.#onConnect, listener);
  }

  /** Calls `listener` whenever the connection drops; returns the function that removes it. */
  onClose(listener: () => void): () => void {
    return listen(this.#onClose, listener);
  }

  /**
   * Refuses a publish the broker could not take, before anything is sent: over its CONNACK
   * Maximum Packet Size, or over what MQTT can frame at all.
   *
   * @throws {MqttRecordError} Naming the chunk, its size and the limit.
   */
  checkSize(publish: Publish): void {
    this.#outbound.checkSize(publish);
  }

  /**
   * Whether a QoS 1/2 publish may go out now: connected, and the broker's window (its
   * CONNACK Receive Maximum, shared by every sink on the connection) has room.
   */
  get hasRoom(): boolean {
    return this.#outbound.window.open;
  }

  /** Takes a slot of the broker's window for a QoS 1/2 publish about to go out. */
  reserve(): void {
    this.#outbound.window.take();
  }

  /** Gives a slot of the broker's window back (a publish settled, or was given up), and wakes waiters. */
  settle(): void {
    this.#outbound.window.give();
  }

  /** Resolves at the next acknowledgement, connect, disconnect or end of the connection. */
  changed(): Promise<void> {
    return this.#outbound.window.changed();
  }

  /**
   * Sends a QoS 1/2 publish. `stored` runs once mqtt.js's store holds it (at once with
   * persistence=memory); `settled` runs once the broker acknowledged it (undefined), or
   * with why it did not complete. A publish unacknowledged when the connection drops is
   * sent again on the next CONNACK, without settling.
   */
  publish(
    publish: Publish,
    settled: (publish: Publish, failure: Unsettled | undefined) => void,
    stored: (publish: Publish) => void,
  ): void {
    this.#outbound.publish(publish, settled, stored);
  }

  /**
   * Writes a QoS 0 publish; no acknowledgement will come. `written` runs once the socket
   * took it, with an error when the connection is down.
   */
  publishQoS0(publish: Publish, written: (error?: Error) => void): void {
    this.#outbound.publishQoS0(publish, written);
  }

  /** Sends the publishes batched so far now: the writer is about to wait for the broker. */
  sendBatch(): void {
    this.#outbound.sendBatch();
  }

  /**
   * Resolves once the broker has read everything written so far (QoS 0 publishes have no
   * other confirmation).
   *
   * @throws {Error} When the connection closes first.
   */
  flush(): Promise<void> {
    return this.#outbound.flush();
  }

  /**
   * An incoming packet declared more bytes than maxPacketSize: refused before its body is
   * buffered (MQTT 5 §3.1.2.11.4 allows closing with DISCONNECT 0x95, Packet too large).
   * Fatal: the broker would send it again on the next connection.
   */
  #refuse(oversized: Oversized): void {
    this.#lastError = oversizedError(oversized, this.options);
    // DISCONNECT with reason 0x95; MQTT 3.1.1 has no reason, the close says it.
    // 0x81 Malformed Packet for a Remaining Length of more than four bytes.
    const reason = oversized.malformed ? 0x81 : 0x95;
    this.#fail("refused", this.options.mqttVersion === 5 ? [0xe0, 0x01, reason] : undefined);
  }

  /**
   * Runs the init's hooks for the next attempt. Resolves whether to make it: a hook that
   * failed ended the attempt before it had a transport, which counts like any failed attempt
   * (the next one is armed, or the connection ends with CONNECT_AUTH). Never rejects.
   */
  async #prepare(): Promise<boolean> {
    try {
      await this.#credentials.fetch(this.#attempts.next, this.#stop.signal);
      return !this.#over;
    } catch (error) {
      if (this.#over) return false;
      this.#attempts.retrying();
      this.#attempts.aim();
      this.#lastError = error;
      this.#closedNow();
      if (!this.#over) this.#mqtt.rearmReconnect();
      return false;
    }
  }

  /**
   * Re-authenticates (MQTT 5 §4.12.1) without dropping the connection, or, while it is
   * down, waits for the next one, whose CONNECT authenticates afresh.
   *
   * @throws {MqttStreamError} When the connection ends first, with its error.
   */
  reauthenticate(): Promise<void> {
    // The streams check authenticationMethod before they call this (streams/_init.ts).
    if (!this.#auth) return Promise.reject(new Error("no enhanced authentication to repeat"));
    return this.#auth.reauthenticate();
  }

  /** mqtt.js's end(true), which throws when connect() failed before making a stream. */
  #endNow(): void {
    if (this.#mqtt.hasTransport) this.#mqtt.client.end(true);
  }

  /**
   * With manualConnect, mqtt.js's end() clears `disconnecting` again once it closed its
   * stores, so a socket that closes after that (one still connecting) would arm a
   * reconnect: a period of 0 means none.
   */
  #stopReconnecting(): void {
    this.#mqtt.stopReconnecting();
  }

  /** The connection (or an attempt) closed: end for good, or set the delay of the next attempt. */
  #closedNow(): void {
    if (this.#over) return this.#attempts.stop();
    const next = this.#attempts.closed(this.#lastError ?? this.#mqtt.socketError);
    if ("end" in next) return this.#fail(next.end);
    this.#mqtt.client.options.reconnectPeriod = next.retryIn;
  }

  /** Ends the connection for good with the error that `why` and the last error say. */
  #fail(why: "lost" | "exhausted" | "refused", farewell?: number[]): void {
    if (this.#over) return;
    this.#over = true;
    this.#stop.abort();
    this.#attempts.stop();
    // Already said in full (an oversized packet, a store that cannot write), or said now.
    const error = this.#lastError instanceof MqttStreamError ? this.#lastError : endingError({
      why,
      error: this.#lastError ?? this.#mqtt.socketError,
      attempts: this.#attempts.count,
      closedAfterConnack: this.#attempts.closedAfterConnack,
      broker: this.#attempts.target,
      failures: this.#attempts.failures,
    }, this.options);
    this.#close(farewell);
    // A store that failed comes first: a drop while it drained is its consequence.
    const ending = this.#persisted?.failure ?? error;
    this.#auth?.end(ending);
    this.#settle(ending);
  }

  /** Closes at once, on a failure; after writing `farewell` (a DISCONNECT), if given. */
  #close(farewell?: number[]): void {
    const wrote = farewell !== undefined &&
      this.#mqtt.write(new Uint8Array(farewell), () => this.#endNow());
    if (!wrote) this.#endNow();
    this.#inbound?.dispose();
    this.#closeStores();
  }

  /**
   * Closes the file store, if any, without waiting: on a failure or an abort, whose error
   * is what the caller gets. A store that also fails to close has nothing to add to it.
   */
  #closeStores(): void {
    this.#persisted?.stores.close().catch(() => {});
  }

  /**
   * Whether an idle connection can stay open without keeping the process alive: its
   * transport is a socket that can be unref'd (TCP, TLS). A WebSocket cannot.
   */
  get canIdle(): boolean {
    return this.#idling.possible;
  }

  /**
   * Marks the connection idle (a cached connection no sink uses) or busy: an idle one does
   * not keep the process alive.
   */
  setIdle(idle: boolean): void {
    this.#idling.set(idle);
  }

  /**
   * Subscribes at `qos` on the current connection, and returns the QoS granted to each
   * subscription (a filter, with its MQTT 5 Subscription Identifier). Until the SUBACK comes,
   * the connection is not usable: a drop before it is a failed attempt, and a SUBACK that
   * does not come within connectionTimeout ends the connection, to be tried again.
   *
   * @throws {MqttSubscribeError} When the broker refused a filter (SUBACK 0x80 or more).
   * @throws {Error} When the connection closed first (the caller subscribes again on the
   * next one).
   */
  subscribe(subscriptions: readonly Subscription[], qos: 0 | 1 | 2): Promise<number[]> {
    return subscribe(this.#mqtt.client, subscriptions, qos, {
      options: this.options,
      broker: this.#attempts.broker,
      answered: this.#attempts.subscribing(),
      paused: () => this.#inbound?.paused ?? false,
      abandon: (why) => {
        this.#lastError = why;
        this.#mqtt.destroySocket();
      },
    });
  }

  /**
   * Unsubscribes from `filters` without waiting for the UNSUBACK: a DISCONNECT sent after
   * it reaches the broker after it, as TCP keeps order.
   */
  unsubscribe(filters: readonly string[]): void {
    if (this.#mqtt.connected && !this.#over) this.#mqtt.client.unsubscribe([...filters], () => {});
  }

  /**
   * Disconnects (DISCONNECT sent, unless `force`) and settles `closed` with undefined.
   * Bounded in time: mqtt.js's graceful end waits for every unanswered packet, and then for
   * the broker to close, which a silent broker never does.
   */
  async end(force = false): Promise<void> {
    if (!this.#over) {
      this.#over = true;
      this.#settle(undefined);
    }
    this.#stop.abort();
    this.#auth?.end(
      new MqttConnectError("CONNECT_CLOSED", "Cannot re-authenticate as the stream closed", 0),
    );
    this.#attempts.stop();
    this.#inbound?.dispose();
    this.#stopReconnecting();
    const mqtt = this.#mqtt;
    if (!mqtt.hasTransport) return void await this.#persisted?.stores.close();
    // Unanswered SUBSCRIBE/UNSUBSCRIBE need no answer now; publishes do: end at once then.
    if (!force) mqtt.flushVolatile();
    const ending = mqtt.client.endAsync(force || mqtt.awaitingAnswers);
    const timer = setTimeout(() => mqtt.destroySocket(), END_GRACE_MS);
    try {
      await ending;
    } finally {
      clearTimeout(timer);
    }
    await this.#persisted?.stores.close();
  }

  /** Ends the connection gracefully: `await using connection = await Connection.open(…)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.end();
  }
}

/**
 * Whether the broker resumed the session (as mqtt.js decides it): not with a clean
 * session; on MQTT 3.1 always otherwise, which has no session-present flag.
 */
function sessionResumed(
  options: Pick<MqttOptions, "cleanSession" | "mqttVersion">,
  connack: IConnackPacket,
): boolean {
  return !options.cleanSession && (options.mqttVersion < 4 || connack.sessionPresent);
}

/** Adds `listener` to `listeners`; returns the function that removes it. */
function listen<T>(listeners: T[], listener: T): () => void {
  listeners.push(listener);
  return () => {
    const index = listeners.indexOf(listener);
    if (index !== -1) listeners.splice(index, 1);
  };
}
