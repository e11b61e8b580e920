// cli.ts in child processes, against embedded brokers: help, bad arguments, a sub/pub
// round trip, Ctrl-C, a bridge that is SIGKILLed mid-stream, the line that says it is
// still connecting, and Node through tsx.
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { MqttSink, MqttSource } from "../../mod.ts";
import { topicMap } from "../../cli/_topic_map.ts";
import { freePort, startAedes } from "../../testing/broker.ts";
import { exited, kill, spawnScript, waitFor, within } from "../../testing/helpers.ts";

const CLI = new URL("../../cli.ts", import.meta.url);

/** Starts the CLI with stdout and stderr collected; `stdin: "pipe"` to write to it. */
function cli(args: string[], stdin: "pipe" | "ignore" = "ignore") {
  const child = spawnScript(CLI, args, { stdin, stdout: "pipe", stderr: "pipe" });
  const output = { stdout: "", stderr: "" };
  child.stdout!.on("data", (chunk) => (output.stdout += chunk));
  child.stderr!.on("data", (chunk) => (output.stderr += chunk));
  return { child, output };
}

/** Runs the CLI to its end (at most 60 s). */
async function run(args: string[]) {
  const { child, output } = cli(args);
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const { code } = await exited(child);
  clearTimeout(timer);
  // Deno's own notice while another Deno (a parallel run here) sets up node_modules: not ours.
  const stderr = output.stderr.replace(/^.*Blocking.* waiting for file lock on .*\n/gm, "");
  return { code, stdout: output.stdout, stderr };
}

/**
 * Sends SIGINT (Ctrl-C) to `child`. Not child.kill(): under Deno that makes the child
 * report the signal as how it ended, whatever its real exit code.
 */
function interrupt(child: ChildProcess): void {
  process.kill(child.pid!, "SIGINT");
}

async function waitForText(output: { stderr: string }, text: string, child: ChildProcess) {
  await waitFor(
    () => output.stderr.includes(text) || child.exitCode !== null,
    `'${text}' on stderr`,
    30_000,
  );
  assert.ok(output.stderr.includes(text), output.stderr);
}

test("cli --help, and each command's --help, print the usage and exit 0", async () => {
  const results = await Promise.all(
    [["--help"], ["sub", "--help"], ["pub", "-h"], ["bridge", "--help"]].map(run),
  );
  const heads = [
    "mqtt-streams: MQTT",
    "mqtt-streams sub <url>",
    "mqtt-streams pub <url>",
    "mqtt-streams bridge <from> <to>",
  ];
  results.forEach(({ code, stdout, stderr }, i) => {
    assert.equal(code, 0, stderr);
    assert.ok(stdout.startsWith(heads[i]), stdout);
  });
});

test("cli with no arguments prints the usage on stderr and exits 2", async () => {
  const { code, stdout, stderr } = await run([]);
  assert.equal(code, 2, stderr);
  assert.equal(stdout, "");
  assert.ok(stderr.startsWith("mqtt-streams: MQTT as web streams"), stderr);
  assert.match(stderr, /Exit codes: 0 done .*, 1 failed, 2 bad arguments\.\n$/);
});

