// The receiving side of a connection (the mirror of _outbound.ts): it takes over incoming
// PUBLISH handling so that a source can acknowledge a message when its consumer reads it,
// not when it arrives.
//
// mqtt.js 5.16 handles incoming packets one at a time: a PUBLISH goes to `handleMessage`,
// and only when its callback runs does mqtt.js send the PUBACK (QoS 1) or PUBCOMP (QoS 2,
// on PUBREL) and go on to the next packet, PINGRESP included. Holding that callback to
// defer an acknowledgement would stall every later packet, and mqtt.js would end the
// connection with "Keepalive timeout" after 1.5 × keepAlive (mqtt.js #1935).
//
// So the callback runs at once, and the acknowledgement is taken out of it instead: every
// PUBACK/PUBCOMP leaves through `_sendPacket`, where it is caught and kept until the source
// releases it. Packets keep flowing (PINGRESP too), and the broker's window (MQTT 5 §4.9
// Receive Maximum, or its own in-flight limit) stops it sending more than the source holds.
//
// QoS 2 (MQTT 5 §4.3.3) depends on the store. mqtt.js sends PUBREC on arrival and
// delivers on PUBREL; once the broker has the PUBREC it never sends the PUBLISH again, only
// its PUBREL. With persistence=file the message waits in the file store, so a later run
// delivers it when that PUBREL comes, and the PUBCOMP is what waits for the consumer. With
// persistence=memory a message not yet read when the source ended (cancelled, or the
// process killed) would be gone while the broker counted it received: so there the PUBREC
// is what waits for the consumer, as a PUBACK does, and the message is delivered on
// PUBLISH. Unread, it comes again (DUP) when the session resumes: exactly once within a
// process (a resent PUBLISH is matched to the message already delivered), at least once
// across a restart, like QoS 1.
//
// Only a broker that sends past that window (MQTT 3.1.1 has none in the protocol, and
// mosquitto 2.0.11 over-sends under MQTT 5) makes the source pause: its `deliver` returns a
// promise, the callback waits for it, mqtt.js stops reading the socket, and TCP holds the
// rest at the broker; _keepalive.ts keeps the session alive meanwhile.
//
// Every lever on mqtt.js is pulled through the InboundPort (_ports.ts) of its adapter
// (_mqtt.ts), which tests/connection/inbound_test.ts fakes.
import type { IPublishPacket, Packet } from "mqtt";
import type { IncomingPublish } from "../message.ts";
import type { MqttOptions } from "../options/options.ts";
import { PausedKeepAlive } from "./_keepalive.ts";
import type { InboundPort } from "./_ports.ts";

/** The acknowledgement of one incoming QoS 1/2 message, kept until released. */
export interface Ack {
  /** The QoS of the message: 1 (PUBACK) or 2 (PUBCOMP). */
  readonly qos: 1 | 2;
  /**
   * Lets the acknowledgement go. It leaves once every earlier message's has, so the broker
   * sees acknowledgements in arrival order (MQTT 5 §4.6). Idempotent.
   */
  release(): void;
}

/**
 * Takes one incoming message. Returning a promise pauses the reading of packets until it
 * settles. It should neither throw nor reject: if it does, its message is not acknowledged
 * (the broker keeps it and sends it again when the session resumes) and reading goes on;
 * the error is the deliverer's to report.
 */
export type Deliver = (publish: IncomingPublish, ack: Ack | undefined) => void | Promise<void>;

/**
 * What a `deliver` that threw or rejected fails its message with in mqtt.js. mqtt.js emits
 * it as an 'error' for a QoS 2 PUBLISH with PUBREC held; the Connection knows it for what it
 * is, a message not taken, not a failure of the connection.
 */
export class DeliveryFailed extends Error {
  constructor(cause: unknown) {
    super("the message was not delivered (its deliver threw or rejected)", { cause });
  }
}

class PendingAck implements Ack {
  /** The PUBACK/PUBREC/PUBCOMP mqtt.js built, once it has. */
  packet?: Packet;
  /**
   * QoS 2: its message is in mqtt.js's incoming store under `messageId` until released, and
   * the id cannot name another message meanwhile (no PUBCOMP has left, the session holds).
   */
  stored = false;
  released = false;
  /** In the arrival-order queue of the current connection. */
  queued = true;
  /** Its deliver failed: never acknowledged, so that the broker sends the message again. */
  withdrawn = false;
  constructor(
    readonly qos: 1 | 2,
    readonly messageId: number,
    /** The connection it arrived on: an acknowledgement never crosses to another. */
    public epoch: number,
    readonly inbound: Inbound,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.inbound.released(this);
  }
}

