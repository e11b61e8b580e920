// Test brokers on random 127.0.0.1 ports: aedes embedded in the test process (over TCP or
// WebSocket), and Debian's mosquitto spawned with a temp config (password file, TLS with
// certificates made at test time by openssl, MQTT 5). Each stops only what it started.
import { Aedes } from "aedes";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { createWebSocketStream, WebSocketServer } from "ws";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A running broker. */
export interface TestBroker extends AsyncDisposable {
  /** mqtt:// (or mqtts://) URL of the broker. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Options of {@linkcode startAedes}. */
export interface AedesConfig {
  /** The port to listen on; a random free one by default. */
  port?: number;
  /**
   * How clients reach it: MQTT over TCP (the default), or over WebSocket, plain (ws://) or
   * with TLS (wss://, certificates made for this broker by openssl).
   */
  transport?: "tcp" | "ws" | "wss";
  /**
   * ws:// and wss://: whether to accept a WebSocket upgrade, from its request's path and
   * query (a managed broker's signed URL); a refused one gets HTTP 401.
   */
  verifyUpgrade?: (pathAndQuery: string) => boolean;
}

/** Starts aedes (MQTT 3.1.1) on 127.0.0.1, on `port` or a random one. */
export async function startAedes(
  { port: wanted = 0, transport = "tcp", verifyUpgrade }: AedesConfig = {},
): Promise<
  TestBroker & { broker: Aedes; dropClients(): void; certificates?: Certificates }
> {
  const broker = await Aedes.createBroker();
  let certificates: Certificates | undefined;
  let server: Server | HttpServer;
  if (transport === "tcp") server = createServer(broker.handle);
  else {
    let web: HttpServer;
    if (transport === "wss") {
      certificates = makeCertificates(mkdtempSync(join(tmpdir(), "mqtt-streams-aedes-")));
      web = createHttpsServer({
        cert: readFileSync(certificates.serverCert),
        key: readFileSync(certificates.serverKey),
      });
    } else web = createHttpServer();
    // MQTT over WebSocket (MQTT 3.1.1 §6): one binary message stream per client.
    const verifyClient = verifyUpgrade &&
      ((info: { req: { url?: string } }) => verifyUpgrade(info.req.url ?? "/"));
    new WebSocketServer({ server: web, verifyClient }).on("connection", (socket) => {
      broker.handle(createWebSocketStream(socket) as unknown as Socket);
    });
    server = web;
  }
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  /** Cuts every client's connection, as a network failure would. */
  const dropClients = () => {
    for (const socket of sockets) socket.destroy();
  };
  await new Promise<void>((resolve) => server.listen(wanted, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const close = async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    dropClients();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (certificates) rmSync(certificates.dir, { recursive: true, force: true });
  };
  const scheme = transport === "tcp" ? "mqtt" : transport;
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    broker,
    certificates,
    dropClients,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Whether mosquitto can be spawned here. */
export const hasMosquitto: boolean = spawnSync("mosquitto", ["-h"]).error === undefined;

/**
 * The `skip` option of a test that needs something installed: false (run) when `installed`
 * or when CI=true (a missing tool must fail in CI, not skip), else the printed reason.
 */
export function skipUnless(installed: boolean, reason: string): string | false {
  if (installed) return false;
  const ci = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env
    .CI;
  if (ci === "true") return false;
  console.log(`skipping: ${reason}`);
  return reason;
}

/** The `skip` option of a test that needs mosquitto ({@linkcode skipUnless}). */
export function skipWithoutMosquitto(): string | false {
  return skipUnless(
    hasMosquitto,
    "mosquitto is not installed (apt-get install mosquitto mosquitto-clients)",
  );
}

/** Files made by {@linkcode makeCertificates}. */
export interface Certificates {
  dir: string;
  /** The CA that signed the server and client certificates (PEM, and a PKCS12 trust store). */
  ca: string;
  caP12: string;
  /** Another CA, that signed nothing here. */
  otherCa: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Client certificate and key as PKCS12. */
  clientP12: string;
  /** Password of both PKCS12 files. */
  p12Password: string;
}

/** Runs openssl in `dir`: `command` split at spaces, then `extra` as given. */
function openssl(dir: string, command: string, ...extra: string[]): void {
  execFileSync("openssl", [...command.split(" "), ...extra], { cwd: dir, stdio: "pipe" });
}

/** Makes a CA, a server certificate for localhost/127.0.0.1, a client certificate, and PKCS12 forms. */
export function makeCertificates(dir: string): Certificates {
  const p12Password = "changeit";
  const subject = (cn: string) => ["-subj", `/CN=${cn}`];
  for (const [name, cn] of [["ca", "mqtt-streams test CA"], ["other", "another CA"]]) {
    openssl(
      dir,
      `req -x509 -newkey rsa:2048 -nodes -keyout ${name}.key -out ${name}.pem -days 2`,
      ...subject(cn),
    );
  }
  writeFileSync(join(dir, "server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  for (
    const [name, cn, ext] of [["server", "localhost", "-extfile server.ext"], [
      "client",
      "client",
      "",
    ]]
  ) {
    openssl(
      dir,
      `req -newkey rsa:2048 -nodes -keyout ${name}.key -out ${name}.csr`,
      ...subject(cn),
    );
    openssl(
      dir,
      `x509 -req -in ${name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ${name}.pem -days 2 ${ext}`
        .trim(),
    );
  }
  const pass = `-passout pass:${p12Password}`;
  openssl(dir, `pkcs12 -export -in client.pem -inkey client.key -out client.p12 ${pass}`);
  openssl(dir, `pkcs12 -export -nokeys -in ca.pem -out ca.p12 ${pass}`);
  const at = (f: string) => join(dir, f);
  return {
    dir,
    ca: at("ca.pem"),
    caP12: at("ca.p12"),
    otherCa: at("other.pem"),
    serverCert: at("server.pem"),
    serverKey: at("server.key"),
    clientCert: at("client.pem"),
    clientKey: at("client.key"),
    clientP12: at("client.p12"),
    p12Password,
  };
}

/** Options of {@linkcode startMosquitto}. */
export interface MosquittoConfig {
  /** Users and passwords; when given, anonymous clients are refused. */
  users?: Record<string, string>;
  /** Serve TLS with certificates made for this broker. */
  tls?: boolean;
  /** With tls: ask for and verify a client certificate. */
  requireCertificate?: boolean;
  /** More lines for mosquitto.conf (max_queued_messages, max_inflight_messages, ...). */
  lines?: string[];
  /** Keep sessions and queued messages on disk across restart() (saved on SIGTERM). */
  persistence?: boolean;
  /** Files written beside mosquitto.conf (an ACL, ...); `%DIR%` in `lines` is their folder. */
  files?: Record<string, string>;
}

/** Starts Debian's mosquitto on a random port of 127.0.0.1 with a temp config. */
export async function startMosquitto(
  config: MosquittoConfig = {},
): Promise<TestBroker & BrokerProcess & { certificates?: Certificates }> {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-mosquitto-"));
  // mosquitto started as root drops to the 'mosquitto' user, which must read these files
  // (and write its persistence file).
  chmodSync(dir, config.persistence ? 0o777 : 0o755);
  const port = await freePort();
  const lines = [
    `listener ${port} 127.0.0.1`,
    config.persistence ? `persistence true\npersistence_location ${dir}/` : "persistence false",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
  ];
  let certificates: Certificates | undefined;
  if (config.tls) {
    certificates = makeCertificates(dir);
    lines.push(
      `cafile ${certificates.ca}`,
      `certfile ${certificates.serverCert}`,
      `keyfile ${certificates.serverKey}`,
    );
    if (config.requireCertificate) lines.push("require_certificate true");
  }
  if (config.users) {
    const file = join(dir, "passwords");
    writeFileSync(file, "");
    for (const [user, password] of Object.entries(config.users)) {
      execFileSync("mosquitto_passwd", ["-b", file, user, password], { stdio: "pipe" });
    }
    lines.push(`password_file ${file}`, "allow_anonymous false");
  } else {
    lines.push("allow_anonymous true");
  }
  for (const [name, text] of Object.entries(config.files ?? {})) {
    writeFileSync(join(dir, name), text);
  }
  lines.push(...(config.lines ?? []).map((line) => line.replaceAll("%DIR%", dir)));
  writeFileSync(join(dir, "mosquitto.conf"), lines.join("\n") + "\n");
  execFileSync("chmod", ["-R", "a+r", dir]);
  const broker = await brokerProcess("mosquitto", ["-c", join(dir, "mosquitto.conf")], port, dir);
  const url = `${config.tls ? "mqtts" : "mqtt"}://127.0.0.1:${port}`;
  return { url, port, certificates, ...broker, [Symbol.asyncDispose]: broker.close };
}

/** A broker in a process of its own, from {@linkcode brokerProcess}. */
export interface BrokerProcess {
  /** What it printed (stdout and stderr). */
  log(): string;
  /**
   * Stops it (SIGTERM, so it saves its state; or `signal`, SIGKILL for a crash), waits
   * `downMs`, starts it again.
   */
  restart(downMs?: number, signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Stops it and removes `dir`. */
  close(): Promise<void>;
}

/**
 * Starts `command` with `args` and waits until it listens on `port` of 127.0.0.1; `dir`
 * (its config and state) is removed when it closes.
 */
export async function brokerProcess(
  command: string,
  args: string[],
  port: number,
  dir: string,
): Promise<BrokerProcess> {
  let log = "";
  let child!: ChildProcess;
  let exited!: Promise<void>;
  const launch = async () => {
    child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (chunk) => (log += chunk));
    child.stderr!.on("data", (chunk) => (log += chunk));
    exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    await waitForPort(port, () => child.exitCode !== null, 10_000);
  };
  const stop = async (signal: "SIGTERM" | "SIGKILL" = "SIGTERM") => {
    if (child.exitCode === null) child.kill(signal);
    await exited;
  };
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };
  const restart = async (downMs = 0, signal: "SIGTERM" | "SIGKILL" = "SIGTERM") => {
    await stop(signal);
    await new Promise((resolve) => setTimeout(resolve, downMs));
    await launch();
  };
  try {
    await launch();
  } catch (error) {
    await close();
    throw new Error(`${command} did not start: ${(error as Error).message}\n${log}`);
  }
  return { log: () => log, restart, close };
}

/** A port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function waitForPort(
  port: number,
  died: () => boolean,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (died()) throw new Error("the process exited");
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: "127.0.0.1" });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listened on port ${port} within ${timeoutMs} ms`);
}

/** A TCP proxy in front of a broker, whose traffic can be stopped as a network failure would. */
export interface TestProxy extends AsyncDisposable {
  /** The broker's URL through the proxy. */
  url: string;
  /**
   * Stops forwarding in both directions, for good: what clients send from now on never
   * reaches the broker, and the broker's answers never reach them.
   */
  freeze(): void;
  /** Cuts every connection through the proxy now, as a network failure would; new ones pass. */
  drop(): void;
  close(): Promise<void>;
}

/** Options of {@linkcode startProxy}. */
export interface ProxyOptions {
  /** The scheme of the proxy's URL (the proxy passes bytes: MQTT over WebSocket too). */
  scheme?: string;
  /**
   * Sees every chunk the broker sends, as it passes (to decode what the broker said), with
   * the client connection it goes to.
   */
  fromBroker?: (chunk: Uint8Array, connection: object) => void;
}

/** Starts a proxy on 127.0.0.1 to the broker on `port`. */
export async function startProxy(
  port: number,
  { scheme = "mqtt", fromBroker }: ProxyOptions = {},
): Promise<TestProxy> {
  const sockets = new Set<Socket>();
  let frozen = false;
  const server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    client.on("data", (chunk) => frozen || upstream.write(chunk));
    upstream.on("data", (chunk) => {
      if (frozen) return;
      fromBroker?.(chunk as Uint8Array, client);
      client.write(chunk);
    });
    client.once("close", () => upstream.destroy());
    upstream.once("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    url: `${scheme}://127.0.0.1:${(server.address() as { port: number }).port}`,
    freeze: () => (frozen = true),
    drop: () => {
      for (const socket of sockets) socket.destroy();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Makes a server certificate whose only name is `name` (subjectAltName DNS:`name`, no IP, no
 * localhost), signed by the CA of `certificates` (made by {@linkcode makeCertificates}), in its
 * folder: for a server reached at 127.0.0.1 that a client must name by SNI, as a cloud broker
 * behind a shared port is. Returns the paths of the PEM certificate and key.
 */
export function makeServerCertificate(
  certificates: Certificates,
  name: string,
): { cert: string; key: string } {
  const dir = certificates.dir;
  const base = `server-${name.replace(/[^\w.-]/g, "_")}`;
  writeFileSync(join(dir, `${base}.ext`), `subjectAltName=DNS:${name}\n`);
  openssl(
    dir,
    `req -newkey rsa:2048 -nodes -keyout ${base}.key -out ${base}.csr`,
    "-subj",
    `/CN=${name}`,
  );
  openssl(
    dir,
    `x509 -req -in ${base}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ${base}.pem -days 2 -extfile ${base}.ext`,
  );
  return { cert: join(dir, `${base}.pem`), key: join(dir, `${base}.key`) };
}
