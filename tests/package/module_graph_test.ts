// The core is web-standard: walking the module graph from mod.ts (`deno info --json`)
// along static imports must meet only our own modules, `mqtt`, `valibot` and
// `@opentelemetry/api` (a no-op until an application registers an SDK): no `node:`
// import, no other npm entry point, and no `Deno.`, `Bun.` or `process` in the code. What
// needs a runtime is loaded with import() when asked for: the file store, TLS files, and
// the runtime's WebSocket; this test lists those too, so a new one is a decision. And two
// house rules seen through the module graph: only src/connection/ imports mqtt, and the
// transforms bundle without mqtt.js. (The others, import cycles included, are in
// tests/package/layout_test.ts, which reads the whole repository without a child process.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { BROWSER_BUNDLE, runDeno } from "../../testing/helpers.ts";

interface GraphModule {
  specifier: string;
  kind: string;
  dependencies?: {
    specifier: string;
    isDynamic?: boolean;
    code?: { specifier: string };
    type?: { specifier: string };
  }[];
}

/** The module graph of mod.ts as `deno info --json` reports it (asked once for both tests). */
let graphOnce: Map<string, GraphModule> | undefined;
function moduleGraph(): Map<string, GraphModule> {
  return graphOnce ??= readGraph();
}

function readGraph(): Map<string, GraphModule> {
  const result = runDeno(["info", "--json", "mod.ts"]);
  assert.equal(result.status, 0, result.output);
  const { modules, redirects } = JSON.parse(result.stdout) as {
    modules: GraphModule[];
    redirects: Record<string, string>;
  };
  const graph = new Map(modules.map((m) => [m.specifier, m]));
  for (const [from, to] of Object.entries(redirects)) graph.set(from, graph.get(to)!);
  return graph;
}

/** The modules reached from mod.ts by static imports (`import type` does not count). */
function eager(graph: Map<string, GraphModule>) {
  const start = new URL("../../mod.ts", import.meta.url).href;
  const seen = new Set<string>([start]);
  const lazy = new Set<string>();
  const queue = [start];
  while (queue.length) {
    const module = graph.get(queue.shift()!);
    for (const dependency of module?.dependencies ?? []) {
      const target = dependency.code?.specifier;
      if (!target) continue;
      if (dependency.isDynamic) lazy.add(target);
      else if (!seen.has(target)) {
        seen.add(target);
        if (target.startsWith("file:")) queue.push(target);
      }
    }
  }
  return { eager: seen, lazy: [...lazy].filter((s) => !seen.has(s)) };
}

const relative = (specifier: string) =>
  specifier.replace(new URL("../..", import.meta.url).href, "");

/**
 * The code of a module with its comments and string literals blanked out (a template
 * literal counts as one string, its `${}` parts included: ours hold no runtime global).
 */
function code(path: string): string {
  const text = readFileSync(path, "utf8");
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      i = text.indexOf("*/", i + 2) + 1;
      out += " ";
    } else if (c === '"' || c === "'" || c === "`") {
      for (i++; i < text.length && text[i] !== c; i++) if (text[i] === "\\") i++;
      out += '""';
    } else out += c;
  }
  return out;
}

test("the core imports only our modules, mqtt, valibot and @opentelemetry/api, and uses no runtime global", () => {
  const graph = moduleGraph();
  const { eager: modules, lazy } = eager(graph);
  const foreign = [...modules].filter((s) =>
    !s.startsWith("file:") && !/^npm:\/?(mqtt|valibot|@opentelemetry\/api)@[^/]+$/.test(s)
  );
  assert.deepEqual(foreign, [], "imports outside the web platform, mqtt, valibot and the OTel API");
  const runtimeGlobals: string[] = [];
  for (const specifier of modules) {
    if (!specifier.startsWith("file:")) continue;
    // `Deno.x`, `Bun.x` or `process` as a free name. Feature detection through globalThis
    // (`g.Deno?.x`, `g.process?.env`), a property name in a type, and the word inside a
    // longer name are fine.
    const uses = code(fileURLToPath(specifier)).match(
      /(?<![.\w$])(Deno\.|Bun\.|process\b(?!\s*\??:))/g,
    );
    if (uses) runtimeGlobals.push(`${relative(specifier)}: ${[...new Set(uses)].join(", ")}`);
  }
  assert.deepEqual(runtimeGlobals, [], "runtime globals in the core");
  assert.deepEqual(
    lazy.map(relative).sort(),
    [
      "src/connection/_pkcs12.ts",
      "src/connection/runtime/files.ts",
      "src/connection/runtime/websocket.ts",
      "src/stores/file_store.ts",
    ],
    "the modules loaded with import() changed",
  );
});