/** Incoming messages with deferred, ordered acknowledgements, on one mqtt.js client. */
export class Inbound {
  /** Acknowledgements sent to the broker. */
  acked = 0;
  /** QoS 1/2 messages that arrived while `maxInflight` were already unacknowledged. */
  beyondWindow = 0;
  readonly #port: InboundPort;
  /** The window: `maxInflight`. */
  readonly #maxInflight: number;
  /** Counts connections: a new one begins at every 'close'. */
  #epoch = 0;
  /** This connection's unsent acknowledgements, in arrival order. */
  #queue: PendingAck[] = [];
  /** QoS 2 messages delivered on an earlier connection whose PUBREL the broker will send again. */
  #awaitingPubrel = new Map<number, PendingAck>();
  /**
   * persistence=memory: QoS 2 messages delivered on an earlier connection without their
   * PUBREC sent; a resumed session sends their PUBLISH again, which is not delivered twice.
   */
  #awaitingPublish = new Map<number, PendingAck>();
  /** persistence=memory: QoS 2 is acknowledged with PUBREC, and delivered on PUBLISH. */
  readonly #holdsPubrec: boolean;
  /** The acknowledgement whose packet mqtt.js is about to send. */
  #capturing?: PendingAck;
  readonly #keepAlive: PausedKeepAlive;

