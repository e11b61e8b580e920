// Docs that stay true: every file a page of README.md or docs/ names exists, and every error
// message a page quotes is one the code produces, produced here by running that code.
//
// What a page quotes (the convention the pages keep, so that this test finds every quote):
// - an error of ours: a ```text block or an inline `code span` that starts like one, with its
//   class name (`MqttConnectError: Cannot …`) or without ("Cannot ", "Lost the connection ",
//   "Protocol error "); or, inside a sentence, the part of one in "double quotes";
// - any other "double-quoted" text in a page's prose (outside code): a broker's or a
//   dependency's words (a log line, mqtt.js's own error), or plain words.
// Every quote found must have an entry in QUOTES below, which says who produces it and how;
// an entry whose quote left its page fails too. A quote is compared with its whitespace
// collapsed, and "…" in it stands for any text. Values that change from run to run (random
// ports, pids, temporary folders) are replaced in what is produced by the page's example values.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as v from "valibot";
import { MqttMessage, MqttSink, MqttSource, route } from "../../mod.ts";
import {
  freePort,
  makeCertificates,
  skipUnless,
  skipWithoutMosquitto,
  startAedes,
  startMosquitto,
} from "../../testing/broker.ts";
import { skipWithoutNats, startNats } from "../../testing/nats.ts";
import { startHostile } from "../../testing/hostile.ts";
import { hasNode, startTlsFront } from "../../testing/tls_front.ts";
import { denoExecutable, failureOf, LOSSLESS, runToEnd, within } from "../../testing/helpers.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const read = (path: string) => readFileSync(join(root, path), "utf8");
/** README.md and every page of docs/, as paths relative to the repository. */
const pages = [
  "README.md",
  ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`),
];

// ---------------------------------------------------------------------------------------
// Files a page names

/** The folders of the repository a path a page names may start with. */
const TOP = /^(?:\.\.?\/)*(?:src|tests|testing|bench|examples|docs|cli|\.ci)\/[\w./-]*$/;
/** Files at the root a page may name by their bare name. */
const ROOT_FILES = new Set([
  "mod.ts",
  "cli.ts",
  "deno.json",
  "deno.lock",
  "README.md",
  "CHANGELOG.md",
]);

/** A page's fenced code blocks and the prose around them, apart. */
function split(markdown: string): { prose: string; blocks: { lang: string; body: string }[] } {
  const blocks: { lang: string; body: string }[] = [];
  const prose = markdown.replace(/^( *)```(\w*)\n([\s\S]*?)^ *```/gm, (_, _indent, lang, body) => {
    blocks.push({ lang, body });
    return "";
  });
  return { prose, blocks };
}

/**
 * The files `page` names: the paths in its inline code, its relative links and the words of
 * its shell blocks that start with a folder of the repository (or are a root file), each
 * resolved from the repository (a link: from the page's folder).
 */
function namedFiles(page: string): { named: string; path: string }[] {
  const { prose, blocks } = split(read(page));
  const found: { named: string; path: string }[] = [];
  const add = (named: string, base: string) => {
    const clean = named.replace(/[#:].*$/, "").replace(/[.,;)]+$/, "");
    if (!TOP.test(clean) && !ROOT_FILES.has(clean)) return;
    const path = join(clean.startsWith(".") ? base : root, clean);
    found.push({ named, path });
  };
  for (const [, span] of prose.matchAll(/`([^`\n]+)`/g)) {
    add(span.trim(), dirname(join(root, page)));
  }
  for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/.test(target) || target.startsWith("#")) continue;
    const path = join(dirname(join(root, page)), target.split("#")[0]);
    found.push({ named: target, path });
  }
  for (const { lang, body } of blocks) {
    if (lang !== "sh") continue;
    for (const word of body.split(/\s+/)) add(word, root);
  }
  return found;
}

test("every file a page of README.md and docs/ names exists", () => {
  const missing: string[] = [];
  let checked = 0;
  for (const page of pages) {
    for (const { named, path } of namedFiles(page)) {
      checked++;
      if (!existsSync(path)) missing.push(`${page} names ${named}, which does not exist`);
    }
  }
  assert.deepEqual(missing, []);
  assert.ok(checked > 100, `only ${checked} names checked: the extractor lost its way`);
});

