// A TLS front like AWS IoT Core's port 443, in front of a plain broker: it takes a client only if
// its ClientHello offers the ALPN protocol it serves (RFC 7301; AWS: x-amzn-mqtt-ca) and names it
// by SNI (RFC 6066 §3), presents a certificate for that name only, and then passes bytes to the
// broker.
//
// It runs in a child `node`, whatever runtime runs the tests, so that it behaves the same on
// each. In process it would not: no runtime's node:tls refuses a client that offers no ALPN at
// all (ALPNCallback is called only when the client offers some); Deno's resets a connection
// where Node and Bun send the no_application_protocol alert, and calls SNICallback with "" where
// they do not call it (tried on Node 20, Deno 2, Bun 1). So the child reads the ClientHello
// itself, refuses with the alert a real server sends, and hands the rest to Node's TLS.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { type Certificates, makeServerCertificate } from "./broker.ts";

/** Options of {@linkcode startTlsFront}. */
export interface TlsFrontOptions {
  /** The plain MQTT broker on 127.0.0.1 that accepted clients are passed to. */
  upstreamPort: number;
  /** The ALPN protocol a client must offer (the front selects it). */
  alpn: string;
  /** The SNI name a client must send; the front's certificate names only this. */
  servername: string;
  /** The test CA (from makeCertificates): it signs the front's certificate. */
  certificates: Certificates;
}

/** Why the front refused a ClientHello, with the TLS alert it sent. */
export type TlsRefusal =
  /** No ALPN extension, or not the front's protocol in it: alert no_application_protocol (120). */
  | "alpn"
  /** No SNI, or another name: alert unrecognized_name (112). */
  | "sni"
  /** Not a ClientHello the front can read: alert decode_error (50). */
  | "malformed";

/** One TLS connection to the front, as the front saw it. */
export type TlsHandshake =
  | {
    /** The handshake completed; bytes now pass to the broker. */
    outcome: "accepted";
    /** The SNI name the client sent. */
    servername: string;
    /** The ALPN protocol the front selected. */
    protocol: string;
  }
  | {
    /** Refused at the ClientHello, with an alert. */
    outcome: "refused";
    reason: TlsRefusal;
    /** What the ClientHello offered (undefined: no such extension). */
    servername?: string;
    alpn?: string[];
  }
  | {
    /** The ClientHello passed, then the handshake failed (the client refused the certificate). */
    outcome: "failed";
    error: string;
  };

/** A running front, from {@linkcode startTlsFront}. */
export interface TlsFront extends AsyncDisposable {
  /** `mqtts://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** Counts of {@linkcode log}, by outcome and reason. */
  readonly handshakes: {
    accepted: number;
    refused: Record<TlsRefusal, number>;
    failed: number;
  };
  /** Every connection's handshake, in the order the front saw them end. */
  readonly log: readonly TlsHandshake[];
  /** Stops the child (every connection through it ends). */
  close(): Promise<void>;
}

/** Whether `node` can be spawned here (the front runs in it). */
export const hasNode: boolean = spawnSync("node", ["--version"]).error === undefined;

/**
 * Starts a TLS front on a random port of 127.0.0.1 for the broker on `upstreamPort`: a child
 * `node` process, killed by {@linkcode TlsFront.close}, and ending by itself if the test process
 * dies (it exits when its stdin closes).
 *
 * @throws Error if the child does not listen within 10 s.
 */
