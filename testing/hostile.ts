// A scriptable raw MQTT server for hostile-broker tests: the one place where a broker must break
// the protocol (never acking, dropping between CONNACK and SUBACK, a SUBACK with a wrong packet
// id, oversized packets, MQTT 5 limits in the CONNACK, DISCONNECT with a reason code), which no
// real broker can be made to do. Anything that claims end-to-end behaviour uses a real broker.
// The bytes come from the hand-written codec of testing/mqtt_codec.ts, re-exported here so a test
// imports the server and the codec from one place.
import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import type { Buffer } from "node:buffer";
import {
  type ConnectInfo,
  encode,
  type Packet,
  PacketDecoder,
  type PacketOf,
  type Properties,
} from "./mqtt_codec.ts";

export * from "./mqtt_codec.ts";

const utf8 = new TextEncoder();

const DEFAULT_WAIT = 5_000;

/**
 * Runs `start` with settle functions; `ms` later it rejects with `what`. The cleanup `start`
 * returns runs once, however the promise settles, so no timer or listener is left behind.
 */
function bounded<T>(
  ms: number,
  what: string,
  start: (resolve: (v: T) => void, reject: (e: Error) => void) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let stop = () => {}, settled = false;
    const settle = (done: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop();
      done();
    };
    const timer = setTimeout(() => settle(() => reject(new Error(`${what} within ${ms} ms`))), ms);
    stop = start((v) => settle(() => resolve(v)), (e) => settle(() => reject(e)));
    if (settled) stop(); // settled inside `start`, before `stop` was known
  });
}

type Waiter = { cmd?: string; resolve(p: Packet): void; reject(e: Error): void };

/**
 * One client's connection, made once its CONNECT is decoded. Every encoder uses the CONNECT's
 * protocol version; nothing is sent unless a method says so.
 */
