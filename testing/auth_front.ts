// A TCP front that adds MQTT 5 enhanced authentication (MQTT 5 §4.12) with SCRAM-SHA-256 to a
// real mosquitto, which has no SCRAM of its own: the front runs the challenge–response, then
// relays the connection to mosquitto, and answers re-authentications (§4.12.1) on a live
// connection. So a test proves authentication and re-authentication with messages flowing
// through a real broker; only the AUTH exchange is the front's.
//
// Both byte streams are split into whole packets (whatever the TCP chunking) and relayed as the
// bytes that came: only CONNECT loses its authentication properties, and CONNACK gains the
// server's final message. What the front sends itself (AUTH, DISCONNECT) goes between two whole
// packets of the broker's stream, and nothing is held back meanwhile.
import { createConnection, createServer, type Socket } from "node:net";
import {
  encode,
  type Packet,
  PacketDecoder,
  type PacketOf,
  type Properties,
} from "./mqtt_codec.ts";
import { type ScramExchange, ScramServer } from "./scram.ts";

/** Options of {@linkcode startAuthFront}. */
export interface AuthFrontOptions {
  /** The port of the broker behind the front, on 127.0.0.1. */
  upstreamPort: number;
  /** SCRAM passwords by username. */
  users: Record<string, string>;
  /** The Authentication Method the front accepts. @default "SCRAM-SHA-256" */
  method?: string;
}

/** What a front has done since it started (a live object). */
export interface AuthFrontCounters {
  /** Connections authenticated (then handed to the broker). */
  authentications: number;
  /** Re-authentications that succeeded. */
  reauthentications: number;
  /** Exchanges refused: a wrong method, a wrong password, a failed re-authentication. */
  refused: number;
}

/** A running front, from {@linkcode startAuthFront}. */
export interface AuthFront extends AsyncDisposable {
  /** mqtt://127.0.0.1:<port> */
  url: string;
  port: number;
  /** Changes `user`'s password (or adds the user); the next (re)authentication needs it. */
  setPassword(user: string, password: string): void;
  counters: AuthFrontCounters;
  /** Ends every connection, both sides, and the server. */
  close(): Promise<void>;
}

// Reason codes (MQTT 5 §2.4).
const SUCCESS = 0x00;
const CONTINUE = 0x18;
const REAUTHENTICATE = 0x19;
const PROTOCOL_ERROR = 0x82;
const NOT_AUTHORIZED = 0x87;
const BAD_METHOD = 0x8c;
// Packet types, the high nibble of the first byte (MQTT 5 §2.1.2).
const CONNECT = 1, CONNACK = 2, DISCONNECT = 14, AUTH = 15;

/**
 * Starts a front on a random port of 127.0.0.1 before the broker at `upstreamPort`: an MQTT 5
 * client must authenticate with SCRAM-SHA-256 (its client-first-message as the CONNECT's
 * Authentication Data, or in an AUTH after an empty challenge) before the front passes its
 * CONNECT on, without the authentication properties.
 *
 * @example
 * ```ts
 * await using front = await startAuthFront({ upstreamPort: broker.port, users: { u: "p" } });
 * front.setPassword("u", "rotated"); // the next re-authentication must use it
 * ```
 */
export async function startAuthFront(options: AuthFrontOptions): Promise<AuthFront> {
  const scram = new ScramServer(options.users);
  const counters: AuthFrontCounters = { authentications: 0, reauthentications: 0, refused: 0 };
  const links = new Set<Link>();
  const context = { ...options, method: options.method ?? "SCRAM-SHA-256", scram, counters };
  // Without noDelay, Nagle's algorithm holds small packets for the peer's delayed ACK (40 ms).
  const server = createServer({ noDelay: true }, (socket) => {
    const link = new Link(socket, context, () => links.delete(link));
    links.add(link);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => (server.off("error", reject), resolve()));
  });
  const port = (server.address() as { port: number }).port;
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const link of links) link.close();
    });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    setPassword: (user, password) => scram.setPassword(user, password),
    counters,
    close,
    [Symbol.asyncDispose]: close,
  };
}