export async function startTlsFront(options: TlsFrontOptions): Promise<TlsFront> {
  const { cert, key } = makeServerCertificate(options.certificates, options.servername);
  const config: FrontConfig = {
    upstreamPort: options.upstreamPort,
    alpn: options.alpn,
    servername: options.servername,
    cert: readFileSync(cert, "utf8"),
    key: readFileSync(key, "utf8"),
  };
  // The child's code is frontProcess below, type-checked here and run there as its source.
  const script = `(${frontProcess})(${JSON.stringify(config)}).catch((error) => {
    console.error(error);
    process.exit(1);
  });`;
  const child: ChildProcess = spawn("node", ["--input-type=module", "--eval", script], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const log: TlsHandshake[] = [];
  const handshakes = { accepted: 0, refused: { alpn: 0, sni: 0, malformed: 0 }, failed: 0 };
  let stderr = "";
  let pending = "";
  let listening!: (port: number) => void;
  const port = new Promise<number>((resolve) => (listening = resolve));
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  child.stdout!.on("data", (chunk) => {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      const event = JSON.parse(line) as FrontEvent;
      if ("listening" in event) listening(event.listening);
      else {
        log.push(event);
        if (event.outcome === "refused") handshakes.refused[event.reason]++;
        else handshakes[event.outcome]++;
      }
    }
  });
  child.stdin!.on("error", () => {}); // the child gone first: close() and exit tell
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const listened = await Promise.race([
      port,
      exited.then(() => {
        throw new Error(`the TLS front exited before it listened:\n${stderr}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the TLS front did not listen within 10 s:\n${stderr}`)),
          10_000,
        );
      }),
    ]);
    return {
      url: `mqtts://127.0.0.1:${listened}`,
      port: listened,
      handshakes,
      log,
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (error) {
    await close();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** What the child is given: everything it needs, as JSON. */
interface FrontConfig {
  upstreamPort: number;
  alpn: string;
  servername: string;
  cert: string;
  key: string;
}

/** A line the child prints: its port once, then each connection's handshake. */
type FrontEvent = { listening: number } | TlsHandshake;

/**
 * The front itself, run by `node` from its source: so it imports what it needs inside and uses
 * nothing from this module.
 */
async function frontProcess(config: FrontConfig): Promise<void> {
  const net = await import("node:net");
  const tls = await import("node:tls");
  const process = (await import("node:process")).default;
  const report = (event: FrontEvent) => process.stdout.write(JSON.stringify(event) + "\n");
  // Ends the child when the test process that started it is gone.
  process.stdin.on("close", () => process.exit(0));
  process.stdin.resume();

  /** Reads SNI and ALPN from a ClientHello record (RFC 8446 §4.1.2, §4.2); "more": not all in. */
  const readHello = (
    bytes: Uint8Array,
  ): { servername?: string; alpn?: string[] } | "more" | "malformed" => {
    if (bytes.length < 5) return "more";
    // A handshake record (22) holding one ClientHello: all our clients send it in one record.
    if (bytes[0] !== 22) return "malformed";
    const recordEnd = 5 + ((bytes[3] << 8) | bytes[4]);
    if (bytes.length < recordEnd) return "more";
    let at = 5;
    const skip = (n: number) => {
      at += n;
      if (at > recordEnd) throw new RangeError("past the record");
    };
    const u8 = () => {
      skip(1);
      return bytes[at - 1];
    };
    const u16 = () => (u8() << 8) | u8();
    const text = (n: number) => {
      skip(n);
      return new TextDecoder().decode(bytes.subarray(at - n, at));
    };
    try {
      if (u8() !== 1) return "malformed"; // client_hello
      skip(3 + 2 + 32); // its length, legacy_version, random
      skip(u8()); // legacy_session_id
      skip(u16()); // cipher_suites
      skip(u8()); // legacy_compression_methods
      const hello: { servername?: string; alpn?: string[] } = {};
      if (at === recordEnd) return hello; // no extensions
      const extensionsEnd = u16() + at;
      while (at < extensionsEnd) {
        const type = u16();
        const end = u16() + at;
        if (type === 0) {
          // server_name: a list of (type, name); type 0 is a host name.
          const listEnd = u16() + at;
          while (at < listEnd) {
            const nameType = u8();
            const name = text(u16());
            if (nameType === 0) hello.servername = name;
          }
        } else if (type === 16) {
          // application_layer_protocol_negotiation: a list of length-prefixed names.
          hello.alpn = [];
          const listEnd = u16() + at;
          while (at < listEnd) hello.alpn.push(text(u8()));
        }
        at = end;
      }
      return hello;
    } catch {
      return "malformed";
    }
  };

  // A fatal alert in a plaintext record, as a server sends before its ServerHello.
  const ALERTS = { alpn: 120, sni: 112, malformed: 50 } as const;
  const terminator = tls.createServer({
    cert: config.cert,
    key: config.key,
    ALPNProtocols: [config.alpn],
  }, (secure) => {
    report({
      outcome: "accepted",
      servername: String(secure.servername),
      protocol: String(secure.alpnProtocol),
    });
    const upstream = net.createConnection({ host: "127.0.0.1", port: config.upstreamPort });
    for (const socket of [secure, upstream]) socket.on("error", () => {});
    secure.pipe(upstream);
    upstream.pipe(secure);
    secure.once("close", () => upstream.destroy());
    upstream.once("close", () => secure.destroy());
  });
  terminator.on("tlsClientError", (error: Error) => {
    report({ outcome: "failed", error: error.message });
  });

  const front = net.createServer((socket) => {
    socket.on("error", () => {});
    let hello = new Uint8Array(0);
    const onData = (chunk: Uint8Array) => {
      const joined = new Uint8Array(hello.length + chunk.length);
      joined.set(hello);
      joined.set(chunk, hello.length);
      hello = joined;
      let read = readHello(hello);
      // A record holds at most 2^14 bytes (RFC 8446 §5.1).
      if (read === "more" && hello.length < 5 + 16_384 + 256) return;
      if (read === "more") read = "malformed";
      socket.off("data", onData);
      socket.pause();
      const reason: TlsRefusal | undefined = typeof read === "string"
        ? read
        : !read.alpn?.includes(config.alpn)
        ? "alpn"
        : read.servername !== config.servername
        ? "sni"
        : undefined;
      if (reason !== undefined) {
        const offered = typeof read === "string" ? {} : read;
        report({ outcome: "refused", reason, ...offered });
        socket.end(new Uint8Array([21, 3, 3, 0, 2, 2, ALERTS[reason]]));
        return;
      }
      // Node's TLS reads what is put back before the rest of the socket.
      socket.unshift(hello);
      terminator.emit("connection", socket);
    };
    socket.on("data", onData);
  });
  front.listen(0, "127.0.0.1", () => {
    report({ listening: (front.address() as { port: number }).port });
  });
}
