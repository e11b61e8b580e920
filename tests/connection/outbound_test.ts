// The outbound side (src/connection/_outbound.ts) against a fake of its port to mqtt.js: no
// broker. The fake keeps what mqtt.js 5.16 keeps around a publish: its table of QoS 1/2
// packets awaiting an answer (the publish's callback by packet id) and its outgoing store
// (the PUBLISH, replaced by a PUBREL once PUBREC came).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Packet } from "mqtt";
import {
  Outbound,
  PublishWindow,
  type Unsettled,
  unsettled,
} from "../../src/connection/_outbound.ts";
import type { OutboundPort, PublishOptions } from "../../src/connection/_ports.ts";
import { MqttRecordError } from "../../src/errors.ts";
import type { Publish } from "../../src/record.ts";

class FakeMqtt implements OutboundPort {
  connected = true;
  receiveMaximum: number | undefined = undefined;
  maximumPacketSize: number | undefined = undefined;
  socketFull = false;
  canCork = true;
  corks = 0;
  uncorks = 0;
  pings = 0;
  /** mqtt.js's table of packets awaiting an answer, and its outgoing store, by packet id. */
  readonly outgoing = new Map<number, (error?: Error) => void>();
  readonly store = new Map<number, Packet>();
  readonly published: { topic: string; options: PublishOptions }[] = [];
  readonly #listeners = {
    packetreceive: new Set<(packet: Packet) => void>(),
    close: new Set<() => void>(),
  };
  #nextId = 1;

  publish(
    topic: string,
    _payload: Uint8Array | string,
    options: PublishOptions,
    callback: (error?: Error) => void,
  ) {
    this.published.push({ topic, options });
    if (options.qos === 0) return callback();
    const id = this.#nextId++;
    this.outgoing.set(id, callback);
    this.store.set(id, { cmd: "publish", messageId: id, qos: options.qos } as Packet);
    options.cbStorePut?.();
  }
  sendPing() {
    this.pings++;
  }
  listen(event: "packetreceive", listener: (packet: Packet) => void): () => void;
  listen(event: "close", listener: () => void): () => void;
  listen(event: "packetreceive" | "close", listener: (packet: Packet) => void) {
    const listeners = this.#listeners[event] as Set<(packet: Packet) => void>;
    listeners.add(listener);
    return () => void listeners.delete(listener);
  }
  emit(event: "packetreceive", packet: Packet): void;
  emit(event: "close"): void;
  emit(event: "packetreceive" | "close", packet?: Packet) {
    for (const listener of [...this.#listeners[event]]) listener(packet!);
  }
  listening(event: "packetreceive" | "close") {
    return this.#listeners[event].size;
  }
  cork() {
    if (this.canCork) this.corks++;
    return this.canCork;
  }
  uncork() {
    this.uncorks++;
  }
  outgoingIds() {
    return [...this.outgoing.keys()];
  }
  storedOutgoing(messageId: number, callback: (packet: Packet | undefined) => void) {
    callback(this.store.get(messageId));
  }
  dropOutgoing(messageId: number, error: Error) {
    const callback = this.outgoing.get(messageId);
    this.outgoing.delete(messageId);
    this.store.delete(messageId);
    callback?.(error);
  }

  /** The broker answered `messageId`: PUBACK / PUBCOMP (or a refusal). */
  answer(messageId: number, error?: Error) {
    const callback = this.outgoing.get(messageId)!;
    this.outgoing.delete(messageId);
    this.store.delete(messageId);
    callback(error);
  }

  /** PUBREC came for the QoS 2 publish `messageId`: mqtt.js stores its PUBREL instead. */
  pubrec(messageId: number) {
    this.store.set(messageId, { cmd: "pubrel", messageId } as Packet);
  }
}

const record = (index: number, qos: 0 | 1 | 2 = 1): Publish => ({
  index,
  topic: "t",
  payload: "x",
  qos,
  retain: false,
});

/** An Outbound on a fake; `closed` is the connection's, settled by `close()`. */
function outbound(mqttVersion: 4 | 5 = 4) {
  const mqtt = new FakeMqtt();
  let close!: () => void;
  const closed = new Promise<void>((resolve) => (close = resolve));
  const settled: [number, Unsettled | undefined][] = [];
  const stored: number[] = [];
  const side = new Outbound(mqtt, { mqttVersion }, closed);
  const publish = (p: Publish) =>
    side.publish(p, (p, failure) => settled.push([p.index, failure]), (p) => stored.push(p.index));
  return { mqtt, side, close, settled, stored, publish };
}

/** Lets the current turn of the event loop, its I/O callbacks and setImmediate included, end. */
const turn = () => new Promise((resolve) => setTimeout(resolve, 5));

describe("PublishWindow", () => {
  test("keeps to the broker's Receive Maximum, and to the connection", () => {
    const mqtt = new FakeMqtt();
    const window = new PublishWindow(mqtt);
    assert.equal(window.limit, 65_535, "MQTT 3.1.1 has none");
    mqtt.receiveMaximum = 2;
    window.take();
    assert.equal(window.open, true);
    window.take();
    assert.equal(window.inflight, 2);
    assert.equal(window.open, false, "full");
    window.give();
    assert.equal(window.open, true);
    mqtt.connected = false;
    assert.equal(window.open, false, "disconnected");
  });

  test("its count is read-only from outside", () => {
    const window = new PublishWindow(new FakeMqtt());
    assert.throws(() => ((window as { inflight: number }).inflight = 5), TypeError);
    assert.equal(window.inflight, 0);
  });

  test("changed() resolves when a slot is given back, or the window is woken", async () => {
    const window = new PublishWindow(new FakeMqtt());
    window.take();
    let woken = 0;
    const waiting = window.changed().then(() => woken++);
    window.give();
    await waiting;
    assert.equal(woken, 1);
    const again = window.changed().then(() => woken++);
    window.wake();
    await again;
    assert.equal(woken, 2);
  });
});

describe("Outbound against a fake mqtt.js", () => {
  test("a QoS 1 publish is stored, then settled by its acknowledgement", () => {
    const { mqtt, settled, stored, publish } = outbound();
    publish(record(0));
    assert.deepEqual(stored, [0]);
    assert.equal(settled.length, 0);
    mqtt.answer(1);
    assert.deepEqual(settled, [[0, undefined]]);
  });

  test("a publish mqtt.js fails as the connection closes settles as 'dropped'", () => {
    const { mqtt, settled, publish } = outbound();
    publish(record(0));
    mqtt.answer(1, new Error("Connection closed"));
    assert.equal(settled[0][1]?.kind, "dropped");
  });

  test("a session not resumed fails the QoS 2 publishes past PUBREC as 'dropped', and only those", () => {
    const { mqtt, side, settled, publish } = outbound();
    publish(record(0, 2));
    publish(record(1, 2));
    publish(record(2, 1));
    mqtt.pubrec(1);
    side.connack(true);
    assert.equal(settled.length, 0, "a resumed session completes them");
    side.connack(false);
    assert.deepEqual(settled.map(([index, failure]) => [index, failure?.kind]), [[0, "dropped"]]);
    assert.match(settled[0][1]!.error.message, /lost the session/);
    assert.deepEqual(mqtt.outgoingIds(), [2, 3], "the others are sent again by mqtt.js");
  });

  test("unsettled() classifies mqtt.js's failures", () => {
    const refused = unsettled(Object.assign(new Error("Publish error"), { code: 0x87 }));
    assert.deepEqual(
      { ...refused, error: undefined },
      { kind: "refused", reasonCode: 0x87, reason: "not authorized", error: undefined },
    );
    assert.equal(
      unsettled(Object.assign(new Error("x"), { code: 0x9b })).reason,
      "QoS not supported",
    );
    assert.equal(unsettled(new Error("Connection closed")).kind, "dropped");
    assert.equal(unsettled(new Error("something else")).kind, "failed");
  });

  test("checkSize refuses a publish over the broker's Maximum Packet Size", () => {
    const { mqtt, side } = outbound(5);
    side.checkSize({ ...record(3), payload: "x".repeat(1000) });
    mqtt.maximumPacketSize = 100;
    assert.throws(
      () => side.checkSize({ ...record(3), payload: "x".repeat(1000) }),
      (error: unknown) =>
        error instanceof MqttRecordError && error.index === 3 &&
        /over the broker's Maximum Packet Size \(CONNACK\) of 100 bytes/.test(error.message),
    );
  });

  test("publishes of one turn are batched into one socket write", async () => {
    const { mqtt, side, publish } = outbound();
    publish(record(0));
    side.publishQoS0(record(1, 0), () => {});
    assert.equal(mqtt.corks, 1);
    assert.equal(mqtt.uncorks, 0);
    await turn();
    assert.equal(mqtt.uncorks, 1, "sent once the turn is over");
    mqtt.canCork = false;
    publish(record(2));
    await turn();
    assert.equal(mqtt.uncorks, 1, "a transport that cannot cork writes at once");
  });

  test("flush() resolves at the PINGRESP, and rejects when the connection closes first", async () => {
    const { mqtt, side } = outbound();
    const flushed = side.flush();
    assert.equal(mqtt.pings, 1);
    mqtt.emit("packetreceive", { cmd: "pingresp" } as Packet);
    await flushed;
    assert.equal(mqtt.listening("packetreceive") + mqtt.listening("close"), 0, "no listener left");
    const cut = side.flush();
    mqtt.emit("close");
    await assert.rejects(cut, /closed before the broker confirmed/);
    assert.equal(mqtt.listening("packetreceive") + mqtt.listening("close"), 0);
    mqtt.connected = false;
    await assert.rejects(side.flush(), /closed before the broker confirmed/);
  });

  test("the connection's end wakes whoever waits for room", async () => {
    const { side, close } = outbound();
    const waiting = side.window.changed();
    close();
    await waiting;
  });
});
