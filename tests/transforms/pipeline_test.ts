// The transforms end to end, between real brokers: sources with manual acks, a router
// whose dead letters go to an MqttSink, and merged sources on two brokers.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as v from "valibot";
import { merge, type MqttRecord, MqttSink, MqttSource, route } from "../../mod.ts";
import { skipWithoutMosquitto, startAedes, startMosquitto } from "../../testing/broker.ts";
import { within } from "../../testing/helpers.ts";

const routes = {
  "sensors/+site/temperature": v.object({ celsius: v.number() }),
  "sensors/+site/humidity": v.object({ percent: v.number() }),
};

const readings: MqttRecord[] = [
  { topic: "sensors/north/temperature", payload: '{"celsius":21.5}' },
  { topic: "sensors/north/humidity", payload: '{"percent":40}' },
  { topic: "sensors/south/temperature", payload: '{"celsius":"hot"}' }, // invalid
  { topic: "sensors/south/pressure", payload: '{"hPa":1013}' }, // no route
  { topic: "sensors/east/temperature", payload: '{"celsius":-2}' },
];

/**
 * Runs `readings` through source (ack=manual) → route → dead letters to `deadUrl`, acking
 * each routed message after reading it; returns the routed topics and the dead letters as
 * a reader of the dead-letter topic saw them.
 */
async function routeWithDeadLetters(url: string, version: 4 | 5) {
  const options = `qos=1&mqttVersion=${version}`;
  const source = new MqttSource(`${url}?topic=sensors/%23&${options}&ack=manual&clientId=router`);
  const deadReader = new MqttSource(`${url}?topic=dead/letters&${options}`);
  await Promise.all([source.ready, deadReader.ready]);
  const router = route(routes, {
    onInvalid: new MqttSink(`${url}?topic=dead/letters&${options}`),
  });
  await ReadableStream.from(readings).pipeTo(new MqttSink(`${url}?${options}`));
  const routed: string[] = [];
  const reader = source.pipeThrough(router).getReader();
  for (let i = 0; i < 3; i++) {
    const { value } = await within(reader.read(), 10_000, "a routed message");
    routed.push(`${value!.route} ${JSON.stringify(value!.params)}`);
    value!.message.ack();
  }
  const letters = [];
  for await (const letter of deadReader) {
    letters.push(letter);
    if (letters.length === 2) break;
  }
  // Every message was acked to the broker, the refused ones once their dead letter was confirmed.
  const deadline = Date.now() + 10_000;
  while (source.stats.acked < readings.length && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const acked = source.stats.acked;
  await reader.cancel();
  return { routed, letters, acked, stats: router.stats };
}

test(
  "a routed pipeline dead-letters invalid and unmatched messages to an MQTT 5 sink with the issues as user properties, acking every message",
  {
    skip: skipWithoutMosquitto(),
  },
  async () => {
    await using broker = await startMosquitto();
    const { routed, letters, acked, stats } = await routeWithDeadLetters(broker.url, 5);
    assert.deepEqual(routed, [
      'sensors/+site/temperature {"site":"north"}',
      'sensors/+site/humidity {"site":"north"}',
      'sensors/+site/temperature {"site":"east"}',
    ]);
    assert.deepEqual(stats, { passed: 3, dropped: 0, deadLettered: 2 });
    assert.deepEqual(letters.map((l) => l.text()), ['{"celsius":"hot"}', '{"hPa":1013}']);
    assert.deepEqual({ ...letters[0].properties?.userProperties }, {
      "mqtt-streams-stage": "route",
      "mqtt-streams-topic": "sensors/south/temperature",
      "mqtt-streams-issues": 'celsius: Invalid type: Expected number but received "hot"',
    });
    assert.match(
      String(letters[1].properties?.userProperties?.["mqtt-streams-issues"]),
      /^no route matches the topic/,
    );
    assert.equal(acked, readings.length);
  },
);

test("a routed pipeline dead-letters to an MQTT 3.1.1 sink as JSON with the message and its issues", async () => {
  await using broker = await startAedes();
  const { letters, acked } = await routeWithDeadLetters(broker.url, 4);
  const [hot] = letters.map((letter) => letter.json<Record<string, unknown>>());
  assert.deepEqual({ ...hot, timestamp: 0 }, {
    stage: "route",
    issues: [{ message: 'Invalid type: Expected number but received "hot"', path: ["celsius"] }],
    topic: "sensors/south/temperature",
    qos: 1,
    retain: false,
    payload: '{"celsius":"hot"}',
    timestamp: 0,
  });
  assert.equal(acked, readings.length);
});

test("merge carries two brokers' sources through one router, each message tagged with its broker", async () => {
  await using plant = await startAedes();
  await using fleet = await startAedes();
  const sources = {
    plant: new MqttSource(`${plant.url}?topic=sensors/%23&qos=1`),
    fleet: new MqttSource(`${fleet.url}?topic=sensors/%23&qos=1`),
  };
  await Promise.all([sources.plant.ready, sources.fleet.ready]);
  await ReadableStream.from(readings.slice(0, 2)).pipeTo(new MqttSink(`${plant.url}?qos=1`));
  await ReadableStream.from(readings.slice(4)).pipeTo(new MqttSink(`${fleet.url}?qos=1`));
  const seen: string[] = [];
  const reader = merge(sources).pipeThrough(route(routes)).getReader();
  for (let i = 0; i < 3; i++) {
    const { value } = await within(reader.read(), 10_000, "a merged message");
    seen.push(`${value!.source} ${value!.message.topic}`);
  }
  await reader.cancel();
  assert.deepEqual(seen.sort(), [
    "fleet sensors/east/temperature",
    "plant sensors/north/humidity",
    "plant sensors/north/temperature",
  ]);
});
