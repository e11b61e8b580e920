import { test } from "node:test";
import assert from "node:assert/strict";
import * as v from "valibot";
import { MqttInvalidMessageError, route } from "../../mod.ts";
import { drain, letterBox, message, underEachPolicy } from "./_transforms.ts";

const routes = {
  "sensors/+site/temperature": v.object({ celsius: v.number() }),
  "sensors/+site/humidity": v.object({ percent: v.pipe(v.number(), v.minValue(0)) }),
  "logs/#path": v.string(),
};

underEachPolicy("route", (options) => route(routes, options), {
  good: (acks) => [
    message("sensors/north/temperature", '{"celsius":21.5}', acks),
    message("sensors/south/humidity", '{"percent":40}', acks),
    message("logs/plant/line-1/motor", '"started"', acks),
  ],
  bad: (acks) => [
    message("sensors/east/humidity", '{"percent":-5}', acks),
    message("sensors/east/pressure", '{"hPa":1013}', acks),
    message("logs/x", "{", acks),
  ],
  check: (outputs, good) => {
    const expected = [
      { route: "sensors/+site/temperature", params: { site: "north" }, value: { celsius: 21.5 } },
      { route: "sensors/+site/humidity", params: { site: "south" }, value: { percent: 40 } },
      { route: "logs/#path", params: { path: "plant/line-1/motor" }, value: "started" },
    ].slice(0, good.length);
    assert.deepEqual(
      outputs.map(({ route, params, value }) => ({ route, params, value })),
      expected,
    );
    assert.deepEqual(outputs.map((o) => o.message), good);
  },
  issue: /percent: Invalid value: Expected >=0 but received -5/,
});

test("route errors on a message no filter matches, naming the topic and the routes", async () => {
  const { error } = await drain(
    ReadableStream.from([message("sensors/east/pressure", "{}")]).pipeThrough(route(routes)),
  );
  assert.ok(error instanceof MqttInvalidMessageError);
  assert.equal(
    error.message,
    "Cannot route the message on 'sensors/east/pressure': no route matches the topic (routes: sensors/+site/temperature, sensors/+site/humidity, logs/#path)",
  );
});

test("route dead-letters an unmatched message with the reason as a user property", async () => {
  const box = letterBox();
  const router = route(routes, { onInvalid: box.stream });
  await drain(ReadableStream.from([message("other/topic", "1")]).pipeThrough(router));
  assert.equal(box.letters.length, 1);
  assert.deepEqual(box.letters[0].properties?.userProperties, {
    "mqtt-streams-stage": "route",
    "mqtt-streams-topic": "other/topic",
    "mqtt-streams-issues":
      "no route matches the topic (routes: sensors/+site/temperature, sensors/+site/humidity, logs/#path)",
  });
});

test("route takes the first filter a topic matches, in the order the routes are written", async () => {
  const router = route({ "a/special": v.literal(1), "a/+name": v.number() });
  const { chunks } = await drain(
    ReadableStream.from([message("a/special", "1"), message("a/other", "2")]).pipeThrough(router),
  );
  assert.deepEqual(chunks.map((c) => [c.route, c.params]), [["a/special", {}], ["a/+name", {
    name: "other",
  }]]);
});

test("route matches wildcards as MQTT does: '#' takes its parent level too, and no wildcard matches '$' topics", async () => {
  const router = route({ "a/#rest": v.unknown(), "+first/x": v.unknown() }, { onInvalid: "drop" });
  const { chunks } = await drain(
    ReadableStream.from([
      message("a", "1"),
      message("a/b/c", "1"),
      message("$SYS/x", "1"),
      message("/x", "1"),
    ])
      .pipeThrough(router),
  );
  assert.deepEqual(chunks.map((c) => [c.message.topic, c.params]), [
    ["a", { rest: "" }],
    ["a/b/c", { rest: "b/c" }],
    ["/x", { first: "" }],
  ]);
  assert.equal(router.stats.dropped, 1);
});

test("route gives the plain MQTT filters to subscribe to", () => {
  assert.deepEqual(route(routes).filters, [
    "sensors/+/temperature",
    "sensors/+/humidity",
    "logs/#",
  ]);
});

test("route refuses a filter that is not a topic filter with named wildcards, saying why", () => {
  const cases: [string, RegExp][] = [
    [
      "a/+x+/b",
      /'a\/\+x\+\/b' is not a topic filter with named wildcards: a wildcard's name must be an identifier/,
    ],
    ["a/#rest/b", /'#' must be a whole level and the last one/],
    ["a/+id/+id", /each wildcard needs a name of its own/],
    ["$share/g/a/+id", /route by the topic, without \$share/],
  ];
  for (const [filter, expected] of cases) {
    assert.throws(() => route({ [filter]: v.unknown() }), expected, filter);
  }
  assert.throws(
    () => route({}),
    /^TypeError: Cannot create route\(\) as 'routes' must name at least one filter$/,
  );
  assert.throws(
    () => route({ "a/+id": "number" as never }),
    /^TypeError: Cannot create route\(\) as the schema of 'a\/\+id' must be a Standard Schema v1 object/,
  );
});
