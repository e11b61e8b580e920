// The producers of the words docs_truth_test.ts checks the pages' quotes against: each runs the
// code that fails (a source or sink against a broker, a hostile server, a TLS front, Deno with
// too few permissions) and returns the error as shown, with the values that change from run to
// run (random ports, pids, temporary folders) replaced by the page's example values; or returns
// the text (mqtt.js's code, a broker's binary) a dependency's words are looked up in.
import { after } from "node:test";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import * as v from "valibot";
import { MqttMessage, MqttSink, MqttSource, route } from "../../mod.ts";
import { freePort, makeCertificates, startAedes, startMosquitto } from "../../testing/broker.ts";
import { startNats } from "../../testing/nats.ts";
import { startHostile } from "../../testing/hostile.ts";
import { startTlsFront } from "../../testing/tls_front.ts";
import { denoExecutable, failureOf, LOSSLESS, runToEnd, within } from "../../testing/helpers.ts";
import { root } from "./_doc_pages.ts";

/** `text` with each run-specific value replaced by the page's example value. */
function swap(text: string, pairs: [string | RegExp, string][]): string {
  return pairs.reduce((t, [from, to]) => t.replaceAll(from, to), text);
}

/** Remembers the result of `produce`, so that quotes of one run share it. */
function once<T>(produce: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined;
  return () => (result ??= produce());
}

/** `error` as a stack trace begins: `MqttConnectError: Cannot …`. */
const shown = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/** The error a source on `url` fails with, as shown. */
async function sourceFailure(url: string, ms = 20_000): Promise<string> {
  return shown(await failureOf(new MqttSource(url), ms));
}

/** The text of the first of `names` found on the PATH (a broker's binary), as latin1. */
export function binaryText(...names: string[]): string {
  for (const folder of (process.env.PATH ?? "").split(delimiter).concat("/usr/sbin")) {
    for (const name of names) {
      const path = join(folder, name);
      if (existsSync(path)) return readFileSync(path, "latin1");
    }
  }
  throw new Error(`none of ${names.join(", ")} is installed`);
}

/** mqtt.js's own code: the texts of its errors. */
export function mqttJs(): string {
  const lib = join(root, "node_modules/mqtt/build/lib");
  return readdirSync(lib, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".js"))
    .map((f) => readFileSync(join(lib, f), "utf8"))
    .join("\n");
}

/** Folders made by the producers, removed after the tests. */
const folders: string[] = [];
after(() => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
});
const folder = (where = tmpdir()) => {
  const made = mkdtempSync(join(where, ".docs-truth-"));
  folders.push(made);
  return made;
};

/**
 * Runs a script under Deno with `flags` only (inside the repository, so deno.json maps the
 * npm packages): it opens an MqttSource on the URL given, and prints the error it fails
 * with, or the error its import failed with. Returns what it printed.
 */
async function underDeno(flags: string[], url: string): Promise<string> {
  const script = join(folder(root), "child.ts");
  writeFileSync(
    script,
    `import { MqttSource } from "${new URL("../../mod.ts", import.meta.url).href}";\n` +
      `const reader = new MqttSource(Deno.args[0]).getReader();\n` +
      `await reader.read().then(() => console.log("no error"), (e) => console.log(\`\${e.name}: \${e.message}\`));\n`,
  );
  const { output } = await runToEnd(denoExecutable(), [
    "run",
    "--no-prompt",
    ...flags,
    script,
    url,
  ]);
  return output;
}

/** A child process that stays alive until the tests end: a live holder of a lock. */
function liveProcess(): number {
  const child = spawn("sleep", ["120"], { stdio: "ignore" });
  after(() => child.kill("SIGKILL"));
  return child.pid!;
}

// What each quote is produced by, run once each whatever the number of quotes it gives.

/** A QoS 2 sink on nats-server: its error, and the server's log (which says why it closed). */
export const natsQoS2 = once(async () => {
  await using server = await startNats();
  const sink = new MqttSink(
    `${server.url}?topic=truth/q2&qos=2&connectAttempts=2&connectBackoff=50`,
  );
  const writer = sink.getWriter();
  const error = await within(
    (async () => {
      await writer.write("exactly once?");
      await writer.close();
    })().then(() => undefined, (e) => e),
    20_000,
    "the QoS 2 sink's failure",
  );
  return { error: swap(shown(error), [[server.url, "mqtt://127.0.0.1:1883"]]), log: server.log() };
});

/** A server that closes every connection on its CONNECT, as RabbitMQ 3.10 does with MQTT 5. */
export async function closedOnConnect(version: 4 | 5): Promise<string> {
  await using server = await startHostile((conn) => conn.destroy());
  return swap(
    await sourceFailure(
      `${server.url}?topic=t&mqttVersion=${version}&connectAttempts=2&connectBackoff=20`,
    ),
    [[server.url, "mqtt://localhost:1883"]],
  );
}

/** A source asking aedes, which speaks MQTT 3.1.1 only, for MQTT 5. */
export const aedesMqtt5 = once(async () => {
  await using broker = await startAedes();
  return swap(
    await sourceFailure(`${broker.url}?topic=t&mqttVersion=5&connectAttempts=2&connectBackoff=20`),
    [[broker.url, "mqtt://localhost:1883"]],
  );
});