test("node: imports live only in the lazily loaded modules", () => {
  const graph = moduleGraph();
  const { lazy } = eager(graph);
  // Everything the lazy modules import in turn, statically.
  const behind = new Set<string>();
  const queue = [...lazy];
  while (queue.length) {
    const specifier = queue.shift()!;
    if (behind.has(specifier)) continue;
    behind.add(specifier);
    for (const dependency of graph.get(specifier)?.dependencies ?? []) {
      const target = dependency.code?.specifier;
      if (target?.startsWith("file:")) queue.push(target);
    }
  }
  const withNode = [...graph.values()]
    .filter((m) => m.specifier.startsWith("file:"))
    .filter((m) => m.dependencies?.some((d) => d.code?.specifier.startsWith("node:")))
    .map((m) => m.specifier);
  const outside = withNode.filter((s) => !behind.has(s)).map(relative);
  assert.deepEqual(outside, [], "node: imports outside the lazily loaded modules");
  assert.ok(withNode.length > 0, "the walk found no node: import at all (the file store has some)");
});

/** The source files under `folder` (ours: .ts), as paths relative to the repository. */
function sourceFiles(folder: string): string[] {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  return readdirSync(join(root, folder), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .map((file) => join(folder, file));
}

test("only src/connection/ imports mqtt, types included", () => {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const files = ["mod.ts", "cli.ts", ...sourceFiles("src"), ...sourceFiles("cli")];
  const importers = files.filter((file) =>
    // `from "mqtt"`, `from "mqtt/lib/…"`, `import("mqtt")`, `import "mqtt"`, npm: specifiers.
    /(?:\bfrom\s*|\bimport\s*\(?\s*)["'](?:npm:)?mqtt(?:@[^/"']*)?(?:\/[^"']*)?["']/.test(
      readFileSync(join(root, file), "utf8"),
    )
  );
  const outside = importers.filter((file) => !file.startsWith("src/connection/"));
  assert.deepEqual(outside, [], "files outside src/connection/ that import mqtt");
  assert.ok(importers.includes("src/connection/connection.ts"), importers.join(", "));
  // The same rule on the module graph, where an import by any spelling shows up.
  const graph = moduleGraph();
  const reaching = [...graph.values()]
    .filter((m) => m.specifier.startsWith("file:"))
    .filter((m) =>
      m.dependencies?.some((d) =>
        [d.code?.specifier, d.type?.specifier].some((s) => s?.startsWith("npm:/mqtt@"))
      )
    )
    .map((m) => relative(m.specifier))
    .filter((file) => !file.startsWith("src/connection/"));
  assert.deepEqual(
    reaching,
    [],
    "modules of mod.ts's graph outside src/connection/ importing mqtt",
  );
});

test("decodeJson bundled alone for a browser holds no mqtt.js", async () => {
  const decode = fileURLToPath(new URL("../../src/transforms/decode.ts", import.meta.url));
  try {
    const result = await esbuild.build({
      stdin: {
        contents: `export { decodeJson } from "./decode.ts";`,
        loader: "ts",
        resolveDir: dirname(decode),
      },
      ...BROWSER_BUNDLE,
    });
    const inputs = Object.keys(result.metafile.inputs);
    const bytes = result.outputFiles[0].contents.byteLength;
    const packages = inputs.filter((input) => input.includes("node_modules/"));
    assert.deepEqual(packages, [], `the bundle (${bytes} bytes) holds npm packages`);
    assert.ok(inputs.some((input) => input.endsWith("src/transforms/decode.ts")), inputs.join());
  } finally {
    await esbuild.stop();
  }
});
