// The inbound side (src/connection/_inbound.ts) against a fake of its port to mqtt.js: no
// broker. The fake does what mqtt.js 5.16 does around the levers the side pulls: it hands a
// PUBLISH to handleMessage and sends PUBACK once its callback runs (none if the callback
// gets an error); for QoS 2 with the file store it hands the message over on PUBREL,
// deletes it from its incoming store and sends PUBCOMP in that callback; for QoS 2 with
// PUBREC held it calls the customHandleAcks hook on PUBLISH, then stores and sends PUBREC.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { IPublishPacket, Packet } from "mqtt";
import { type Ack, type Deliver, DeliveryFailed, Inbound } from "../../src/connection/_inbound.ts";
import type { InboundPort } from "../../src/connection/_ports.ts";

type Done = (error?: Error) => void;

/** `promise`, or a failure naming `what` if it takes more than two seconds. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than 2 s`)), 2_000);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** What mqtt.js would do, through the port; and what left. */
class FakeMqtt implements InboundPort {
  connected = true;
  keepalive = 60;
  pings = 0;
  reschedules = 0;
  /** The acknowledgements that left, as "puback 1". */
  readonly sent: string[] = [];
  /** Ids mqtt.js deleted from its incoming store itself, and ids the side deleted. */
  readonly mqttDeleted: number[] = [];
  readonly deleted: number[] = [];
  readonly qos2Ids = new Set<number>();
  #hold?: (packet: Packet) => boolean;
  #handle?: (packet: IPublishPacket, done: Done) => void;
  #handleQoS2?: (packet: IPublishPacket, done: Done) => void;
  #track?: (tracked: number) => void;
  #keeping = false;

  sendPing() {
    this.pings++;
  }
  reschedulePing() {
    this.reschedules++;
  }
  interceptAcks(hold: (packet: Packet) => boolean) {
    this.#hold = hold;
  }
  sendAck(packet: Packet) {
    this.sent.push(`${packet.cmd} ${(packet as { messageId: number }).messageId}`);
  }
  handleMessages(handle: (packet: IPublishPacket, done: Done) => void) {
    this.#handle = handle;
  }
  handleQoS2Publishes(handle: (packet: IPublishPacket, done: Done) => void) {
    this.#handleQoS2 = handle;
  }
  trackIncomingQoS2(onNew: (tracked: number) => void) {
    this.#track = onNew;
  }
  tracksIncomingQoS2(messageId: number) {
    return this.qos2Ids.has(messageId);
  }
  keepingIncoming(run: () => void) {
    this.#keeping = true;
    try {
      run();
    } finally {
      this.#keeping = false;
    }
  }
  deleteIncoming(messageId: number) {
    this.deleted.push(messageId);
  }

  /** mqtt.js's _sendPacket for an acknowledgement: through the interception. */
  #send(cmd: "puback" | "pubrec" | "pubcomp", messageId: number) {
    const packet = { cmd, messageId } as Packet;
    if (!this.#hold!(packet)) this.sendAck(packet);
  }

  /** A QoS 0/1 PUBLISH arrives; resolves when mqtt.js may read on, with the error it got. */
  publish(qos: 0 | 1, messageId: number): Promise<Error | undefined> {
    return new Promise((resolve) =>
      this.#handle!(publish(qos, messageId), (error) => {
        if (!error && qos === 1) this.#send("puback", messageId);
        resolve(error);
      })
    );
  }

  /** The PUBREL of a QoS 2 message the (file) store holds: mqtt.js hands it over now. */
  pubrel(messageId: number): Promise<Error | undefined> {
    return new Promise((resolve) =>
      this.#handle!(publish(2, messageId), (error) => {
        if (!error) {
          if (!this.#keeping) this.mqttDeleted.push(messageId);
          this.qos2Ids.delete(messageId);
          this.#send("pubcomp", messageId);
        }
        resolve(error);
      })
    );
  }

  /** A QoS 2 PUBLISH with PUBREC held (persistence=memory): the hook, then PUBREC. */
  publishQoS2(messageId: number): Promise<Error | undefined> {
    return new Promise((resolve) =>
      this.#handleQoS2!(publish(2, messageId), (error) => {
        if (!error) {
          if (!this.qos2Ids.has(messageId)) this.#track!(this.qos2Ids.size);
          this.qos2Ids.add(messageId);
          this.#send("pubrec", messageId);
        }
        resolve(error);
      })
    );
  }
}

