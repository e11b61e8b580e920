// The MQTT packet codec behind the raw server of the hostile-broker tests (testing/hostile.ts),
// written by hand from the specs (MQTT 3.1.1 §2-3, MQTT 5 §2-3) so a test can send exactly the
// bytes it wants: `encode.packet` for well-formed packets, the primitives (`header`, `varint`,
// `string`, `properties`) for malformed ones, and `PacketDecoder` to read what a client sends
// whatever the TCP chunking. Web APIs only: the sockets live in testing/hostile.ts.

// Identifier, name and wire type of every property (MQTT 5 §2.2.2.2, table 2-4).
const PROPERTIES = [
  [0x01, "payloadFormatIndicator", "u8"],
  [0x02, "messageExpiryInterval", "u32"],
  [0x03, "contentType", "string"],
  [0x08, "responseTopic", "string"],
  [0x09, "correlationData", "binary"],
  [0x0b, "subscriptionIdentifier", "varint"],
  [0x11, "sessionExpiryInterval", "u32"],
  [0x12, "assignedClientIdentifier", "string"],
  [0x13, "serverKeepAlive", "u16"],
  [0x15, "authenticationMethod", "string"],
  [0x16, "authenticationData", "binary"],
  [0x17, "requestProblemInformation", "u8"],
  [0x18, "willDelayInterval", "u32"],
  [0x19, "requestResponseInformation", "u8"],
  [0x1a, "responseInformation", "string"],
  [0x1c, "serverReference", "string"],
  [0x1f, "reasonString", "string"],
  [0x21, "receiveMaximum", "u16"],
  [0x22, "topicAliasMaximum", "u16"],
  [0x23, "topicAlias", "u16"],
  [0x24, "maximumQoS", "u8"],
  [0x25, "retainAvailable", "u8"],
  [0x26, "userProperties", "pair"],
  [0x27, "maximumPacketSize", "u32"],
  [0x28, "wildcardSubscriptionAvailable", "u8"],
  [0x29, "subscriptionIdentifiersAvailable", "u8"],
  [0x2a, "sharedSubscriptionAvailable", "u8"],
] as const;

interface KindTypes {
  u8: number;
  u16: number;
  u32: number;
  varint: number;
  string: string;
  binary: Uint8Array;
  pair: [string, string][];
}
/** MQTT 5 properties by name (the table above); `userProperties` keeps order and repeats. */
export type Properties = {
  -readonly [P in typeof PROPERTIES[number] as P[1]]?: KindTypes[P[2]];
};

/** The decoded CONNECT; `version` is the protocol level (3 = MQTT 3.1, 4 = 3.1.1, 5). */
export interface ConnectInfo {
  version: 3 | 4 | 5;
  protocolName: string;
  clientId: string;
  clean: boolean;
  keepalive: number;
  username?: string;
  password?: Uint8Array;
  will?: {
    topic: string;
    payload: Uint8Array;
    qos: number;
    retain: boolean;
    properties?: Properties;
  };
  properties?: Properties;
}

type Ack = "puback" | "pubrec" | "pubrel" | "pubcomp";
/** One MQTT packet. `properties` are read and written only under MQTT 5. */
export type Packet =
  | ({ cmd: "connect" } & ConnectInfo)
  | { cmd: "connack"; sessionPresent?: boolean; reasonCode?: number; properties?: Properties }
  | {
    cmd: "publish";
    topic: string;
    payload: Uint8Array;
    qos: 0 | 1 | 2;
    dup?: boolean;
    retain?: boolean;
    /** The packet id; present exactly when qos > 0. */
    id?: number;
    properties?: Properties;
  }
  | { cmd: Ack; id: number; reasonCode?: number; properties?: Properties }
  | {
    cmd: "subscribe";
    id: number;
    /** `options` is the whole subscription options byte (MQTT 5 §3.8.3.1); `qos` its low bits. */
    subscriptions: { topic: string; qos: number; options?: number }[];
    properties?: Properties;
  }
  | { cmd: "suback" | "unsuback"; id: number; codes: number[]; properties?: Properties }
  | { cmd: "unsubscribe"; id: number; topics: string[]; properties?: Properties }
  | { cmd: "pingreq" | "pingresp" }
  | { cmd: "disconnect"; reasonCode?: number; properties?: Properties };
