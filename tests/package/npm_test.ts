// The npm package, used as a newcomer outside the checkout uses it: `deno task build:npm`
// builds it, `npm pack` packs it, and `npm install <tarball>` puts it into an empty folder.
// From there, plain `node` and `bun` import `@mqtt-streams/core` by name and run round trips
// against a broker, `npx mqtt-streams` runs the command line, and tsc type-checks a user's
// file against the package's declarations. (npm fetches mqtt, valibot and @opentelemetry/api
// from the registry, or from its cache.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { MqttSink } from "../../mod.ts";
import { build, pack } from "../../scripts/build_npm.ts";
import { startAedes } from "../../testing/broker.ts";
import { runToEnd } from "../../testing/helpers.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const manifest = JSON.parse(readFileSync(join(root, "deno.json"), "utf8")) as {
  name: string;
  version: string;
};

/** Bun: this process when the suite runs under Bun, else Bun from npm. */
const bun: [string, string[]] = typeof (globalThis as { Bun?: unknown }).Bun === "object"
  ? [process.execPath, []]
  : ["npx", ["--yes", "bun@1"]];

interface Installed {
  /** The tarball's files, as `tar` lists them. */
  files: string[];
  /** The empty folder the tarball was installed into. */
  folder: string;
  /** The installed package's folder. */
  package: string;
}

let installing: Promise<Installed> | undefined;
/** Builds, packs and installs the package once for the tests of this file. */
function installed(): Promise<Installed> {
  installing ??= (async () => {
    const work = mkdtempSync(join(tmpdir(), "mqtt-streams-npm-"));
    process.once("exit", () => rmSync(work, { recursive: true, force: true }));
    build(join(work, "package"));
    const tarball = pack(join(work, "package"), work);
    const files = execFileSync("tar", ["tzf", tarball], { encoding: "utf8" }).trim().split("\n");
    const folder = join(work, "user");
    mkdirSync(folder);
    writeFileSync(join(folder, "package.json"), '{ "name": "user", "private": true }\n');
    const { code, output } = await runToEnd("npm", [
      "install",
      "--prefix",
      folder,
      "--no-audit",
      "--no-fund",
      tarball,
    ]);
    assert.equal(code, 0, output);
    return { files, folder, package: join(folder, "node_modules", "@mqtt-streams", "core") };
  })();
  return installing;
}

/** A round trip through the installed package, imported by name from the user's folder. */
const ROUND_TRIP = `
import { MqttSink, MqttSource, decodeJson } from "@mqtt-streams/core";
const url = process.argv[2];
const source = new MqttSource(url + "?topic=npm/rt&qos=1");
await source.ready;
const readings = ReadableStream.from([1, 2, 3].map((n) => JSON.stringify({ n })));
await readings.pipeTo(new MqttSink(url + "?topic=npm/rt&qos=1"));
const seen = [];
for await (const { value } of source.pipeThrough(decodeJson())) {
  seen.push(value.n);
  if (seen.length === 3) break;
}
console.log(JSON.stringify(seen));
`;

