// The README and the guide (docs/): the README stays a five-minute read, every relative link
// and anchor resolves, the option table agrees with the schema, and every snippet that connects
// runs as printed against a real broker on a random port, except docs/cloud.md's (they need the
// cloud services; their mechanisms are tested against local stand-ins, tests/connection/). A
// snippet that reads gets a bad message among good ones: it keeps running, handles the good
// ones, sets the bad one aside (or passes it on as it is), and a second run with the same
// clientId does not get it again. (`deno task check` type-checks every TypeScript block of
// README.md and docs/ with `deno check --doc-only`.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { optionsTable } from "../options/_generate.ts";
import type { Aedes } from "aedes";
import mqtt from "mqtt";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { skipWithoutMosquitto, startAedes, startMosquitto } from "../../testing/broker.ts";
import { skipWithoutNats, startNats } from "../../testing/nats.ts";
import {
  exited,
  kill,
  LOSSLESS,
  sleep,
  spawnScript,
  waitFor,
  within,
} from "../../testing/helpers.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const read = (path: string) => readFileSync(join(root, path), "utf8");
const readme = read("README.md");
/** README.md and every page of docs/, as paths relative to the repository. */
const pages = [
  "README.md",
  ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`),
];

/** A Markdown table's rows as trimmed cells, so column padding (deno fmt) does not matter. */
function cells(table: string): string[][] {
  return table.trim().split("\n").filter((line) => !/^\|[\s|:-]+\|$/.test(line)).map((line) =>
    line.replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((cell) => cell.trim())
  );
}

/** The text of a page outside its code blocks (a `[x](y)` in code is not a link). */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, "");
}

/** GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as '-'. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const [, title] of prose(markdown).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = title.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/ /g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    result.add(n === 0 ? base : `${base}-${n}`);
  }
  return result;
}

test("the option table in docs/options.md agrees with the schema", () => {
  const options = read("docs/options.md");
  const start = options.search(/^\| option +\| default/m);
  assert.ok(start >= 0, "docs/options.md has no option table");
  const end = options.indexOf("\n\n", start);
  assert.deepEqual(cells(options.slice(start, end < 0 ? undefined : end)), cells(optionsTable()));
});

test("the README is a short read: at most 250 lines of at most 100 characters, with the two commands", () => {
  const lines = readme.split("\n");
  assert.ok(lines.length <= 250, `${lines.length} lines`);
  const wide = lines.map((line, i) => [i + 1, line.length]).filter(([, n]) => n > 100);
  assert.deepEqual(wide, [], "lines wider than 100 characters (line, width)");
  assert.match(readme, /npx --yes deno@2 task demo/);
  assert.match(readme, /npx --yes deno@2 task test/);
  assert.doesNotMatch(readme, /\bseed\b/i, "the Bahir connector is called by its name");
});

test("every relative link and anchor in README.md and docs/ resolves", () => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages) {
    const text = prose(read(page));
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue;
      checked++;
      const [path, anchor] = target.split("#");
      const file = path ? join(dirname(join(root, page)), path) : join(root, page);
      if (!existsSync(file)) {
        broken.push(`${page}: ${target} (no such file)`);
        continue;
      }
      if (anchor !== undefined && !anchors(readFileSync(file, "utf8")).has(anchor)) {
        broken.push(`${page}: ${target} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
  assert.ok(checked > 30, `only ${checked} links checked`);
});

/** The snippet of `page` that names its file in a first-line comment (`// publish.ts`). */
function snippet(page: string, name: string): string {
  for (const [, code] of read(page).matchAll(/^```ts\n([\s\S]*?)^```/gm)) {
    if (code.startsWith(`// ${name}\n`)) return code;
  }
  assert.fail(`${page} has no snippet ${name}`);
}

/** The one snippet of `page` that holds `text`, for a snippet that names no file. */
function snippetWith(page: string, text: string): string {
  const found = [...read(page).matchAll(/^```ts\n([\s\S]*?)^```/gm)].filter(([, code]) =>
    code.includes(text)
  );
  assert.equal(found.length, 1, `${page}: snippets holding ${text}`);
  return found[0][1];
}

