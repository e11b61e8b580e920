// The JavaScript peers a user would pick instead of this library, measured beside raw mqtt.js
// in the same run with the same workloads: async-mqtt (a promise wrapper over mqtt.js 4) and
// u8-mqtt (a codec of its own on Uint8Array). Only bench/ imports them
// (tests/package/layout_test.ts). Like _raw.ts, nothing of the library here, so Node runs it.
import asyncMqtt from "async-mqtt";
// "u8-mqtt/node", not "u8-mqtt", on every runtime: Deno resolves the bare name to u8-mqtt's
// Deno build, whose with_tcp() iterates the connection with Deno.iter, gone since Deno 2
// ("async_iter is not async iterable"). The Node build speaks node:net, which all three have.
import { mqtt_v4 } from "u8-mqtt/node";
import { report, RUNTIME } from "./_measure.ts";
import { messages, type QoS } from "./_raw.ts";

/** A consumer's callback for each message's payload. */
export type Arrive = (payload: Uint8Array) => void;

/** A peer, with what it cannot do said instead of measured. */
export interface Peer {
  /** The column's name: the package's. */
  name: string;
  /** Why the peer cannot run `side` at `qos` (shown in the table), or undefined. */
  cannot(side: "source" | "sink", qos: QoS): string | undefined;
  /** Resumes the persistent session `clientId`: milliseconds from connect to the `count`th message. */
  drain(url: string, clientId: string, topic: string, count: number, qos: QoS): Promise<number>;
  /**
   * Connects, publishes `records` with at most `window` unconfirmed (at QoS 0: then one
   * PINGREQ round trip, as the raw baseline), and closes.
   */
  publish(
    url: string,
    topic: string,
    records: Uint8Array[],
    qos: QoS,
    window: number,
  ): Promise<void>;
  /** Subscribes a clean session to `topic` at QoS 1; resolves with how to stop. */
  subscribe(
    url: string,
    clientId: string,
    topic: string,
    arrive: Arrive,
  ): Promise<() => Promise<unknown>>;
}

/**
 * Publishes through `send` with `window` promises outstanding at most: the promise-shaped
 * window a user of either peer writes (`window` lanes, each awaiting its publish in turn).
 */
async function windowed(
  send: (payload: Uint8Array) => Promise<unknown>,
  records: Uint8Array[],
  window: number,
): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < records.length) await send(records[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(window, records.length) }, lane));
}

/** async-mqtt 2.6: mqtt.js 4 (its own dependency, not the mqtt 5 the library uses) with promises. */
const asyncMqttPeer: Peer = {
  name: "async-mqtt",
  cannot: () => undefined,
  async drain(url, clientId, _topic, count) {
    // async-mqtt adds nothing to receiving: the 'message' listener of its mqtt.js 4 client.
    const started = performance.now();
    const client = asyncMqtt.connect(url, { clientId, clean: false });
    await messages(client, count);
    const elapsed = performance.now() - started;
    await client.end();
    return elapsed;
  },
  async publish(url, topic, records, qos, window) {
    const client = await asyncMqtt.connectAsync(url, { clean: true });
    try {
      // The cast as in _raw.ts: mqtt.js's types say string | Buffer, it writes a Uint8Array.
      await windowed(
        (payload) => client.publish(topic, payload as unknown as string, { qos }),
        records,
        window,
      );
      if (qos === 0) await pingMqtt4(client);
    } finally {
      await client.end();
    }
  },
  async subscribe(url, clientId, topic, arrive) {
    const client = await asyncMqtt.connectAsync(url, { clientId, clean: true });
    client.on("message", (_topic: string, payload: Uint8Array) => arrive(payload));
    await client.subscribe(topic, { qos: 1 });
    return () => client.end();
  },
};

/** The mqtt.js 4 client inside an AsyncClient: its PINGREQ has no public way out. */
interface Mqtt4Insides {
  _client: {
    _sendPacket(packet: { cmd: "pingreq" }): void;
    on(event: "packetreceive", listener: (packet: { cmd: string }) => void): void;
    removeListener(event: "packetreceive", listener: (packet: { cmd: string }) => void): void;
  };
}

