// The README and the guide (docs/): the README stays a five-minute read, every relative link
// and anchor resolves, the option table agrees with the schema, and the README's quick-start
// snippets run as printed against a real broker. (`deno task check` type-checks every
// TypeScript block of README.md and docs/ with `deno check --doc-only`.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { optionsTable } from "./_options_table.ts";
import { startAedes } from "./_broker.ts";
import { exited, kill, spawnScript, waitFor, within } from "./_helpers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
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

/** The README's snippets that name their file in a first-line comment (`// publish.ts`). */
function namedSnippets(): Map<string, string> {
  const snippets = new Map<string, string>();
  for (const [, code] of readme.matchAll(/^```ts\n([\s\S]*?)^```/gm)) {
    const name = /^\/\/ (\w+\.ts)\n/.exec(code)?.[1];
    if (name) snippets.set(name, code);
  }
  return snippets;
}

/**
 * Writes the snippet `name` to `folder` as it is printed, except for the broker addresses
 * (`ports` maps a README port to the test broker's) and the import of the package (its
 * `mod.ts` here, by path, so that Deno and Bun run it alike), and starts it.
 */
function runSnippet(folder: string, name: string, ports: Record<string, number>) {
  let code = namedSnippets().get(name);
  assert.ok(code, `the README has no snippet ${name}`);
  code = code.replaceAll(
    '"@mqtt-streams/core"',
    JSON.stringify(new URL("../mod.ts", import.meta.url).href),
  );
  for (const [port, actual] of Object.entries(ports)) {
    code = code.replaceAll(`mqtt://localhost:${port}`, `mqtt://127.0.0.1:${actual}`);
  }
  const file = join(folder, name);
  writeFileSync(file, code);
  return spawnScript(new URL(`file://${resolve(file)}`), []);
}

test("the README's subscribe.ts, publish.ts and bridge.ts run as printed against a broker", {
  timeout: 60_000,
}, async () => {
  await using edge = await startAedes();
  await using cloud = await startAedes();
  // Inside the repository, where Deno finds deno.json for the package's own imports.
  const folder = mkdtempSync(join(root, ".readme-snippets-"));
  const subscribed = (broker: typeof edge) =>
    new Promise<void>((resolve) => broker.broker.once("subscribe", () => resolve()));
  // The subscriber reads from the cloud broker, where the bridge publishes what the edge got.
  const cloudSubscribed = subscribed(cloud);
  const subscriber = runSnippet(folder, "subscribe.ts", { 1883: cloud.port });
  let printed = "";
  subscriber.stdout!.on("data", (chunk) => (printed += chunk));
  const edgeSubscribed = subscribed(edge);
  const bridge = runSnippet(folder, "bridge.ts", { 1883: edge.port, 1884: cloud.port });
  try {
    await within(Promise.all([cloudSubscribed, edgeSubscribed]), 30_000, "both subscriptions");
    const publisher = runSnippet(folder, "publish.ts", { 1883: edge.port });
    let published = "";
    publisher.stdout!.on("data", (chunk) => (published += chunk));
    assert.equal((await within(exited(publisher), 30_000, "publish.ts")).code, 0);
    assert.match(published, /all three acknowledged by the broker/);
    await waitFor(() => printed.split("\n").length > 3, "three readings at the subscriber");
    assert.deepEqual(printed.trim().split("\n"), [
      "sensors/north/temp 21.5",
      "sensors/north/temp 21.7",
      "sensors/north/temp 22.0",
    ]);
  } finally {
    await kill(subscriber);
    await kill(bridge);
    rmSync(folder, { recursive: true, force: true });
  }
});