test("the path extractor reads code spans, links and shell blocks, and nothing else", () => {
  const { prose, blocks } = split(
    "See `src/errors.ts:12`, [x](../bench/RESULTS.md#a) and `mod.ts`, not `foo.ts` or\n" +
      "```ts\nconst a = `src/nowhere.ts`;\n```\n```sh\ndeno run -A bench/chaos.ts\n```\n",
  );
  assert.doesNotMatch(prose, /nowhere/);
  assert.deepEqual(blocks.map((b) => b.lang), ["ts", "sh"]);
});

// ---------------------------------------------------------------------------------------
// Quotes

/** The opening of an error of ours: its class name and a colon, or its first words. */
const OURS = /^(?:Mqtt\w*Error: )?(?:Cannot |Lost the connection |Protocol error )/;

/** Whitespace collapsed, as a page wraps a quote over lines. */
const squash = (text: string) => text.replace(/\s+/g, " ").trim();

/** Every quote on `page`, as the convention above defines them. */
function quotesOf(page: string): string[] {
  const { prose, blocks } = split(read(page));
  const quotes: string[] = [];
  for (const { lang, body } of blocks) {
    if (lang === "text" && OURS.test(squash(body))) quotes.push(squash(body));
  }
  for (const [, span] of prose.matchAll(/`([^`]+)`/g)) {
    if (OURS.test(squash(span))) quotes.push(squash(span));
  }
  const outsideCode = prose.replace(/`[^`]*`/g, "");
  for (const [, quoted] of outsideCode.matchAll(/"([^"]+)"/g)) quotes.push(squash(quoted));
  return quotes;
}

/** Whether `produced` holds `quote`, where "…" in the quote stands for any text. */
function holds(produced: string, quote: string): boolean {
  let at = 0;
  for (const part of quote.split("…").map((p) => p.trim()).filter(Boolean)) {
    const found = produced.indexOf(part, at);
    if (found < 0) return false;
    at = found + part.length;
  }
  return true;
}

test("holds() takes … for any text, in order", () => {
  assert.ok(holds("Cannot connect to a after 2 attempts: b", "Cannot connect … attempts: b"));
  assert.ok(!holds("b then a", "a … b"));
});

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
function binaryText(...names: string[]): string {
  for (const folder of (process.env.PATH ?? "").split(delimiter).concat("/usr/sbin")) {
    for (const name of names) {
      const path = join(folder, name);
      if (existsSync(path)) return readFileSync(path, "latin1");
    }
  }
  throw new Error(`none of ${names.join(", ")} is installed`);
}

