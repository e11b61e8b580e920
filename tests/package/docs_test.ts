// The README and the guide (docs/): the README stays a five-minute read, every relative link
// and anchor resolves, the option table agrees with the schema, and the README's quick-start
// snippets run as printed against a real broker. (`deno task check` type-checks every
// TypeScript block of README.md and docs/ with `deno check --doc-only`.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { optionsTable } from "../options/_generate.ts";
import mqtt from "mqtt";
import { skipWithoutMosquitto, startAedes, startMosquitto } from "../../testing/broker.ts";
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

/**
 * Writes the snippet `name` of `page` to `folder` as it is printed, except for what
 * `replace` maps (the broker addresses, a store's folder) and the import of the package (its
 * `mod.ts` here, by path, so that Deno and Bun run it alike), and starts it.
 */
function runSnippet(folder: string, page: string, name: string, replace: Record<string, string>) {
  let code = snippet(page, name).replaceAll('"@mqtt-streams/core"', '"../mod.ts"');
  for (const [from, to] of Object.entries(replace)) code = code.replaceAll(from, to);
  const file = join(folder, name);
  writeFileSync(file, code);
  const child = spawnScript(new URL(`file://${resolve(file)}`), []);
  const output = { text: "" };
  child.stdout!.on("data", (chunk) => (output.text += chunk));
  return { child, output };
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

/**
 * A persistent session `clientId` subscribed to `filters`, holding `messages` for the
 * snippet that resumes it: it then reads them whenever it subscribes.
 */
async function sessionWith(
  url: string,
  clientId: string,
  filters: string[],
  messages: [string, string][],
): Promise<void> {
  const session = await mqtt.connectAsync(url, { clientId, clean: false });
  await session.subscribeAsync(filters, { qos: 1 });
  await session.endAsync();
  const publisher = await mqtt.connectAsync(url);
  for (const [topic, payload] of messages) await publisher.publishAsync(topic, payload, { qos: 1 });
  await publisher.endAsync();
}

test("the README's subscribe.ts, publish.ts and bridge.ts run as printed against a broker", {
  timeout: 60_000,
}, async () => {
  await using edge = await startAedes();
  await using cloud = await startAedes();
  const subscribed = (broker: typeof edge) =>
    new Promise<void>((resolve) => broker.broker.once("subscribe", () => resolve()));
  await inSnippetFolder(async (folder) => {
    // The subscriber reads from the cloud broker, where the bridge publishes what the edge got.
    const cloudSubscribed = subscribed(cloud);
    const subscriber = runSnippet(folder, "README.md", "subscribe.ts", at(1883, cloud));
    const edgeSubscribed = subscribed(edge);
    const bridge = runSnippet(folder, "README.md", "bridge.ts", {
      ...at(1883, edge),
      ...at(1884, cloud),
    });
    try {
      await within(Promise.all([cloudSubscribed, edgeSubscribed]), 30_000, "both subscriptions");
      const publisher = runSnippet(folder, "README.md", "publish.ts", at(1883, edge));
      assert.equal((await within(exited(publisher.child), 30_000, "publish.ts")).code, 0);
      assert.match(publisher.output.text, /all three acknowledged by the broker/);
      const printed = () => subscriber.output.text.trim().split("\n");
      await waitFor(() => printed().length === 3, "three readings at the subscriber");
      assert.deepEqual(printed(), [
        "sensors/north/temp 21.5",
        "sensors/north/temp 21.7",
        "sensors/north/temp 22.0",
      ]);
    } finally {
      await kill(subscriber.child);
      await kill(bridge.child);
    }
  });
});

test("the README's worker.ts handles and acknowledges the jobs a persistent session holds", {
  timeout: 60_000,
}, async () => {
  await using broker = await startAedes();
  await sessionWith(broker.url, "worker-1", ["jobs/#"], [
    ["jobs/1", '{"id":1}'],
    ["jobs/2", '{"id":2}'],
  ]);
  let acked = 0;
  broker.broker.on("ack", (_packet, client) => client?.id === "worker-1" && acked++);
  await inSnippetFolder(async (folder) => {
    const run = runSnippet(folder, "README.md", "worker.ts", at(1883, broker));
    try {
      await waitFor(() => run.output.text.split("\n").length > 2, "two jobs handled");
      await waitFor(() => acked === 2, "two PUBACKs");
      assert.deepEqual(run.output.text.trim().split("\n"), [
        'handled {"id":1}',
        'handled {"id":2}',
      ]);
    } finally {
      await kill(run.child);
    }
  });
  // Both were acknowledged: the session holds nothing more.
  const again = await mqtt.connectAsync(broker.url, { clientId: "worker-1", clean: false });
  const redelivered: string[] = [];
  again.on("message", (topic) => redelivered.push(topic));
  await sleep(300);
  await again.endAsync();
  assert.deepEqual(redelivered, []);
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

test("docs/pipelines.md's route.ts routes by schema and dead-letters what fails", {
  skip: skipWithoutMosquitto(),
  timeout: 60_000,
}, async () => {
  await using broker = await startMosquitto({ lines: LOSSLESS });
  const deadLetters = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
  const dead: mqtt.IPublishPacket[] = [];
  deadLetters.on("message", (_topic, _payload, packet) => dead.push(packet));
  await deadLetters.subscribeAsync("dead/letters", { qos: 1 });
  await sessionWith(broker.url, "ingest", ["sensors/+/temperature", "sensors/+/humidity"], [
    ["sensors/north/temperature", '{"celsius":21.5}'],
    ["sensors/south/humidity", '{"percent":40}'],
    ["sensors/east/temperature", '{"celsius":"hot"}'],
  ]);
  await inSnippetFolder(async (folder) => {
    const run = runSnippet(folder, "docs/pipelines.md", "route.ts", at(1883, broker));
    try {
      await waitFor(() => run.output.text.split("\n").length > 2 && dead.length > 0, "the output");
      assert.deepEqual(run.output.text.trim().split("\n"), ["north 21.5", "south 40"]);
      assert.equal(dead[0].payload.toString(), '{"celsius":"hot"}');
      assert.equal(
        dead[0].properties?.userProperties?.["mqtt-streams-topic"],
        "sensors/east/temperature",
      );
    } finally {
      await kill(run.child);
      await deadLetters.endAsync();
    }
  });
});

test("docs/bahir.md's ingest.ts converts readings into a durable sink", {
  timeout: 60_000,
}, async () => {
  await using broker = await startAedes();
  const out = await mqtt.connectAsync(broker.url);
  const received: string[] = [];
  out.on("message", (_topic, payload) => received.push(payload.toString()));
  await out.subscribeAsync("out/readings", { qos: 1 });
  await sessionWith(broker.url, "ingest", ["sensors/+/temp"], [
    ["sensors/boiler/temp", '{"celsius":100}'],
  ]);
  await inSnippetFolder(async (folder) => {
    const run = runSnippet(folder, "docs/bahir.md", "ingest.ts", {
      ...at(1883, broker),
      "/var/lib/ingest": join(folder, "store"),
    });
    try {
      await waitFor(() => received.length === 1, "the converted reading");
      assert.deepEqual(JSON.parse(received[0]), { sensor: "sensors/boiler/temp", fahrenheit: 212 });
    } finally {
      await kill(run.child);
      await out.endAsync();
    }
  });
});