/** The packet of command `C` (an intersection, not Extract, so that the acks narrow too). */
export type PacketOf<C extends Packet["cmd"]> = Packet & { cmd: C };

// Packet types by the high nibble of the fixed header (MQTT 3.1.1 §2.2.1); AUTH (15) is not used.
const TYPES = (",connect,connack,publish,puback,pubrec,pubrel,pubcomp,subscribe,suback," +
  "unsubscribe,unsuback,pingreq,pingresp,disconnect").split(",") as ("" | Packet["cmd"])[];

type Bytes = Uint8Array | number[];
const utf8 = new TextEncoder();
const text = new TextDecoder();
const concat = (parts: Bytes[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) (out.set(part, at), at += part.length);
  return out;
};
const u16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];
const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

/** A Variable Byte Integer (MQTT 5 §1.5.5): 7 bits a byte, at most 4 bytes. */
function varint(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 268_435_455) {
    throw new RangeError(`Cannot encode ${n} as a variable byte integer: 0 to 268435455`);
  }
  const out: number[] = [];
  do {
    out.push((n % 128) | (n >= 128 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return new Uint8Array(out);
}
/** A length-prefixed UTF-8 string or binary field (MQTT 5 §1.5.4, §1.5.6). */
const string = (s: string | Uint8Array): Uint8Array => {
  const bytes = typeof s === "string" ? utf8.encode(s) : s;
  return concat([u16(bytes.length), bytes]);
};
/** A fixed header declaring `remainingLength` bytes, whether or not they follow. */
const header = (first: number, remainingLength: number): Uint8Array =>
  concat([[first], varint(remainingLength)]);

const WRITE = {
  u8: (n: number) => [n],
  u16,
  u32,
  varint,
  string: string as (s: string) => Uint8Array,
  binary: string as (b: Uint8Array) => Uint8Array,
};
/** A property section: its length, then each property (MQTT 5 §2.2.2). */
function properties(props: Properties = {}): Uint8Array {
  const parts: Bytes[] = [];
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined) continue;
    const entry = PROPERTIES.find(([, n]) => n === name);
    if (!entry) throw new TypeError(`Cannot encode the MQTT 5 property '${name}': unknown`);
    const [id, , kind] = entry;
    for (const v of kind === "pair" ? value as [string, string][] : [value]) {
      parts.push(
        [id],
        kind === "pair" ? concat((v as string[]).map(string)) : WRITE[kind](v as never),
      );
    }
  }
  const body = concat(parts);
  return concat([varint(body.length), body]);
}

/** Encodes `packet` for protocol `version` (3 and 4 alike); CONNECT is not encoded. */
function packet(p: Exclude<Packet, { cmd: "connect" }>, version: 3 | 4 | 5 = 4): Uint8Array {
  const v5 = version === 5;
  const props = (x?: Properties) => v5 ? properties(x) : [];
  const frame = (first: number, ...body: Bytes[]) => {
    const bytes = concat(body);
    return concat([header(first, bytes.length), bytes]);
  };
  const only5 = (what: string) => {
    if (!v5) throw new TypeError(`Cannot send ${what} under MQTT ${version}: only under MQTT 5`);
  };
  // Under MQTT 5 a zero reason code without properties may be left out (§3.4.2.1, §3.14.2.1).
  const reason = (code = 0, x?: Properties) => {
    if (code === 0 && !x) return [];
    only5(`${p.cmd.toUpperCase()} reason code ${code} or properties`);
    return concat([[code], x ? properties(x) : []]);
  };
  switch (p.cmd) {
    case "connack":
      if (p.properties) only5("CONNACK properties");
      return frame(0x20, [p.sessionPresent ? 1 : 0, p.reasonCode ?? 0], props(p.properties));
    case "publish": {
      if ((p.qos > 0) !== (p.id !== undefined)) {
        throw new TypeError(`Cannot encode a QoS ${p.qos} PUBLISH with packet id ${p.id}`);
      }
      const flags = (p.dup ? 8 : 0) | (p.qos << 1) | (p.retain ? 1 : 0);
      const id = p.id === undefined ? [] : u16(p.id);
      return frame(0x30 | flags, string(p.topic), id, props(p.properties), p.payload);
    }
    case "puback":
    case "pubrec":
    case "pubrel":
    case "pubcomp": {
      const first = (TYPES.indexOf(p.cmd) << 4) | (p.cmd === "pubrel" ? 2 : 0);
      return frame(first, u16(p.id), reason(p.reasonCode, p.properties));
    }
    case "subscribe":
      return frame(
        0x82,
        u16(p.id),
        props(p.properties),
        ...p.subscriptions.flatMap((s) => [string(s.topic), [s.options ?? s.qos]]),
      );
    case "suback":
      return frame(0x90, u16(p.id), props(p.properties), p.codes);
    case "unsubscribe":
      return frame(0xa2, u16(p.id), props(p.properties), ...p.topics.map(string));
    case "unsuback":
      return frame(0xb0, u16(p.id), v5 ? concat([properties(p.properties), p.codes]) : []);
    case "pingreq":
      return frame(0xc0);
    case "pingresp":
      return frame(0xd0);
    case "disconnect":
      return frame(0xe0, reason(p.reasonCode, p.properties));
  }
}