/** mqtt.js's own code: the texts of its errors. */
function mqttJs(): string {
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

const natsQoS2 = once(async () => {
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
async function closedOnConnect(version: 4 | 5): Promise<string> {
  await using server = await startHostile((conn) => conn.destroy());
  return swap(
    await sourceFailure(
      `${server.url}?topic=t&mqttVersion=${version}&connectAttempts=2&connectBackoff=20`,
    ),
    [[server.url, "mqtt://localhost:1883"]],
  );
}

const aedesMqtt5 = once(async () => {
  await using broker = await startAedes();
  return swap(
    await sourceFailure(`${broker.url}?topic=t&mqttVersion=5&connectAttempts=2&connectBackoff=20`),
    [[broker.url, "mqtt://localhost:1883"]],
  );
});

const allDown = once(async () => {
  const ports = [await freePort(), await freePort(), await freePort()];
  const hosts = ports.map((p) => `127.0.0.1:${p}`);
  const error = await sourceFailure(
    `mqtt://${hosts.join(",")}?topic=t&connectAttempts=2&connectBackoff=10`,
  );
  return swap(error, hosts.map((h, i) => [h, `127.0.0.1:${4001 + i}`]));
});

const silentShare = once(async () => {
  await using a = await startHostile();
  await using b = await startHostile();
  await using c = await startHostile();
  const error = await sourceFailure(
    `mqtt://127.0.0.1:${a.port},127.0.0.1:${b.port},127.0.0.1:${c.port}?topic=t&connectAttempts=1&connectionTimeout=3`,
  );
  return swap(error, [[`127.0.0.1:${a.port}`, "h1:1883"], [`127.0.0.1:${b.port}`, "h2:1883"]]);
});

const refusedRedirect = once(async () => {
  await using server = await startHostile((conn) =>
    conn.connack({ reasonCode: 0x9c, properties: { serverReference: "elsewhere.example:1883" } })
  );
  const error = await sourceFailure(
    `${server.url}?topic=t&mqttVersion=5&connectAttempts=2&connectBackoff=10`,
  );
  return swap(error, [[server.url, "mqtt://node1:1883"]]);
});

/** A TLS front that wants ALPN x-amzn-mqtt-ca and SNI iot.example.test, before mosquitto. */
const tlsFront = once(async () => {
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

const withoutEnv = once(async () => {
  await using broker = await startAedes();
  return underDeno([`--allow-net=127.0.0.1:${broker.port}`], `${broker.url}?topic=t`);
});

const withoutRead = once(async () => {
  const ca = join(folder(), "ca.pem");
  writeFileSync(ca, "not read");
  const port = await freePort();
  const output = await underDeno(
    ["--allow-env", `--allow-net=127.0.0.1:${port}`],
    `mqtts://127.0.0.1:${port}?topic=t&connectAttempts=1&ssl.ca=${encodeURIComponent(ca)}`,
  );
  return swap(output, [[ca, "/etc/mqtt/ca.pem"]]);
});

const withoutSys = once(async () => {
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

const storeLocked = once(async () => {
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

const routeError = once(async () => {
  const routes = { "sensors/+site/temperature": v.object({ celsius: v.number() }) };
  const bad = new MqttMessage(
    "sensors/south/temperature",
    new TextEncoder().encode('{"celsius":"hot"}'),
    { qos: 1 },
  );
  const reader = ReadableStream.from([bad]).pipeThrough(route(routes)).getReader();
  return shown(await reader.read().then(() => undefined, (e) => e));
});

/** Who produces a quote and how. */
type Source =
  /** An error of ours: `produce` runs the code that throws it, and returns it as shown. */
  | { ours: () => Promise<string>; skip?: () => string | false }
  /** A dependency's or a broker's words: `produce` returns its code, binary or log. */
  | { theirs: string; produce: () => string | Promise<string>; skip?: () => string | false }
  /** Not an error message: what the words are. */
  | { words: string };

interface Quote {
  page: string;
  quote: string;
  by: Source;
}

const needsNats = () => skipWithoutNats();
const needsTlsFront = () =>
  skipWithoutMosquitto() || skipUnless(hasNode, "node is not installed (the TLS front)");
const ENV_ERROR =
  "MqttStreamError: Cannot load mqtt-streams as Deno denies environment access: run with --allow-env (mqtt.js's dependencies readable-stream and debug read the environment as they load)";
const envError: Source = { ours: withoutEnv };

/** Every quote of README.md and docs/, and who produces it. */
const QUOTES: Quote[] = [
  // docs/brokers.md
  {
    page: "docs/brokers.md",
    quote: "publish QoS=2 not supported",
    by: {
      theirs: "nats-server (its log)",
      produce: async () => (await natsQoS2()).log,
      skip: needsNats,
    },
  },
  {
    page: "docs/brokers.md",
    quote:
      "Cannot connect to mqtt://127.0.0.1:1883 after 2 attempts (connectAttempts=2): the broker accepted the connection (CONNACK) and then closed it before it answered anything (no SUBACK, no acknowledgement): it refuses what was sent first, a subscription or a publish of the session sent again (NATS, for one, closes the connection on a QoS 2 publish)",
    by: { ours: async () => (await natsQoS2()).error, skip: needsNats },
  },
  {
    page: "docs/brokers.md",
    quote: "Unable to start any listening sockets",
    by: {
      theirs: "mosquitto (its log)",
      produce: () => binaryText("mosquitto"),
      skip: skipWithoutMosquitto,
    },
  },
  {
    page: "docs/brokers.md",
    quote:
      "the broker closed the connection without answering the CONNECT (no CONNACK): it may not support mqttVersion=5 (MQTT 5); set mqttVersion=4 (MQTT 3.1.1) …",
    by: { ours: () => closedOnConnect(5) },
  },
  {
    page: "docs/brokers.md",
    quote: "the broker closed the connection without a reason",
    by: { ours: () => closedOnConnect(4) },
  },
  {
    page: "docs/brokers.md",
    quote:
      "the broker refused the connection (CONNACK 1: Unacceptable protocol version): it does not support mqttVersion=5 (MQTT 5); set mqttVersion=4 …",
    by: { ours: aedesMqtt5 },
  },
  // docs/cloud.md
  { page: "docs/cloud.md", quote: "Proven here", by: { words: "a column heading" } },
  {
    page: "docs/cloud.md",
    quote: "Bad username or password",
    by: { theirs: "mqtt.js (its name of CONNACK 4)", produce: mqttJs },
  },
  {
    page: "docs/cloud.md",
    quote: "Not authorized",
    by: { theirs: "mqtt.js (its name of CONNACK 5 and 0x87)", produce: mqttJs },
  },
  // docs/connection-strings.md
  { page: "docs/connection-strings.md", quote: ENV_ERROR, by: envError },
  // docs/high-availability.md
  {
    page: "docs/high-availability.md",
    quote:
      "Cannot connect to any of 3 brokers after 2 attempts (connectAttempts=2; an attempt tries each broker once): mqtt://127.0.0.1:4001: nothing accepts connections there: connect ECONNREFUSED 127.0.0.1:4001; mqtt://127.0.0.1:4002: …",
    by: { ours: allDown },
  },
  {
    page: "docs/high-availability.md",
    quote: "mqtt://h1:1883: no CONNACK within 1 s, its share of connectionTimeout=3 s (…)",
    by: { ours: silentShare },
  },
  {
    page: "docs/high-availability.md",
    quote:
      "Cannot connect to mqtt://node1:1883 after 2 attempts (connectAttempts=2): the broker sent the client to 'elsewhere.example:1883' (CONNACK 0x9C Use another server), a broker the connection string does not name: with redirect=list (the default) a redirection, which takes the credentials along, goes only to a broker of the connection string; add that broker to it, or set redirect=any to follow any",
    by: { ours: refusedRedirect },
  },
  {
    page: "docs/high-availability.md",
    quote: "loading session record … timeout",
    by: {
      theirs: "nats-server (its log)",
      produce: () => binaryText("nats-server"),
      skip: needsNats,
    },
  },
  {
    page: "docs/high-availability.md",
    quote: "JetStream system temporarily unavailable",
    by: {
      theirs: "nats-server (its log)",
      produce: () => binaryText("nats-server"),
      skip: needsNats,
    },
  },
  // docs/observability.md, docs/options.md, docs/reliability.md
  {
    page: "docs/observability.md",
    quote: "Development",
    by: { words: "OpenTelemetry's stability level" },
  },
  { page: "docs/options.md", quote: "stored", by: { words: "a word in question" } },
  { page: "docs/reliability.md", quote: "retained growth", by: { words: "a checker's verdict" } },
  { page: "docs/reliability.md", quote: "hung", by: { words: "a checker's verdict" } },
  // docs/pipelines.md
  {
    page: "docs/pipelines.md",
    quote:
      `Cannot route the message on 'sensors/south/temperature': celsius: Invalid type: Expected number but received "hot"`,
    by: { ours: routeError },
  },
  // docs/runtimes.md
  { page: "docs/runtimes.md", quote: ENV_ERROR, by: envError },
  // docs/streams.md
  {
    page: "docs/streams.md",
    quote: "Keepalive timeout",
    by: { theirs: "mqtt.js (client.js)", produce: mqttJs },
  },
  {
    page: "docs/streams.md",
    quote: "Receive Maximum exceeded",
    by: { theirs: "mqtt.js (its name of DISCONNECT 0x93)", produce: mqttJs },
  },
  // docs/tls.md
  {
    page: "docs/tls.md",
    quote: "connack timeout",
    by: { theirs: "mqtt.js (client.js)", produce: mqttJs },
  },
  {
    page: "docs/tls.md",
    quote:
      "Cannot connect to mqtts://127.0.0.1:44629 after 1 attempt (connectAttempts=1): TLS handshake failed: … the broker wants a TLS ALPN protocol this client did not offer: set ssl.alpn (AWS IoT Core on port 443: x-amzn-mqtt-ca)",
    by: { ours: async () => (await tlsFront()).alpn, skip: needsTlsFront },
  },
  {
    page: "docs/tls.md",
    quote: "set ssl.servername to the name it serves",
    by: { ours: async () => (await tlsFront()).servername, skip: needsTlsFront },
  },
  // docs/troubleshooting.md
  { page: "docs/troubleshooting.md", quote: ENV_ERROR, by: envError },
  {
    page: "docs/troubleshooting.md",
    quote:
      "MqttOptionsError: Cannot configure MQTT as 'ssl.ca' must name a readable file: current value is /etc/mqtt/ca.pem (Requires read access to \"/etc/mqtt/ca.pem\", run again with the --allow-read flag)",
    by: { ours: withoutRead },
  },
  {
    page: "docs/troubleshooting.md",
    quote:
      `MqttStreamError: Cannot lock the file store ./.mqtt-streams/worker-1 (its lock file ./.mqtt-streams/worker-1/lock) for persistence=file: Requires sys access to "hostname", run again with the --allow-sys flag (under Deno, persistence=file needs --allow-read=<localStorage> --allow-write=<localStorage> --allow-sys=hostname)`,
    by: { ours: withoutSys },
  },
  {
    page: "docs/troubleshooting.md",
    quote:
      "MqttStreamError: Cannot open the file store ./.mqtt-streams/worker-1: its lock ./.mqtt-streams/worker-1/lock is held by process 4242 on build-host. One process at a time may use a store folder; stop the holder, or give this one another clientId or localStorage",
    by: { ours: storeLocked },
  },
  {
    page: "docs/troubleshooting.md",
    quote: "Outgoing messages are being dropped for client …",
    by: {
      theirs: "mosquitto (its log)",
      produce: () => binaryText("mosquitto"),
      skip: skipWithoutMosquitto,
    },
  },
  {
    page: "docs/troubleshooting.md",
    quote:
      "MqttConnectError: Cannot connect to mqtt://127.0.0.1:1883 after 2 attempts (connectAttempts=2): the broker accepted the connection (CONNACK) and then closed it before it answered anything …",
    by: { ours: async () => (await natsQoS2()).error, skip: needsNats },
  },
  {
    page: "docs/troubleshooting.md",
    quote:
      "MqttConnectError: Cannot connect to mqtt://localhost:1883 after 2 attempts (connectAttempts=2): the broker closed the connection without answering the CONNECT (no CONNACK): it may not support mqttVersion=5 (MQTT 5); set mqttVersion=4 (MQTT 3.1.1) to connect to a broker that speaks only that",
    by: { ours: () => closedOnConnect(5) },
  },
  {
    page: "docs/troubleshooting.md",
    quote:
      "MqttConnectError: Cannot connect to mqtt://localhost:1883 after 1 attempt (connectAttempts=2): the broker refused the connection (CONNACK 1: Unacceptable protocol version): it does not support mqttVersion=5 (MQTT 5); set mqttVersion=4 (MQTT 3.1.1) to connect to a broker that speaks only that",
    by: { ours: aedesMqtt5 },
  },
];

test("every quote on a page has an entry in QUOTES, and every entry is on its page", () => {
  const entries = QUOTES.map((q) => `${q.page}: ${q.quote}`);
  const found = pages.flatMap((page) => quotesOf(page).map((quote) => `${page}: ${quote}`));
  const unlisted = found.filter((quote) => !entries.includes(quote));
  const gone = entries.filter((entry) => !found.includes(entry));
  assert.deepEqual(
    { "quoted on a page, without a producer in QUOTES": unlisted, "in QUOTES, on no page": gone },
    { "quoted on a page, without a producer in QUOTES": [], "in QUOTES, on no page": [] },
  );
});

describe("every error a page quotes is produced by the code", () => {
  for (const { page, quote, by } of QUOTES) {
    if (!("ours" in by)) continue;
    test(`${page}: ${quote.slice(0, 80)}`, { skip: by.skip?.(), timeout: 60_000 }, async () => {
      const produced = squash(await by.ours());
      assert.ok(
        holds(produced, quote),
        `the page says:\n  ${quote}\nthe code says:\n  ${produced}`,
      );
    });
  }
});

describe("every dependency's or broker's words a page quotes are theirs", () => {
  for (const { page, quote, by } of QUOTES) {
    if (!("theirs" in by)) continue;
    test(`${page}: "${quote}" (${by.theirs})`, { skip: by.skip?.(), timeout: 60_000 }, async () => {
      const text = await by.produce();
      assert.ok(
        quote.split("…").every((part) => text.includes(part.trim())),
        `${by.theirs} has no "${quote}"`,
      );
    });
  }
});