test("cli prints one line naming the problem and exits 2 for bad arguments", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["frob"],
      /^mqtt-streams: unknown command 'frob': expected sub, pub or bridge \(see --help\)\n$/,
    ],
    [["sub"], /^mqtt-streams: sub: expected <url>, got nothing \(see --help\)\n$/],
    [
      ["sub", "mqtt://localhost?topic=a", "--count", "0"],
      /--count must be a positive number: got '0'/,
    ],
    [
      ["sub", "mqtt://localhost?topic=a", "--bogus"],
      /^mqtt-streams: sub: Unknown option '--bogus' \(see --help\)\n$/,
    ],
    // A flag near one of the command's: did you mean, as for an option's key.
    [
      ["sub", "mqtt://localhost?topic=a", "--cout", "3"],
      /^mqtt-streams: sub: Unknown option '--cout': did you mean '--count'\? \(see --help\)\n$/,
    ],
    [
      ["pub", "mqtt://localhost?topic=a", "--jsno"],
      /Unknown option '--jsno': did you mean '--json'\?/,
    ],
    [["bridge", "mqtt://a?topic=x", "mqtt://b", "--MAP=x=>y"], /did you mean '--map'\?/],
    [
      ["sub", "mqtt://u:hunter2@localhost?topic=a&qos=3"],
      /'qos' must be 0, 1 or 2: current value is 3/,
    ],
    [["pub", "mqtt://localhost"], /pub: the URL needs \?topic=/],
    [
      ["bridge", "mqtt://a?topic=x", "mqtt://b", "--map", "x/+=>y"],
      /--map 'x\/\+=>y': the template must have the filter's wildcards/,
    ],
    // The URL as far as it is safe to show (cli/_args.ts decides how much: the host at least).
    [["bridge", "mqtt://a?topic=x"], /bridge: expected <from> and <to>, got 'mqtt:\/\/a/],
    // A password with a raw '?' (and ','): nothing up to the string's last '@' is shown.
    [
      ["sub", "mqtt://u:,hunter2?@h1:1883,h2?topic=a", "extra"],
      /^mqtt-streams: sub: expected <url>, got 'mqtt:\/\/\*\*\*@h1:1883,h2\?…' 'extra' \(see --help\)\n$/,
    ],
    [["sub", "mqtt://u:?hunter2=x@h1"], /current value is mqtt:\/\/\*\*\*@h1 \(a parameter before/],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  results.forEach(({ code, stdout, stderr }, i) => {
    assert.equal(code, 2, `${cases[i][0].join(" ")}: ${stderr}`);
    assert.match(stderr, cases[i][1]);
    assert.equal(stderr.trim().split("\n").length, 1, stderr);
    assert.ok(!stderr.includes("hunter2"), "no password in an error");
    assert.equal(stdout, "");
  });
});

test("cli bridge --map rewrites topics by the first rule that matches, keeping the others", () => {
  const map = topicMap([
    "plant/+/temp=>site-7/+/temperature",
    "logs/#=>archive/#",
    "a/+/+=>b/+/x/+",
  ]);
  assert.equal(map("plant/line-1/temp"), "site-7/line-1/temperature");
  assert.equal(map("logs/a/b/c"), "archive/a/b/c");
  assert.equal(map("logs"), "archive");
  assert.equal(map("a/1/2"), "b/1/x/2");
  assert.equal(map("plant/line-1/temp/extra"), "plant/line-1/temp/extra");
  assert.equal(map("other"), "other");
});

test("cli sub prints what cli pub published: lines, JSON records and binary payloads", async () => {
  await using broker = await startAedes();
  const subscriber = cli(["sub", `${broker.url}?topic=cli/%23&qos=1`, "--count", "4"]);
  await waitForText(subscriber.output, "subscribed to cli/#", subscriber.child);

  const lines = cli(["pub", `${broker.url}?topic=cli/lines&qos=1`, "--progress"], "pipe");
  lines.child.stdin!.end("first line\nsecond line\n");
  assert.equal((await exited(lines.child)).code, 0, lines.output.stderr);
  assert.match(lines.output.stderr, /published 2 \(2 acknowledged\) from 2 lines/);
  // --progress (the default on a terminal): its last line is printed when pub ends.
  assert.match(lines.output.stderr, /^pub: 2 published \(\d+\/s\), 0 in flight, 2 acked$/m);

  const records = cli(["pub", `${broker.url}?qos=1`, "--json"], "pipe");
  records.child.stdin!.end(
    [
      JSON.stringify({ topic: "cli/json", payload: '{"celsius":21.5}', qos: 0 }),
      "",
      JSON.stringify({ topic: "cli/bin", payload: btoa("\xff\x00\x01"), encoding: "base64" }),
    ].join("\n"),
  );
  assert.equal((await exited(records.child)).code, 0, records.output.stderr);

  assert.equal((await within(exited(subscriber.child), 30_000, "sub --count 4")).code, 0);
  const got = subscriber.output.stdout.trim().split("\n").map((line) => JSON.parse(line));
  assert.deepEqual(
    got.map(({ topic, payload, encoding, qos }) => ({ topic, payload, encoding, qos })),
    [
      { topic: "cli/lines", payload: "first line", encoding: undefined, qos: 1 },
      { topic: "cli/lines", payload: "second line", encoding: undefined, qos: 1 },
      { topic: "cli/json", payload: '{"celsius":21.5}', encoding: undefined, qos: 0 },
      { topic: "cli/bin", payload: btoa("\xff\x00\x01"), encoding: "base64", qos: 1 },
    ],
  );
  assert.ok(got.every((m) => m.retain === false && Math.abs(m.timestamp - Date.now()) < 60_000));
});

