// Option keys as callers spell them: the Bahir connector's spark.mqtt.* keys as aliases of
// five options (in a URL's query, an options object and the environment), and a did-you-mean
// for a key that is near one (issue 29, item 8).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { parseConnectionString } from "../../mod.ts";
import type { MqttOptions, MqttOptionsInit } from "../../mod.ts";
import { BAHIR_ALIASES } from "../../src/options/_keys.ts";
import { rejects } from "../../testing/helpers.ts";

/** Runs `run` with the environment variables `vars` set, then unsets them. */
function withEnv(vars: Record<string, string>, run: () => void): void {
  for (const [name, value] of Object.entries(vars)) process.env[name] = value;
  try {
    run();
  } finally {
    for (const name of Object.keys(vars)) delete process.env[name];
  }
}

// Compile-time: MqttOptionsInit names exactly the aliases, and each alias an option.
type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _sameAliases: Equal<
  Extract<keyof MqttOptionsInit, `spark.${string}`>,
  keyof typeof BAHIR_ALIASES
> = true;
const _options: (typeof BAHIR_ALIASES)[keyof typeof BAHIR_ALIASES] extends keyof MqttOptions ? true
  : false = true;

// [alias, option, a good value as a string, the value parsed]
const CASES: [keyof typeof BAHIR_ALIASES, keyof MqttOptions, string, number][] = [
  ["spark.mqtt.client.connect.attempts", "connectAttempts", "9", 9],
  ["spark.mqtt.client.connect.backoff", "connectBackoff", "123", 123],
  ["spark.mqtt.connection.cache.timeout", "connectionCacheTimeout", "5000", 5000],
  ["spark.mqtt.client.publish.attempts", "publishAttempts", "-1", -1],
  ["spark.mqtt.client.publish.backoff", "publishBackoff", "77", 77],
];

