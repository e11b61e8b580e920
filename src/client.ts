// The one door to mqtt.js: options -> mqtt.js client options (TLS, MQTT 5, will), and a
// connection that keeps to connectAttempts / connectBackoff on the first connect and on
// every outage. Sources and sinks talk to `Connection`, never to mqtt.js's internals.
import "./_env_access.ts"; // before mqtt, whose dependencies read the environment as they load
import mqtt from "mqtt";
import type { IClientOptions, MqttClient, Packet } from "mqtt";
import {
  MqttConnectError,
  MqttProtocolError,
  MqttStreamError,
  MqttSubscribeError,
} from "./errors.ts";
import type { MqttOptions } from "./options.ts";
import { classify } from "./_classify.ts";
import { refTimer, unrefTimer } from "./_timers.ts";
import { type Deliver, Inbound, sessionResumed } from "./_client_inbound.ts";
import { openStores, Persisted, storeOptions } from "./_client_stores.ts";
import { backoffDelay, toClientOptions } from "./_client_options.ts";
import { wantsRuntimeWebSocket } from "./_websocket.ts";
import { guardIncoming, type Oversized } from "./_packet_size.ts";
import type { FileStores } from "./stores/store.ts";

export { type Ack, sessionResumed } from "./_client_inbound.ts";
export { backoffDelay, randomClientId, toClientOptions } from "./_client_options.ts";

/**
 * The parts of mqtt.js's client that #forgetReleases relies on; the QoS 2 in-flight-limit
 * test in tests/sink_test.ts fails if they change.
 */
interface MqttInternals {
  outgoing: Record<number, { cb: (error?: Error) => void }>;
  outgoingStore: {
    get(packet: { messageId: number }, cb: (error?: Error, packet?: Packet) => void): void;
  };
  _removeOutgoingAndStoreMessage(messageId: number, cb: () => void): void;
  /** Builds the transport of each attempt; wrapped by guardIncoming. */
  streamBuilder: (client: MqttClient) => object;
  /** Fails the unanswered SUBSCRIBE/UNSUBSCRIBE packets, as mqtt.js does on a close. */
  _flushVolatile(): void;
}

/** The members of mqtt.js 5.16's client that {@linkcode Connection} calls or wraps. */
export const CONNECTION_INTERNALS = [
  "_removeOutgoingAndStoreMessage",
  "_flushVolatile",
  "streamBuilder",
] as const;

/** How long a graceful end waits for the broker to close after DISCONNECT. */
const END_GRACE_MS = 500;

/**
 * The error a QoS 2 publish fails with when the broker forgot it between PUBREC and
 * PUBCOMP (the session was not resumed): the caller must publish it again.
 */
export const SESSION_LOST = "The broker lost the session before this QoS 2 publish completed";

/**
 * Whether a publish that failed with `error` was never refused by the broker and must be
 * sent again: mqtt.js failed it because the connection dropped, or the session it was in
 * is gone.
 */
export function mustResend(error: Error | undefined): boolean {
  return error?.message === "Connection closed" || error?.message === SESSION_LOST;
}

/**
 * The name mqtt.js gives an MQTT 5 reason code. Read off the default export: mqtt.js's
 * browser build (dist/mqtt.esm.js) has no named exports.
 */
export function reasonName(code: number): string {
  return (mqtt.ReasonCodes as Record<number, string>)[code] ?? "unknown reason code";
}

/**
 * Runs `fn` once the current turn of the event loop, its I/O callbacks included, is over:
 * setImmediate where the runtime has it (Deno, Bun, Node). setTimeout(0) would wait for a
 * timer tick (1 ms or more), and every batch would wait that long.
 */
const afterIo: (fn: () => void) => void =
  (globalThis as { setImmediate?: (fn: () => void) => void }).setImmediate ??
    ((fn) => setTimeout(fn, 0));

/** The parts of a Node-style writable socket that {@linkcode Connection.batch} uses. */
interface Corkable {
  cork?(): void;
  uncork(): void;
  writableLength: number;
  writableHighWaterMark: number;
}

/** Options of {@linkcode Connection.open}. */
export interface OpenOptions {
  /** Aborts connecting; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * Takes over incoming messages, with acknowledgements deferred until released (see
   * `_client_inbound.ts`). Installed before connecting, so that messages a resumed
   * session holds are not missed.
   */
  deliver?: Deliver;
}

