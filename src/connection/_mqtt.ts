// The one adapter to mqtt.js's insides. mqtt.js 5.16 has no manual acknowledgement, no
// outgoing window, no hook on the transport it builds and no way to keep its incoming store
// from deleting a message, so the connection reaches into its client. This file is the only
// place that does: it declares the private members it relies on once (`Internals`), holds
// every cast and every patch, and checks when a connection opens that each member is there
// with the right kind, so that an mqtt.js release that renamed or removed one fails at once
// with an error naming it, not later with a stream that stalls. The rest of the folder talks
// to it through the ports of _ports.ts (InboundPort, OutboundPort, IdlingPort,
// OutgoingRegistry), which tests/connection/inbound_test.ts and outbound_test.ts fake,
// without a broker.
//
// What is patched or called, and who pulls the lever (its reason lives there):
// - `_sendPacket` (every PUBACK/PUBREC/PUBCOMP leaves through it), `handleMessage`,
//   `options.customHandleAcks`, `_trackIncomingQoS2Publish`, `_incomingQoS2Ids`,
//   `incomingStore.del`, `sendPing`, `reschedulePing`: the inbound side (_inbound.ts).
// - `outgoing`, `outgoingStore.get`, `_removeOutgoingAndStoreMessage`, the socket's
//   cork/uncork: the outbound side (_outbound.ts); `outgoing[id]`: the file store (_stores.ts).
// - `streamBuilder` (each attempt's broker, the incoming packet-size guard), `_flushVolatile`,
//   `_reconnect`, `_setupReconnect`, `_clearReconnect` (an attempt waits for the init's
//   hooks, _credentials.ts), the socket's write/destroy/errored: the Connection;
//   `handleAuth`: enhanced authentication (_auth.ts); `options.timerVariant` and the
//   socket's ref/unref: idling (_timers.ts).
// The socket's members are feature-detected at each use instead (transports differ: TCP,
// TLS, a duplex over a WebSocket), and each use works without them.
import "./_env_access.ts"; // before mqtt, whose dependencies read the environment as they load
import mqtt from "mqtt";
import type {
  IClientOptions,
  IClientPublishOptions,
  IPublishPacket,
  MqttClient,
  Packet,
} from "mqtt";
import { MqttConnectError } from "../errors.ts";
import type { Pipeable } from "./_packet_size.ts";
import type {
  AuthPacket,
  AuthPort,
  IdlingPort,
  InboundPort,
  OutboundPort,
  OutgoingRegistry,
  PublishOptions,
} from "./_ports.ts";
import { wantsRuntimeWebSocket } from "./_websocket.ts";

/** The mqtt.js release this adapter is written and tested against, for messages. */
const REQUIRED = "mqtt 5.16";

/** An entry of mqtt.js's table of QoS 1/2 packets awaiting an answer, by packet identifier. */
interface Outgoing {
  volatile: boolean;
  cmd: string;
  cb: (error?: Error, packet?: Packet) => void;
}

/** The private (or undocumented) members of mqtt.js 5.16's client this adapter uses. */
interface Internals {
  handleMessage(packet: IPublishPacket, callback: (error?: Error) => void): void;
  _sendPacket(
    packet: Packet,
    cb?: (error?: Error) => void,
    cbStorePut?: () => void,
    noStore?: boolean,
  ): void;
  _trackIncomingQoS2Publish(messageId: number, done: () => void, pump?: unknown): boolean;
  /** QoS 2 ids between PUBREC and PUBCOMP, across reconnects of a resumed session. */
  _incomingQoS2Ids: Set<number>;
  incomingStore: { del(packet: { messageId?: number }, cb?: (error?: Error) => void): unknown };
  outgoingStore: {
    get(packet: { messageId: number }, cb: (error?: Error, packet?: Packet) => void): void;
  };
  outgoing: Record<number, Outgoing>;
  _removeOutgoingAndStoreMessage(messageId: number, cb: () => void): void;
  /** Fails the unanswered SUBSCRIBE/UNSUBSCRIBE packets, as mqtt.js does on a close. */
  _flushVolatile(): void;
  /** Builds the transport of each attempt. */
  streamBuilder(client: MqttClient): object;
  /** Answers the broker's AUTH packets (MQTT 5 §4.12): mqtt.js's default sends nothing. */
  handleAuth(packet: AuthPacket, callback: (error?: Error, packet?: AuthPacket) => void): void;
  /** What mqtt.js's reconnect timer calls: emits 'reconnect' and starts the next attempt. */
  _reconnect(): void;
  /** Arms the reconnect timer (an interval of options.reconnectPeriod), unless one is armed. */
  _setupReconnect(): void;
  /** Stops the reconnect timer. */
  _clearReconnect(): void;
}