test("the npm package holds the library, its declarations and its command, and nothing else", async () => {
  const { files } = await installed();
  const inPackage = files.map((file) => file.replace(/^package\//, ""));
  for (const file of ["mod.js", "mod.d.ts", "cli.js", "cli.d.ts", "bin/mqtt-streams.js"]) {
    assert.ok(inPackage.includes(file), `${file} is missing`);
  }
  for (const file of ["package.json", "README.md", "LICENSE", "CHANGELOG.md"]) {
    assert.ok(inPackage.includes(file), `${file} is missing`);
  }
  const strays = inPackage.filter((file) =>
    /^(tests|testing|bench|examples|scripts|docs)\//.test(file) ||
    (file.endsWith(".ts") && !file.endsWith(".d.ts")) || file === "deno.json"
  );
  assert.deepEqual(strays, [], "files that are not the library");
  console.log(`${inPackage.length} files`);
});

test("the npm package's package.json names the version of deno.json, its exports and its bin", async () => {
  const json = JSON.parse(readFileSync(join((await installed()).package, "package.json"), "utf8"));
  assert.equal(json.name, manifest.name);
  assert.equal(json.version, manifest.version);
  assert.equal(json.type, "module");
  assert.deepEqual(Object.keys(json.exports), [".", "./cli", "./package.json"]);
  assert.deepEqual(json.bin, { "mqtt-streams": "./bin/mqtt-streams.js" });
  assert.deepEqual(Object.keys(json.dependencies).sort(), [
    "@opentelemetry/api",
    "mqtt",
    "valibot",
  ]);
  // The telemetry scope's version is stamped from deno.json: the package has no deno.json.
  const metrics = readFileSync(
    join((await installed()).package, "src/telemetry/_metrics.js"),
    "utf8",
  );
  assert.match(metrics, new RegExp(`"version":"${manifest.version.replaceAll(".", "\\.")}"`));
});

test("installed from its tarball, the package round-trips under plain Node: QoS 0–2 over TCP, ws://, a file store, a route", async () => {
  const { package: folder } = await installed();
  const { code, output } = await runToEnd("node", [
    join(root, "tests/package/_node_smoke_child.mjs"),
    join(folder, "mod.js"),
  ]);
  assert.equal(code, 0, output);
  const result = JSON.parse(output.trim().split("\n").at(-1)!);
  console.log(output.trim());
  assert.deepEqual({ ...result, node: undefined }, {
    node: undefined,
    "tcp qos0": 20,
    "tcp qos1": 20,
    "tcp qos2": 20,
    "ws qos1": 20,
    "file store qos1": 20,
    routed: ["plant/+site/temp@a", "plant/+site/hum@b"],
  });
});

for (const [runtime, command, prefix] of [["Node", "node", []], ["Bun", ...bun]] as const) {
  test(`a script in the user's folder imports "@mqtt-streams/core" by name and round-trips under ${runtime}`, async () => {
    const { folder } = await installed();
    await using broker = await startAedes();
    const script = join(folder, `round_trip_${runtime.toLowerCase()}.mjs`);
    writeFileSync(script, ROUND_TRIP);
    const { code, output } = await runToEnd(command, [...prefix, script, broker.url]);
    assert.equal(code, 0, output);
    assert.equal(output.trim().split("\n").at(-1), "[1,2,3]", output);
  });

  test(`the package's command runs under ${runtime}: --help, and sub prints a message`, async () => {
    const { folder, package: pkg } = await installed();
    const cli = runtime === "Node"
      ? ["npx", ["--prefix", folder, "--no-install", "mqtt-streams"]] as const
      : [command, [...prefix, join(pkg, "bin", "mqtt-streams.js")]] as const;
    const help = await runToEnd(cli[0], [...cli[1], "--help"]);
    assert.equal(help.code, 0, help.output);
    assert.match(help.output, /mqtt-streams sub <url>/);
    await using broker = await startAedes();
    // A retained message: sub receives it as it subscribes, whenever that is.
    await ReadableStream.from([{ topic: "cli/npm", payload: "hello", retain: true }])
      .pipeTo(new MqttSink(`${broker.url}?qos=1`));
    const { code, output } = await runToEnd(cli[0], [
      ...cli[1],
      "sub",
      `${broker.url}?topic=cli/npm&qos=1`,
      "--count",
      "1",
    ]);
    assert.equal(code, 0, output);
    // stdout has the message's JSON line; stderr (in the same output) what sub says besides.
    const lines = output.trim().split("\n").filter((text) => text.startsWith("{"));
    assert.equal(lines.length, 1, output);
    const line = JSON.parse(lines[0]);
    assert.equal(line.topic, "cli/npm");
    assert.equal(line.payload, "hello", output);
    console.log(output.trim());
  });
}

test("a TypeScript user's file type-checks against the package's declarations", async () => {
  const { folder } = await installed();
  writeFileSync(
    join(folder, "user.ts"),
    `import { type MqttMessage, MqttSink, MqttSource, parseConnectionString } from "@mqtt-streams/core";
import { main } from "@mqtt-streams/core/cli";
const source: ReadableStream<MqttMessage> = new MqttSource("mqtt://localhost?topic=a");
const sink: WritableStream<string> = new MqttSink("mqtt://localhost?topic=b");
const qos: 0 | 1 | 2 = parseConnectionString("mqtt://localhost?qos=2").qos;
const code: Promise<number> = main(["--help"]);
// @ts-expect-error a sink takes records, bytes and strings, not numbers
const wrong: WritableStream<number> = new MqttSink("mqtt://localhost?topic=b");
console.log(source, sink, qos, code, wrong);
`,
  );
  const { code, output } = await runToEnd("node", [
    join(root, "node_modules/typescript/bin/tsc"),
    "--noEmit",
    "--strict",
    "--module",
    "nodenext",
    "--moduleResolution",
    "nodenext",
    "--target",
    "es2022",
    "--lib",
    "es2022,dom,dom.iterable,dom.asynciterable",
    join(folder, "user.ts"),
  ]);
  assert.equal(code, 0, output);
});