describe("option keys: the Bahir connector's spark.mqtt.* keys", () => {
  test("are the five the Bahir connector's README lists, each an alias of its option", () => {
    assert.deepEqual(
      Object.fromEntries(CASES.map(([alias, name]) => [alias, name])),
      BAHIR_ALIASES,
    );
  });

  for (const [alias, name, value, expected] of CASES) {
    test(`${alias} sets ${name} in a URL's query, in any case`, () => {
      assert.equal(parseConnectionString(`mqtt://h?${alias}=${value}`)[name], expected);
      assert.equal(
        parseConnectionString(`mqtt://h?${alias.toUpperCase()}=${value}`)[name],
        expected,
      );
    });

    test(`${alias} sets ${name} in an options object and in overrides`, () => {
      const init = { brokerUrl: "mqtt://h", [alias]: value } as MqttOptionsInit;
      assert.equal(parseConnectionString(init)[name], expected);
      assert.equal(parseConnectionString("mqtt://h", { [alias]: Number(value) })[name], expected);
    });

    test(`${alias} sets ${name} from the environment, under its exact name`, () => {
      withEnv({ [alias]: value }, () => {
        assert.equal(parseConnectionString("mqtt://h")[name], expected);
        assert.equal(parseConnectionString(`mqtt://h?${name}=42`)[name], 42, "an option wins");
      });
    });
  }

  test("a bad value under an alias names the alias, the value and what is allowed", () => {
    rejects(
      () => parseConnectionString("mqtt://h?spark.mqtt.client.connect.attempts=0"),
      /^Cannot configure MQTT as 'spark\.mqtt\.client\.connect\.attempts' must be -1 or an integer from 1 to 1000000: current value is 0 \(0 attempts would never try; -1 tries for ever\)$/,
    );
    withEnv({ "spark.mqtt.client.publish.backoff": "soon" }, () => {
      rejects(
        () => parseConnectionString("mqtt://h"),
        /environment variable spark\.mqtt\.client\.publish\.backoff must be an integer from 0 to 3600000: current value is soon/,
      );
    });
  });

  test("an option given in a URL under its name and its alias is refused, as any option twice", () => {
    const error = rejects(
      () =>
        parseConnectionString("mqtt://h?connectAttempts=3&spark.mqtt.client.connect.attempts=4"),
      /'spark\.mqtt\.client\.connect\.attempts' appears twice in the URL \(first as 'connectAttempts'\); only topic may repeat/,
    );
    assert.equal(error.option, "spark.mqtt.client.connect.attempts");
    rejects(
      () => parseConnectionString("mqtt://h?spark.mqtt.client.publish.backoff=3&PUBLISHBACKOFF=4"),
      /'PUBLISHBACKOFF' appears twice in the URL \(first as 'spark\.mqtt\.client\.publish\.backoff'\)/,
    );
  });

  test("in an options object the later of an option and its alias wins, as of qos and QoS", () => {
    const twice = { brokerUrl: "mqtt://h", qos: 0, QoS: 2 } as MqttOptionsInit;
    assert.equal(parseConnectionString(twice).qos, 2, "today's rule for a key given twice");
    const init = {
      brokerUrl: "mqtt://h",
      connectBackoff: 10,
      "spark.mqtt.client.connect.backoff": 20,
    };
    assert.equal(parseConnectionString(init).connectBackoff, 20);
    const reversed = { "spark.mqtt.client.connect.backoff": 20, connectBackoff: 10 };
    assert.equal(parseConnectionString("mqtt://h", reversed).connectBackoff, 10);
  });

  test("in the environment an option's variable and its alias may agree, and are refused when they do not", () => {
    withEnv({ MQTT_CONNECT_ATTEMPTS: "7", "spark.mqtt.client.connect.attempts": "7" }, () => {
      assert.equal(parseConnectionString("mqtt://h").connectAttempts, 7);
    });
    withEnv({ MQTT_CONNECT_ATTEMPTS: "7", "spark.mqtt.client.connect.attempts": "8" }, () => {
      rejects(
        () => parseConnectionString("mqtt://h"),
        /environment variables MQTT_CONNECT_ATTEMPTS and spark\.mqtt\.client\.connect\.attempts both set 'connectAttempts', to different values: current values are 7 and 8 \(set one of them\)/,
      );
    });
  });
});

describe("option keys: did you mean", () => {
  const cases: [string, RegExp][] = [
    [
      "spark.mqtt.client.conect.attempts",
      /did you mean 'spark\.mqtt\.client\.connect\.attempts', the Bahir connector's name of 'connectAttempts'\?/,
    ],
    [
      "spark.mqtt.conection.cache.timout",
      /did you mean 'spark\.mqtt\.connection\.cache\.timeout', the Bahir connector's name of 'connectionCacheTimeout'\?/,
    ],
    ["SPARK.MQTT.CLIENT.PUBLISH.ATEMPTS", /did you mean 'spark\.mqtt\.client\.publish\.attempts'/],
    ["spark.mqtt.client.publish.backof", /did you mean 'spark\.mqtt\.client\.publish\.backoff'/],
    ["conectAttempts", /did you mean 'connectAttempts'\?\)$/],
    ["publishBackof", /did you mean 'publishBackoff'\?\)$/],
  ];
  for (const [key, suggestion] of cases) {
    test(`'${key}' is not an option, and gets a suggestion`, () => {
      const pattern = new RegExp(`'${key.replaceAll(".", "\\.")}' is not an option`);
      rejects(() => parseConnectionString(`mqtt://h?${key}=1`), pattern, suggestion);
      rejects(
        () => parseConnectionString({ brokerUrl: "mqtt://h", [key]: 1 } as MqttOptionsInit),
        pattern,
        suggestion,
      );
    });
  }

  test("a key near no option gets no suggestion", () => {
    rejects(
      () => parseConnectionString("mqtt://h?spark.sql.shuffle.partitions=4"),
      /^Cannot configure MQTT as 'spark\.sql\.shuffle\.partitions' is not an option$/,
    );
  });
});