/** One PINGREQ / PINGRESP round trip on async-mqtt's client: the broker read all before it. */
function pingMqtt4(client: unknown): Promise<void> {
  const inner = (client as Mqtt4Insides)._client;
  return new Promise((resolve) => {
    const onPacket = (packet: { cmd: string }) => {
      if (packet.cmd !== "pingresp") return;
      inner.removeListener("packetreceive", onPacket);
      resolve();
    };
    inner.on("packetreceive", onPacket);
    inner._sendPacket({ cmd: "pingreq" });
  });
}

/** The surface of u8-mqtt's MQTT 3.1.1 client this file uses (the package ships no types). */
interface U8Client {
  on_topic(route: string, handler: (packet: { payload: Uint8Array }) => unknown): U8Client;
  with_tcp(url: string): unknown;
  connect(packet: { client_id: string; flags?: { clean_start?: boolean } }): Promise<unknown>;
  subscribe(topic: string, options: { qos: QoS }): Promise<unknown>;
  pub(packet: { topic: string; payload: Uint8Array; qos: QoS }): Promise<[unknown, unknown?]>;
  ping(): Promise<unknown>;
  disconnect(): Promise<unknown>;
}

/** A u8-mqtt client whose connection log (console.info on every event) is off. */
function u8Client(): U8Client {
  return mqtt_v4({ log_conn() {} }) as U8Client;
}

/** u8-mqtt 0.6: receives and publishes QoS 0 and 1, MQTT 3.1.1 here (it speaks 5 too). */
const u8MqttPeer: Peer = {
  name: "u8-mqtt",
  cannot(side, qos) {
    // Read in its source (code/_dispatch.jsy, router_path.jsy): it answers no incoming
    // QoS 2 PUBLISH with a PUBREC and sends no PUBREL for its own; its README says QoS 0 and 1.
    if (qos === 2) return "no QoS 2";
    // pub() at QoS 0 passes the key null where its sender tests for undefined, and throws
    // "Cannot set properties of null (setting 'pkt_id')" before it writes (0.6.7).
    if (side === "sink" && qos === 0) return "QoS 0 publish throws";
    return undefined;
  },
  async drain(url, clientId, topic, count) {
    const started = performance.now();
    let received = 0;
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const client = u8Client();
    // Before connecting: a resumed session's messages follow the CONNACK at once. Its router
    // sends a QoS 1 PUBACK once the handler returned.
    client.on_topic(topic, () => {
      if (++received === count) finish();
    });
    client.with_tcp(url);
    // No clean_start flag: u8-mqtt resumes the session (mqtt.js's clean: false).
    await client.connect({ client_id: clientId });
    await finished;
    const elapsed = performance.now() - started;
    await client.disconnect();
    return elapsed;
  },
  async publish(url, topic, records, qos, window) {
    const client = u8Client();
    client.with_tcp(url);
    await client.connect({
      client_id: `bench_u8_${crypto.randomUUID()}`,
      flags: { clean_start: true },
    });
    try {
      await windowed(
        async (payload) => {
          // It resolves (not rejects) [packet, "expired"] when no PUBACK came within ~5 s.
          const [, error] = await client.pub({ topic, payload, qos });
          if (error) throw new Error(`u8-mqtt publish: ${error}`);
        },
        records,
        window,
      );
      if (qos === 0) await client.ping();
    } finally {
      await client.disconnect();
    }
  },
  async subscribe(url, clientId, topic, arrive) {
    const client = u8Client();
    client.on_topic(topic, (packet) => arrive(packet.payload));
    client.with_tcp(url);
    await client.connect({ client_id: clientId, flags: { clean_start: true } });
    await client.subscribe(topic, { qos: 1 });
    return () => client.disconnect();
  },
};

/** The peers, in the order of their columns. */
export const PEERS: readonly Peer[] = [asyncMqttPeer, u8MqttPeer];

/** The peers that can run `side` at `qos`. */
export function peersFor(side: "source" | "sink", qos: QoS): Peer[] {
  return PEERS.filter((peer) => !peer.cannot(side, qos));
}

/** Reports a row for each peer that cannot run `side` at `qos`, saying why (after the figures). */
export function emitCannot(side: "source" | "sink", broker: string, what: string, qos: QoS): void {
  for (const peer of PEERS) {
    const note = peer.cannot(side, qos);
    if (!note) continue;
    report({
      section: side,
      broker,
      runtime: RUNTIME,
      case: what,
      who: peer.name,
      unit: "msg/s",
      runs: [],
      note,
    });
  }
}