/** Encoders: whole packets, and the pieces to build malformed ones from. */
export const encode = { packet, header, varint, string, properties };

/** Reads the fields of one packet's body; running past its end is a malformed packet. */
class Reader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}
  take(n: number): Uint8Array {
    if (this.at + n > this.bytes.length) throw new RangeError("Malformed packet: too short");
    return this.bytes.subarray(this.at, this.at += n);
  }
  u8 = (): number => this.take(1)[0];
  u16 = (): number => (this.u8() << 8) | this.u8();
  u32 = (): number => ((this.u16() << 16) | this.u16()) >>> 0;
  varint(): number {
    let n = 0;
    for (let i = 0; i < 4; i++) {
      const b = this.u8();
      n += (b & 0x7f) * 128 ** i;
      if (!(b & 0x80)) return n;
    }
    throw new RangeError("Malformed packet: a variable byte integer longer than 4 bytes");
  }
  binary = (): Uint8Array => this.take(this.u16());
  string = (): string => text.decode(this.binary());
  rest = (): Uint8Array => this.take(this.bytes.length - this.at);
  get more(): boolean {
    return this.at < this.bytes.length;
  }
  properties(): Properties {
    const end = this.varint() + this.at;
    const out: Record<string, unknown> = {};
    while (this.at < end) {
      const id = this.u8();
      const entry = PROPERTIES.find(([i]) => i === id);
      if (!entry) throw new RangeError(`Malformed packet: unknown property 0x${id.toString(16)}`);
      const [, name, kind] = entry;
      if (kind === "pair") {
        ((out[name] ??= []) as [string, string][]).push([this.string(), this.string()]);
      } else out[name] = kind === "binary" ? this.binary() : this[kind]();
    }
    if (this.at !== end) throw new RangeError("Malformed packet: property length");
    return out as Properties;
  }
}

/**
 * Decodes a byte stream into packets, whatever the TCP chunking: a packet split across chunks
 * waits for its end, several packets in one chunk all come out. The protocol version (which
 * decides whether property sections exist) follows the CONNECT it decodes, or is set directly.
 */
export class PacketDecoder {
  #chunks: Uint8Array[] = [];
  #length = 0;
  /** @param version the protocol level; @param maxPacketSize a larger declared packet throws */
  constructor(public version: 3 | 4 | 5 = 4, readonly maxPacketSize = 16 * 2 ** 20) {}