/** The parts of a Node-style socket the connection uses; any may be missing. */
interface Socket extends Pipeable {
  cork?(): void;
  uncork?(): void;
  writableLength?: number;
  writableHighWaterMark?: number;
  write?(bytes: Uint8Array, done: () => void): unknown;
  destroy?(): void;
  /** The error the stream died of (Node streams), which mqtt.js swallows when it has no code. */
  errored?: unknown;
  ref?(): void;
  unref?(): void;
}

/** What a member must be: `typeof` it, or a Set. */
type Kind = "function" | "object" | "number" | "Set";

/**
 * Each member of mqtt.js's client this adapter patches or calls beyond the documented API,
 * as a path from the client, and what it must be. Checked by {@linkcode checkInternals}
 * when a connection opens, and pinned by tests/streams/source_test.ts.
 */
export const MQTT_INTERNALS: Readonly<Record<string, Kind>> = {
  handleMessage: "function",
  _sendPacket: "function",
  _trackIncomingQoS2Publish: "function",
  _incomingQoS2Ids: "Set",
  "incomingStore.del": "function",
  "outgoingStore.get": "function",
  outgoing: "object",
  _removeOutgoingAndStoreMessage: "function",
  _flushVolatile: "function",
  streamBuilder: "function",
  handleAuth: "function",
  _reconnect: "function",
  _setupReconnect: "function",
  _clearReconnect: "function",
  sendPing: "function",
  reschedulePing: "function",
  keepalive: "number",
  // Read by mqtt.js at each QoS 1/2 PUBLISH from client.options (not from the options given).
  "options.customHandleAcks": "function",
};

/**
 * Throws unless every member of {@linkcode MQTT_INTERNALS} is on `client`, with its kind.
 *
 * @throws {MqttConnectError} code "CONNECT_REJECTED", naming the member and mqtt.js's version.
 */
export function checkInternals(client: MqttClient): void {
  for (const [path, kind] of Object.entries(MQTT_INTERNALS)) {
    let value: unknown = client;
    for (const key of path.split(".")) value = (value as Record<string, unknown> | null)?.[key];
    const fits = kind === "Set" ? value instanceof Set : typeof value === kind && value !== null;
    if (fits) continue;
    const found = value === undefined ? "missing" : value === null ? "null" : an(typeof value);
    throw new MqttConnectError(
      "CONNECT_REJECTED",
      `Cannot connect with ${mqttVersion(client)} as its client's '${path}' must be ${
        an(kind)
      }: it is ${found} (mqtt-streams relies on this part of mqtt.js's insides and is built for ${REQUIRED}: install mqtt@~5.16.0)`,
      0,
    );
  }
}

/** "a function", "an object". */
function an(kind: string): string {
  return `${/^[aeiou]/.test(kind) ? "an" : "a"} ${kind}`;
}

/** "mqtt.js 5.16.0", from the client's class (MqttClient.VERSION), or "this mqtt.js". */
function mqttVersion(client: MqttClient): string {
  const version = (client.constructor as { VERSION?: unknown }).VERSION;
  return typeof version === "string" ? `mqtt.js ${version}` : "this mqtt.js";
}

/**
 * A new mqtt.js client for `options` (with `manualConnect`), over the runtime's own WebSocket
 * for ws:// and wss:// where there is one, checked and adapted.
 *
 * @throws {MqttConnectError} When mqtt.js lacks a member this adapter needs.
 * @throws {MqttOptionsError} When TLS options are given for wss:// on a runtime whose
 *   WebSocket cannot take them.
 */
export async function adapt(options: IClientOptions): Promise<MqttAdapter> {
  const client = wantsRuntimeWebSocket(options)
    ? (await import("./runtime/websocket.ts")).webSocketClient(options)
    : mqtt.connect(options);
  return new MqttAdapter(client);
}

/**
 * mqtt.js's name for an MQTT 5 reason code ("Not authorized"), if it has one. Read off the
 * default export: mqtt.js's browser build (dist/mqtt.esm.js) has no named exports.
 */
export function reasonName(code: number): string | undefined {
  return (mqtt.ReasonCodes as Record<number, string | undefined>)[code];
}

