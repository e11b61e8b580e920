// The house rules of the layout (docs/layout.md), read from the files themselves so that they
// cannot regress: the import graph of our own .ts files (no cycle among src/ files, none between
// folders, the arrows between folders only the allowed ones), casts to mqtt.js's insides only in
// the connection's adapter, nothing outside src/connection/ reaching into a connection's sides,
// a short top of src/, a `test:unit` task whose list is computed here, and one version string.
// No child process and no broker: this file is in `deno task test:unit` itself.
// (tests/package/module_graph_test.ts checks what `deno info` sees from mod.ts: web-standard
// core, lazy modules, only src/connection/ importing mqtt.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { posix } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const read = (file: string) => readFileSync(ROOT + file, "utf8");

/** Our own .ts files: the folders the layout names, and the two entry points. */
function ownFiles(): string[] {
  const files = ["mod.ts", "cli.ts"];
  for (const folder of ["src", "cli", "testing", "bench", "tests", "examples"]) {
    files.push(...filesUnder(folder).filter((file) => file.endsWith(".ts")));
  }
  return files.sort();
}

/** Every file under `folder`, as a path relative to the repository. */
function filesUnder(folder: string): string[] {
  return readdirSync(ROOT + folder, { recursive: true, encoding: "utf8" })
    .map((file) => posix.join(folder, file))
    .filter((file) => !file.includes("node_modules/") && statSync(ROOT + file).isFile());
}

/**
 * The code of a file without its comments: `/* … *\/` blocks that open a line, whole-line
 * `//` comments and a trailing ` // …` after code. (Not a lexer: a `/*` or ` // ` inside a
 * string is left alone or cut short; ours sit in no import, cast or call these rules read.
 * The arrows it finds from mod.ts and cli.ts are the ones `deno info` reports.)
 */
