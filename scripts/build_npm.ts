/**
 * Builds the npm package from the same sources as the JSR one: ES module JavaScript and `.d.ts`
 * beside it, a `package.json` with `exports` and a `bin` for the command line, the README,
 * the CHANGELOG and the license; no test, bench or example file (tests/package/npm_test.ts
 * checks the tarball).
 *
 * ```sh
 * deno task build:npm             # writes dist/npm/
 * deno task build:npm --pack      # and packs it: dist/mqtt-streams-core-<version>.tgz
 * ```
 *
 * Node 20+ and Bun then install it with `npm install ./dist/npm` (or the tarball) and run it
 * with plain `node`; the command line is `npx mqtt-streams sub …`.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Where the package is written unless told otherwise. */
export const OUT: string = join(ROOT, "dist", "npm");
/** The public entry points, as in deno.json's `exports`. */
const ENTRIES = ["mod.ts", "cli.ts"];
/** The npm packages the code a user runs imports; their ranges come from deno.json. */
const DEPENDENCIES = ["mqtt", "valibot", "@opentelemetry/api"];

interface Manifest {
  name: string;
  version: string;
  license: string;
  imports: Record<string, string>;
}

/** The npm range of a deno.json import such as `npm:mqtt@^5.16.0`. */
function npmRange(manifest: Manifest, name: string): string {
  const specifier = manifest.imports[name];
  const range = specifier?.match(/^npm:(?:@[^/]+\/)?[^@]+@(.+)$/)?.[1];
  if (!range) throw new Error(`deno.json imports no npm version of ${name}: ${specifier}`);
  return range;
}

/** Compiles the entry points and all they import into `OUT`, or throws with the diagnostics. */
function compile(out: string): string[] {
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts", "lib.dom.iterable.d.ts", "lib.dom.asynciterable.d.ts"],
    types: [],
    rootDir: ROOT,
    outDir: out,
    declaration: true,
    allowImportingTsExtensions: true,
    rewriteRelativeImportExtensions: true,
    resolveJsonModule: true,
    skipLibCheck: true,
    strict: true,
    // Deno type-checks the sources (`deno task check`); here only the emit matters, and the
    // few `Deno.`/`Bun.` references of the runtime files have no types under tsc.
    noCheck: true,
    removeComments: false,
    newLine: ts.NewLineKind.LineFeed,
  };
  const host = ts.createCompilerHost(options);
  const program = ts.createProgram(ENTRIES.map((entry) => join(ROOT, entry)), options, host);
  const written: string[] = [];
  const result = program.emit(undefined, (file, text) => {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    written.push(relative(out, file));
  });
  const problems = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics]
    .filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (problems.length || result.emitSkipped) {
    throw new Error(ts.formatDiagnostics(problems, {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => ROOT,
      getNewLine: () => "\n",
    }));
  }
  return written;
}

/**
 * The telemetry scope reads its name and version from deno.json (the one place the version is
 * written). The package has no deno.json: the build writes the two values in its stead.
 */
function stampManifest(out: string, manifest: Manifest): void {
  const file = join(out, "src", "telemetry", "_metrics.js");
  const text = readFileSync(file, "utf8");
  const line = /^import manifest from "\.\.\/\.\.\/deno\.json" with \{ type: "json" \};$/m;
  if (!line.test(text)) throw new Error(`${file} no longer imports deno.json as expected`);
  const stamped = { name: manifest.name, version: manifest.version };
  writeFileSync(file, text.replace(line, `const manifest = ${JSON.stringify(stamped)};`));
  rmSync(join(out, "deno.json"), { force: true });
}

/**
 * tsc rewrites the `.ts` of relative imports in the JavaScript it emits, not in the
 * declarations: there `./x.ts` becomes `./x.js`, which resolves to `./x.d.ts` for a reader.
 */
function rewriteDeclarations(out: string, files: string[]): void {
  for (const file of files.filter((f) => f.endsWith(".d.ts"))) {
    const path = join(out, file);
    const text = readFileSync(path, "utf8");
    writeFileSync(path, text.replace(/(["'])(\.{1,2}\/[^"']+)\.ts\1/g, "$1$2.js$1"));
  }
}

/** The `package.json` of the package. */
function packageJson(manifest: Manifest): Record<string, unknown> {
  return {
    name: manifest.name,
    version: manifest.version,
    description:
      "MQTT as WHATWG web streams: a ReadableStream subscribes, a WritableStream publishes, one URL configures the connection.",
    license: manifest.license,
    type: "module",
    engines: { node: ">=20" },
    exports: {
      ".": { types: "./mod.d.ts", default: "./mod.js" },
      "./cli": { types: "./cli.d.ts", default: "./cli.js" },
      "./package.json": "./package.json",
    },
    main: "./mod.js",
    types: "./mod.d.ts",
    bin: { "mqtt-streams": "./bin/mqtt-streams.js" },
    // The file store and TLS key stores are loaded with import() when asked for; nothing else
    // has side effects beyond installing the telemetry hooks when mod.js loads.
    sideEffects: ["./mod.js", "./src/telemetry/*.js"],
    dependencies: Object.fromEntries(DEPENDENCIES.map((name) => [name, npmRange(manifest, name)])),
    keywords: ["mqtt", "streams", "web-streams", "readablestream", "writablestream", "iot"],
  };
}

/**
 * The command's launcher: cli.js runs `main` when it is the entry point under Deno and Bun
 * (`import.meta.main`), which Node 20 does not set; the launcher calls it itself.
 */
const LAUNCHER = `#!/usr/bin/env node
// The mqtt-streams command line (sub, pub, bridge) of the npm package: see cli.js.
import process from "node:process";
import { main } from "../cli.js";

main(process.argv.slice(2)).then(
  // Wait for stdout to drain before exiting (a pending stdin read would keep the process alive).
  (code) => process.stdout.write("", () => process.exit(code)),
  (error) => {
    process.stderr.write(\`mqtt-streams: \${error?.stack ?? error}\\n\`);
    process.exit(1);
  },
);
`;

/**
 * Builds the package into `out` (emptied first); returns the files written, relative to it.
 *
 * @param out The package's folder.
 */
export function build(out: string = OUT): string[] {
  const manifest = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8")) as Manifest;
  rmSync(out, { recursive: true, force: true });
  const files = compile(out).filter((file) => file !== "deno.json");
  stampManifest(out, manifest);
  rewriteDeclarations(out, files);
  mkdirSync(join(out, "bin"), { recursive: true });
  writeFileSync(join(out, "bin", "mqtt-streams.js"), LAUNCHER, { mode: 0o755 });
  writeFileSync(join(out, "package.json"), `${JSON.stringify(packageJson(manifest), null, 2)}\n`);
  for (const file of ["README.md", "LICENSE", "CHANGELOG.md"]) {
    copyFileSync(join(ROOT, file), join(out, file));
  }
  return [...files, "bin/mqtt-streams.js", "package.json"];
}

/**
 * Packs a built package with `npm pack`; returns the tarball's path.
 *
 * @param out The package's folder.
 * @param into The tarball's folder.
 */
export function pack(out: string = OUT, into: string = dirname(out)): string {
  const name = execFileSync("npm", ["pack", "--silent", "--pack-destination", into, out], {
    encoding: "utf8",
  }).trim().split("\n").at(-1)!;
  return join(into, name);
}

if (import.meta.main) {
  const files = build();
  console.log(`built ${relative(ROOT, OUT)}/: ${files.length} files`);
  if (process.argv.includes("--pack")) console.log(`packed ${relative(ROOT, pack())}`);
}
