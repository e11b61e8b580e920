// An MQTT-aware TCP fault proxy for the chaos harness: it reads the framing of the packets it
// forwards (fixed header only, never the contents), so a fault can hit at an exact point of
// the MQTT exchange (after the PUBLISH, before its PUBACK, ...), not at a random byte.
// Only node: APIs, so the same file runs under Deno and Bun.
import { createConnection, createServer, type Socket } from "node:net";
import { clearTimeout, setTimeout } from "node:timers";

/** The name of an MQTT control packet type (MQTT 5 §2.1.2; "auth" is MQTT 5 only). */
export type PacketType =
  | "connect"
  | "connack"
  | "publish"
  | "puback"
  | "pubrec"
  | "pubrel"
  | "pubcomp"
  | "subscribe"
  | "suback"
  | "unsubscribe"
  | "unsuback"
  | "pingreq"
  | "pingresp"
  | "disconnect"
  | "auth";

/**
 * Packet type names by MQTT control packet type number: `PACKET_TYPES[n]` names type `n`
 * (1…15). Index 0, a reserved type no client sends, is undefined.
 */
export const PACKET_TYPES: readonly (PacketType | undefined)[] = Object.freeze([
  undefined,
  "connect",
  "connack",
  "publish",
  "puback",
  "pubrec",
  "pubrel",
  "pubcomp",
  "subscribe",
  "suback",
  "unsubscribe",
  "unsuback",
  "pingreq",
  "pingresp",
  "disconnect",
  "auth",
]);

/** What a {@linkcode FaultProxy} has done so far. */
export interface FaultProxyStats {
  /** Connections accepted and forwarded (refused ones are not counted). */
  connections: number;
  /** Connections the proxy cut: by cutNow(), by an armed cutAt(), or for malformed framing. */
  cuts: number;
  /**
   * Packets seen, by type name, both directions together; a packet is counted once its first
   * byte is read, so one a cut stopped counts too. Type 0 counts as "reserved".
   */
  packets: Record<string, number>;
  /** Calls of delay(). */
  delays: number;
}

/** A TCP proxy in front of one broker that fails in the ways asked, at MQTT packet boundaries. */
export interface FaultProxy extends AsyncDisposable {
  /** mqtt://127.0.0.1:<port> */
  url: string;
  port: number;
  /** host:port, for a connection string listing several brokers */
  address: string;
  /**
   * Arms a cut: the next packet of `type` that passes in either direction (client->broker or
   * broker->client) on any connection makes the proxy cut every connection it holds. With
   * `after: false` (default) the bytes before that packet are forwarded and the packet itself is
   * not (it never arrives); with `after: true` the packet is forwarded and then the connections
   * are cut (it arrives, whatever answers it does not). Resolves true when it cut, false when
   * `withinMs` passed first (then the arm is removed). Several arms may be pending at once.
   */
  cutAt(type: PacketType, options?: { after?: boolean; withinMs?: number }): Promise<boolean>;
  /** Cuts every connection now (both sockets destroyed); returns how many were cut. New connections are accepted. */
  cutNow(): number;
  /** Holds every byte in both directions, on every connection, for `ms`, then forwards what was held in order (a network stall, nothing lost); bytes arriving while held wait behind it. Resolves when released. Overlapping delays extend the hold. */
  delay(ms: number): Promise<void>;
  /** Refuses new connections (accept then destroy at once) for `ms` (a broker that is unreachable). */
  refuse(ms: number): Promise<void>;
  readonly stats: FaultProxyStats;
  close(): Promise<void>;
}

/** A pending cutAt(). */
interface Arm {
  type: PacketType;
  after: boolean;
  /** The direction whose current packet will fire it at its end (after: true), once seen. */
  claimedBy?: Direction;
  settle(cut: boolean): void;
}

/**
 * A span of time that calls extend; each caller's promise resolves when the span ends, which
 * for overlapping calls is the end of the latest.
 */
