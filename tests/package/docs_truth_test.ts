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
// The producers, which start brokers, servers and child processes, are in _doc_quotes.ts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { skipUnless, skipWithoutMosquitto } from "../../testing/broker.ts";
import { skipWithoutNats } from "../../testing/nats.ts";
import { hasNode } from "../../testing/tls_front.ts";
import { holds, namedFiles, pages, quotesOf, split, squash } from "./_doc_pages.ts";
import {
  aedesMqtt5,
  allDown,
  binaryText,
  closedOnConnect,
  mqttJs,
  natsQoS2,
  refusedRedirect,
  routeError,
  silentShare,
  storeLocked,
  tlsFront,
  withoutEnv,
  withoutRead,
  withoutSys,
} from "./_doc_quotes.ts";

// ---------------------------------------------------------------------------------------
// Files a page names (found by namedFiles(), _doc_pages.ts)

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
// Quotes (found by quotesOf() and matched by holds(), _doc_pages.ts; produced by _doc_quotes.ts)

test("holds() takes … for any text, in order", () => {
  assert.ok(holds("Cannot connect to a after 2 attempts: b", "Cannot connect … attempts: b"));
  assert.ok(!holds("b then a", "a … b"));
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
/** Words of a broker's log, looked up in its binary. */
const NATS_LOG: Source = {
  theirs: "nats-server (its log)",
  produce: () => binaryText("nats-server"),
  skip: needsNats,
};
const MOSQUITTO_LOG: Source = {
  theirs: "mosquitto (its log)",
  produce: () => binaryText("mosquitto"),
  skip: skipWithoutMosquitto,
};

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
    by: MOSQUITTO_LOG,
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
    by: NATS_LOG,
  },
  {
    page: "docs/high-availability.md",
    quote: "JetStream system temporarily unavailable",
    by: NATS_LOG,
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
    by: MOSQUITTO_LOG,
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
