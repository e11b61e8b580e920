// What the broker took responsibility for, seen on the wire: a proxy tap that decodes the
// PUBLISHes going to the broker and the PUBACK (QoS 1) or PUBREC (QoS 2) coming back
// (MQTT 5 §4.3.2, §4.3.3: from then on the message is the broker's). The checker uses it
// to tell a message the library lost from one a broker lost when it was SIGKILLed after
// acknowledging and before saving it (mosquitto saves its state between loop iterations,
// never before it acknowledges).
import { PacketDecoder } from "../../tests/_mqtt_codec.ts";
import type { Journal } from "./_journal.ts";
import type { Tap } from "./_proxy.ts";

interface Flow {
  up: PacketDecoder;
  down: PacketDecoder;
  /** Packet id → the message id in the PUBLISH's payload, until the broker acknowledges it. */
  sent: Map<number, string>;
  broken: boolean;
}

/** A tap that records `{ k: "taken", id, broker }` in `journal` when `broker` acknowledges a message. */
export function takenBy(broker: string, journal: Journal): Tap {
  const flows = new WeakMap<object, Flow>();
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
          if (packet.cmd !== "publish" || packet.id === undefined) continue;
          const id = messageId(packet.payload);
          if (id) flow.sent.set(packet.id, id);
        }
      } else {
        // The broker's packets are read in the version the client's CONNECT chose.
        flow.down.version = flow.up.version;
        for (const packet of flow.down.push(chunk)) {
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