class Span {
  #until = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #waiting: (() => void)[] = [];
  readonly #ended: () => void;

  /** `ended` runs when the span ends by itself (not by end()). */
  constructor(ended: () => void = () => {}) {
    this.#ended = ended;
  }

  get active(): boolean {
    return this.#timer !== undefined;
  }

  extend(ms: number): Promise<void> {
    this.#until = Math.max(this.#until, Date.now() + Math.max(0, ms));
    const done = new Promise<void>((resolve) => this.#waiting.push(resolve));
    if (this.#timer === undefined) this.#schedule();
    return done;
  }

  /** Ends the span now (close()), resolving every caller. */
  end(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const resolve of this.#waiting.splice(0)) resolve();
  }

  #schedule(): void {
    // One timer re-armed to the latest end, rather than one per call: a shorter call that
    // overlaps a longer one must not end the span early.
    this.#timer = setTimeout(() => {
      if (Date.now() < this.#until) return this.#schedule();
      this.end();
      this.#ended();
    }, Math.max(0, this.#until - Date.now()));
  }
}

/** One connection: the client's socket and the one the proxy opened to the broker. */
interface Pair {
  client: Socket;
  upstream: Socket;
  toBroker: Direction;
  toClient: Direction;
  /** Set once cut: nothing more is forwarded, and the sockets go once flushed. */
  cut: boolean;
}

/** What the directions of every connection share: the proxy's state and its cuts. */
interface Shared {
  stats: FaultProxyStats;
  held(): boolean;
  /** The oldest unclaimed arm for `type`, if any. */
  armFor(type: PacketType): Arm | undefined;
  /** Cuts every connection, counting them; `arm` (if any) resolves true. */
  cutAll(arm?: Arm): number;
  /** Cuts this one connection. */
  cutPair(pair: Pair): void;
  tap?: Tap;
}

/**
 * Sees every chunk the proxy receives, before any fault acts on it: `connection` is the same
 * object for both directions of one connection, `toBroker` says which way it goes.
 */
export type Tap = (connection: object, toBroker: boolean, chunk: Uint8Array) => void;

/** The bytes of one direction of one connection, framed as MQTT packets as they pass. */
class Direction {
  /** Chunks received while the proxy holds traffic, forwarded in order on release. */
  readonly queue: Uint8Array[] = [];
  /** Writes handed to `to` whose callback has not come yet (a cut waits for them). */
  inflight = 0;
  #onFlushed: (() => void) | undefined;
  /** Whether `to` asked to wait ('drain'), so `from` is paused. */
  #blocked = false;
  // Parser state: between packets, in the Remaining Length, or in the body.
  #phase: "type" | "length" | "body" = "type";
  #length = 0;
  #multiplier = 1;
  #lengthBytes = 0;
  #remaining = 0;
  /** An after: true arm fired by the packet being read, once it has passed whole. */
  #cutAfter: Arm | undefined;

  readonly pair: Pair;
  readonly from: Socket;
  readonly to: Socket;
  readonly proxy: Shared;

  constructor(pair: Pair, from: Socket, to: Socket, proxy: Shared) {
    this.pair = pair;
    this.from = from;
    this.to = to;
    this.proxy = proxy;
    to.on("drain", () => {
      this.#blocked = false;
      this.resume();
    });
  }

  /** A chunk from `from`: forwarded now, or queued behind a hold. */
  receive(chunk: Uint8Array): void {
    if (this.pair.cut) return;
    this.proxy.tap?.(this.pair, this === this.pair.toBroker, chunk);
    if (this.proxy.held() || this.queue.length > 0) {
      this.queue.push(chunk);
      // Backpressure for the stall: the sender's bytes wait in its socket, not in memory here.
      this.from.pause();
      return;
    }
    this.#frame(chunk);
  }

  /** Forwards what was queued during a hold, then lets `from` flow again. */
  release(): void {
    while (this.queue.length > 0 && !this.pair.cut) this.#frame(this.queue.shift()!);
    this.queue.length = 0;
    this.resume();
  }

  resume(): void {
    if (!this.#blocked && !this.proxy.held() && !this.pair.cut) this.from.resume();
  }

  /** Calls `done` once every write handed to `to` has completed (at once if none is pending). */
  flushed(done: () => void): void {
    if (this.inflight === 0) done();
    else this.#onFlushed = done;
  }

  /** Forwards the whole of `chunk` or the part before a cut, reading packet boundaries. */
  #frame(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#phase === "body") {
        const take = Math.min(this.#remaining, chunk.length - i);
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0 && this.#packetEnd(chunk, i)) return;
      } else if (this.#phase === "type") {
        const name = PACKET_TYPES[chunk[i] >> 4] ?? "reserved";
        const packets = this.proxy.stats.packets;
        packets[name] = (packets[name] ?? 0) + 1;
        const arm = name === "reserved" ? undefined : this.proxy.armFor(name);
        if (arm && !arm.after) {
          // The bytes before the packet pass; the packet and all after it never do.
          this.#write(chunk.subarray(0, i));
          this.proxy.cutAll(arm);
          return;
        }
        if (arm) {
          arm.claimedBy = this;
          this.#cutAfter = arm;
        }
        i++;
        this.#phase = "length";
        this.#length = 0;
        this.#multiplier = 1;
        this.#lengthBytes = 0;
      } else {
        const byte = chunk[i++];
        this.#length += (byte & 0x7f) * this.#multiplier;
        this.#multiplier *= 128;
        this.#lengthBytes++;
        if (byte & 0x80) {
          // A fifth length byte is not MQTT: the stream can no longer be framed.
          if (this.#lengthBytes === 4) return this.proxy.cutPair(this.pair);
        } else {
          this.#remaining = this.#length;
          this.#phase = "body";
          if (this.#remaining === 0 && this.#packetEnd(chunk, i)) return;
        }
      }
    }
    this.#write(chunk);
  }

  /** A packet ended at `end` of `chunk`: fires its after: true arm, if any; true when it cut. */
  #packetEnd(chunk: Uint8Array, end: number): boolean {
    this.#phase = "type";
    const arm = this.#cutAfter;
    this.#cutAfter = undefined;
    // An arm that timed out while its packet was in flight was removed: it cuts nothing.
    if (!arm || arm.claimedBy !== this) return false;
    this.#write(chunk.subarray(0, end));
    this.proxy.cutAll(arm);
    return true;
  }

  /** Unclaims the arm of the packet being read, for when this connection ends first. */
  unclaim(): void {
    if (this.#cutAfter?.claimedBy === this) this.#cutAfter.claimedBy = undefined;
    this.#cutAfter = undefined;
  }

  #write(bytes: Uint8Array): void {
    if (bytes.length === 0 || this.to.destroyed) return;
    this.inflight++;
    const ok = this.to.write(bytes, () => {
      if (--this.inflight === 0) {
        const done = this.#onFlushed;
        this.#onFlushed = undefined;
        done?.();
      }
    });
    if (!ok && !this.#blocked) {
      this.#blocked = true;
      this.from.pause();
    }
  }
}

/** How long a cut waits for its last forwarded bytes to leave before destroying anyway. */
const FLUSH_LIMIT_MS = 1_000;

/**
 * Starts a proxy on 127.0.0.1 (random port) to 127.0.0.1:`port`. If the upstream refuses, the
 * client socket is closed. `tap`, if given, sees every chunk received (see {@linkcode Tap}).
 */
export async function startFaultProxy(
  port: number,
  { tap }: { tap?: Tap } = {},
): Promise<FaultProxy> {
  const pairs = new Set<Pair>();
  /** Every socket still open, including those of cut connections still flushing. */
  const sockets = new Set<Socket>();
  const arms: Arm[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const stats: FaultProxyStats = { connections: 0, cuts: 0, packets: {}, delays: 0 };
  let closed = false;

  const hold = new Span(() => {
    for (const pair of pairs) {
      pair.toBroker.release();
      pair.toClient.release();
    }
  });
  const refusal = new Span();

  const destroyPair = (pair: Pair) => {
    pair.client.destroy();
    pair.upstream.destroy();
  };

  const cutPair = (pair: Pair) => {
    if (pair.cut) return;
    pair.cut = true;
    stats.cuts++;
    pairs.delete(pair);
    // The bytes a cut lets through (those before the packet, or the packet itself with
    // after: true) were handed to write(); destroy() would drop them if still queued in the
    // runtime, so each socket goes once its own writes completed (bounded, for a peer that
    // stopped reading).
    for (const direction of [pair.toBroker, pair.toClient]) {
      direction.unclaim();
      const socket = direction.to;
      const limit = setTimeout(() => socket.destroy(), FLUSH_LIMIT_MS);
      timers.add(limit);
      direction.flushed(() => {
        clearTimeout(limit);
        timers.delete(limit);
        socket.destroy();
      });
    }
  };

  const proxy: Shared = {
    tap,
    stats,
    held: () => hold.active,
    armFor: (type) => arms.find((arm) => arm.type === type && !arm.claimedBy),
    cutPair,
    cutAll(arm) {
      if (arm) arm.settle(true);
      const count = pairs.size;
      for (const pair of [...pairs]) cutPair(pair);
      return count;
    },
  };

  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // An error is followed by 'close', which ends the pair.
    socket.on("error", () => {});
  };

  const server = createServer((client) => {
    track(client);
    if (closed || refusal.active) {
      client.destroy();
      return;
    }
    stats.connections++;
    const upstream = createConnection({ host: "127.0.0.1", port });
    track(upstream);
    const pair = { client, upstream, cut: false } as Pair;
    pair.toBroker = new Direction(pair, client, upstream, proxy);
    pair.toClient = new Direction(pair, upstream, client, proxy);
    pairs.add(pair);
    client.on("data", (chunk: Uint8Array) => pair.toBroker.receive(chunk));
    upstream.on("data", (chunk: Uint8Array) => pair.toClient.receive(chunk));
    // Either side gone: the other goes too, unless a cut is
    // already flushing its last bytes and will destroy it itself.
    const ended = () => {
      if (pair.cut) return;
      pairs.delete(pair);
      pair.toBroker.unclaim();
      pair.toClient.unclaim();
      destroyPair(pair);
    };
    client.once("close", ended);
    upstream.once("close", ended);
    // A connection accepted during a hold is held from its first byte.
    if (hold.active) {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const listening = (server.address() as { port: number }).port;

  const close = async () => {
    if (closed) return;
    closed = true;
    for (const arm of [...arms]) arm.settle(false);
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    hold.end();
    refusal.end();
    pairs.clear();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };

  return {
    url: `mqtt://127.0.0.1:${listening}`,
    port: listening,
    address: `127.0.0.1:${listening}`,
    stats,
    cutAt(type, { after = false, withinMs } = {}) {
      if (closed) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const arm: Arm = {
          type,
          after,
          settle(cut) {
            const at = arms.indexOf(arm);
            if (at < 0) return;
            arms.splice(at, 1);
            arm.claimedBy = undefined;
            if (timer !== undefined) {
              clearTimeout(timer);
              timers.delete(timer);
            }
            resolve(cut);
          },
        };
        arms.push(arm);
        if (withinMs !== undefined) {
          timer = setTimeout(() => arm.settle(false), withinMs);
          timers.add(timer);
        }
      });
    },
    cutNow: () => proxy.cutAll(),
    delay(ms) {
      stats.delays++;
      if (closed) return Promise.resolve();
      return hold.extend(ms);
    },
    refuse(ms) {
      if (closed) return Promise.resolve();
      return refusal.extend(ms);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