/** A child process started from a snippet, with what it printed on stdout. */
interface SnippetRun {
  child: ChildProcess;
  output: { text: string };
}

/**
 * Writes `code` to `folder` as `name`, as it is printed, except for what `replace` maps (the
 * broker addresses, a store's folder) and the import of the package (its `mod.ts` here, by
 * path, so that Deno and Bun run it alike), and starts it.
 */
function runCode(
  folder: string,
  name: string,
  code: string,
  replace: Record<string, string>,
): SnippetRun {
  code = code.replaceAll('"@mqtt-streams/core"', '"../mod.ts"');
  for (const [from, to] of Object.entries(replace)) code = code.replaceAll(from, to);
  const file = join(folder, name);
  writeFileSync(file, code);
  const child = spawnScript(new URL(`file://${resolve(file)}`), []);
  const output = { text: "" };
  child.stdout!.on("data", (chunk) => (output.text += chunk));
  return { child, output };
}

/** Starts the snippet `name` of `page` ({@linkcode runCode}). */
function runSnippet(
  folder: string,
  page: string,
  name: string,
  replace: Record<string, string>,
): SnippetRun {
  return runCode(folder, name, snippet(page, name), replace);
}

/** The lines a snippet printed. */
const lines = (run: SnippetRun) => run.output.text.split("\n").filter((line) => line !== "");

/** Fails if `child` ends within 300 ms (a snippet that reads runs until it is killed). */
async function assertRunning(child: ChildProcess, what: string): Promise<void> {
  const ended = await Promise.race([exited(child), sleep(300).then(() => undefined)]);
  assert.equal(ended, undefined, `${what} ended: ${JSON.stringify(ended)}`);
}