test("cli sub and pub take several brokers: with the first down, they use the next", async () => {
  await using broker = await startAedes();
  const down = `127.0.0.1:${await freePort()}`;
  const url = `mqtt://${down},127.0.0.1:${broker.port}`;
  const subscriber = cli(["sub", `${url}?topic=cli/ha&qos=1`, "--count", "1"]);
  await waitForText(subscriber.output, `subscribed to cli/ha on ${broker.url}`, subscriber.child);
  const publisher = cli(["pub", `${url}?topic=cli/ha&qos=1`], "pipe");
  publisher.child.stdin!.end("through the second broker\n");
  assert.equal((await exited(publisher.child)).code, 0, publisher.output.stderr);
  assert.equal((await within(exited(subscriber.child), 30_000, "sub --count 1")).code, 0);
  assert.equal(JSON.parse(subscriber.output.stdout).payload, "through the second broker");
});

test("cli pub stops at a line that is not a JSON record, naming it, and exits 1", async () => {
  await using broker = await startAedes();
  const records = cli(["pub", `${broker.url}?topic=a&qos=1`, "--json"], "pipe");
  records.child.stdin!.end('{"payload":"ok"}\n{"payload":\n');
  assert.equal((await exited(records.child)).code, 1);
  assert.match(records.output.stderr, /line 2 is not JSON/);
  const base64 = cli(["pub", `${broker.url}?topic=a&qos=1`, "--json"], "pipe");
  base64.child.stdin!.end('{"payload":"not base64!","encoding":"base64"}\n');
  assert.equal((await exited(base64.child)).code, 1);
  assert.match(
    base64.output.stderr,
    /line 1 is not a record: "encoding" is base64 but "payload" is not/,
  );
});

test("cli says which broker and attempt it waits for while connecting takes over a second, without the password", async () => {
  const port = await freePort();
  // connectBackoff=3000: attempt 2 comes 1.5 to 3 s after the first fails, so the line of
  // the first second names it; attempt 3 follows 3 to 6 s later, and then the end.
  const url = `mqtt://user:hunter2@127.0.0.1:${port}?topic=a&connectAttempts=3&connectBackoff=3000`;
  const started = Date.now();
  const [sub, pub] = await Promise.all([run(["sub", url]), run(["pub", url])]);
  for (const [name, { code, stdout, stderr }] of Object.entries({ sub, pub })) {
    assert.equal(code, 1, `${name}: ${stderr}`);
    assert.equal(stdout, "");
    const line = `mqtt-streams: connecting to mqtt://127.0.0.1:${port} (attempt 2 of 3)…\n`;
    assert.ok(stderr.includes(line), `${name}: ${stderr}`);
    assert.match(stderr, /after 3 attempts/);
    assert.ok(!/hunter2|user/.test(stderr), `${name}: no user info: ${stderr}`);
    // Said once an attempt (it changes), not every second.
    assert.ok(stderr.split(line).length === 2, stderr);
  }
  assert.ok(Date.now() - started < 30_000);
});