export class HostileConnection {
  #queue: Packet[] = [];
  #waiters = new Set<Waiter>();
  #ended = false;
  #endClosed = () => {};
  /** Resolves when the socket has closed, whoever closed it. */
  readonly closed: Promise<void> = new Promise((resolve) => (this.#endClosed = resolve));

  /** @param connect the decoded CONNECT @param maxQueued more unread packets destroy the socket */
  constructor(readonly socket: Socket, readonly connect: ConnectInfo, readonly maxQueued: number) {}

  /**
   * The next packet after CONNECT, of command `cmd` if given (others stay queued for later
   * calls); rejects after `ms` or when the connection closes first. PINGREQs are queued too.
   */
  next<C extends Packet["cmd"] = Packet["cmd"]>(cmd?: C, ms = DEFAULT_WAIT): Promise<PacketOf<C>> {
    const what = `no ${cmd ?? "packet"} from '${this.connect.clientId}'`;
    const i = this.#queue.findIndex((p) => !cmd || p.cmd === cmd);
    if (i >= 0) return Promise.resolve(this.#queue.splice(i, 1)[0] as PacketOf<C>);
    if (this.#ended) return Promise.reject(new Error(`${what}: the connection closed`));
    return bounded<PacketOf<C>>(ms, what, (resolve, reject) => {
      const waiter = { cmd, resolve: resolve as (p: Packet) => void, reject };
      this.#waiters.add(waiter);
      return () => this.#waiters.delete(waiter);
    });
  }

  /** Every packet in order until the connection closes; throws when none comes within `ms`. */
  async *packets(ms = DEFAULT_WAIT): AsyncIterable<Packet> {
    for (;;) {
      try {
        yield await this.next(undefined, ms);
      } catch (error) {
        if (this.#ended && !this.#queue.length) return;
        throw error;
      }
    }
  }

  /** Writes raw bytes; does nothing once the socket is destroyed. */
  send(bytes: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }
  /** Sends `p`, encoded for this connection's protocol version. */
  sendPacket(p: Exclude<Packet, { cmd: "connect" }>): void {
    this.send(encode.packet(p, this.connect.version));
  }
  /** CONNACK; `properties` only under MQTT 5, where `reasonCode` is a reason code (§3.2.2.2). */
  connack(init: Omit<PacketOf<"connack">, "cmd"> = {}): void {
    this.sendPacket({ cmd: "connack", ...init });
  }
  /** SUBACK with any packet id and return codes, matching a SUBSCRIBE or not. */
  suback(id: number, codes: number[]): void {
    this.sendPacket({ cmd: "suback", id, codes });
  }
  /** PUBLISH; `id` is required exactly when `qos` > 0. */
  publish(
    p: Omit<PacketOf<"publish">, "cmd" | "payload"> & { payload: Uint8Array | string },
  ): void {
    const payload = typeof p.payload === "string" ? utf8.encode(p.payload) : p.payload;
    this.sendPacket({ ...p, cmd: "publish", payload });
  }
  puback(id: number, reasonCode?: number): void {
    this.sendPacket({ cmd: "puback", id, reasonCode });
  }
  pubrec(id: number, reasonCode?: number): void {
    this.sendPacket({ cmd: "pubrec", id, reasonCode });
  }
  pubrel(id: number, reasonCode?: number): void {
    this.sendPacket({ cmd: "pubrel", id, reasonCode });
  }
  pubcomp(id: number, reasonCode?: number): void {
    this.sendPacket({ cmd: "pubcomp", id, reasonCode });
  }
  /** Sends DISCONNECT (reason and properties under MQTT 5), then ends the socket (§3.14.4). */
  disconnect(reasonCode?: number, properties?: Properties): void {
    this.sendPacket({ cmd: "disconnect", reasonCode, properties });
    this.socket.end();
  }
  /** Cuts the connection at once, as a crashing broker would. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Hands `p` to the oldest waiter that wants it, else queues it (server use only). */
  deliver(p: Packet): void {
    for (const waiter of this.#waiters) {
      if (waiter.cmd && waiter.cmd !== p.cmd) continue;
      this.#waiters.delete(waiter);
      return waiter.resolve(p);
    }
    // A client flooding a test that reads nothing must not grow memory without bound.
    if (this.#queue.push(p) > this.maxQueued) this.socket.destroy();
  }
  /** Marks the socket closed and fails every waiter (server use only). */
  end(): void {
    this.#ended = true;
    for (const { cmd, reject } of this.#waiters) {
      reject(new Error(`no ${cmd ?? "packet"} from '${this.connect.clientId}': connection closed`));
    }
    this.#waiters.clear();
    this.#endClosed();
  }
}

/** A running hostile server; `await using` closes it and destroys every socket. */
export interface HostileServer extends AsyncDisposable {
  port: number;
  /** mqtt://127.0.0.1:port (mqtts:// with the `tls` option) */
  url: string;
  /** TCP connections accepted so far, whether or not a CONNECT followed. */
  readonly connections: number;
  /** What `onConnection` threw and what the clients sent that did not decode: expect none. */
  readonly errors: unknown[];
  /** The next connection not yet taken by `accept`, in arrival order; rejects after `ms`. */
  accept(ms?: number): Promise<HostileConnection>;
  /** Destroys every open socket; the server keeps listening. */
  closeAll(): void;
  close(): Promise<void>;
}

/** Options of {@linkcode startHostile}. */
export interface HostileOptions {
  /** Answer PINGREQ with PINGRESP on its own. @default true */
  pingResponder?: boolean;
  /** Destroy a socket that sends no CONNECT within this many ms. @default 5000 */
  connectTimeout?: number;
  /** Destroy a connection holding more unread packets than this. @default 10000 */
  maxQueued?: number;
  /**
   * Serve MQTT over TLS (`mqtts://`) with this certificate and key (PEM); `connections` then
   * counts TCP connections, whether or not the handshake succeeded.
   */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

/**
 * Starts a raw MQTT server on 127.0.0.1 (a random port) that does only what the test says:
 * nothing is answered on its own but PINGREQ, not even CONNECT. `onConnection` runs as soon as
 * a client's CONNECT is decoded; the packets that follow are queued for `next()`. Without it,
 * take the connections with `accept()` (with it too).
 */
export async function startHostile(
  onConnection?: (conn: HostileConnection) => void | Promise<void>,
  { pingResponder = true, connectTimeout = 5_000, maxQueued = 10_000, tls }: HostileOptions = {},
): Promise<HostileServer> {
  const sockets = new Set<Socket>();
  const accepted: HostileConnection[] = [];
  const acceptors = new Set<() => void>();
  const errors: unknown[] = [];
  let connections = 0, taken = 0;
  const serve = (socket: Socket) => {
    sockets.add(socket);
    socket.on("error", () => {}); // resets are what these tests provoke
    const decoder = new PacketDecoder();
    let conn: HostileConnection | undefined;
    const timer = setTimeout(() => socket.destroy(), connectTimeout);
    socket.once("close", () => {
      clearTimeout(timer);
      sockets.delete(socket);
      conn?.end();
    });
    socket.on("data", (chunk: Uint8Array) => {
      try {
        for (const p of decoder.push(chunk)) {
          if (conn) {
            if (p.cmd === "pingreq" && pingResponder) conn.sendPacket({ cmd: "pingresp" });
            conn.deliver(p);
          } else if (p.cmd !== "connect") throw new Error(`${p.cmd} before CONNECT`);
          else {
            clearTimeout(timer);
            const { cmd: _, ...info } = p;
            const current = conn = new HostileConnection(socket, info, maxQueued);
            accepted.push(current);
            for (const wake of acceptors) wake();
            Promise.resolve().then(() => onConnection?.(current)).catch((e) => errors.push(e));
          }
        }
      } catch (error) {
        errors.push(error);
        socket.destroy();
      }
    });
  };
  let server: Server;
  if (tls) {
    server = createTlsServer(tls, serve);
    // Every TCP connection, the handshake done or not; destroyed by closeAll like the rest.
    server.on("connection", (socket: Socket) => {
      connections++;
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    });
    server.on("tlsClientError", () => {}); // a refused certificate is what a TLS test provokes
  } else {
    server = createServer((socket) => {
      connections++;
      serve(socket);
    });
  }
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const closeAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  const close = async () => {
    closeAll();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    port,
    url: `${tls ? "mqtts" : "mqtt"}://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    errors,
    accept: (ms = DEFAULT_WAIT) =>
      bounded<HostileConnection>(ms, "no connection", (resolve) => {
        const wake = () => void (taken < accepted.length && resolve(accepted[taken++]));
        acceptors.add(wake);
        wake();
        return () => acceptors.delete(wake);
      }),
    closeAll,
    close,
    [Symbol.asyncDispose]: close,
  };
}
