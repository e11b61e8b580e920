// Raw mqtt.js: the baselines the library is measured against, and the publisher that
// fills the brokers. Only mqtt.js here, so Node runs it too.
import mqtt, { type MqttClient } from "mqtt";

export type QoS = 0 | 1 | 2;

/** `count` payloads of `size` bytes, each numbered in its first 4 bytes. */
export function payloads(count: number, size: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => {
    const payload = new Uint8Array(size);
    new DataView(payload.buffer).setUint32(0, i);
    return payload;
  });
}

/**
 * Publishes `records` with at most `window` publishes unconfirmed: the baseline with the
 * sink's own window. At QoS 0 it ends with a PINGREQ round trip, so the broker has read
 * everything (what `MqttSink.close()` waits for).
 */
export async function publishWindowed(
  client: MqttClient,
  topic: string,
  records: Uint8Array[],
  qos: QoS,
  window: number,
): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let next = 0;
    let unconfirmed = 0;
    let pumping = false;
    const done = (error?: Error) => {
      if (error) return reject(error);
      unconfirmed--;
      if (next === records.length && unconfirmed === 0) resolve();
      else pump();
    };
    // A QoS 0 callback runs inside publish() when the socket takes the bytes at once:
    // loop instead of recursing.
    const pump = () => {
      if (pumping) return;
      pumping = true;
      while (unconfirmed < window && next < records.length) {
        unconfirmed++;
        client.publish(topic, records[next++] as unknown as string, { qos }, done);
      }
      pumping = false;
    };
    pump();
  });
  if (qos === 0) await ping(client);
}

/** Awaits each `publishAsync` in turn: no window at all. */
export async function publishSerial(
  client: MqttClient,
  topic: string,
  records: Uint8Array[],
  qos: QoS,
): Promise<void> {
  for (const record of records) {
    await client.publishAsync(topic, record as unknown as string, { qos });
  }
  if (qos === 0) await ping(client);
}

/** One PINGREQ / PINGRESP round trip: the broker has read everything sent before. */
export function ping(client: MqttClient): Promise<void> {
  return new Promise((resolve) => {
    const onPacket = (packet: { cmd: string }) => {
      if (packet.cmd !== "pingresp") return;
      client.removeListener("packetreceive", onPacket);
      resolve();
    };
    client.on("packetreceive", onPacket);
    client.sendPing();
  });
}

/**
 * Creates a persistent session subscribed to `topic` for each of `clientIds`, then
 * publishes `records` once (window 50): the broker queues a copy for every session, so each drain
 * finds them all waiting.
 */
export async function prefill(
  url: string,
  topic: string,
  clientIds: string[],
  records: Uint8Array[],
  qos: QoS,
): Promise<void> {
  for (const clientId of clientIds) {
    const subscriber = await mqtt.connectAsync(url, { clientId, clean: false });
    await subscriber.subscribeAsync(topic, { qos });
    await subscriber.endAsync();
  }
  const publisher = await mqtt.connectAsync(url, { clean: true });
  try {
    // 50: under the bench mosquitto's in-flight limit (60), which over MQTT 3.1.1 it
    // enforces on incoming QoS 2 by disconnecting the publisher.
    await publishWindowed(publisher, topic, records, qos, 50);
  } finally {
    await publisher.endAsync();
  }
}

/**
 * A raw subscriber ('message' listener) resuming the session `clientId`: milliseconds from
 * connect to the `count`th message.
 */
export async function drainRaw(
  url: string,
  clientId: string,
  count: number,
  options: mqtt.IClientOptions = {},
): Promise<number> {
  const started = performance.now();
  const client = mqtt.connect(url, { clientId, clean: false, ...options });
  await messages(client, count);
  const elapsed = performance.now() - started;
  await client.endAsync();
  return elapsed;
}

/** Resolves once `client` (mqtt.js, or a client with its 'message' event) emitted `count` messages. */
export function messages(
  client: { on(event: "message", listener: () => void): unknown },
  count: number,
): Promise<void> {
  let received = 0;
  return new Promise((resolve) =>
    client.on("message", () => {
      if (++received === count) resolve();
    })
  );
}

/**
 * A raw bridge: a subscriber resuming `clientId` republishes each message to `to` through
 * `publisher`; milliseconds from connect until `count` publishes are confirmed. It
 * acknowledges each message on arrival (mqtt.js has no other way), so unlike an
 * `ack=manual` MqttSource it loses what is in flight when it crashes.
 */
export async function bridgeRaw(
  url: string,
  clientId: string,
  publisher: MqttClient,
  to: string,
  count: number,
  qos: QoS,
): Promise<number> {
  const started = performance.now();
  const subscriber = mqtt.connect(url, { clientId, clean: false });
  let confirmed = 0;
  await new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      if (error) reject(error);
      else if (++confirmed === count) resolve();
    };
    subscriber.on("message", (_topic, payload) => publisher.publish(to, payload, { qos }, done));
  });
  const elapsed = performance.now() - started;
  await subscriber.endAsync();
  return elapsed;
}

/** Connects a clean-session client, runs `fn` with it, and closes it. */
export async function session<T>(url: string, fn: (client: MqttClient) => Promise<T>): Promise<T> {
  const client = await connect(url);
  try {
    return await fn(client);
  } finally {
    await client.endAsync();
  }
}

/** Connects a clean-session client. */
export function connect(url: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { clean: true });
}
