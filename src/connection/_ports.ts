// What the rest of src/connection/ needs of mqtt.js, as small typed ports: the adapter
// (_mqtt.ts) implements them over a real client, and tests/connection/inbound_test.ts and
// outbound_test.ts over a fake, without a broker. Nothing here knows mqtt.js's insides.
import type { IPublishPacket, Packet } from "mqtt";
import type { MqttPublishProperties } from "../record.ts";
import type { KeepAliveClient } from "./_keepalive.ts";

/** What the inbound side (_inbound.ts) needs of mqtt.js. */
export interface InboundPort extends KeepAliveClient {
  /**
   * Every PUBACK, PUBREC and PUBCOMP mqtt.js sends goes to `hold` first: one it returns true
   * for is kept (mqtt.js goes on as if it had left), the rest leave now.
   */
  interceptAcks(hold: (packet: Packet) => boolean): void;
  /** Sends a packet `hold` kept, past the interception. */
  sendAck(packet: Packet): void;
  /**
   * Takes over mqtt.js's `handleMessage`: `handle` gets each incoming PUBLISH (QoS 0/1 on
   * arrival, QoS 2 on PUBREL) and calls `done` when mqtt.js may send its acknowledgement
   * and read on; with an error, mqtt.js sends none and reads on.
   */
  handleMessages(handle: (packet: IPublishPacket, done: (error?: Error) => void) => void): void;
  /**
   * Hands each QoS 2 PUBLISH to `handle` on arrival, before mqtt.js stores it and sends
   * PUBREC (mqtt.js's `customHandleAcks`); with an error, mqtt.js sends no PUBREC, emits the
   * error and reads on.
   */
  handleQoS2Publishes(
    handle: (packet: IPublishPacket, done: (error?: Error) => void) => void,
  ): void;
  /**
   * mqtt.js tracks each QoS 2 id from PUBREC to PUBCOMP and ends the connection when more
   * than its Receive Maximum are tracked; from now on it never ends it, and `onNew` is told
   * how many ids were tracked before each new one.
   */
  trackIncomingQoS2(onNew: (tracked: number) => void): void;
  /** Whether mqtt.js tracks `messageId` between PUBREC and PUBCOMP. */
  tracksIncomingQoS2(messageId: number): boolean;
  /** Runs `run` (an mqtt.js callback) with mqtt.js's deletes from its incoming store skipped. */
  keepingIncoming(run: () => void): void;
  /** Deletes the QoS 2 message `messageId` from mqtt.js's incoming store. */
  deleteIncoming(messageId: number): void;
}

/** What a publish asks of mqtt.js, besides topic and payload. */
export interface PublishOptions {
  qos: 0 | 1 | 2;
  retain: boolean;
  properties?: MqttPublishProperties;
  /** Called once mqtt.js's store holds a QoS 1/2 publish; with an error when it dropped it. */
  cbStorePut?: (error?: Error) => void;
}

/** What the outbound side (_outbound.ts) needs of mqtt.js. */
export interface OutboundPort {
  readonly connected: boolean;
  /** The broker's Receive Maximum from its latest CONNACK (MQTT 5), if it said. */
  readonly receiveMaximum: number | undefined;
  /** The broker's Maximum Packet Size from its latest CONNACK (MQTT 5), if it said. */
  readonly maximumPacketSize: number | undefined;
  publish(
    topic: string,
    payload: Uint8Array | string,
    options: PublishOptions,
    callback: (error?: Error) => void,
  ): void;
  sendPing(): void;
  /** Adds an mqtt.js event listener; returns the function that removes it. */
  listen(event: "packetreceive", listener: (packet: Packet) => void): () => void;
  listen(event: "close", listener: () => void): () => void;
  /** Holds the socket's writes until {@linkcode uncork}; false when the transport cannot. */
  cork(): boolean;
  uncork(): void;
  /** Whether a socket buffer's worth (its highWaterMark) waits to be written. */
  readonly socketFull: boolean;
  /** The packet identifiers of the QoS 1/2 packets awaiting the broker's answer. */
  outgoingIds(): number[];
  /** The packet mqtt.js's outgoing store holds for `messageId` (undefined on an error). */
  storedOutgoing(messageId: number, callback: (packet: Packet | undefined) => void): void;
  /** Forgets `messageId`'s packet (store and table) and fails its publish with `error`. */
  dropOutgoing(messageId: number, error: Error): void;
}

/** What idling (_timers.ts) needs of mqtt.js. */
export interface IdlingPort {
  /** Makes mqtt.js's keep-alive run on these timers (its documented `timerVariant`). */
  useTimers(
    timers: { set(tick: () => void, ms: number): unknown; clear(timer: unknown): void },
  ): void;
  /** Whether the transport is a socket that can be unref'd (TCP, TLS; not a WebSocket). */
  readonly canUnref: boolean;
  /** Refs (the process waits for it) or unrefs the socket. */
  refSocket(ref: boolean): void;
}

/** What the file store's accounts (_stores.ts) need of mqtt.js. */
export interface OutgoingRegistry {
  /** Registers `cb` as the answer to the publish `messageId`, recovered from the store. */
  registerOutgoing(messageId: number, cb: (error?: Error) => void): void;
}

/** An MQTT 5 AUTH packet (§3.15), as enhanced authentication (_auth.ts) sends and reads it. */
export interface AuthPacket {
  cmd: "auth";
  /** 0x00 Success, 0x18 Continue authentication, 0x19 Re-authenticate. */
  reasonCode: number;
  properties?: { authenticationMethod?: string; authenticationData?: Uint8Array };
}

/** What enhanced authentication (_auth.ts) needs of mqtt.js. */
export interface AuthPort {
  readonly connected: boolean;
  /**
   * Takes over mqtt.js's answer to the broker's AUTH packets: `answer` gets each one and
   * calls `reply` with the AUTH to send back (a challenge's answer), with nothing (the
   * exchange succeeded), or with an error, which ends the attempt or connection with it.
   */
  handleAuth(
    answer: (packet: AuthPacket, reply: (error?: Error, packet?: AuthPacket) => void) => void,
  ): void;
  /** Sends an AUTH packet (a re-authentication's 0x19) on the current connection. */
  sendAuth(packet: AuthPacket): void;
  /** Destroys the transport at once: its close ends the attempt or connection. */
  destroySocket(): void;
}
