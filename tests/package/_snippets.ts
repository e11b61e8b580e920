// Running the snippets of README.md and docs/ as printed, for docs_test.ts: a snippet is written
// into a folder inside the repository (where Deno finds deno.json) with the broker addresses
// pointed at a test broker, started as a child process, and watched through what it prints and
// the PUBACKs its broker counts; a snippet that reads runs twice as its persistent session.
import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Aedes } from "aedes";
import mqtt from "mqtt";
import { exited, kill, LOSSLESS, sleep, spawnScript, waitFor } from "../../testing/helpers.ts";
import { read, root, split } from "./_doc_pages.ts";

/** The TypeScript blocks of `page`. */
const tsBlocks = (page: string) =>
  split(read(page)).blocks.filter((block) => block.lang === "ts").map((block) => block.body);

/** The snippet of `page` that names its file in a first-line comment (`// publish.ts`). */
export function snippet(page: string, name: string): string {
  const found = tsBlocks(page).find((code) => code.startsWith(`// ${name}\n`));
  if (found === undefined) assert.fail(`${page} has no snippet ${name}`);
  return found;
}

/** The one snippet of `page` that holds `text`, for a snippet that names no file. */
export function snippetWith(page: string, text: string): string {
  const found = tsBlocks(page).filter((code) => code.includes(text));
  assert.equal(found.length, 1, `${page}: snippets holding ${text}`);
  return found[0];
}

/** A child process started from a snippet, with what it printed on stdout. */
export interface SnippetRun {
  child: ChildProcess;
  output: { text: string };
}

/**
 * Writes `code` to `folder` as `name`, as it is printed, except for what `replace` maps (the
 * broker addresses, a store's folder) and the import of the package (its `mod.ts` here, by
 * path, so that Deno and Bun run it alike), and starts it.
 */
export function runCode(
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
export function runSnippet(
  folder: string,
  page: string,
  name: string,
  replace: Record<string, string>,
): SnippetRun {
  return runCode(folder, name, snippet(page, name), replace);
}

/** The lines a snippet printed. */
export const lines = (run: SnippetRun) => run.output.text.split("\n").filter((line) => line !== "");

/** Fails if `child` ends within 300 ms (a snippet that reads runs until it is killed). */
export async function assertRunning(child: ChildProcess, what: string): Promise<void> {
  const ended = await Promise.race([exited(child), sleep(300).then(() => undefined)]);
  assert.equal(ended, undefined, `${what} ended: ${JSON.stringify(ended)}`);
}

/** A folder inside the repository (where Deno finds deno.json), removed after `fn`. */
export async function inSnippetFolder(fn: (folder: string) => Promise<void>): Promise<void> {
  const folder = mkdtempSync(join(root, ".readme-snippets-"));
  try {
    await fn(folder);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

/** `mqtt://localhost:<port>` of the docs, pointed at a test broker. */
export const at = (port: number, broker: { port: number }) => ({
  [`mqtt://localhost:${port}`]: `mqtt://127.0.0.1:${broker.port}`,
});

/** A message to publish: topic, payload, and MQTT 5 user properties. */
export type Published = [
  topic: string,
  payload: string | Buffer,
  userProperties?: Record<string, string>,
];

/** What a raw mqtt.js subscriber received, until it is disposed. */
export interface Subscriber extends AsyncDisposable {
  /** Every message, in arrival order. */
  readonly packets: mqtt.IPublishPacket[];
  /** The payloads (as text) of the messages on `topic`, or of all. */
  texts(topic?: string): string[];
}

/** A raw mqtt.js client on `url`, subscribed to `filters` at QoS 1: what a test watches a snippet's output with. */
export async function subscriber(
  url: string,
  filters: string | string[],
  mqtt5 = false,
): Promise<Subscriber> {
  const client = await mqtt.connectAsync(url, { protocolVersion: mqtt5 ? 5 : 4 });
  const packets: mqtt.IPublishPacket[] = [];
  client.on("message", (_topic, _payload, packet) => packets.push(packet));
  await client.subscribeAsync(filters, { qos: 1 });
  return {
    packets,
    texts: (topic) =>
      packets.filter((p) => topic === undefined || p.topic === topic).map((p) =>
        p.payload.toString()
      ),
    [Symbol.asyncDispose]: () => client.endAsync(),
  };
}

/** Publishes `messages` at QoS 1, in order, over MQTT 5 when `mqtt5`. */
export async function publish(url: string, messages: Published[], mqtt5 = false): Promise<void> {
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
export async function sessionWith(
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
export function aedesAcks(broker: { broker: Aedes }, clientId: string): () => number {
  let acks = 0;
  broker.broker.on("ack", (_packet, client) => {
    if (client?.id === clientId) acks++;
  });
  return () => acks;
}

/** A mosquitto that logs every packet, so that a test can count PUBACKs and resends. */
export const LOGGED = [...LOSSLESS, "log_type debug"];

/** How many PUBACKs `clientId` sent to a mosquitto started with {@linkcode LOGGED}. */
export const mosquittoAcks = (broker: { log(): string }, clientId: string) => () =>
  broker.log().split(`Received PUBACK from ${clientId} `).length - 1;

/** How many messages mosquitto ({@linkcode LOGGED}) sent `clientId` again, marked DUP. */
export const mosquittoResends = (broker: { log(): string }, clientId: string) => () =>
  broker.log().split(`Sending PUBLISH to ${clientId} (d1`).length - 1;

/** What {@linkcode twoRuns} publishes and expects. */
export interface TwoRuns {
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
export async function twoRuns(
  name: string,
  code: string,
  replace: Record<string, string>,
  t: TwoRuns,
) {
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