test("cli sub says nothing about connecting when it connects at once", async () => {
  await using broker = await startAedes();
  const { code, stderr } = await run(["sub", `${broker.url}?topic=a`, "--timeout", "2"]);
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /connecting/);
});

/** tsx in node_modules, if installed: it runs TypeScript on Node. */
const TSX = fileURLToPath(new URL("../../node_modules/tsx/dist/cli.mjs", import.meta.url));

test("cli runs on Node through tsx: --help, no arguments, and a sub", {
  skip: existsSync(TSX) ? false : "tsx is not in node_modules (npm install tsx to run this one)",
}, async () => {
  await using broker = await startAedes();
  const node = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn("node", [TSX, fileURLToPath(CLI), ...args], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      const output = { stdout: "", stderr: "" };
      child.stdout.on("data", (chunk) => (output.stdout += chunk));
      child.stderr.on("data", (chunk) => (output.stderr += chunk));
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      child.once("error", reject);
      child.once("close", (code) => {
        clearTimeout(timer);
        resolve({ code, ...output });
      });
    });
  const help = await node(["--help"]);
  assert.equal(help.code, 0, help.stderr);
  assert.ok(help.stdout.startsWith("mqtt-streams: MQTT"), help.stdout);
  assert.equal((await node([])).code, 2);
  const sub = await node(["sub", `${broker.url}?topic=a`, "--timeout", "1"]);
  assert.equal(sub.code, 0, sub.stderr);
  assert.match(sub.stderr, /subscribed to a on/);
});

test("cli sub closes cleanly on Ctrl-C: exit 0, and the broker sees it disconnect", async () => {
  await using broker = await startAedes();
  let gone = 0;
  broker.broker.on("clientDisconnect", () => gone++);
  const subscriber = cli(["sub", `${broker.url}?topic=a/%23&qos=1`]);
  await waitForText(subscriber.output, "subscribed to", subscriber.child);
  interrupt(subscriber.child);
  assert.equal((await within(exited(subscriber.child), 10_000, "sub after SIGINT")).code, 0);
  await waitFor(() => gone === 1, "the broker to see the client disconnect");
});

test("cli sub --timeout exits 0 after that long, however many messages arrived", async () => {
  await using broker = await startAedes();
  const started = Date.now();
  const { code, stdout, stderr } = await run([
    "sub",
    `${broker.url}?topic=quiet/%23`,
    "--timeout",
    "1",
  ]);
  assert.equal(code, 0, stderr);
  assert.equal(stdout, "");
  assert.ok(Date.now() - started >= 1000, "not before the timeout");
});

/** Publishes `count` numbered QoS 1 messages to `url`'s in/… topics. */
function publish(url: string, count: number) {
  return ReadableStream.from(
    Array.from({ length: count }, (_, i) => ({ topic: `in/${i % 7}`, payload: String(i) })),
  )
    .pipeTo(new MqttSink(`${url}?qos=1`));
}

/** Reads the `out/#` copies on `url`: the distinct payloads, and how many arrived in all. */
function collect(source: MqttSource) {
  const seen = new Set<string>();
  const reader = source.getReader();
  const result = { seen, total: 0, topics: new Set<string>(), stop: () => reader.cancel() };
  (async () => {
    for (let i = 0; i < 1_000_000; i++) {
      const { done, value } = await reader.read();
      if (done) return;
      seen.add(value.text());
      result.topics.add(value.topic);
      result.total++;
    }
  })().catch(() => {});
  return result;
}

/**
 * Two brokers, a reader of the `out/#` copies on the second, and the arguments of a bridge
 * from the first (`in/#`, client `clientId`) to it; runs `body`, then stops the reader.
 */