/**
 * An mqtt.js client under our attempts-and-backoff policy. `closed` settles when the
 * connection is over: with undefined after `end()`, or with the error that ended it: an
 * MqttConnectError (attempts exhausted in an outage, a permanent refusal, or a drop with
 * autoReconnect=false) or an MqttProtocolError (the broker broke the protocol).
 */
export class Connection {
  readonly client: MqttClient;
  readonly options: MqttOptions;
  /** Successful reconnects after the first connect. */
  reconnects = 0;
  /**
   * Attempts made in the current outage or first connect; 0 once the connection is usable
   * (see {@linkcode #usable}). A connection that ends before that was a failed attempt.
   */
  attempts = 1;
  /** Incoming messages, when opened with `deliver`. */
  readonly inbound?: Inbound;
  /** The file store (persistence=file), and what became of what it recovered. */
  readonly persisted?: Persisted;
  readonly closed: Promise<MqttStreamError | undefined>;
  #settle!: (error: MqttStreamError | undefined) => void;
  #lastError: unknown;
  #connectedOnce = false;
  /** Whether a CONNACK came on the current attempt (reset as mqtt.js starts the next). */
  #connacked = false;
  #over = false;
  #idle = false;
  #corked = false;
  /** The keep-alive intervals mqtt.js has running (one at a time). */
  #timers = new Set<unknown>();
  /** SUBSCRIBEs sent on the current connection and not yet answered. */
  #subscribing = 0;
  /** Makes the current connection usable once it has stayed up connectionTimeout. */
  #usableTimer?: ReturnType<typeof setTimeout>;

