// The README and the guide (docs/): the README stays a five-minute read, every relative link
// and anchor resolves, the option table agrees with the schema, and every snippet that connects
// runs as printed against a real broker on a random port, except docs/cloud.md's (they need the
// cloud services; their mechanisms are tested against local stand-ins, tests/connection/). A
// snippet that reads gets a bad message among good ones: it keeps running, handles the good
// ones, sets the bad one aside (or passes it on as it is), and a second run with the same
// clientId does not get it again. (`deno task check` type-checks every TypeScript block of
// README.md and docs/ with `deno check --doc-only`.)
// The snippet runners (runCode, twoRuns, …) are in _snippets.ts, the page readers in
// _doc_pages.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { optionsTable } from "../options/_generate.ts";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { skipWithoutMosquitto, startAedes, startMosquitto } from "../../testing/broker.ts";
import { skipWithoutNats, startNats } from "../../testing/nats.ts";
import { exited, kill, waitFor, within } from "../../testing/helpers.ts";
import { anchors, cells, pages, prose, read, root } from "./_doc_pages.ts";
import {
  aedesAcks,
  assertRunning,
  at,
  inSnippetFolder,
  lines,
  LOGGED,
  mosquittoAcks,
  mosquittoResends,
  publish,
  runCode,
  runSnippet,
  sessionWith,
  snippet,
  type SnippetRun,
  snippetWith,
  subscriber,
  twoRuns,
} from "./_snippets.ts";

const readme = read("README.md");

/** A payload that is neither text nor JSON: the bad message among the good ones. */
const NOT_TEXT = Buffer.from([0xff, 0xfe]);

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
    await using bridged = await subscriber(cloud.url, "sensors/#");
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
        assert.deepEqual(bridged.packets[3].payload, NOT_TEXT);
        await kill(bridge.child);
        // The introduction's bridge is the same session: it resumes it, and nothing comes twice.
        await publish(edge.url, [["sensors/north/temp", "23.0"]]);
        const intro = snippetWith("README.md", 'new MqttSink("mqtt://localhost:1884")');
        const again = runCode(folder, "bridge_intro.ts", intro, bridges);
        runs.push(again);
        await waitFor(() => lines(subscriber).length >= 6 && edgeAcks() === 6, "the sixth reading");
        await assertRunning(again.child, "the README's first bridge");
        assert.deepEqual(lines(subscriber).slice(5), ["sensors/north/temp 23.0"]);
        assert.equal(bridged.packets.length, 6);
      } finally {
        for (const run of runs) await kill(run.child);
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
    await using dead = await subscriber(broker.url, "dead-letters/jobs");
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
    const letters = dead.texts();
    assert.equal(letters.length, 1);
    const letter = JSON.parse(letters[0]);
    assert.equal(letter.topic, "jobs/2");
    assert.equal(letter.payload, "not json");
    assert.match(letter.error, /^SyntaxError/);
  },
);

test("docs/streams.md's orders.ts dead-letters an order that is not JSON and counts it", {
  timeout: 60_000,
}, async () => {
  await using broker = await startAedes();
  await using dead = await subscriber(broker.url, "dead-letters/orders");
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
  const letters = dead.texts();
  assert.equal(letters.length, 1);
  const letter = JSON.parse(letters[0]);
  assert.equal(letter.stage, "decodeJson");
  assert.equal(letter.topic, "orders/2");
  assert.equal(letter.encoding, "base64");
  assert.match(letter.issues[0].message, /not valid UTF-8/);
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
    await using dead = await subscriber(broker.url, "dead/letters", true);
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
    const letters = dead.packets.map((packet) => [
      packet.payload.toString(),
      packet.properties?.userProperties?.["mqtt-streams-topic"],
    ]);
    assert.deepEqual(letters, [
      ['{"celsius":"hot"}', "sensors/east/temperature"],
      ["not json", "sensors/west/temperature"],
    ]);
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
  await using out = await subscriber(broker.url, ["out/readings", "dead-letters/readings"]);
  const received = () => out.texts("out/readings");
  const dead = () => out.texts("dead-letters/readings");
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
        () => received().length === 2 && dead().length === 1 && acks() === 3,
        "two converted readings, one dead letter, three PUBACKs",
      );
      assert.deepEqual(received().map((text) => JSON.parse(text)), [
        { sensor: "sensors/boiler/temp", fahrenheit: 212 },
        { sensor: "sensors/boiler/temp", fahrenheit: 32 },
      ]);
      // MQTT 3.1.1 has no user properties: the dead letter is a JSON object with its issues.
      assert.match(dead()[0], /not json/);
      await assertRunning(run.child, "ingest.ts");
    } finally {
      await kill(run.child);
    }
  });
});