interface Context {
  upstreamPort: number;
  method: string;
  scram: ScramServer;
  counters: AuthFrontCounters;
}

/**
 * Splits a byte stream into whole MQTT packets, whatever the chunking: a packet split across
 * chunks waits for its end; several in one chunk all come out, as the bytes that came.
 * Unlike `PacketDecoder` it decodes nothing, so it passes any packet type, AUTH included.
 */
export class PacketFramer {
  #buffer: Uint8Array = new Uint8Array(0);

  /** Takes `chunk`, returns the packets it completes; throws on a malformed Remaining Length. */
  push(chunk: Uint8Array): Uint8Array[] {
    let buffer = chunk;
    if (this.#buffer.length) {
      buffer = new Uint8Array(this.#buffer.length + chunk.length);
      buffer.set(this.#buffer);
      buffer.set(chunk, this.#buffer.length);
    }
    const out: Uint8Array[] = [];
    for (;;) {
      // The Remaining Length: a Variable Byte Integer of at most 4 bytes (MQTT 5 §2.1.4).
      let size = 0, at = 1, complete = false;
      while (!complete) {
        if (at > 4) throw new RangeError("Malformed packet: Remaining Length over 4 bytes");
        if (at >= buffer.length) break;
        size += (buffer[at] & 0x7f) * 128 ** (at - 1);
        complete = !(buffer[at++] & 0x80);
      }
      if (!complete || buffer.length < at + size) break;
      out.push(buffer.subarray(0, at + size));
      buffer = buffer.subarray(at + size);
    }
    this.#buffer = buffer;
    return out;
  }
}

/** Decodes one whole MQTT 5 packet. */
const decode = (bytes: Uint8Array): Packet => new PacketDecoder(5).push(bytes)[0];

/**
 * An AUTH packet (MQTT 5 §3.15), which testing/mqtt_codec.ts does not know: its body is laid out
 * as a DISCONNECT's (§3.15.2, §3.14.2), so that codec encodes it with another first byte.
 */
export function encodeAuth(reasonCode: number, properties: Properties): Uint8Array {
  const bytes = encode.packet({ cmd: "disconnect", reasonCode, properties }, 5);
  bytes[0] = AUTH << 4;
  return bytes;
}
/** Decodes one whole AUTH packet (see {@linkcode encodeAuth}); throws on a malformed one. */
export function decodeAuth(bytes: Uint8Array): { reasonCode: number; properties: Properties } {
  if (bytes[0] !== AUTH << 4) throw new RangeError(`Not an AUTH packet: first byte ${bytes[0]}`);
  const copy = Uint8Array.from(bytes);
  copy[0] = DISCONNECT << 4;
  const packet = decode(copy) as PacketOf<"disconnect">;
  return { reasonCode: packet.reasonCode ?? SUCCESS, properties: packet.properties ?? {} };
}

/**
 * `connect` without its Authentication Method and Data: the bytes that came, with only the
 * property section rewritten (after protocol name, level, flags and keep alive, MQTT 5 §3.1.2).
 */
function withoutAuthentication(bytes: Uint8Array, connect: PacketOf<"connect">): Uint8Array {
  let at = 1;
  while (bytes[at++] & 0x80); // the fixed header's Remaining Length
  const start = at + 2 + ((bytes[at] << 8) | bytes[at + 1]) + 4;
  let length = 0, end = start;
  for (let i = 0; i < 4; i++) {
    const byte = bytes[end++];
    length += (byte & 0x7f) * 128 ** i;
    if (!(byte & 0x80)) break;
  }
  const { authenticationMethod: _m, authenticationData: _d, ...rest } = connect.properties ?? {};
  const properties = encode.properties(rest);
  const body = new Uint8Array(start - at + properties.length + bytes.length - end - length);
  body.set(bytes.subarray(at, start));
  body.set(properties, start - at);
  body.set(bytes.subarray(end + length), start - at + properties.length);
  const header = encode.header(CONNECT << 4, body.length);
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(body, header.length);
  return out;
}

/**
 * One client's connection and, once it has authenticated, its connection to the broker.
 * States: "connect" (waiting for CONNECT), "auth" (the first exchange), "connack" (the broker
 * has the CONNECT), "relay" (connected; re-authentication possible), "closed".
 */
class Link {
  #state: "connect" | "auth" | "connack" | "relay" | "closed" = "connect";
  #upstream?: Socket;
  /** Sockets not yet closed: the link is gone when both are. */
  #open = 1;
  #connect?: { bytes: Uint8Array; packet: PacketOf<"connect"> };
  /** The exchange running: waiting for a client-first (null) or a client-final. */
  #exchange?: ScramExchange | null;
  #finishing = false;
  #serverFinal?: Uint8Array;
  /** Client packets that came before the broker connection existed (§3.1.2.11.9 forbids them). */
  #early: Uint8Array[] = [];

  constructor(readonly client: Socket, readonly context: Context, readonly onClose: () => void) {
    const framer = new PacketFramer();
    client.on(
      "data",
      (chunk: Uint8Array) => this.#guard(() => framer.push(chunk), this.#fromClient),
    );
    client.on("error", () => this.close());
    // The client's side closed: the broker's ends once it has what was relayed (a DISCONNECT).
    client.on("close", () => (this.#state = "closed", this.#upstream?.end(), this.#gone()));
  }

  /** Relays the whole packets of a chunk; a malformed packet ends both sides. */
  #guard(packets: () => Uint8Array[], each: (bytes: Uint8Array) => void): void {
    try {
      packets().forEach(each);
    } catch {
      this.close();
    }
  }

  #gone(): void {
    if (--this.#open === 0) this.onClose();
  }

  #fromClient = (bytes: Uint8Array): void => {
    const type = bytes[0] >> 4;
    if (this.#state === "closed") return;
    if (this.#state === "connect") return this.#onConnect(bytes);
    if (type === AUTH) return this.#onAuth(decodeAuth(bytes));
    if (type === DISCONNECT && this.#state === "auth") return this.close();
    if (this.#upstream) write(this.#upstream, bytes, this.client);
    else this.#early.push(bytes);
  };

  #onConnect(bytes: Uint8Array): void {
    const packet = new PacketDecoder().push(bytes)[0];
    if (packet?.cmd !== "connect") return this.close();
    this.#connect = { bytes, packet };
    const { authenticationMethod: method, authenticationData: data } = packet.properties ?? {};
    if (method !== this.context.method) return this.#refuse(BAD_METHOD);
    this.#state = "auth";
    this.#begin(data);
  }

  /** Starts an exchange with a client-first-message, or asks for one with an empty challenge. */
  #begin(clientFirst: Uint8Array | undefined): void {
    const method = this.context.method;
    if (!clientFirst?.length) {
      this.#exchange = null;
      return this.#send(encodeAuth(CONTINUE, { authenticationMethod: method }));
    }
    try {
      this.#exchange = this.context.scram.start(clientFirst);
    } catch {
      return this.#refuse(NOT_AUTHORIZED);
    }
    const authenticationData = this.#exchange.serverFirst;
    this.#send(encodeAuth(CONTINUE, { authenticationMethod: method, authenticationData }));
  }

  #onAuth({ reasonCode, properties }: { reasonCode: number; properties: Properties }): void {
    const { authenticationMethod: method, authenticationData: data } = properties;
    // Between the CONNECT passed on and the CONNACK, the client has nothing to answer.
    if (this.#state === "connack") return this.close();
    if (this.#finishing) return this.#refuse(PROTOCOL_ERROR);
    if (method !== this.context.method) return this.#refuse(BAD_METHOD);
    // Re-authentication starts with 0x19 once connected (§4.12.1); the rest continues with 0x18.
    if (reasonCode === REAUTHENTICATE && this.#state === "relay") return this.#begin(data);
    if (reasonCode !== CONTINUE || this.#exchange === undefined) {
      return this.#refuse(PROTOCOL_ERROR);
    }
    if (this.#exchange === null) return this.#begin(data);
    const exchange = this.#exchange;
    this.#exchange = undefined;
    this.#finishing = true;
    // Meanwhile packets keep flowing both ways: only this exchange waits for the proof's check.
    exchange.finish(data ?? new Uint8Array()).then((result) => {
      this.#finishing = false;
      if (this.#state === "closed") return;
      if (!result.ok) return this.#refuse(NOT_AUTHORIZED);
      if (this.#state === "auth") return this.#openUpstream(result.serverFinal);
      this.context.counters.reauthentications++;
      const authenticationData = result.serverFinal;
      this.#send(
        encodeAuth(SUCCESS, { authenticationMethod: this.context.method, authenticationData }),
      );
    }).catch(() => this.close());
  }

  /**
   * Ends a refused exchange: a CONNACK with `reasonCode` before the connection is made
   * (MQTT 3.1.1's "not authorized", 5, below MQTT 5), a DISCONNECT after it; then both sides.
   */
  #refuse(reasonCode: number): void {
    if (this.#state === "closed") return;
    this.context.counters.refused++;
    const version = this.#connect?.packet.version ?? 5;
    const packet: Packet = this.#state === "relay"
      ? { cmd: "disconnect", reasonCode }
      : { cmd: "connack", reasonCode: version === 5 ? reasonCode : 5 };
    this.#state = "closed";
    this.client.end(encode.packet(packet, version));
    this.#upstream?.destroy();
  }

  #send(bytes: Uint8Array): void {
    if (!this.client.destroyed) this.client.write(bytes);
  }

  /** Hands the CONNECT to the broker; its CONNACK will carry `serverFinal` to the client. */
  #openUpstream(serverFinal: Uint8Array): void {
    this.context.counters.authentications++;
    this.#serverFinal = serverFinal;
    this.#state = "connack";
    const upstream = createConnection({
      port: this.context.upstreamPort,
      host: "127.0.0.1",
      noDelay: true,
    });
    this.#upstream = upstream;
    this.#open++;
    const framer = new PacketFramer();
    upstream.on(
      "data",
      (chunk: Uint8Array) => this.#guard(() => framer.push(chunk), this.#fromBroker),
    );
    upstream.on("error", () => this.close());
    // The broker's side closed: the client's ends once it has read what was relayed.
    upstream.on("close", () => (this.#state = "closed", this.client.end(), this.#gone()));
    // A socket buffers what is written while it connects.
    upstream.write(withoutAuthentication(this.#connect!.bytes, this.#connect!.packet));
    for (const bytes of this.#early.splice(0)) upstream.write(bytes);
  }

  #fromBroker = (bytes: Uint8Array): void => {
    if (this.#state === "closed") return;
    if (this.#state === "connack" && bytes[0] >> 4 === CONNACK) {
      const connack = decode(bytes) as PacketOf<"connack">;
      if (connack.reasonCode === SUCCESS) {
        this.#state = "relay";
        connack.properties = {
          ...connack.properties,
          authenticationMethod: this.context.method,
          authenticationData: this.#serverFinal,
        };
        bytes = encode.packet(connack, 5);
      }
    }
    write(this.client, bytes, this.#upstream!);
  };

  /** Ends both sides now. */
  close(): void {
    this.#state = "closed";
    this.client.destroy();
    this.#upstream?.destroy();
  }
}

/** Writes to `to`; while `to` is full, `from` stops reading (backpressure both ways). */
function write(to: Socket, bytes: Uint8Array, from: Socket): void {
  if (to.destroyed || to.write(bytes) || from.isPaused()) return;
  from.pause();
  to.once("drain", () => from.resume());
}