  private constructor(
    client: MqttClient,
    options: MqttOptions,
    deliver?: Deliver,
    stores?: FileStores,
  ) {
    this.client = client;
    this.options = options;
    if (deliver) this.inbound = new Inbound(client, deliver, options);
    if (stores) {
      // A store that cannot write (a full disk) ends the connection with its STORE_FAILED.
      this.persisted = new Persisted(stores, client, options, (error) => {
        this.#lastError = error;
        this.#fail("refused");
      });
    }
    this.closed = new Promise((resolve) => (this.#settle = resolve));
    // mqtt.js's documented `timerVariant` option: its keep-alive interval runs on timers
    // that setIdle can let go of.
    client.options.timerVariant = {
      set: (tick: () => void, ms: number) => {
        const timer = setInterval(tick, ms);
        this.#timers.add(timer);
        if (this.#idle) unrefTimer(timer);
        return timer as unknown as number;
      },
      clear: (timer: unknown) => {
        clearInterval(timer as number);
        this.#timers.delete(timer);
      },
    };
    // mqtt.js throws an 'error' event nobody listens to; this listener classifies every
    // error and ends the connection on a permanent one, so none is lost or hidden.
    client.on("error", (error) => {
      this.#lastError = error;
      if (!this.#over && classify(error, options).permanent) this.#fail("refused");
    });
    // Prepended so it runs before mqtt.js's own 'close' handler, which arms the next
    // attempt with options.reconnectPeriod: we set that delay here, attempt by attempt.
    client.prependListener("close", () => this.#onClose());
    client.on("packetreceive", (packet) => {
      if (packet.cmd !== "connack") {
        // The broker answered something after CONNACK: it serves this client.
        if (this.#subscribing === 0 && this.attempts !== 0) this.#usable();
        return;
      }
      this.#connacked = true;
      if (!sessionResumed(options, packet)) this.#forgetReleases();
    });
    client.on("reconnect", () => (this.#connacked = false));
    client.on("connect", () => {
      if (this.#connectedOnce) this.reconnects++;
      this.#connectedOnce = true;
      this.#lastError = undefined;
      this.#subscribing = 0;
      // A broker that accepts and drops at once, again and again, must not reset the
      // attempts each time: the connection counts as made once it proved usable.
      clearTimeout(this.#usableTimer);
      this.#usableTimer = setTimeout(
        () => this.#subscribing === 0 && this.#usable(),
        (options.connectionTimeout || 30) * 1000,
      );
      unrefTimer(this.#usableTimer);
    });
    const stream = client as unknown as MqttInternals;
    const build = stream.streamBuilder;
    stream.streamBuilder = (c) =>
      guardIncoming(build(c), options.maxPacketSize, (oversized) => this.#refuse(oversized));
  }

  /**
   * The current connection is usable: the broker answered after CONNACK (a source's
   * SUBACK, an acknowledgement, a PINGRESP), or it stayed up for connectionTimeout.
   */
  #usable(): void {
    clearTimeout(this.#usableTimer);
    this.attempts = 0;
  }

  /**
   * An incoming packet declared more bytes than maxPacketSize: refused before its body is
   * buffered (MQTT 5 §3.1.2.11.4 allows closing with DISCONNECT 0x95, Packet too large).
   * Fatal: the broker would send it again on the next connection.
   */
  #refuse({ packet, size }: Oversized): void {
    const limit = this.options.maxPacketSize;
    this.#lastError = new MqttProtocolError(
      `Cannot receive from ${this.options.brokerUrl} as the broker sent a ${packet} of ${size} bytes, over 'maxPacketSize' (${limit} bytes): raise maxPacketSize (at most 268435455) to accept it`,
    );
    // DISCONNECT with reason 0x95; MQTT 3.1.1 has no reason, the close says it.
    this.#fail("refused", this.options.mqttVersion === 5 ? [0xe0, 0x01, 0x95] : undefined);
  }

  /**
   * Connects, trying up to `connectAttempts` times with backoff.
   *
   * @throws {MqttConnectError} When every attempt failed, or the broker refused for good.
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
    const connection = new Connection(
      wantsRuntimeWebSocket(mqttOptions)
        ? (await import("./runtime/websocket.ts")).webSocketClient(mqttOptions)
        : mqtt.connect(mqttOptions),
      options,
      init.deliver,
      stores,
    );
    const { client } = connection;
    const connected = new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        connection.#over = true;
        connection.#stopReconnecting();
        connection.#endNow();
        connection.persisted?.stores.close();
        reject(init.signal!.reason);
      };
      init.signal?.addEventListener("abort", onAbort, { once: true });
      client.once("connect", () => {
        init.signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      connection.closed.then((error) => {
        init.signal?.removeEventListener("abort", onAbort);
        if (error) reject(error);
      });
    });
    try {
      client.connect();
    } catch (error) {
      // The transport could not even be built (Bun's TLS throws on a key it cannot
      // decrypt): a permanent failure, said like any other.
      connection.#lastError = error;
      connection.#fail("refused");
    }
    await connected;
    return connection;
  }

  /** mqtt.js's end(true), which throws when connect() failed before making a stream. */
  #endNow(): void {
    if (this.client.stream) this.client.end(true);
  }

  /**
   * Fails the QoS 2 publishes that got PUBREC in a session the broker no longer has, before
   * mqtt.js replays its store on this CONNACK. mqtt.js would send their PUBREL, and the
   * broker, knowing no such packet id, answers PUBCOMP (MQTT 3.1.1 §4.3.3): where the
   * broker delivers on PUBREL (mosquitto does), the message is lost while the publisher
   * counts it confirmed. Measured before this: a QoS 2 sink over MQTT 3.1.1 that mosquitto
   * disconnected past its in-flight limit lost 99 of 2,000. Sent again instead, each is
   * delivered at least once (twice where the broker delivered on PUBLISH).
   */
  #forgetReleases(): void {
    const client = this.client as unknown as MqttInternals;
    for (const id of Object.keys(client.outgoing).map(Number)) {
      // mqtt.js's memory store answers get and del synchronously, before the replay.
      client.outgoingStore.get({ messageId: id }, (error, stored) => {
        if (error || stored?.cmd !== "pubrel") return;
        const { cb } = client.outgoing[id];
        client._removeOutgoingAndStoreMessage(id, () => cb(new Error(SESSION_LOST)));
      });
    }
  }

  /**
   * With manualConnect, mqtt.js's end() clears `disconnecting` again once it closed its
   * stores, so a socket that closes after that (one still connecting) would arm a
   * reconnect: a period of 0 means none.
   */
  #stopReconnecting(): void {
    this.client.options.reconnectPeriod = 0;
  }

  /** Whether attempts are exhausted for the current outage. */
  #exhausted(): boolean {
    return this.options.connectAttempts !== -1 && this.attempts >= this.options.connectAttempts;
  }

  #onClose(): void {
    clearTimeout(this.#usableTimer);
    if (this.#over) return;
    // Once connected, autoReconnect=false ends it at the first drop.
    if (!this.options.autoReconnect && this.#connectedOnce) return this.#fail("lost");
    // attempts = 0: usable until now, and a new outage begins; otherwise this close ended
    // an attempt, before or after its CONNACK.
    if (this.attempts > 0 && this.#exhausted()) return this.#fail("exhausted");
    this.client.options.reconnectPeriod = Math.max(
      1,
      backoffDelay(Math.max(1, this.attempts), this.options.connectBackoff),
    );
    this.attempts++;
  }

  /** Ends the connection for good with the error that `why` and the last error say. */
  #fail(why: "lost" | "exhausted" | "refused", farewell?: number[]): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#usableTimer);
    if (this.#lastError instanceof MqttStreamError) {
      // Already said in full (an oversized packet, a store that cannot write).
      this.#close(farewell);
      return this.#settle(this.#lastError);
    }
    const error = this.#lastError ?? this.#streamError();
    const { code, reason } = error == null
      ? { code: "CONNECT_CLOSED" as const, reason: this.#silentClose() }
      : classify(error, this.options);
    const attempts = Math.max(1, this.attempts);
    const message = why === "lost"
      ? `Lost the connection to ${this.options.brokerUrl} and autoReconnect is false: ${reason}`
      : `Cannot connect to ${this.options.brokerUrl} after ${attempts} attempt${
        attempts === 1 ? "" : "s"
      } (connectAttempts=${this.options.connectAttempts}): ${reason}`;
    this.#close();
    const cause = { cause: this.#lastError };
    this.#settle(
      code === "PROTOCOL"
        ? new MqttProtocolError(
          `Protocol error on the connection to ${this.options.brokerUrl}: ${reason}`,
          cause,
        )
        : new MqttConnectError(code, message, attempts, cause),
    );
  }

  /** Closes at once, on a failure; after writing `farewell` (a DISCONNECT), if given. */
  #close(farewell?: number[]): void {
    const socket = this.client.stream as unknown as {
      write?(bytes: Uint8Array, done: () => void): void;
    };
    if (farewell && socket?.write) socket.write(new Uint8Array(farewell), () => this.#endNow());
    else this.#endNow();
    this.inbound?.dispose();
    this.persisted?.stores.close();
  }

  /** Why the broker closed the connection, when it sent no reason. */
  #silentClose(): string {
    // attempts > 0: the close ended an attempt, not an established connection.
    return this.#connacked && this.attempts > 0
      ? "the broker accepted the connection (CONNACK) and then closed it before it answered anything (no SUBACK, no acknowledgement): it refuses what was sent first, a subscription or a publish of the session sent again (NATS, for one, closes the connection on a QoS 2 publish)"
      : "the broker closed the connection without a reason";
  }

  /** The error the transport stream died of, when mqtt.js swallowed it (errors without a code). */
  #streamError(): unknown {
    return (this.client.stream as unknown as { errored?: unknown } | undefined)?.errored;
  }

  /**
   * Whether an idle connection can stay open without keeping the process alive: its
   * transport is a socket that can be unref'd (TCP, TLS). A WebSocket cannot.
   */
  get canIdle(): boolean {
    const socket = this.client.stream as unknown as { unref?(): void } | undefined;
    return typeof socket?.unref === "function";
  }

  /**
   * Marks the connection idle (a cached connection no sink uses) or busy. An idle one
   * does not keep the process alive: its socket and keep-alive timer are unref'd, so a
   * script that closed its last sink exits instead of waiting out connectionCacheTimeout.
   */
  setIdle(idle: boolean): void {
    if (this.#idle === idle) return;
    this.#idle = idle;
    const socket = this.client.stream as unknown as { ref?(): void; unref?(): void } | undefined;
    if (idle) socket?.unref?.();
    else socket?.ref?.();
    for (const timer of this.#timers) (idle ? unrefTimer : refTimer)(timer);
  }

  /**
   * Holds what is written to the socket until the current task ends, or until a socket
   * buffer's worth (its highWaterMark) is waiting, and sends it in one write. mqtt.js's
   * packet writer corks only until the next tick, and a stream's writes each run in a
   * microtask of their own, so without this every publish of a pipe costs a system call.
   */
  batch(): void {
    const socket = this.client.stream as unknown as Corkable | undefined;
    if (!socket?.cork) return;
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      afterIo(() => this.sendBatch());
    } else if (socket.writableLength >= socket.writableHighWaterMark) {
      this.sendBatch();
    }
  }

  /** Sends what {@linkcode batch} holds now: the writer is about to wait for the broker. */
  sendBatch(): void {
    if (!this.#corked) return;
    this.#corked = false;
    (this.client.stream as unknown as Corkable).uncork();
  }

  /**
   * Resolves once the broker has read everything written so far: it answers a PINGREQ
   * sent after it, and TCP keeps order. QoS 0 publishes have no other confirmation.
   *
   * @throws {Error} When the connection closes first.
   */
  flush(): Promise<void> {
    const { client } = this;
    return new Promise((resolve, reject) => {
      const onPacket = (packet: { cmd: string }) => {
        if (packet.cmd !== "pingresp") return;
        done();
        resolve();
      };
      const onClose = () => {
        done();
        reject(new Error("the connection closed before the broker confirmed the QoS 0 publishes"));
      };
      const done = () => {
        client.removeListener("packetreceive", onPacket);
        client.removeListener("close", onClose);
      };
      if (!client.connected) return onClose();
      client.on("packetreceive", onPacket);
      client.on("close", onClose);
      client.sendPing();
      this.sendBatch();
    });
  }

  /**
   * Subscribes to `filters` at `qos` on the current connection. Until the SUBACK comes,
   * the connection is not usable: a drop before it is a failed attempt, and a SUBACK that
   * does not come within connectionTimeout ends the connection, to be tried again.
   *
   * @throws {MqttSubscribeError} When the broker refused a filter (SUBACK 0x80 or more).
   * @throws {Error} When the connection closed first (the caller subscribes again on the
   * next one).
   */
  async subscribe(filters: readonly string[], qos: 0 | 1 | 2): Promise<void> {
    const { client, options } = this;
    this.#subscribing++;
    const seconds = options.connectionTimeout;
    // The broker's silence is what is bounded: a resumed session's backlog comes before the
    // SUBACK, and a reader that stalls holds the SUBACK unread (reading is paused).
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      if (seconds > 0) timer = setTimeout(silent, seconds * 1000);
    };
    const silent = () => {
      if (this.inbound?.paused) return arm();
      this.#lastError = new Error(`no SUBACK within connectionTimeout=${seconds} s`);
      (client.stream as unknown as { destroy?(): void } | undefined)?.destroy?.();
    };
    arm();
    client.on("packetreceive", arm);
    try {
      await client.subscribeAsync(Object.fromEntries(filters.map((filter) => [filter, { qos }])));
    } catch (error) {
      // mqtt.js rejects with the SUBACK when it refuses a filter; its codes follow our order.
      const granted = (error as { packet?: { granted?: number[] } }).packet?.granted ?? [];
      const refused = granted.findIndex((code) => code >= 0x80);
      if (refused === -1) throw error;
      const filter = filters[refused];
      throw new MqttSubscribeError(
        `Cannot subscribe to '${filter}' on ${options.brokerUrl}: the broker refused it (SUBACK 0x${
          granted[refused].toString(16)
        }${filter.startsWith("$share/") ? "; does it support shared subscriptions?" : ""})`,
        filter,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
      client.removeListener("packetreceive", arm);
      this.#subscribing = Math.max(0, this.#subscribing - 1);
    }
    if (this.#subscribing === 0) this.#usable();
  }

  /**
   * Unsubscribes from `filters` without waiting for the UNSUBACK: a DISCONNECT sent after
   * it reaches the broker after it, as TCP keeps order.
   */
  unsubscribe(filters: readonly string[]): void {
    if (this.client.connected && !this.#over) this.client.unsubscribe([...filters], () => {});
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
    clearTimeout(this.#usableTimer);
    this.inbound?.dispose();
    this.#stopReconnecting();
    const { client } = this;
    if (!client.stream) return void await this.persisted?.stores.close();
    const internals = client as unknown as MqttInternals;
    // Unanswered SUBSCRIBE/UNSUBSCRIBE need no answer now; publishes do: end at once then.
    if (!force) internals._flushVolatile();
    const ending = client.endAsync(force || Object.keys(internals.outgoing).length > 0);
    const timer = setTimeout(
      () => (client.stream as unknown as { destroy?(): void } | undefined)?.destroy?.(),
      END_GRACE_MS,
    );
    try {
      await ending;
    } finally {
      clearTimeout(timer);
    }
    await this.persisted?.stores.close();
  }
}
