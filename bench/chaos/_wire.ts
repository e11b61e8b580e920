// What the broker took responsibility for, and what it was told was done, seen on the wire:
// a proxy tap that decodes the PUBLISHes going to the broker and the PUBACK (QoS 1) or PUBREC
// (QoS 2) coming back (MQTT 5 §4.3.2, §4.3.3: from then on the message is the broker's), and
// the QoS 2 PUBLISHes coming from the broker and the PUBCOMP going back (the exchange is over:
// the packet id is free, and a PUBLISH with it is a new message). The checker uses them to
// tell what the library did from what a broker SIGKILLed after acknowledging and before saving
// did: lose a message it had taken, or send again one whose exchange had completed (mosquitto
// saves its state between loop iterations, and only after changes it counts, never before it
// acknowledges).
import { PacketDecoder } from "../../tests/_mqtt_codec.ts";
import type { Journal } from "./_journal.ts";
import type { Tap } from "./_proxy.ts";

interface Flow {
  up: PacketDecoder;
  down: PacketDecoder;
  /** Packet id → the message id in the PUBLISH's payload, until the broker acknowledges it. */
  sent: Map<number, string>;
  /**
   * Likewise for QoS 2 PUBLISHes from the broker, until the client's PUBCOMP: per client id,
   * since the PUBCOMP may leave on a later connection of the session.
   */
  received: Map<number, string>;
  broken: boolean;
}

/**
 * A tap that records in `journal` `{ k: "taken", id, broker }` when `broker` acknowledges a
 * message, and `{ k: "completed", id, broker }` when a client sends it the PUBCOMP of one.
 */
export function wireTap(broker: string, journal: Journal): Tap {
  const flows = new WeakMap<object, Flow>();
  const sessions = new Map<string, Map<number, string>>();
  return (connection, toBroker, chunk) => {
    let flow = flows.get(connection);
    if (!flow) {
      flow = {
        up: new PacketDecoder(),
        down: new PacketDecoder(),
        sent: new Map(),
        received: new Map(), // replaced by the session's at CONNECT
        broken: false,
      };
      flows.set(connection, flow);
    }
    if (flow.broken) return;
    try {
      if (toBroker) {
        for (const packet of flow.up.push(chunk)) {
          if (packet.cmd === "connect") {
            let session = sessions.get(packet.clientId);
            if (!session) sessions.set(packet.clientId, session = new Map());
            flow.received = session;
          }
          if (packet.cmd === "pubcomp") {
            const id = flow.received.get(packet.id);
            if (id === undefined) continue;
            flow.received.delete(packet.id);
            journal.record({ k: "completed", id, broker });
          }
          if (packet.cmd !== "publish" || packet.id === undefined) continue;
          const id = messageId(packet.payload);
          if (id) flow.sent.set(packet.id, id);
        }
      } else {
        // The broker's packets are read in the version the client's CONNECT chose.
        flow.down.version = flow.up.version;
        for (const packet of flow.down.push(chunk)) {
          if (packet.cmd === "publish" && packet.qos === 2) {
            const id = messageId(packet.payload);
            if (id) flow.received.set(packet.id!, id);
          }
          if (packet.cmd !== "puback" && packet.cmd !== "pubrec") continue;
          const id = flow.sent.get(packet.id);
          // MQTT 5: a reason code of 0x80 or more is a refusal, not an acknowledgement.
          if (id === undefined || (packet.reasonCode ?? 0) >= 0x80) continue;
          flow.sent.delete(packet.id);
          journal.record({ k: "taken", id, broker });
        }
      }
    } catch {
      // Bytes this decoder cannot follow (a packet split by a cut): this connection is no
      // longer watched; the next one is.
      flow.broken = true;
    }
  };
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
