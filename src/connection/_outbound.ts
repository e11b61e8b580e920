// The publishing side of a connection, the mirror of _inbound.ts: where a publish is sent
// and where its acknowledgement settles it. It keeps the broker's window, batches what a
// pipe writes into few socket writes, confirms QoS 0 with a PINGREQ, repairs QoS 2
// publishes whose session the broker lost, and turns mqtt.js's failures into an
// `Unsettled` that says what to do (send again, or a refusal with its reason code), so that
// no one outside this file reads mqtt.js's error texts.
//
// Flow control (MQTT 5 §4.9): the broker's Receive Maximum, from CONNACK, bounds the QoS
// 1/2 publishes in flight on the connection, shared by every sink on a cached one; each
// sink keeps its own share (maxInflight) on top. mqtt.js keeps every unacknowledged QoS 1/2
// publish in its outgoing store and sends it again after a reconnect, before it emits
// 'connect'; it has no window of its own.
//
// mqtt.js is reached through the OutboundPort (_ports.ts) of its adapter (_mqtt.ts), which
// tests/connection/outbound_test.ts fakes.
import { MqttRecordError } from "../errors.ts";
import type { MqttOptions } from "../options/options.ts";
import type { Publish } from "../record.ts";
import { showValue } from "../_redact.ts";
import { MQTT_LARGEST_PACKET, publishSize } from "./_packet_size.ts";
import { reasonName } from "./_mqtt.ts";
import type { OutboundPort, PublishOptions } from "./_ports.ts";

/** MQTT 5's Receive Maximum when the CONNACK does not say (MQTT 5 §3.2.2.3.3). */
const DEFAULT_RECEIVE_MAXIMUM = 65_535;

/**
 * The text of the error mqtt.js 5.16 fails a publish with when the connection closes
 * before its acknowledgement (`_flush`, `_flushVolatile`, `_flushStoreProcessingQueue`).
 * mqtt.js gives no code for it; this is the one place that reads it, and
 * tests/connection/connection_test.ts pins it against mqtt.js itself.
 */
const MQTT_CONNECTION_CLOSED = "Connection closed";

/**
 * A QoS 2 publish the broker forgot between PUBREC and PUBCOMP (the session was not
 * resumed): never refused, it must be published again.
 */
class SessionLost extends Error {
  constructor() {
    super("The broker lost the session before this QoS 2 publish completed");
  }
}

/** Why a QoS 1/2 publish did not complete, in the terms a sink decides on. */
export interface Unsettled {
  /**
   * "dropped": the connection closed or the session was lost before the broker answered;
   * never refused, so send it again. "refused": the broker answered with a reason code of
   * 0x80 or more (MQTT 5 §3.4.2.1). "failed": anything else mqtt.js failed it with.
   */
  readonly kind: "dropped" | "refused" | "failed";
  /** The broker's reason code, when it refused. */
  readonly reasonCode?: number;
  /** The reason code's name as words in a sentence ("not authorized"), when it refused. */
  readonly reason?: string;
  readonly error: Error;
}

/** What mqtt.js's publish callback `error` means (see {@linkcode Unsettled}). */
export function unsettled(error: Error): Unsettled {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "number") {
    return { kind: "refused", reasonCode: code, reason: reasonText(code), error };
  }
  const dropped = error instanceof SessionLost || error.message === MQTT_CONNECTION_CLOSED;
  return { kind: dropped ? "dropped" : "failed", error };
}

/** mqtt.js's name for an MQTT 5 reason code, as words in a sentence ("not authorized"). */
function reasonText(code: number): string {
  const name = reasonName(code) ?? "unknown reason code";
  // Lower-case a leading capital, but not an acronym such as "QoS".
  return name.replace(/^[A-Z](?=[a-z]+\b)/, (first) => first.toLowerCase());
}

/**
 * Runs `fn` once the current turn of the event loop, its I/O callbacks included, is over:
 * setImmediate where the runtime has it (Deno, Bun, Node). setTimeout(0) would wait for a
 * timer tick (1 ms or more), and every batch would wait that long.
 */