/** A folder inside the repository (where Deno finds deno.json), removed after `fn`. */
async function inSnippetFolder(fn: (folder: string) => Promise<void>): Promise<void> {
  const folder = mkdtempSync(join(root, ".readme-snippets-"));
  try {
    await fn(folder);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

/** `mqtt://localhost:<port>` of the docs, pointed at a test broker. */
const at = (port: number, broker: { port: number }) => ({
  [`mqtt://localhost:${port}`]: `mqtt://127.0.0.1:${broker.port}`,
});

/** A payload that is neither text nor JSON: the bad message among the good ones. */
const NOT_TEXT = Buffer.from([0xff, 0xfe]);

/** A message to publish: topic, payload, and MQTT 5 user properties. */
type Published = [topic: string, payload: string | Buffer, userProperties?: Record<string, string>];

/** Publishes `messages` at QoS 1, in order, over MQTT 5 when `mqtt5`. */
async function publish(url: string, messages: Published[], mqtt5 = false): Promise<void> {
  const publisher = await mqtt.connectAsync(url, { protocolVersion: mqtt5 ? 5 : 4 });
  for (const [topic, payload, userProperties] of messages) {
    await publisher.publishAsync(topic, payload, {
      qos: 1,
      ...(userProperties ? { properties: { userProperties } } : {}),
    });
  }
  await publisher.endAsync();
}

/**
 * A persistent session `clientId` subscribed to `filters`, holding `messages` for the
 * snippet that resumes it: it then reads them whenever it subscribes.
 */
async function sessionWith(
  url: string,
  clientId: string,
  filters: string[],
  messages: Published[],
  mqtt5 = false,
): Promise<void> {
  const session = await mqtt.connectAsync(url, {
    clientId,
    clean: false,
    ...(mqtt5 ? { protocolVersion: 5, properties: { sessionExpiryInterval: 0xffffffff } } : {}),
  });
  await session.subscribeAsync(filters, { qos: 1 });
  await session.endAsync();
  await publish(url, messages, mqtt5);
}

/** How many PUBACKs `clientId` sent to an aedes broker, counted from now. */
function aedesAcks(broker: { broker: Aedes }, clientId: string): () => number {
  let acks = 0;
  broker.broker.on("ack", (_packet, client) => {
    if (client?.id === clientId) acks++;
  });
  return () => acks;
}

/** A mosquitto that logs every packet, so that a test can count PUBACKs and resends. */
const LOGGED = [...LOSSLESS, "log_type debug"];

/** How many PUBACKs `clientId` sent to a mosquitto started with {@linkcode LOGGED}. */
const mosquittoAcks = (broker: { log(): string }, clientId: string) => () =>
  broker.log().split(`Received PUBACK from ${clientId} `).length - 1;

/** How many messages mosquitto ({@linkcode LOGGED}) sent `clientId` again, marked DUP. */
const mosquittoResends = (broker: { log(): string }, clientId: string) => () =>
  broker.log().split(`Sending PUBLISH to ${clientId} (d1`).length - 1;

/** What {@linkcode twoRuns} publishes and expects. */
interface TwoRuns {
  /** The broker's address, for the test's own clients. */
  url: string;
  /** The snippet's persistent session, subscribed to `filters` before the first run. */
  clientId: string;
  filters: string[];
  /** The session's protocol: MQTT 5 (a persistent session then needs an expiry). */
  mqtt5?: boolean;
  /** The PUBACKs the snippet sent so far. */
  acks: () => number;
  /** The messages the broker sent the snippet again, where the broker can tell. */
  resends?: () => number;
  /** What the session holds for the first run (a bad message among good ones), the second. */
  messages: [Published[], Published[]];
  /** What each run prints. */
  printed: [string[], string[]];
}

/**
 * Runs `code` twice, as its persistent session: the first run reads `messages[0]`, where a
 * bad message sits among good ones, prints `printed[0]`, acknowledges every message (the bad
 * one set aside) and keeps running; once it is killed, `messages[1]` is published, and the
 * second run prints `printed[1]` only: nothing, the bad message least of all, comes again.
 */
async function twoRuns(name: string, code: string, replace: Record<string, string>, t: TwoRuns) {
  await sessionWith(t.url, t.clientId, t.filters, t.messages[0], t.mqtt5);
  await inSnippetFolder(async (folder) => {
    for (const i of [0, 1]) {
      if (i === 1) await publish(t.url, t.messages[1], t.mqtt5);
      const acks = t.acks() + t.messages[i].length;
      const run = runCode(folder, name, code, replace);
      let ended: unknown;
      exited(run.child).then((how) => (ended = how), () => {});
      try {
        await waitFor(
          () => {
            // A snippet that dies on the bad message (and would again on every start) fails fast.
            if (ended) assert.fail(`${name} ended (${JSON.stringify(ended)}): ${run.output.text}`);
            return lines(run).length >= t.printed[i].length && t.acks() >= acks;
          },
          `${name}, run ${i + 1}: ${t.printed[i].length} lines and ${acks} PUBACKs`,
        );
        await assertRunning(run.child, `${name}, run ${i + 1}`); // and nothing more comes meanwhile
        assert.deepEqual(lines(run), t.printed[i]);
        assert.equal(t.acks(), acks);
        assert.equal(t.resends?.() ?? 0, 0, "messages sent again");
      } finally {
        await kill(run.child);
      }
    }
  });
}

test(
  "the README's bridges, subscribe.ts and publish.ts run as printed, and carry a payload that is not text",
  {
    timeout: 60_000,
  },
  async () => {
    await using edge = await startAedes();
    await using cloud = await startAedes();
    const edgeAcks = aedesAcks(edge, "bridge");
    // What reaches the cloud broker, byte for byte (subscribe.ts prints text).
    const raw = await mqtt.connectAsync(cloud.url);
    const bridged: Buffer[] = [];
    raw.on("message", (_topic, payload) => bridged.push(payload));
    await raw.subscribeAsync("sensors/#", { qos: 1 });
    const subscribed = (broker: typeof edge) =>
      new Promise<void>((resolve) => broker.broker.once("subscribe", () => resolve()));
    const runs: SnippetRun[] = [];
    await inSnippetFolder(async (folder) => {
      // The subscriber reads from the cloud broker, where the bridge publishes what the edge got.
      const cloudSubscribed = subscribed(cloud);
      const subscriber = runSnippet(folder, "README.md", "subscribe.ts", at(1883, cloud));
      const edgeSubscribed = subscribed(edge);
      const bridges = { ...at(1883, edge), ...at(1884, cloud) };
      const bridge = runSnippet(folder, "README.md", "bridge.ts", bridges);
      runs.push(subscriber, bridge);
      try {
        await within(Promise.all([cloudSubscribed, edgeSubscribed]), 30_000, "both subscriptions");
        const publisher = runSnippet(folder, "README.md", "publish.ts", at(1883, edge));
        assert.equal((await within(exited(publisher.child), 30_000, "publish.ts")).code, 0);
        assert.match(publisher.output.text, /all three acknowledged by the broker/);
        await publish(edge.url, [["sensors/north/temp", NOT_TEXT], ["sensors/north/temp", "22.5"]]);
        await waitFor(() => lines(subscriber).length >= 5 && edgeAcks() === 5, "five readings");
        await assertRunning(subscriber.child, "subscribe.ts");
        await assertRunning(bridge.child, "bridge.ts");
        assert.deepEqual(lines(subscriber), [
          "sensors/north/temp 21.5",
          "sensors/north/temp 21.7",
          "sensors/north/temp 22.0",
          "sensors/north/temp \ufffd\ufffd", // printed as text() decodes it, and reading goes on
          "sensors/north/temp 22.5",
        ]);
        assert.deepEqual(bridged[3], NOT_TEXT);
        await kill(bridge.child);
        // The introduction's bridge is the same session: it resumes it, and nothing comes twice.
        await publish(edge.url, [["sensors/north/temp", "23.0"]]);
        const intro = snippetWith("README.md", 'new MqttSink("mqtt://localhost:1884")');
        const again = runCode(folder, "bridge_intro.ts", intro, bridges);
        runs.push(again);
        await waitFor(() => lines(subscriber).length >= 6 && edgeAcks() === 6, "the sixth reading");
        await assertRunning(again.child, "the README's first bridge");
        assert.deepEqual(lines(subscriber).slice(5), ["sensors/north/temp 23.0"]);
        assert.equal(bridged.length, 6);
      } finally {
        for (const run of runs) await kill(run.child);
        await raw.endAsync();
      }
    });
  },
);

test(
  "the README's worker.ts sets a job that is not JSON aside, handles the others, and does not see it again",
  {
    timeout: 60_000,
  },
  async () => {
    await using broker = await startAedes();
    const dead = await mqtt.connectAsync(broker.url);
    const letters: string[] = [];
    dead.on("message", (_topic, payload) => letters.push(payload.toString()));
    await dead.subscribeAsync("dead-letters/jobs", { qos: 1 });
    try {
      await twoRuns("worker.ts", snippet("README.md", "worker.ts"), at(1883, broker), {
        url: broker.url,
        clientId: "worker-1",
        filters: ["jobs/#"],
        acks: aedesAcks(broker, "worker-1"),
        messages: [
          [["jobs/1", '{"id":1}'], ["jobs/2", "not json"], ["jobs/3", '{"id":3}']],
          [["jobs/4", '{"id":4}']],
        ],
        printed: [['handled {"id":1}', 'handled {"id":3}'], ['handled {"id":4}']],
      });
      assert.equal(letters.length, 1);
      const letter = JSON.parse(letters[0]);
      assert.equal(letter.topic, "jobs/2");
      assert.equal(letter.payload, "not json");
      assert.match(letter.error, /^SyntaxError/);
    } finally {
      await dead.endAsync();
    }
  },
);

test("docs/streams.md's orders.ts dead-letters an order that is not JSON and counts it", {
  timeout: 60_000,
}, async () => {
  await using broker = await startAedes();
  const dead = await mqtt.connectAsync(broker.url);
  const letters: string[] = [];
  dead.on("message", (_topic, payload) => letters.push(payload.toString()));
  await dead.subscribeAsync("dead-letters/orders", { qos: 1 });
  try {
    await twoRuns("orders.ts", snippet("docs/streams.md", "orders.ts"), at(1883, broker), {
      url: broker.url,
      clientId: "orders",
      filters: ["orders/#"],
      acks: aedesAcks(broker, "orders"),
      messages: [
        [["orders/1", '{"id":1}'], ["orders/2", NOT_TEXT], ["orders/3", '{"id":3}']],
        [["orders/4", '{"id":4}']],
      ],
      printed: [
        ['order {"id":1} set aside so far: 0', 'order {"id":3} set aside so far: 1'],
        ['order {"id":4} set aside so far: 0'],
      ],
    });
    // MQTT 3.1.1: the message and its issues in a JSON payload.
    assert.equal(letters.length, 1);
    const letter = JSON.parse(letters[0]);
    assert.equal(letter.stage, "decodeJson");
    assert.equal(letter.topic, "orders/2");
    assert.equal(letter.encoding, "base64");
    assert.match(letter.issues[0].message, /not valid UTF-8/);
  } finally {
    await dead.endAsync();
  }
});

test("docs/persistence.md's durable_sink.ts publishes through its file store", {
  timeout: 60_000,
}, async () => {
  await using broker = await startAedes();
  await inSnippetFolder(async (folder) => {
    const store = join(folder, "store");
    const run = runSnippet(folder, "docs/persistence.md", "durable_sink.ts", {
      ...at(1883, broker),
      "/var/lib/ingest": store,
    });
    assert.equal((await within(exited(run.child), 30_000, "durable_sink.ts")).code, 0);
    assert.equal(run.output.text.trim(), "2");
    assert.ok(existsSync(join(store, "outgoing.log")), "the store's log");
  });
});

test(
  "docs/pipelines.md's route.ts routes by schema, dead-letters what fails, and does not see it again",
  {
    skip: skipWithoutMosquitto(),
    timeout: 60_000,
  },
  async () => {
    await using broker = await startMosquitto({ lines: LOGGED });
    const deadLetters = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
    const dead: mqtt.IPublishPacket[] = [];
    deadLetters.on("message", (_topic, _payload, packet) => dead.push(packet));
    await deadLetters.subscribeAsync("dead/letters", { qos: 1 });
    try {
      await twoRuns("route.ts", snippet("docs/pipelines.md", "route.ts"), at(1883, broker), {
        url: broker.url,
        clientId: "ingest",
        filters: ["sensors/+/temperature", "sensors/+/humidity"],
        acks: mosquittoAcks(broker, "ingest"),
        resends: mosquittoResends(broker, "ingest"),
        messages: [
          [
            ["sensors/north/temperature", '{"celsius":21.5}'],
            ["sensors/east/temperature", '{"celsius":"hot"}'],
            ["sensors/west/temperature", "not json"],
            ["sensors/south/humidity", '{"percent":40}'],
          ],
          [["sensors/west/humidity", '{"percent":55}']],
        ],
        printed: [["north 21.5", "south 40"], ["west 55"]],
      });
      const letters = dead.map((packet) => [
        packet.payload.toString(),
        packet.properties?.userProperties?.["mqtt-streams-topic"],
      ]);
      assert.deepEqual(letters, [
        ['{"celsius":"hot"}', "sensors/east/temperature"],
        ["not json", "sensors/west/temperature"],
      ]);
    } finally {
      await deadLetters.endAsync();
    }
  },
);

test(
  "docs/scale-out.md's consumer-group member reads a payload that is not text and resumes without resends",
  {
    skip: skipWithoutMosquitto(),
    timeout: 60_000,
  },
  async () => {
    await using broker = await startMosquitto({ lines: LOGGED });
    const code = snippetWith("docs/scale-out.md", "$share/jobs/orders");
    await twoRuns("group_member.ts", code, { "mqtt://broker:1883": broker.url }, {
      url: broker.url,
      clientId: "worker-0",
      filters: ["$share/jobs/orders/#"],
      mqtt5: true,
      acks: mosquittoAcks(broker, "worker-0"),
      resends: mosquittoResends(broker, "worker-0"),
      messages: [
        [["orders/1", '{"id":1}'], ["orders/2", NOT_TEXT], ["orders/3", '{"id":3}']],
        [["orders/4", '{"id":4}']],
      ],
      printed: [
        ['orders/1 {"id":1}', "orders/2 \ufffd\ufffd", 'orders/3 {"id":3}'],
        ['orders/4 {"id":4}'],
      ],
    });
  },
);

test(
  "docs/scale-out.md's bridge into JetStream stores a payload that is not text once, across two runs",
  {
    skip: skipWithoutMosquitto() || skipWithoutNats(),
    timeout: 90_000,
  },
  async () => {
    await using broker = await startMosquitto({ lines: LOGGED });
    await using nats = await startNats();
    const nc = await connect({ servers: nats.natsUrl });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "MQTT", subjects: ["mqtt.>"] });
      const code = snippetWith("docs/scale-out.md", "JetStreamSink");
      const replace = {
        "mqtt://broker:1883": broker.url,
        "nats://n1:4222": nats.natsUrl,
        "nats://n2:4222": nats.natsUrl,
      };
      // The bad message has no msg-id either: stored twice if it came twice.
      await twoRuns("jetstream_bridge.ts", code, replace, {
        url: broker.url,
        clientId: "bridge-1",
        filters: ["plant/#"],
        mqtt5: true,
        acks: mosquittoAcks(broker, "bridge-1"),
        resends: mosquittoResends(broker, "bridge-1"),
        messages: [
          [
            ["plant/line-1/temp", "21.5", { "msg-id": "1" }],
            ["plant/line-1/temp", NOT_TEXT],
            ["plant/line-1/temp", "21.7", { "msg-id": "3" }],
          ],
          [["plant/line-1/temp", "22.0", { "msg-id": "4" }]],
        ],
        printed: [[], []],
      });
      assert.equal((await jsm.streams.info("MQTT")).state.messages, 4);
      const stored = await jsm.streams.getMessage("MQTT", { seq: 2 });
      assert.equal(stored?.subject, "mqtt.plant.line-1.temp");
      assert.deepEqual(Buffer.from(stored!.data), NOT_TEXT);
    } finally {
      await nc.close();
    }
  },
);

