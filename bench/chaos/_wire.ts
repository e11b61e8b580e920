// What a broker did, seen on the wire, so that the checker can tell it from what the library
// did. A proxy tap decodes, per connection:
//
// - the PUBLISHes going to the broker and the PUBACK (QoS 1) or PUBREC (QoS 2) coming back:
//   from then on the message is the broker's (MQTT 5 §4.3.2, §4.3.3). A broker SIGKILLed after
//   acknowledging and before saving loses it ("taken", for the checker's time window);
// - the QoS 2 PUBLISHes coming from the broker and its PUBREL: once a broker sent PUBREL it
//   knows the client has the message, and must only ever send PUBREL for it again (§4.3.3). A
//   broker that sends the PUBLISH again instead has forgotten (restarted from a state saved
//   before): "resent". No client can tell such a PUBLISH from a new message (its PUBREL came,
//   so the packet id is free again), so the checker does not blame the library for reading it.
//
// mosquitto saves its state between turns of its loop, after the changes it counts, never
// before it acknowledges.
import { PacketDecoder } from "../../testing/mqtt_codec.ts";
import type { Journal } from "./_journal.ts";
import type { Tap } from "./_proxy.ts";

/** What the broker said of one client id's QoS 2 messages, across its connections. */
interface Session {
  /** Packet id → the message id of the broker's QoS 2 PUBLISH. */
  received: Map<number, string>;
  /** Message ids whose PUBREL the broker sent. */
  released: Set<string>;
}

interface Flow {
  up: PacketDecoder;
  down: PacketDecoder;
  /** Packet id → the message id in the PUBLISH's payload, until the broker acknowledges it. */
  sent: Map<number, string>;
  /** The client's session, known from its CONNECT. */
  session?: Session;
  broken: boolean;
}

/**
 * A tap that records in `journal` `{ k: "taken", id, broker }` when `broker` acknowledges a
 * message, and `{ k: "resent", id, broker }` when it sends a client the PUBLISH of a QoS 2
 * message whose PUBREL it had sent that client already.
 */
export function wireTap(broker: string, journal: Journal): Tap {
  const flows = new WeakMap<object, Flow>();
  const sessions = new Map<string, Session>();
  return (connection, toBroker, chunk) => {
    let flow = flows.get(connection);
    if (!flow) {
      flow = { up: new PacketDecoder(), down: new PacketDecoder(), sent: new Map(), broken: false };
      flows.set(connection, flow);
    }
    if (flow.broken) return;
    try {
      if (toBroker) {
        for (const packet of flow.up.push(chunk)) {
          if (packet.cmd === "connect") {
            let session = sessions.get(packet.clientId);
            if (!session) {
              session = { received: new Map(), released: new Set() };
              sessions.set(packet.clientId, session);
            }
            flow.session = session;
          }
          if (packet.cmd !== "publish" || packet.id === undefined) continue;
          const id = messageId(packet.payload);
          if (id) flow.sent.set(packet.id, id);
        }
      } else {
        // The broker's packets are read in the version the client's CONNECT chose.
        flow.down.version = flow.up.version;
        for (const packet of flow.down.push(chunk)) fromBroker(flow, packet);
      }
    } catch {
      // Bytes this decoder cannot follow (a packet split by a cut): this connection is no
      // longer watched; the next one is.
      flow.broken = true;
    }
  };

  function fromBroker(flow: Flow, packet: ReturnType<PacketDecoder["push"]>[number]): void {
    const session = flow.session;
    if (packet.cmd === "publish" && packet.qos === 2 && session) {
      const id = messageId(packet.payload);
      if (!id) return;
      if (session.released.has(id)) journal.record({ k: "resent", id, broker });
      session.received.set(packet.id!, id);
    } else if (packet.cmd === "pubrel" && session) {
      const id = session.received.get(packet.id);
      if (id !== undefined) session.released.add(id);
    } else if (packet.cmd === "puback" || packet.cmd === "pubrec") {
      const id = flow.sent.get(packet.id);
      // MQTT 5: a reason code of 0x80 or more is a refusal, not an acknowledgement.
      if (id === undefined || (packet.reasonCode ?? 0) >= 0x80) return;
      flow.sent.delete(packet.id);
      journal.record({ k: "taken", id, broker });
    }
  }
}

const decoder = new TextDecoder();

/** The `id` of a chaos message's JSON payload, if it is one. */
function messageId(payload: Uint8Array): string | undefined {
  try {
    const id = JSON.parse(decoder.decode(payload)).id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}