const afterIo: (fn: () => void) => void =
  (globalThis as { setImmediate?: (fn: () => void) => void }).setImmediate ??
    ((fn) => setTimeout(fn, 0));

/**
 * The QoS 1/2 publishes in flight on one connection, against the broker's Receive
 * Maximum (MQTT 3.1.1 has none: 65,535). `changed()` wakes a sink waiting for room or for
 * the connection to come back.
 */
export class PublishWindow {
  #inflight = 0;
  readonly #port: Pick<OutboundPort, "connected" | "receiveMaximum">;
  #waiters: (() => void)[] = [];

  constructor(port: Pick<OutboundPort, "connected" | "receiveMaximum">) {
    this.#port = port;
  }

  /** Publishes sent and not yet acknowledged, by every sink on the connection. */
  get inflight(): number {
    return this.#inflight;
  }

  /** The broker's Receive Maximum, from the latest CONNACK. */
  get limit(): number {
    return this.#port.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM;
  }

  /** Whether another publish may go out now: connected, and the broker's window has room. */
  get open(): boolean {
    return this.#port.connected && this.#inflight < this.limit;
  }

  /** A publish goes out: it holds a slot until {@linkcode give}. */
  take(): void {
    this.#inflight++;
  }

  /** A publish settled (or was given up): its slot is free, and waiters wake. */
  give(): void {
    this.#inflight--;
    this.wake();
  }

  /** Resolves at the next acknowledgement, connect, disconnect or end of the connection. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  wake(): void {
    for (const resolve of this.#waiters.splice(0)) resolve();
  }
}

/** Publishes on one mqtt.js client, and settles them. */
export class Outbound {
  readonly window: PublishWindow;
  readonly #port: OutboundPort;
  readonly #mqttVersion: number;
  #corked = false;

  /** `closed` settles when the connection is over (it never rejects): waiters wake then. */
  constructor(
    port: OutboundPort,
    options: Pick<MqttOptions, "mqttVersion">,
    closed: Promise<unknown>,
  ) {
    this.#port = port;
    this.#mqttVersion = options.mqttVersion;
    this.window = new PublishWindow(port);
    const wake = () => this.window.wake();
    closed.then(wake, wake);
  }

  /**
   * A CONNACK arrived, before mqtt.js replays its store (called by the Connection after
   * the inbound side and the store).
   */
  connack(resumed: boolean): void {
    if (!resumed) this.#forgetReleases();
  }

  /**
   * Refuses a publish the broker could not take, before anything is sent: over its CONNACK
   * Maximum Packet Size (MQTT 5 §3.2.2.3.6, which it would answer by disconnecting, and
   * the session's resend would meet the same), or over what MQTT can frame at all.
   *
   * @throws {MqttRecordError} Naming the chunk, its size and the limit.
   */
  checkSize(publish: Publish): void {
    const brokerLimit = this.#port.maximumPacketSize;
    const limit = Math.min(brokerLimit ?? MQTT_LARGEST_PACKET, MQTT_LARGEST_PACKET);
    // Most records are far below any limit: bound their size without counting UTF-8.
    const { payload, topic, properties } = publish;
    const payloadMax = typeof payload === "string" ? payload.length * 3 : payload.length;
    if (!properties && payloadMax + topic.length * 3 + 16 <= limit) return;
    const size = publishSize(publish, this.#mqttVersion);
    if (size <= limit) return;
    const whose = brokerLimit !== undefined && brokerLimit < MQTT_LARGEST_PACKET
      ? "the broker's Maximum Packet Size (CONNACK)"
      : "the largest packet MQTT can send";
    throw new MqttRecordError(
      `Cannot publish chunk #${publish.index} to '${
        showValue(publish.topic)
      }' as its PUBLISH packet is ${size} bytes, over ${whose} of ${limit} bytes`,
      publish.index,
    );
  }

  /**
   * Sends a QoS 1/2 publish. `stored` runs once mqtt.js's store holds it (at once with
   * persistence=memory); `settled` runs once the broker acknowledged it (undefined), or
   * with why it did not complete. A publish unacknowledged when the connection drops stays
   * in mqtt.js's store and is sent again on the next CONNACK, without settling.
   */
  publish(
    publish: Publish,
    settled: (publish: Publish, failure: Unsettled | undefined) => void,
    stored: (publish: Publish) => void,
  ): void {
    this.batch();
    const options = packetOptions(publish);
    // mqtt.js calls it with an error when it drops a publish it had queued.
    options.cbStorePut = (error) => error || stored(publish);
    this.#port.publish(
      publish.topic,
      compact(publish.payload),
      options,
      (error) => settled(publish, error ? unsettled(error) : undefined),
    );
  }