function withoutComments(text: string): string {
  return text
    .replace(/^[ \t]*\/\*[\s\S]*?\*\//gm, (comment) => comment.replace(/[^\n]/g, " "))
    .split("\n")
    .map((line) => /^\s*\/\//.test(line) ? "" : line.replace(/\s\/\/ .*$/, ""))
    .join("\n");
}

// `import … from "x"`, `export … from "x"` (types too), `import "x"`, and `import("x")`.
const STATIC_IMPORT =
  /^\s*(?:import|export)\s+(?:type\s+)?(?:[\w$]+\s*,?\s*)?(?:\*\s*as\s+[\w$]+|\*|\{[^}]*\})?\s*from\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

interface Arrow {
  from: string;
  to: string; // a repository path for our files, the specifier as written for others
  dynamic: boolean;
}

/** What `file` imports: our files resolved to repository paths, packages as written. */
function importsOf(file: string): Arrow[] {
  const code = withoutComments(read(file));
  const arrows: Arrow[] = [];
  const add = (specifier: string, dynamic: boolean) => {
    const ours = specifier.startsWith("./") || specifier.startsWith("../");
    const to = ours ? posix.normalize(posix.join(posix.dirname(file), specifier)) : specifier;
    arrows.push({ from: file, to, dynamic });
  };
  for (const m of code.matchAll(STATIC_IMPORT)) add(m[1] ?? m[2], false);
  for (const m of code.matchAll(DYNAMIC_IMPORT)) add(m[1], true);
  return arrows;
}

/** The import graph of our .ts files: the arrows between them (each counted once). */
function importGraph() {
  const files = ownFiles();
  const known = new Set(files);
  const arrows = files.flatMap(importsOf).filter((arrow) => known.has(arrow.to));
  const unique = new Map(arrows.map((a) => [`${a.from} ${a.to}`, a]));
  return { files, arrows: [...unique.values()] };
}

/** The folder a file belongs to, as the rules speak of them. */
function folderOf(file: string): string {
  if (!file.includes("/")) return file; // mod.ts, cli.ts
  const parts = file.split("/");
  if (parts[0] === "src" && parts.length > 2) return `src/${parts[1]}/`; // an area of src/
  return `${parts[0]}/`; // src/ (its top files), cli/, testing/, bench/, tests/, examples/
}

test("the import graph has no cycle among src/ files and none between folders", () => {
  const { files, arrows } = importGraph();
  const crossing = arrows.filter((a) => folderOf(a.from) !== folderOf(a.to));
  console.log(
    `import graph: ${files.length} files, ${arrows.length} import arrows ` +
      `(${arrows.filter((a) => a.dynamic).length} of them import()), ` +
      `${crossing.length} between folders`,
  );
  // Static imports only: import() is a decision to load later, and what it loads may name its
  // loader's types.
  const edges = new Map<string, string[]>();
  for (const a of arrows) {
    if (a.dynamic || !a.from.startsWith("src/") || !a.to.startsWith("src/")) continue;
    edges.set(a.from, [...edges.get(a.from) ?? [], a.to]);
  }
  const fileCycles = stronglyConnected(edges).filter((c) => c.length > 1).map((c) => c.sort());
  const folderEdges = new Map<string, string[]>();
  for (const a of crossing) {
    folderEdges.set(folderOf(a.from), [...folderEdges.get(folderOf(a.from)) ?? [], folderOf(a.to)]);
  }
  const folderCycles = stronglyConnected(folderEdges).filter((c) => c.length > 1)
    .map((cycle) =>
      crossing.filter((a) => cycle.includes(folderOf(a.from)) && cycle.includes(folderOf(a.to)))
        .map((a) => `${a.from} → ${a.to}`).sort()
    );
  console.log(
    `cycles: ${fileCycles.length} among src/ files, ${folderCycles.length} between folders`,
  );
  assert.deepEqual(fileCycles, [], "import cycles among src/ files");
  assert.deepEqual(folderCycles, [], "import cycles between folders (the arrows that make them)");
  assert.ok(files.length > 100 && arrows.length > 200, "the walk saw too little of the repository");
});

/** Which arrows between folders are forbidden, and why. */
const FORBIDDEN: { rule: string; breaks: (from: string, to: string) => boolean }[] = [
  {
    rule: "bench/ never imports tests/",
    breaks: (f, t) => under(f, "bench/") && under(t, "tests/"),
  },
  {
    rule: "src/ never imports testing/, tests/ or bench/",
    breaks: (f, t) => under(f, "src/") && /^(testing|tests|bench)\//.test(t),
  },
  {
    rule: "testing/ never imports tests/ or bench/",
    breaks: (f, t) => under(f, "testing/") && /^(tests|bench)\//.test(t),
  },
  {
    rule: "src/streams/ never imports src/telemetry/ (telemetry observes the streams)",
    breaks: (f, t) => under(f, "src/streams/") && under(t, "src/telemetry/"),
  },
  {
    rule: "src/options/ imports nothing from src/streams/, src/telemetry/ or src/connection/",
    breaks: (f, t) => under(f, "src/options/") && /^src\/(streams|telemetry|connection)\//.test(t),
  },
  {
    // Besides the did-you-mean rule (a pure string function), so that flags and options
    // suggest alike without a copy of it.
    rule: "cli/ and cli.ts import only mod.ts (the public API), their own files and _nearest.ts",
    breaks: (f, t) =>
      (f === "cli.ts" || under(f, "cli/")) && t !== "mod.ts" && t !== "cli.ts" &&
      !under(t, "cli/") &&
      t !== "src/options/_nearest.ts",
  },
];

const under = (file: string, folder: string) => file.startsWith(folder);

test("the arrows between folders go only where the layout allows", () => {
  const { arrows } = importGraph();
  const broken = FORBIDDEN.flatMap(({ rule, breaks }) =>
    arrows.filter((a) => breaks(a.from, a.to)).map((a) => `${rule}: ${a.from} → ${a.to}`)
  );
  assert.deepEqual(broken, [], "imports the layout forbids");
});

/** Packages only some of our files may import: what they are for, and who. */
const CONFINED: { rule: string; packages: RegExp; allowed: (from: string) => boolean }[] = [
  {
    rule: "only bench/ imports the peers it measures (async-mqtt, u8-mqtt)",
    packages: /^(npm:)?(async-mqtt|u8-mqtt)(@|\/|$)/,
    allowed: (f) => under(f, "bench/"),
  },
  {
    rule:
      "only the JetStream example (examples/jetstream_*.ts), its tests and the docs test of its snippet import @nats-io",
    packages: /^(npm:)?@nats-io\//,
    allowed: (f) =>
      /^examples\/jetstream_/.test(f) || under(f, "tests/examples/") ||
      f === "tests/package/docs_test.ts",
  },
];

for (const { rule, packages, allowed } of CONFINED) {
  test(rule, () => {
    // Every arrow, packages included (importGraph() keeps only those between our files).
    const arrows = ownFiles().flatMap(importsOf).filter((a) => packages.test(a.to));
    const outside = arrows.filter((a) => !allowed(a.from)).map((a) => `${a.from} → ${a.to}`);
    assert.deepEqual(outside, [], "imports outside the files the package is for");
    assert.ok(arrows.length > 0, "the rule sees the imports it confines");
  });
}

/** Our .ts files under src/, each with its code (comments left out). */
const srcCode = () =>
  ownFiles().filter((file) => file.startsWith("src/")).map((file) => ({
    file,
    code: withoutComments(read(file)),
  }));

test("`as unknown as` appears in src/ only in the adapter to mqtt.js, src/connection/_mqtt.ts", () => {
  const casting = srcCode()
    .map(({ file, code }) => ({ file, count: code.split("as unknown as").length - 1 }))
    .filter(({ file, count }) => count > 0 && file !== "src/connection/_mqtt.ts")
    .map(({ file, count }) => `${file} (${count})`);
  assert.deepEqual(casting, [], "files outside the adapter that cast through unknown");
  assert.ok(existsSync(ROOT + "src/connection/_mqtt.ts"), "the adapter src/connection/_mqtt.ts");
});

test("nothing outside src/connection/ reaches into a connection's inbound, outbound or persisted side", () => {
  const reaching = ownFiles()
    .filter((file) => !file.startsWith("src/connection/"))
    .flatMap((file) =>
      withoutComments(read(file)).split("\n").flatMap((line, i) =>
        /\.(inbound|outbound|persisted)\??\./.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : []
      )
    );
  assert.deepEqual(reaching, [], "code that reaches past the connection's face");
});

test("the top of src/ holds at most 6 files: the plain public types, the rest in folders", () => {
  const top = readdirSync(ROOT + "src", { withFileTypes: true })
    .filter((entry) => entry.isFile()).map((entry) => entry.name).sort();
  console.log(`the top of src/: ${top.join(", ")}`);
  assert.ok(top.length <= 6, `${top.length} files: ${top.join(", ")}`);
});

// --- the test:unit task -------------------------------------------------------------------

/** The harness modules that start a broker or a server to connect to. */
const BROKER_HARNESS = [
  "testing/broker.ts",
  "testing/nats.ts",
  "testing/rabbitmq.ts",
  "testing/hostile.ts",
  "testing/tls_front.ts",
  "testing/auth_front.ts",
];
/** Packages and modules that serve or reach a network: an embedded broker, a server, a socket. */
const NETWORK = /^(aedes|ws|node:(net|http|https|http2|tls|dgram))$/;
/** A call that starts a child process (a broker, the CLI, Deno, Node, a browser). */
const CHILD_PROCESS =
  /\b(spawnScript|spawn|spawnSync|execFile|execFileSync|execSync|fork|runDeno|runToEnd|denoCheck|assertEachFailsToCheck)\s*\(|\bDeno\.Command\b|\bnew\s+Worker\s*\(/;

/**
 * Why a test file is not a unit test, or undefined if it is one: it (or a helper of the test
 * side it imports, under tests/, testing/ or bench/) imports a broker harness or something that
 * serves or reaches a network, or it starts a child process. The code under test (mod.ts, src/,
 * cli/) is not followed: it imports no harness (the rules above).
 */
function whyNotUnit(testFile: string): string | undefined {
  const seen = new Set<string>();
  const queue = [testFile];
  while (queue.length) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    if (BROKER_HARNESS.includes(file)) return `imports ${file}`;
    const arrows = file.endsWith(".ts") ? importsOf(file) : [];
    const network = arrows.find((a) => NETWORK.test(a.to));
    if (network) return `${file} imports ${network.to}`;
    // The harness's own helpers define the child-process calls; the test side makes them.
    if (file.startsWith("tests/") && CHILD_PROCESS.test(withoutComments(read(file)))) {
      return `${file} starts a child process`;
    }
    // Only files that exist: a generator's template may hold an import line of the code it writes.
    for (const a of arrows) {
      if (/^(tests|testing|bench)\//.test(a.to) && existsSync(ROOT + a.to)) queue.push(a.to);
    }
  }
  return undefined;
}

test("deno task test:unit runs exactly the test files that need no broker, network or child process", () => {
  // A harness renamed would let its tests pass as unit tests: the list above must be current.
  assert.deepEqual(BROKER_HARNESS.filter((file) => !existsSync(ROOT + file)), [], "moved harness");
  const tests = filesUnder("tests").filter((file) => file.endsWith("_test.ts")).sort();
  const unit = tests.filter((file) => whyNotUnit(file) === undefined);
  const tasks = JSON.parse(read("deno.json")).tasks as Record<string, string>;
  assert.ok(tasks["test:unit"], "deno.json has no test:unit task");
  const listed = [...new Set(tasks["test:unit"].match(/\btests\/\S+_test\.ts\b/g) ?? [])].sort();
  console.log(`test:unit: ${unit.length} of ${tests.length} test files`);
  assert.deepEqual(
    {
      missing: unit.filter((f) => !listed.includes(f)),
      notUnit: listed.filter((f) => !unit.includes(f)).map((f) =>
        `${f}: ${whyNotUnit(f) ?? "no such file"}`
      ),
    },
    { missing: [], notUnit: [] },
    "the test:unit task's list and the broker-free test files differ",
  );
});

// --- one version string -------------------------------------------------------------------

test("deno.json's version, mod.ts's release line and the telemetry scope's version agree", async () => {
  const { version } = JSON.parse(read("deno.json")) as { version: string };
  assert.match(version, /^\d+\.\d+\.\d+(-[\w.]+)?$/);
  // mod.ts's guide may name the release; if it does, it names this one.
  const release = read("mod.ts").match(/This release \(([^)]+)\)/)?.[1];
  if (release !== undefined) assert.equal(release, version, 'mod.ts\'s "This release (…)" line');
  // The telemetry scope's version, wherever it is declared under src/, as the code computes it.
  const declaring = ownFiles().filter((file) =>
    file.startsWith("src/") && /export const SCOPE_VERSION\b/.test(read(file))
  );
  assert.equal(declaring.length, 1, `SCOPE_VERSION declared in: ${declaring.join(", ") || "none"}`);
  const scope = await import(pathToFileURL(ROOT + declaring[0]).href) as { SCOPE_VERSION: string };
  assert.equal(scope.SCOPE_VERSION, version, `${declaring[0]}'s SCOPE_VERSION`);
  // And the version is written nowhere else in the code a user runs.
  const literal = new RegExp(`["'\`]${version.replaceAll(".", "\\.")}["'\`]`);
  const elsewhere = ownFiles()
    .filter((file) => file === "mod.ts" || file === "cli.ts" || /^(src|cli)\//.test(file))
    .filter((file) => literal.test(read(file)));
  assert.deepEqual(
    elsewhere,
    [],
    `files writing "${version}" themselves instead of reading deno.json`,
  );
});

/** Tarjan's strongly connected components of a directed graph. */
function stronglyConnected(edges: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (node: string) => {
    index.set(node, index.size);
    low.set(node, index.get(node)!);
    stack.push(node);
    onStack.add(node);
    for (const next of edges.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node)!, index.get(next)!));
    }
    if (low.get(node) !== index.get(node)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== node);
    components.push(component);
  };
  for (const node of edges.keys()) if (!index.has(node)) visit(node);
  return components;
}