/** A source on three brokers, none of them listening. */
export const allDown = once(async () => {
  const ports = [await freePort(), await freePort(), await freePort()];
  const hosts = ports.map((p) => `127.0.0.1:${p}`);
  const error = await sourceFailure(
    `mqtt://${hosts.join(",")}?topic=t&connectAttempts=2&connectBackoff=10`,
  );
  return swap(error, hosts.map((h, i) => [h, `127.0.0.1:${4001 + i}`]));
});

/** A source on three servers that never answer: each gets its share of connectionTimeout. */
export const silentShare = once(async () => {
  await using a = await startHostile();
  await using b = await startHostile();
  await using c = await startHostile();
  const error = await sourceFailure(
    `mqtt://127.0.0.1:${a.port},127.0.0.1:${b.port},127.0.0.1:${c.port}?topic=t&connectAttempts=1&connectionTimeout=3`,
  );
  return swap(error, [[`127.0.0.1:${a.port}`, "h1:1883"], [`127.0.0.1:${b.port}`, "h2:1883"]]);
});

/** A server that redirects (CONNACK 0x9C) to a broker the connection string does not name. */
export const refusedRedirect = once(async () => {
  await using server = await startHostile((conn) =>
    conn.connack({ reasonCode: 0x9c, properties: { serverReference: "elsewhere.example:1883" } })
  );
  const error = await sourceFailure(
    `${server.url}?topic=t&mqttVersion=5&connectAttempts=2&connectBackoff=10`,
  );
  return swap(error, [[server.url, "mqtt://node1:1883"]]);
});

/**
 * A TLS front that wants ALPN x-amzn-mqtt-ca and SNI iot.example.test, before mosquitto: the
 * error without ALPN (`alpn`), and the error with it but without the server name (`servername`).
 */
export const tlsFront = once(async () => {
  await using broker = await startMosquitto({ lines: LOSSLESS });
  const certificates = makeCertificates(folder());
  await using front = await startTlsFront({
    upstreamPort: broker.port,
    alpn: "x-amzn-mqtt-ca",
    servername: "iot.example.test",
    certificates,
  });
  const url = (query: string) =>
    `${front.url}?topic=t&connectAttempts=1&connectionTimeout=5&ssl.ca=${
      encodeURIComponent(certificates.ca)
    }${query}`;
  const at = [[front.url, "mqtts://127.0.0.1:44629"]] as [string, string][];
  return {
    alpn: swap(await sourceFailure(url("")), at),
    servername: swap(await sourceFailure(url("&ssl.alpn=x-amzn-mqtt-ca")), at),
  };
});

/** mod.ts loaded under Deno without --allow-env. */
export const withoutEnv = once(async () => {
  await using broker = await startAedes();
  return underDeno([`--allow-net=127.0.0.1:${broker.port}`], `${broker.url}?topic=t`);
});

/** A source given an ssl.ca file under Deno without --allow-read. */
export const withoutRead = once(async () => {
  const ca = join(folder(), "ca.pem");
  writeFileSync(ca, "not read");
  const port = await freePort();
  const output = await underDeno(
    ["--allow-env", `--allow-net=127.0.0.1:${port}`],
    `mqtts://127.0.0.1:${port}?topic=t&connectAttempts=1&ssl.ca=${encodeURIComponent(ca)}`,
  );
  return swap(output, [[ca, "/etc/mqtt/ca.pem"]]);
});

/** A source with persistence=file under Deno without --allow-sys (its lock names the host). */
export const withoutSys = once(async () => {
  await using broker = await startAedes();
  const store = folder();
  const output = await underDeno(
    [
      `--allow-net=127.0.0.1:${broker.port}`,
      "--allow-env",
      `--allow-read=${store}`,
      `--allow-write=${store}`,
    ],
    `${broker.url}?topic=t&clientId=worker-1&persistence=file&localStorage=${store}&connectAttempts=1`,
  );
  return swap(output, [[store, "./.mqtt-streams/worker-1"]]);
});

/** A source on a file store whose lock a live process holds. */
export const storeLocked = once(async () => {
  await using broker = await startAedes();
  const store = folder();
  const pid = liveProcess();
  writeFileSync(join(store, "lock"), JSON.stringify({ pid, host: hostname() }));
  const error = await sourceFailure(
    `${broker.url}?topic=t&clientId=worker-1&persistence=file&localStorage=${store}&connectAttempts=1`,
  );
  return swap(error, [[store, "./.mqtt-streams/worker-1"], [String(pid), "4242"], [
    hostname(),
    "build-host",
  ]]);
});

/** route() given a message its topic's schema rejects. */
export const routeError = once(async () => {
  const routes = { "sensors/+site/temperature": v.object({ celsius: v.number() }) };
  const bad = new MqttMessage(
    "sensors/south/temperature",
    new TextEncoder().encode('{"celsius":"hot"}'),
    { qos: 1 },
  );
  const reader = ReadableStream.from([bad]).pipeThrough(route(routes)).getReader();
  return shown(await reader.read().then(() => undefined, (e) => e));
});