  /**
   * Writes a QoS 0 publish; no acknowledgement will come. mqtt.js calls `written` at once
   * when the socket takes the bytes, later when its buffer is full (then what is batched
   * is sent, so that it drains), with an error when the connection is down.
   */
  publishQoS0(publish: Publish, written: (error?: Error) => void): void {
    this.batch();
    this.#port.publish(publish.topic, publish.payload, packetOptions(publish), written);
  }

  /**
   * Holds what is written to the socket until the current task ends, or until a socket
   * buffer's worth (its highWaterMark) is waiting, and sends it in one write. mqtt.js's
   * packet writer corks only until the next tick, and a stream's writes each run in a
   * microtask of their own, so without this every publish of a pipe costs a system call.
   */
  batch(): void {
    if (!this.#corked) {
      if (!this.#port.cork()) return;
      this.#corked = true;
      afterIo(() => this.sendBatch());
    } else if (this.#port.socketFull) {
      this.sendBatch();
    }
  }

  /** Sends what {@linkcode batch} holds now: the writer is about to wait for the broker. */
  sendBatch(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#port.uncork();
  }

  /**
   * Resolves once the broker has read everything written so far: it answers a PINGREQ
   * sent after it, and TCP keeps order. QoS 0 publishes have no other confirmation.
   *
   * @throws {Error} When the connection closes first.
   */
  flush(): Promise<void> {
    const port = this.#port;
    return new Promise((resolve, reject) => {
      let unlisten = () => {};
      const closed = () => {
        unlisten();
        reject(new Error("the connection closed before the broker confirmed the QoS 0 publishes"));
      };
      if (!port.connected) return closed();
      const offPacket = port.listen("packetreceive", (packet) => {
        if (packet.cmd !== "pingresp") return;
        unlisten();
        resolve();
      });
      const offClose = port.listen("close", closed);
      unlisten = () => {
        offPacket();
        offClose();
      };
      port.sendPing();
      this.sendBatch();
    });
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
    const port = this.#port;
    for (const id of port.outgoingIds()) {
      // mqtt.js's memory store answers get and del synchronously, before the replay.
      port.storedOutgoing(id, (stored) => {
        if (stored?.cmd === "pubrel") port.dropOutgoing(id, new SessionLost());
      });
    }
  }
}

/**
 * `payload` in a buffer of its own size. mqtt.js stores each QoS 1/2 publish as a deep copy
 * (rfdc, in _storeAndSend), which copies a Buffer's bytes but a plain Uint8Array's whole
 * backing ArrayBuffer: for a message read from a socket, a view into a 64 to 128 KiB read
 * buffer, copied for every bridged message and held until its PUBACK (60% of Bun's CPU,
 * in ArrayBuffer.prototype.slice). The benchmark's QoS 1 bridge of 64 B messages, before
 * and after: 18,662 → 48,761 msg/s on Bun, 34,737 → 59,015 on Deno.
 */
function compact(payload: Uint8Array | string): Uint8Array | string {
  if (typeof payload === "string") return payload;
  return payload.byteLength === payload.buffer.byteLength ? payload : payload.slice();
}

/** mqtt.js's options for sending `publish`. */
function packetOptions(publish: Publish): PublishOptions {
  return { qos: publish.qos, retain: publish.retain, properties: publish.properties };
}