  /** Takes `chunk` and returns every packet it completes; throws on a malformed packet. */
  push(chunk: Uint8Array): Packet[] {
    if (chunk.length) (this.#chunks.push(chunk), this.#length += chunk.length);
    const out: Packet[] = [];
    for (;;) {
      const head = this.#peek(Math.min(5, this.#length));
      let size = 0, at = 1;
      for (;; at++) {
        if (at >= head.length) {
          if (at > 4) throw new RangeError("Malformed packet: Remaining Length over 4 bytes");
          return out;
        }
        size += (head[at] & 0x7f) * 128 ** (at - 1);
        if (!(head[at] & 0x80)) break;
      }
      const total = at + 1 + size;
      if (total > this.maxPacketSize) {
        throw new RangeError(
          `Packet of ${total} bytes (Remaining Length ${size}) exceeds ${this.maxPacketSize}`,
        );
      }
      if (this.#length < total) return out;
      const bytes = this.#peek(total);
      this.#chunks[0] = this.#chunks[0].subarray(total);
      this.#length -= total;
      out.push(this.#decode(bytes[0], new Reader(bytes.subarray(at + 1))));
    }
  }

  /** The first `n` buffered bytes, joining chunks only when the first is too short. */
  #peek(n: number): Uint8Array {
    if (this.#chunks.length > 1 && this.#chunks[0].length < n) {
      this.#chunks = [concat(this.#chunks)];
    }
    return (this.#chunks[0] ?? new Uint8Array()).subarray(0, n);
  }

  #decode(first: number, r: Reader): Packet {
    const cmd = TYPES[first >> 4];
    const v5 = this.version === 5;
    const props = () => v5 ? { properties: r.properties() } : {};
    switch (cmd) {
      case "connect": {
        const protocolName = r.string(), version = r.u8(), flags = r.u8(), keepalive = r.u16();
        if (version !== 3 && version !== 4 && version !== 5) {
          throw new RangeError(`Malformed CONNECT: protocol level ${version}`);
        }
        this.version = version;
        const properties = version === 5 ? r.properties() : undefined;
        const info: ConnectInfo = {
          version,
          protocolName,
          clientId: r.string(),
          keepalive,
          clean: !!(flags & 2),
        };
        if (properties) info.properties = properties;
        if (flags & 4) {
          const will = version === 5 ? { properties: r.properties() } : {};
          info.will = {
            ...will,
            topic: r.string(),
            payload: r.binary(),
            qos: (flags >> 3) & 3,
            retain: !!(flags & 0x20),
          };
        }
        if (flags & 0x80) info.username = r.string();
        if (flags & 0x40) info.password = r.binary();
        return { cmd, ...info };
      }
      case "connack":
        return { cmd, sessionPresent: !!(r.u8() & 1), reasonCode: r.u8(), ...props() };
      case "publish": {
        const qos = ((first >> 1) & 3) as 0 | 1 | 2;
        const topic = r.string(), id = qos ? r.u16() : undefined;
        const flags = {
          dup: !!(first & 8),
          retain: !!(first & 1),
          ...(id === undefined ? {} : { id }),
        };
        return { cmd, topic, qos, ...flags, ...props(), payload: r.rest() };
      }
      case "puback":
      case "pubrec":
      case "pubrel":
      case "pubcomp":
      case "disconnect": {
        const id = cmd === "disconnect" ? undefined : r.u16();
        const p = { cmd, ...(id === undefined ? {} : { id }) } as Packet & { reasonCode?: number };
        if (v5) p.reasonCode = r.more ? r.u8() : 0;
        if (r.more) Object.assign(p, { properties: r.properties() });
        return p;
      }
      case "subscribe":
      case "unsubscribe": {
        const id = r.u16(), properties = props();
        if (cmd === "unsubscribe") {
          const topics: string[] = [];
          while (r.more) topics.push(r.string());
          return { cmd, id, topics, ...properties };
        }
        const subscriptions: PacketOf<"subscribe">["subscriptions"] = [];
        while (r.more) {
          const topic = r.string(), options = r.u8();
          subscriptions.push({ topic, qos: options & 3, options });
        }
        return { cmd, id, subscriptions, ...properties };
      }
      case "suback":
      case "unsuback": {
        const id = r.u16(), properties = props();
        return { cmd, id, ...properties, codes: Array.from(r.rest()) };
      }
      case "pingreq":
      case "pingresp":
        return { cmd };
      default:
        throw new RangeError(`Malformed packet: unsupported packet type ${first >> 4}`);
    }
  }
}
