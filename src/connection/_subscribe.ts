// Subscribing on the current connection: the SUBACK watchdog, and what a refusal means
// (fatal, or, with several brokers and no reason given, a failed attempt on this one).
import type { MqttClient } from "mqtt";
import type { MqttOptions } from "../options/options.ts";
import { refusedWithoutReason, subackRefusal } from "./_classify.ts";

/** What {@linkcode subscribe} needs of its Connection. */
export interface SubscribeContext {
  options: MqttOptions;
  /** The broker of the current connection, named in a refusal. */
  broker: string | undefined;
  /** Tells the attempts whether the SUBSCRIBE was answered (from Attempts.subscribing). */
  answered: (answered: boolean) => void;
  /** Whether reading from the broker is paused (a stalled reader holds the SUBACK unread). */
  paused: () => boolean;
  /** Ends the current connection, and so the attempt, with `why` as its error. */
  abandon: (why: Error) => void;
}

/** One filter to subscribe to, with its MQTT 5 Subscription Identifier (§3.8.2.1.2) if any. */
export interface Subscription {
  readonly filter: string;
  readonly id?: number;
}

/**
 * Subscribes to `subscriptions` at `qos`: in one SUBSCRIBE, or one a filter when they carry
 * Subscription Identifiers (an identifier is a property of the whole packet). A SUBACK that
 * does not come within connectionTimeout of the broker's last word ends the connection, to
 * be tried again. Returns the QoS granted to each, in order.
 *
 * @throws {MqttSubscribeError} When the broker refused a filter (SUBACK 0x80 or more).
 * @throws {Error} When the connection closed first (the caller subscribes again on the
 * next one).
 */
export async function subscribe(
  client: MqttClient,
  subscriptions: readonly Subscription[],
  qos: 0 | 1 | 2,
  { options, broker, answered, paused, abandon }: SubscribeContext,
): Promise<number[]> {
  const seconds = options.connectionTimeout;
  // The broker's silence is what is bounded: a resumed session's backlog comes before the
  // SUBACK, and a reader that stalls holds the SUBACK unread (reading is paused). A packet
  // only notes the time: a timer made for each packet of a backlog took a fifth of the
  // drain's CPU (bench/suite.ts, source). The one timer, when it fires, waits again for
  // what is left of the bound since the last packet.
  const bound = seconds * 1000;
  let heard = Date.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const silent = () => {
    if (paused()) heard = Date.now();
    const quiet = Date.now() - heard;
    if (quiet < bound) timer = setTimeout(silent, bound - quiet);
    else abandon(new Error(`no SUBACK within connectionTimeout=${seconds} s`));
  };
  const hear = () => void (heard = Date.now());
  if (bound > 0) timer = setTimeout(silent, bound);
  client.on("packetreceive", hear);
  let granted: number[];
  try {
    granted = await sendSubscribe(client, subscriptions, qos);
  } catch (error) {
    answered(false);
    const filters = (error as { filters?: string[] }).filters ??
      subscriptions.map(({ filter }) => filter);
    const refusal = subackRefusal(error, filters, options, broker);
    if (refusal && refusedWithoutReason(error) && options.brokers.length > 1) {
      // SUBACK 0x80 says only that this node failed it: a cluster node does while it
      // elects the leader that would hold the subscription (NATS, for 4-7 s after a node
      // dies). Another node may serve it: this attempt ends, the round goes on.
      abandon(refusal);
      throw new Error(`${refusal.message}; trying the next broker`);
    }
    throw refusal ?? error;
  } finally {
    clearTimeout(timer);
    client.removeListener("packetreceive", hear);
  }
  answered(true);
  return granted;
}

/** The SUBSCRIBE(s), and the QoS granted to each subscription, in order. */
async function sendSubscribe(
  client: MqttClient,
  subscriptions: readonly Subscription[],
  qos: 0 | 1 | 2,
): Promise<number[]> {
  if (subscriptions.every(({ id }) => id === undefined)) {
    const grants = await client.subscribeAsync(
      Object.fromEntries(subscriptions.map(({ filter }) => [filter, { qos }])),
    );
    return subscriptions.map(({ filter }) => grants.find((g) => g.topic === filter)?.qos ?? qos);
  }
  return await Promise.all(subscriptions.map(async ({ filter, id }) => {
    try {
      const [grant] = await client.subscribeAsync({ [filter]: { qos } }, {
        properties: { subscriptionIdentifier: id },
      });
      return grant?.qos ?? qos;
    } catch (error) {
      // The SUBACK answers this filter alone: a refusal names it.
      if (error && typeof error === "object") Object.assign(error, { filters: [filter] });
      throw error;
    }
  }));
}