async function withBridge(
  clientId: string,
  body: (
    rig: { from: string; copies: ReturnType<typeof collect>; args: string[] },
  ) => Promise<void>,
): Promise<void> {
  await using from = await startAedes();
  await using to = await startAedes();
  const reader = new MqttSource(`${to.url}?topic=out/%23&qos=1&maxInflight=200`);
  await reader.ready;
  const copies = collect(reader);
  const args = [
    "bridge",
    `${from.url}?topic=in/%23&qos=1&clientId=${clientId}&maxInflight=50`,
    `${to.url}?qos=1`,
    "--map",
    "in/#=>out/#",
  ];
  try {
    await body({ from: from.url, copies, args });
  } finally {
    await copies.stop();
  }
}

/** Sends SIGINT to a bridge and asserts it exits 0 within 20 s. */
async function stopCleanly(bridge: ReturnType<typeof cli>): Promise<void> {
  interrupt(bridge.child);
  const { code } = await within(exited(bridge.child), 20_000, "bridge after SIGINT");
  assert.equal(code, 0, bridge.output.stderr);
}

test("cli bridge SIGKILLed mid-stream and started again loses nothing", async () => {
  await withBridge("cli-bridge", async ({ from, copies, args }) => {
    const count = 2000;
    let bridge = cli(args);
    await waitForText(bridge.output, "bridging in/#", bridge.child);
    const publishing = publish(from, count);
    await waitFor(() => copies.seen.size >= 300, "300 copies before the kill", 30_000);
    await kill(bridge.child);
    const atKill = copies.seen.size;
    await publishing;
    bridge = cli(args);
    await waitFor(
      () => copies.seen.size === count,
      `all ${count} copies (killed at ${atKill})`,
      60_000,
    );
    await stopCleanly(bridge);
    assert.ok(atKill < count, `the kill came mid-stream: ${atKill} of ${count}`);
    assert.deepEqual([...copies.topics].sort(), [0, 1, 2, 3, 4, 5, 6].map((n) => `out/${n}`));
    console.log(
      `bridge SIGKILL: killed at ${atKill}/${count}, ${
        copies.total - count
      } duplicates after the restart`,
    );
  });
});

test("cli bridge on Ctrl-C acknowledges every copy it made, so a restarted bridge sends no duplicate", async () => {
  await withBridge("cli-bridge-2", async ({ from, copies, args }) => {
    const count = 1000;
    let bridge = cli(args);
    await waitForText(bridge.output, "bridging", bridge.child);
    const publishing = publish(from, count);
    await waitFor(() => copies.seen.size >= 200, "200 copies before Ctrl-C", 30_000);
    await stopCleanly(bridge);
    await publishing;
    bridge = cli(args);
    await waitFor(() => copies.seen.size === count, `all ${count} copies`, 60_000);
    await stopCleanly(bridge);
    assert.equal(copies.total, count, "no copy twice");
  });
});

test("cli sub writing to a pipe prints no MaxListenersExceededWarning over 2,000 messages", async () => {
  await using broker = await startAedes();
  const count = 2000;
  const subscriber = cli(["sub", `${broker.url}?topic=many/%23&qos=1`, "--count", `${count}`]);
  await waitForText(subscriber.output, "subscribed to many/#", subscriber.child);
  await ReadableStream.from(
    Array.from({ length: count }, (_, i) => ({ topic: "many/a", payload: "x".repeat(200) + i })),
  ).pipeTo(new MqttSink(`${broker.url}?qos=1`));
  const { code } = await within(exited(subscriber.child), 60_000, `sub --count ${count}`);
  assert.equal(code, 0, subscriber.output.stderr);
  assert.equal(subscriber.output.stdout.trim().split("\n").length, count);
  assert.doesNotMatch(subscriber.output.stderr, /MaxListenersExceeded|listeners added/);
});