/** One mqtt.js client, through the ports of _ports.ts; the Connection holds it. */
export class MqttAdapter
  implements InboundPort, OutboundPort, IdlingPort, OutgoingRegistry, AuthPort {
  /** The client, for its documented API (connect, end, events, subscribe, options). */
  readonly client: MqttClient;
  readonly #internals: Internals;
  /** mqtt.js's own _sendPacket, past the interception. */
  readonly #send: Internals["_sendPacket"];

  /** @throws {MqttConnectError} When `client` lacks a member of {@linkcode MQTT_INTERNALS}. */
  constructor(client: MqttClient) {
    checkInternals(client);
    this.client = client;
    this.#internals = client as unknown as Internals;
    this.#send = this.#internals._sendPacket.bind(client);
  }

  get connected(): boolean {
    return this.client.connected;
  }

  get keepalive(): number {
    return this.client.keepalive;
  }

  sendPing(): void {
    this.client.sendPing();
  }

  reschedulePing(force?: boolean): void {
    this.client.reschedulePing(force);
  }

  interceptAcks(hold: (packet: Packet) => boolean): void {
    const send = this.#send;
    // Every packet mqtt.js sends passes here, publishes included: one comparison for them.
    this.#internals._sendPacket = (packet, cb, cbStorePut, noStore) => {
      const { cmd } = packet;
      const ack = cmd === "puback" || cmd === "pubrec" || cmd === "pubcomp";
      if (ack && hold(packet)) return cb?.();
      send(packet, cb, cbStorePut, noStore);
    };
  }

  sendAck(packet: Packet): void {
    this.#send(packet);
  }

  handleMessages(handle: (packet: IPublishPacket, done: (error?: Error) => void) => void): void {
    this.#internals.handleMessage = handle;
  }

  handleQoS2Publishes(
    handle: (packet: IPublishPacket, done: (error?: Error) => void) => void,
  ): void {
    // mqtt.js's documented hook: `done(0)` lets it store the message and send PUBREC.
    this.client.options.customHandleAcks = (_topic, _message, packet, done) => {
      if (packet.qos !== 2) return done(0);
      handle(packet, (error) => error ? done(error) : done(0));
    };
  }

  trackIncomingQoS2(onNew: (tracked: number) => void): void {
    const internals = this.#internals;
    internals._trackIncomingQoS2Publish = (messageId) => {
      const ids = internals._incomingQoS2Ids;
      if (!ids.has(messageId)) {
        onNew(ids.size);
        ids.add(messageId);
      }
      return true;
    };
  }

  tracksIncomingQoS2(messageId: number): boolean {
    return this.#internals._incomingQoS2Ids.has(messageId);
  }

  keepingIncoming(run: () => void): void {
    const store = this.#internals.incomingStore;
    // The store's del is a method of its class, shadowed for the call; an own one is put back.
    const own = Object.getOwnPropertyDescriptor(store, "del");
    store.del = () => store;
    try {
      run();
    } finally {
      if (own) Object.defineProperty(store, "del", own);
      else delete (store as Partial<Internals["incomingStore"]>).del;
    }
  }

  deleteIncoming(messageId: number): void {
    // A file store that cannot write says so through its `failure` (see _stores.ts).
    this.#internals.incomingStore.del({ messageId }, () => {});
  }

  get receiveMaximum(): number | undefined {
    return this.client.serverProperties?.receiveMaximum;
  }

  get maximumPacketSize(): number | undefined {
    return this.client.serverProperties?.maximumPacketSize;
  }

  publish(
    topic: string,
    payload: Uint8Array | string,
    options: PublishOptions,
    callback: (error?: Error) => void,
  ): void {
    // mqtt.js types the payload as a string or Buffer, correlationData as a Buffer and
    // cbStorePut without its error: mqtt-packet writes any Uint8Array, and mqtt.js does
    // call cbStorePut with an error when it drops a publish it had queued.
    this.client.publish(topic, payload as string, options as IClientPublishOptions, callback);
  }

  listen(event: "packetreceive", listener: (packet: Packet) => void): () => void;
  listen(event: "close", listener: () => void): () => void;
  listen(event: "packetreceive" | "close", listener: (packet: Packet) => void): () => void {
    this.client.on(event, listener);
    return () => void this.client.removeListener(event, listener);
  }

  get #socket(): Socket | undefined {
    return this.client.stream as unknown as Socket | undefined;
  }

  cork(): boolean {
    const socket = this.#socket;
    if (!socket?.cork) return false;
    socket.cork();
    return true;
  }

  uncork(): void {
    this.#socket?.uncork?.();
  }

  get socketFull(): boolean {
    const socket = this.#socket;
    return (socket?.writableLength ?? 0) >= (socket?.writableHighWaterMark ?? Infinity);
  }

  outgoingIds(): number[] {
    return Object.keys(this.#internals.outgoing).map(Number);
  }

  storedOutgoing(messageId: number, callback: (packet: Packet | undefined) => void): void {
    this.#internals.outgoingStore.get({ messageId }, (error, packet) => {
      callback(error ? undefined : packet);
    });
  }

  dropOutgoing(messageId: number, error: Error): void {
    const entry = this.#internals.outgoing[messageId];
    if (!entry) return;
    this.#internals._removeOutgoingAndStoreMessage(messageId, () => entry.cb(error));
  }

  registerOutgoing(messageId: number, cb: (error?: Error) => void): void {
    this.#internals.outgoing[messageId] = { volatile: false, cmd: "publish", cb };
  }

  useTimers(
    timers: { set(tick: () => void, ms: number): unknown; clear(timer: unknown): void },
  ): void {
    this.client.options.timerVariant = {
      // mqtt.js types a timer as a number (Deno's and browsers' are; Node's and Bun's are
      // objects): it only hands it back to clear.
      set: (tick: () => void, ms: number) => timers.set(tick, ms) as number,
      clear: (timer: unknown) => timers.clear(timer),
    };
  }

  get canUnref(): boolean {
    return typeof this.#socket?.unref === "function";
  }

  refSocket(ref: boolean): void {
    const socket = this.#socket;
    if (ref) socket?.ref?.();
    else socket?.unref?.();
  }

  /**
   * Calls `prepare` with mqtt.js's client options before each attempt builds its transport
   * (the options its builders read), then `guard` with the transport built.
   */
  eachAttempt(prepare: (options: IClientOptions) => void, guard: (transport: Pipeable) => void) {
    const internals = this.#internals;
    const build = internals.streamBuilder;
    internals.streamBuilder = (client) => {
      prepare(client.options);
      const transport = build(client);
      guard(transport);
      return transport;
    };
  }

  /**
   * Makes each reconnect mqtt.js's timer starts wait for `prepare` (the init's hooks, which
   * may be async): the timer is stopped meanwhile, and the attempt starts only if `prepare`
   * resolves true. One that resolves false arms the next attempt itself, or ends the
   * connection (see {@linkcode rearmReconnect}).
   */
  beforeReconnect(prepare: () => Promise<boolean>): void {
    const internals = this.#internals;
    const reconnect = internals._reconnect.bind(this.client);
    let preparing = false;
    internals._reconnect = () => {
      if (preparing) return;
      preparing = true;
      internals._clearReconnect();
      // prepare() never rejects: a failure is its attempt's, said where it is handled.
      prepare().then((go) => {
        preparing = false;
        if (go) reconnect();
      });
    };
  }

  /** Arms mqtt.js's reconnect timer with its options.reconnectPeriod (after a failed prepare). */
  rearmReconnect(): void {
    this.#internals._setupReconnect();
  }

  /** No further attempt: a period of 0 arms none, and an armed timer is stopped. */
  stopReconnecting(): void {
    this.client.options.reconnectPeriod = 0;
    this.#internals._clearReconnect();
  }

  handleAuth(
    answer: (packet: AuthPacket, reply: (error?: Error, packet?: AuthPacket) => void) => void,
  ): void {
    this.#internals.handleAuth = answer;
  }

  sendAuth(packet: AuthPacket): void {
    this.#send(packet as unknown as Packet);
  }

  /** Fails the unanswered SUBSCRIBE/UNSUBSCRIBE packets, as mqtt.js does on a close. */
  flushVolatile(): void {
    this.#internals._flushVolatile();
  }

  /** Whether QoS 1/2 packets await the broker's answer. */
  get awaitingAnswers(): boolean {
    return this.outgoingIds().length > 0;
  }

  /** Whether there is a transport (there is none before connect() built one). */
  get hasTransport(): boolean {
    return Boolean(this.client.stream);
  }

  /** Writes `bytes` to the socket and calls `done` once written; false when it cannot write. */
  write(bytes: Uint8Array, done: () => void): boolean {
    const socket = this.#socket;
    if (!socket?.write) return false;
    socket.write(bytes, done);
    return true;
  }

  /** Destroys the transport at once, if there is one: its close ends the attempt. */
  destroySocket(): void {
    this.#socket?.destroy?.();
  }

  /** The error the transport died of, when mqtt.js swallowed it (errors without a code). */
  get socketError(): unknown {
    return this.#socket?.errored;
  }
}