  /** Installs itself on mqtt.js through `port`; `options.maxInflight` is the window. */
  constructor(
    port: InboundPort,
    deliver: Deliver,
    options: Pick<MqttOptions, "maxInflight" | "persistence">,
  ) {
    this.#port = port;
    this.#maxInflight = options.maxInflight;
    this.#keepAlive = new PausedKeepAlive(port);
    this.#holdsPubrec = options.persistence === "memory";
    const held = this.#holdsPubrec ? "pubrec" : "pubcomp";
    port.interceptAcks((packet) =>
      (packet.cmd === "puback" || packet.cmd === held) && this.#capture(packet)
    );
    port.handleMessages((packet, callback) => this.#handle(packet, callback, deliver));
    if (this.#holdsPubrec) {
      port.handleQoS2Publishes((packet, done) => this.#arrive(packet, done, deliver));
    }
    // mqtt.js ends the connection when more QoS 2 messages than its receiveMaximum await
    // PUBREL. A broker that over-sends (mosquitto 2.0.11) would then never get through, so
    // the message is counted, kept, and the pause below bounds what follows.
    port.trackIncomingQoS2((tracked) => {
      // With PUBREC held, the message is counted in unacked already (see #arrive).
      if (this.unacked + tracked >= this.#maxInflight && !this.#holdsPubrec) this.beyondWindow++;
    });
  }

  /** Delivered QoS 1/2 messages whose acknowledgement has not been sent. */
  get unacked(): number {
    return this.#queue.length + this.#awaitingPubrel.size + this.#awaitingPublish.size;
  }

  /** Whether the reading of packets is paused (a message is held until there is room). */
  get paused(): boolean {
    return this.#keepAlive.paused;
  }

  /** Stops the keep-alive timer of a pause; called when the connection ends. */
  dispose(): void {
    this.#keepAlive.dispose();
  }

  #handle(packet: IPublishPacket, callback: (error?: Error) => void, deliver: Deliver): void {
    const proceed = (ack: PendingAck | undefined) => {
      this.#capturing = ack;
      // On PUBREL, mqtt.js deletes a QoS 2 message from its incoming store in this callback.
      // Deleted before the consumer read it, a message whose process then died would be
      // lost: the broker sends PUBREL again, and mqtt.js answers PUBCOMP for a message it
      // no longer has. So that delete is skipped, and the message deleted when released.
      try {
        if (ack?.qos === 2) this.#port.keepingIncoming(() => callback());
        else callback();
      } finally {
        this.#capturing = undefined;
      }
    };
    const { qos, messageId } = packet;
    // With PUBREC held, mqtt.js hands over a QoS 2 message on PUBREL, after the consumer
    // had it at PUBLISH (#arrive): its PUBCOMP may leave at once.
    if (qos === 2 && this.#holdsPubrec) return callback();
    // The broker sent PUBREL again after a reconnect for a message already delivered,
    // and mqtt.js still had it stored: its PUBCOMP is the old delivery's, not a new one.
    const again = qos === 2 ? this.#takeAwaiting(messageId!) : undefined;
    if (again) return proceed(again);
    let ack: PendingAck | undefined;
    if (qos > 0) {
      ack = new PendingAck(qos as 1 | 2, messageId!, this.#epoch, this);
      ack.stored = qos === 2;
      this.#queue.push(ack);
      if (qos === 1 && this.unacked > this.#maxInflight) this.beyondWindow++;
    }
    this.#deliver(packet, ack, deliver, () => proceed(ack), callback);
  }

  /**
   * Hands `packet` to `deliver`, then calls `proceed`: at once, or once the promise
   * `deliver` returned settles, with the reading of packets paused meanwhile. A deliver
   * that throws or rejects calls `fail` instead (see #failed).
   */
  #deliver(
    packet: IPublishPacket,
    ack: PendingAck | undefined,
    deliver: Deliver,
    proceed: () => void,
    fail: (error: Error) => void,
  ): void {
    let pending: void | Promise<void>;
    try {
      pending = deliver(packet as IncomingPublish, ack);
    } catch (error) {
      return this.#failed(ack, error, fail);
    }
    if (!pending) return proceed();
    this.#keepAlive.pause();
    pending.then(
      () => {
        this.#keepAlive.resume();
        proceed();
      },
      (error) => {
        this.#keepAlive.resume();
        this.#failed(ack, error, fail);
      },
    );
  }

  /**
   * `deliver` threw or rejected: the consumer may not have the message. Acknowledging it
   * would lose it, and waiting for a release that may never come would hold every later
   * acknowledgement behind it (MQTT 5 §4.6 order) and, with reading paused, stall the
   * connection for ever. So it is withdrawn: it leaves the arrival-order queue (the
   * acknowledgements behind it go on), no acknowledgement is ever sent for it, and mqtt.js
   * is told the message failed, which makes it send none either and read on. The broker
   * keeps an unacknowledged message and sends it again (DUP) when the session resumes (MQTT
   * 5 §4.4): at least once, as for a process that died holding it. A QoS 2 message of the
   * file store stays stored, for the PUBREL sent again to deliver it anew; the delivery
   * then owns it, so a late release of this one deletes nothing.
   */
  #failed(ack: PendingAck | undefined, error: unknown, fail: (error: Error) => void): void {
    if (ack) {
      ack.withdrawn = true;
      ack.stored = false;
      ack.packet = undefined;
      if (ack.queued) {
        ack.queued = false;
        this.#queue.splice(this.#queue.indexOf(ack), 1);
        this.#flush();
      }
      // Moved there by a drop while it was pending: its PUBREL or PUBLISH, sent again,
      // must deliver it anew, not answer for it.
      if (this.#awaitingPubrel.get(ack.messageId) === ack) {
        this.#awaitingPubrel.delete(ack.messageId);
      }
      if (this.#awaitingPublish.get(ack.messageId) === ack) {
        this.#awaitingPublish.delete(ack.messageId);
      }
    }
    fail(new DeliveryFailed(error));
  }

  /**
   * A QoS 2 PUBLISH, with PUBREC held (persistence=memory): delivered now, its PUBREC
   * caught by #capture when mqtt.js sends it. One the consumer already has (sent again
   * when the session resumed, or twice on one connection) is not delivered again.
   */
  #arrive(packet: IPublishPacket, proceed: (error?: Error) => void, deliver: Deliver): void {
    const messageId = packet.messageId!;
    const earlier = this.#awaitingPublish.get(messageId) ?? this.#queued(messageId);
    if (earlier) {
      this.#awaitingPublish.delete(messageId);
      if (earlier.epoch !== this.#epoch) {
        earlier.epoch = this.#epoch;
        earlier.queued = true;
        this.#queue.push(earlier);
      }
      return proceed();
    }
    // Its PUBREC left, and the connection dropped before the broker's PUBREL: the broker
    // sends the PUBLISH again (DUP), which must be answered with PUBREC and not delivered
    // again (MQTT 5 §4.3.3). mqtt.js tracks the id from PUBREC to PUBCOMP, across
    // reconnects of a resumed session.
    if (this.#port.tracksIncomingQoS2(messageId)) return proceed();
    const ack = new PendingAck(2, messageId, this.#epoch, this);
    this.#queue.push(ack);
    if (this.unacked > this.#maxInflight) this.beyondWindow++;
    this.#deliver(packet, ack, deliver, () => proceed(), proceed);
  }

  /** The acknowledgement of this connection's queue whose PUBREC is still owed for `messageId`. */
  #queued(messageId: number): PendingAck | undefined {
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      const ack = this.#queue[i];
      if (ack.messageId === messageId && ack.qos === 2) return ack;
    }
    return undefined;
  }

  /** Keeps mqtt.js's PUBACK/PUBCOMP for a message not yet released; false to let it go. */
  #capture(packet: Packet): boolean {
    const messageId = (packet as { messageId?: number }).messageId!;
    if (packet.cmd === "pubrec") {
      // Sent by mqtt.js right after #arrive, for a message in this connection's queue.
      const ack = this.#queued(messageId);
      if (!ack) return false;
      ack.packet = packet;
      this.#flush();
      return true;
    }
    const capturing = this.#capturing;
    if (capturing?.messageId === messageId) {
      // From a connection that is gone (a pause outlived it): the broker no longer
      // expects it, and the id may already name another message.
      if (capturing.epoch !== this.#epoch) return true;
      capturing.packet = packet;
      if (capturing.queued) this.#flush();
      else if (capturing.released) this.#transmit(capturing);
      return true;
    }
    // PUBREL re-sent for a QoS 2 message delivered before the reconnect (mqtt.js no
    // longer has it stored): answer when the consumer has read it.
    const again = packet.cmd === "pubcomp" ? this.#takeAwaiting(messageId) : undefined;
    if (!again) return false;
    again.packet = packet;
    this.#flush();
    return true;
  }

  /**
   * The QoS 2 acknowledgement awaiting PUBREL for `messageId`, moved to this connection's
   * queue: in the order its PUBREL came (MQTT 5 §4.6), and so that a drop before its PUBCOMP
   * left moves it back to await the next PUBREL, which must not deliver the message again.
   */
  #takeAwaiting(messageId: number): PendingAck | undefined {
    const ack = this.#awaitingPubrel.get(messageId);
    if (!ack) return undefined;
    this.#awaitingPubrel.delete(messageId);
    ack.epoch = this.#epoch;
    ack.queued = true;
    this.#queue.push(ack);
    return ack;
  }

  /** Called by an acknowledgement when released. */
  released(ack: PendingAck): void {
    // The consumer has the message: a process that restarts from the file store must not
    // deliver it again, even if it dies before the PUBCOMP leaves (which can be much later
    // when the message was held while reading paused, until mqtt.js reads on).
    this.#unstore(ack);
    if (ack.queued) this.#flush();
    else if (ack.packet && ack.epoch === this.#epoch) this.#transmit(ack);
  }

  /** Sends the released acknowledgements at the head of the queue, in arrival order. */
  #flush(): void {
    const queue = this.#queue;
    let sent = 0;
    while (sent < queue.length && queue[sent].released && queue[sent].packet) {
      queue[sent].queued = false;
      this.#transmit(queue[sent++]);
    }
    if (sent) queue.splice(0, sent);
  }

  #transmit(ack: PendingAck): void {
    // A withdrawn one (its deliver failed) is never acknowledged: mqtt.js was told it failed.
    if (ack.withdrawn || ack.epoch !== this.#epoch || !this.#port.connected || !ack.packet) return;
    const packet = ack.packet;
    ack.packet = undefined;
    this.#port.sendAck(packet);
    this.acked++;
  }

  /** The connection dropped: a new one begins (called by the Connection on 'close'). */
  disconnected(): void {
    this.#epoch++;
    // Unacknowledged QoS 1 messages come again (DUP) if the session resumes; their old
    // acknowledgements must not be sent. A QoS 2 message is not sent again, only its
    // PUBREL, whose PUBCOMP must wait for the consumer as before.
    for (const ack of this.#queue) {
      ack.queued = false;
      ack.packet = undefined;
      if (ack.qos !== 2) continue;
      if (this.#holdsPubrec) this.#awaitingPublish.set(ack.messageId, ack);
      else this.#awaitingPubrel.set(ack.messageId, ack);
    }
    this.#queue = [];
  }

  /**
   * A CONNACK arrived, before any packet that follows it is handled (called by the
   * Connection, first of its sides).
   */
  connack(resumed: boolean): void {
    if (resumed) return;
    // The broker forgot these messages: no PUBREL will come, and no PUBCOMP is owed. Their
    // ids may name new messages from now on, which a late release must not delete.
    for (const ack of this.#awaitingPubrel.values()) this.#unstore(ack);
    this.#awaitingPubrel.clear();
    this.#awaitingPublish.clear();
  }

  /** Deletes a QoS 2 message from mqtt.js's incoming store, once. */
  #unstore(ack: PendingAck): void {
    if (!ack.stored) return;
    ack.stored = false;
    this.#port.deleteIncoming(ack.messageId);
  }
}
