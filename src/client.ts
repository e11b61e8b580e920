// The one door to mqtt.js: options -> mqtt.js client options (TLS, MQTT 5, will), and a
// connection that keeps to connectAttempts / connectBackoff on the first connect and on
// every outage. Sources and sinks talk to `Connection`, never to mqtt.js's internals.
import mqtt from "mqtt";
import type { IClientOptions, MqttClient, Packet } from "mqtt";
import { MqttConnectError, MqttProtocolError, type MqttStreamError } from "./errors.ts";
import type { MqttOptions } from "./options.ts";
import { classify } from "./_classify.ts";
import { refTimer, unrefTimer } from "./_timers.ts";
import { type Deliver, Inbound, sessionResumed } from "./_client_inbound.ts";
import { openStores, Persisted, storeOptions } from "./_client_stores.ts";
import { backoffDelay, toClientOptions } from "./_client_options.ts";
import { wantsRuntimeWebSocket } from "./_websocket.ts";
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
}

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
  /** Attempts made in the current outage or first connect; 0 while connected. */
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

  private constructor(
    client: MqttClient,
    options: MqttOptions,
    deliver?: Deliver,
    stores?: FileStores,
  ) {
    this.client = client;
    this.options = options;
    if (deliver) this.inbound = new Inbound(client, deliver, options);
    if (stores) this.persisted = new Persisted(stores, client, options);
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
      if (packet.cmd !== "connack") return;
      this.#connacked = true;
      if (!sessionResumed(options, packet)) this.#forgetReleases();
    });
    client.on("reconnect", () => (this.#connacked = false));
    client.on("connect", () => {
      if (this.#connectedOnce) this.reconnects++;
      this.#connectedOnce = true;
      this.attempts = 0;
      this.#lastError = undefined;
    });
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
        client.end(true);
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
    client.connect();
    await connected;
    return connection;
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
    if (this.#over) return;
    if (this.attempts === 0) {
      // Connected until now: the connection was lost, and a new outage begins.
      if (!this.options.autoReconnect) return this.#fail("lost");
    } else if (this.#exhausted()) {
      return this.#fail("exhausted");
    }
    this.client.options.reconnectPeriod = Math.max(
      1,
      backoffDelay(Math.max(1, this.attempts), this.options.connectBackoff),
    );
    this.attempts++;
  }

  #fail(why: "lost" | "exhausted" | "refused"): void {
    if (this.#over) return;
    this.#over = true;
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
    this.client.end(true);
    this.inbound?.dispose();
    this.persisted?.stores.close();
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

  /** Why the broker closed the connection, when it sent no reason. */
  #silentClose(): string {
    // attempts > 0: the close ended an attempt, not an established connection.
    return this.#connacked && this.attempts > 0
      ? "the broker accepted the connection (CONNACK) and then closed it while the session's unacknowledged publishes were sent again, so it refuses one of them (NATS, for one, closes the connection on a QoS 2 publish)"
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

  /** Disconnects (DISCONNECT sent, unless `force`) and settles `closed` with undefined. */
  async end(force = false): Promise<void> {
    if (!this.#over) {
      this.#over = true;
      this.#settle(undefined);
    }
    this.inbound?.dispose();
    this.#stopReconnecting();
    await this.client.endAsync(force);
    await this.persisted?.stores.close();
  }
}