test("docs/bahir.md's ingest.ts converts readings into a durable sink, and sets a bad one aside", {
  timeout: 60_000,
}, async () => {
  await using broker = await startAedes();
  const acks = aedesAcks(broker, "ingest");
  const out = await mqtt.connectAsync(broker.url);
  const received: string[] = [];
  const dead: string[] = [];
  out.on("message", (topic, payload) => {
    (topic === "out/readings" ? received : dead).push(payload.toString());
  });
  await out.subscribeAsync(["out/readings", "dead-letters/readings"], { qos: 1 });
  await sessionWith(broker.url, "ingest", ["sensors/+/temp"], [
    ["sensors/boiler/temp", '{"celsius":100}'],
    ["sensors/boiler/temp", "not json"],
    ["sensors/boiler/temp", '{"celsius":0}'],
  ]);
  await inSnippetFolder(async (folder) => {
    const run = runSnippet(folder, "docs/bahir.md", "ingest.ts", {
      ...at(1883, broker),
      "/var/lib/ingest": join(folder, "store"),
    });
    try {
      await waitFor(
        () => received.length === 2 && dead.length === 1 && acks() === 3,
        "two converted readings, one dead letter, three PUBACKs",
      );
      assert.deepEqual(received.map((text) => JSON.parse(text)), [
        { sensor: "sensors/boiler/temp", fahrenheit: 212 },
        { sensor: "sensors/boiler/temp", fahrenheit: 32 },
      ]);
      // MQTT 3.1.1 has no user properties: the dead letter is a JSON object with its issues.
      assert.match(dead[0], /not json/);
      await assertRunning(run.child, "ingest.ts");
    } finally {
      await kill(run.child);
      await out.endAsync();
    }
  });
});