function publish(qos: 0 | 1 | 2, messageId: number): IPublishPacket {
  return {
    cmd: "publish",
    topic: "t",
    payload: new Uint8Array([messageId]),
    qos,
    retain: false,
    dup: false,
    messageId,
  } as IPublishPacket;
}

/** An Inbound on a fake, whose deliver keeps each message's ack by packet id. */
function inbound(
  persistence: "memory" | "file",
  deliver?: Deliver,
  maxInflight = 10,
) {
  const mqtt = new FakeMqtt();
  const acks = new Map<number, Ack>();
  const side = new Inbound(
    mqtt,
    deliver ?? ((packet, ack) => void (ack && acks.set(packet.messageId!, ack))),
    { maxInflight, persistence },
  );
  return { mqtt, acks, side };
}

describe("Inbound against a fake mqtt.js", () => {
  test("acknowledgements leave in arrival order, whatever order they are released in", async () => {
    const { mqtt, acks, side } = inbound("memory");
    for (const id of [1, 2, 3]) assert.equal(await mqtt.publish(1, id), undefined);
    assert.equal(side.unacked, 3);
    assert.deepEqual(mqtt.sent, [], "nothing leaves before it is released");
    acks.get(3)!.release();
    acks.get(2)!.release();
    assert.deepEqual(mqtt.sent, [], "2 and 3 wait for 1 (MQTT 5 §4.6)");
    acks.get(1)!.release();
    acks.get(1)!.release(); // idempotent
    assert.deepEqual(mqtt.sent, ["puback 1", "puback 2", "puback 3"]);
    assert.equal(side.unacked, 0);
    assert.equal(side.acked, 3);
  });

  test("QoS 0 is delivered without an acknowledgement", async () => {
    const delivered: (Ack | undefined)[] = [];
    const { mqtt, side } = inbound("memory", (_packet, ack) => void delivered.push(ack));
    assert.equal(await mqtt.publish(0, 0), undefined);
    assert.deepEqual(delivered, [undefined]);
    assert.equal(side.unacked, 0);
  });

  test("QoS 2 with the file store: PUBCOMP and the delete wait for the release", async () => {
    const { mqtt, acks, side } = inbound("file");
    assert.equal(await mqtt.pubrel(7), undefined);
    assert.equal(acks.get(7)?.qos, 2);
    assert.deepEqual(mqtt.sent, [], "no PUBCOMP before the consumer read it");
    assert.deepEqual(mqtt.mqttDeleted, [], "mqtt.js's own delete was skipped");
    assert.equal(side.unacked, 1);
    acks.get(7)!.release();
    assert.deepEqual(mqtt.deleted, [7], "deleted from the store once released");
    assert.deepEqual(mqtt.sent, ["pubcomp 7"]);
    assert.equal(side.unacked, 0);
  });

  test("QoS 2 with PUBREC held: delivered on PUBLISH, PUBREC waits for the release", async () => {
    const { mqtt, acks, side } = inbound("memory");
    assert.equal(await mqtt.publishQoS2(5), undefined);
    assert.deepEqual(mqtt.sent, []);
    assert.equal(side.unacked, 1);
    // Sent again (DUP) on the same connection before the release: not delivered twice.
    const again = acks.get(5);
    assert.equal(await mqtt.publishQoS2(5), undefined);
    assert.equal(acks.get(5), again);
    acks.get(5)!.release();
    assert.deepEqual(mqtt.sent, ["pubrec 5"]);
  });

  test("an acknowledgement of a connection that dropped is not sent on the next", async () => {
    const { mqtt, acks, side } = inbound("memory");
    await mqtt.publish(1, 1);
    side.disconnected();
    side.connack(true);
    acks.get(1)!.release();
    assert.deepEqual(mqtt.sent, [], "the broker sends it again (DUP) instead");
    // Its DUP arrives on the new connection and is acknowledged there.
    await mqtt.publish(1, 1);
    acks.get(1)!.release();
    assert.deepEqual(mqtt.sent, ["puback 1"]);
  });

  test("QoS 2 with the file store: a message released again after two drops is delivered once", async () => {
    const delivered: number[] = [];
    const acks = new Map<number, Ack>();
    const { mqtt, side } = inbound("file", (packet, ack) => {
      delivered.push(packet.messageId!);
      acks.set(packet.messageId!, ack!);
    });
    assert.equal(await mqtt.pubrel(7), undefined);
    for (let drop = 1; drop <= 2; drop++) {
      side.disconnected();
      side.connack(true);
      // Unread, so still stored and without PUBCOMP: the broker sends its PUBREL again.
      assert.equal(await mqtt.pubrel(7), undefined);
      assert.deepEqual(delivered, [7], `not delivered again after drop ${drop}`);
    }
    assert.deepEqual(mqtt.sent, []);
    acks.get(7)!.release();
    assert.deepEqual(mqtt.deleted, [7]);
    assert.deepEqual(mqtt.sent, ["pubcomp 7"], "its PUBCOMP leaves on the connection of now");
    assert.equal(side.unacked, 0);
  });

  test("a deliver that returns a rejecting promise does not stall reading for ever", async () => {
    const failure = new Error("the consumer fell over");
    const acks = new Map<number, Ack>();
    const { mqtt, side } = inbound("memory", (packet, ack) => {
      if (ack) acks.set(packet.messageId!, ack);
      if (packet.messageId === 1) return Promise.reject(failure);
    });
    try {
      // Before, mqtt.js's callback never ran: no later packet was read, PINGRESP included.
      const error = await within(mqtt.publish(1, 1), "mqtt.js to be let read on");
      // mqtt.js reads on, told the message failed: it sends no PUBACK for it.
      assert.ok(error instanceof DeliveryFailed, String(error));
      assert.equal(error.cause, failure);
      assert.equal(side.paused, false, "keep-alive resumed");
      assert.equal(side.unacked, 0, "withdrawn: not waiting for a release");
      // The next message is not held behind it.
      assert.equal(await mqtt.publish(1, 2), undefined);
      acks.get(2)!.release();
      assert.deepEqual(mqtt.sent, ["puback 2"]);
      // Released late all the same, it is never acknowledged: the broker sends it again.
      acks.get(1)!.release();
      assert.deepEqual(mqtt.sent, ["puback 2"]);
    } finally {
      side.dispose();
    }
  });

  test("a deliver that throws fails its message the same way", async () => {
    const { mqtt, side } = inbound("file", () => {
      throw new Error("no");
    });
    const error = await mqtt.pubrel(3);
    assert.ok(error instanceof DeliveryFailed);
    assert.deepEqual(mqtt.sent, [], "no PUBCOMP: the broker sends PUBREL again");
    assert.deepEqual(mqtt.mqttDeleted, [], "the message stays in the store");
    assert.equal(side.unacked, 0);
  });

  test("a rejecting deliver with PUBREC held sends no PUBREC", async () => {
    const { mqtt, side } = inbound("memory", () => Promise.reject(new Error("no")));
    try {
      const error = await within(mqtt.publishQoS2(9), "mqtt.js to be let read on");
      assert.ok(error instanceof DeliveryFailed);
      assert.deepEqual(mqtt.sent, []);
      assert.equal(mqtt.tracksIncomingQoS2(9), false, "mqtt.js did not take it");
      assert.equal(side.unacked, 0);
    } finally {
      side.dispose();
    }
  });

  test("a paused deliver keeps the session alive, and resumes when it settles", async () => {
    let resume!: () => void;
    const { mqtt, side } = inbound("memory", () => new Promise((r) => (resume = r)));
    try {
      const done = mqtt.publish(0, 0);
      assert.equal(side.paused, true);
      assert.equal(mqtt.reschedules, 1, "mqtt.js's countdown restarts as the pause begins");
      resume();
      assert.equal(await done, undefined);
      assert.equal(side.paused, false);
    } finally {
      side.dispose();
    }
  });

  test("counts QoS 1 messages past the window", async () => {
    const { mqtt, side } = inbound("memory", undefined, 2);
    for (const id of [1, 2, 3]) await mqtt.publish(1, id);
    assert.equal(side.beyondWindow, 1);
  });
});
