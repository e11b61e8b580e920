import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { inspect } from "node:util";
import { MqttRecordError, parseConnectionString, Secret } from "../../mod.ts";
import type { MqttOptionsInit } from "../../mod.ts";
import { OPTION_NAMES } from "../../src/options/options.ts";
import { topicFilterProblem, topicNameProblem } from "../../src/options/_topic.ts";
import { RecordReader } from "../../src/streams/_record_reader.ts";
import { rejects } from "../../testing/helpers.ts";

const BASE = "mqtts://broker.example:8883";

/** Parses BASE with one query parameter. */
const withParam = (key: string, value: string) =>
  parseConnectionString(`${BASE}?${key}=${encodeURIComponent(value)}`);

describe("parseConnectionString: URL forms", () => {
  test("reads host, port and user info, and drops them from brokerUrl's credentials", () => {
    const o = parseConnectionString("mqtt://us%40er:p%3Ass@localhost:1883");
    assert.equal(o.brokerUrl, "mqtt://localhost:1883");
    assert.equal(o.username, "us@er");
    assert.equal(o.password?.reveal(), "p:ss");
  });

  for (
    const [given, scheme] of [
      ["tcp", "mqtt"],
      ["mqtt", "mqtt"],
      ["ssl", "mqtts"],
      ["mqtts", "mqtts"],
      ["ws", "ws"],
      ["wss", "wss"],
    ]
  ) {
    test(`scheme ${given}:// becomes ${scheme}://`, () => {
      assert.equal(parseConnectionString(`${given}://h:1`).brokerUrl, `${scheme}://h:1`);
    });
  }

  test("keeps the path of a WebSocket URL", () => {
    assert.equal(parseConnectionString("wss://h/mqtt").brokerUrl, "wss://h/mqtt");
  });

  test("a path on mqtt:// is refused", () => {
    rejects(() => parseConnectionString("mqtt://h/some/path"), /paths are for ws/);
  });

  test("an unknown scheme is refused with the schemes allowed", () => {
    rejects(
      () => parseConnectionString("http://h"),
      /'brokerUrl'/,
      /mqtt, tcp, mqtts, ssl, ws, wss/,
      /http:/,
    );
  });

  test("a string that is no URL is refused", () => {
    rejects(() => parseConnectionString("localhost:1883 x"), /'brokerUrl'/);
  });

  test("a missing brokerUrl is refused", () => {
    rejects(() => parseConnectionString({ topic: "a" }), /'brokerUrl'/, /missing/);
  });

  test("a URL object works like its string", () => {
    const o = parseConnectionString(new URL("mqtt://h:1?topic=a/%23&qos=0"));
    assert.deepEqual([o.brokerUrl, o.topic, o.qos], ["mqtt://h:1", ["a/#"], 0]);
  });

  test("IPv6 hosts are kept", () => {
    assert.equal(parseConnectionString("mqtt://[::1]:1883").brokerUrl, "mqtt://[::1]:1883");
  });
});

describe("parseConnectionString: topics", () => {
  test("repeats, decodes %23 and %2B, and keeps a literal +", () => {
    const o = parseConnectionString("mqtt://h?topic=a/%23&topic=b/%2B/c&topic=d/+/e");
    assert.deepEqual(o.topic, ["a/#", "b/+/c", "d/+/e"]);
  });

  test("an unencoded # at the end of a URL is still a wildcard", () => {
    assert.deepEqual(parseConnectionString("mqtt://h?topic=a/#").topic, ["a/#"]);
  });

  test("accepts $share/group/filter", () => {
    assert.deepEqual(parseConnectionString("mqtt://h?topic=$share/workers/sensors/%23").topic, [
      "$share/workers/sensors/#",
    ]);
  });

  test("defaults to no topic", () => {
    assert.deepEqual(parseConnectionString("mqtt://h").topic, []);
  });

  test("an options object takes one topic or several", () => {
    assert.deepEqual(parseConnectionString({ brokerUrl: "mqtt://h", topic: "x" }).topic, ["x"]);
    assert.deepEqual(parseConnectionString({ brokerUrl: "mqtt://h", topic: ["x", "y/#"] }).topic, [
      "x",
      "y/#",
    ]);
  });

  const bad: [string, RegExp][] = [
    ["a/%23/b", /'#' must be a whole level/],
    ["a/b%23", /'#' must be a whole level/],
    ["a/b%2B", /'\+' must be a whole level/],
    ["", /cannot be empty/],
    ["$share//a", /group name/],
    ["$share/g", /filter after the group/],
    ["$share/g%2B/a", /group name/],
  ];
  for (const [topic, why] of bad) {
    test(`refuses topic ${JSON.stringify(decodeURIComponent(topic))}, naming the one at fault`, () => {
      rejects(() => parseConnectionString(`mqtt://h?topic=ok/1&topic=${topic}`), /'topic'/, why);
    });
  }
});

describe("parseConnectionString: each option, good and bad", () => {
  // [option, good value, expected output, bad value, what the message says is allowed]
  const cases: [string, string, unknown, string, RegExp][] = [
    ["clientId", "ingest-1", "ingest-1", "", /non-empty/],
    ["qos", "2", 2, "3", /0, 1 or 2/],
    ["QoS", "0", 0, "one", /0, 1 or 2/],
    ["username", "alice", "alice", "", /./],
    ["cleanSession", "true", true, "maybe", /true or false/],
    ["sessionExpiryInterval", "3600", 3600, "-1", /0 to 4294967295/],
    ["connectionTimeout", "0", 0, "1.5", /integer from 0/],
    ["keepAlive", "15", 15, "70000", /0 to 65535/],
    ["mqttVersion", "3.1.1", 4, "6", /3, 3.1, 4, 3.1.1, 5 or 5.0/],
    ["maxInflight", "256", 256, "0", /1 to 65535/],
    ["maxPacketSize", "268435455", 268435455, "268435456", /1 to 268435455 \(bytes\)/],
    ["autoReconnect", "off", false, "2", /true or false/],
    ["persistence", "MEMORY", "memory", "disk", /memory or file/],
    ["localStorage", "/var/lib/mqtt", "/var/lib/mqtt", "", /folder path/],
    ["ssl.protocol", "tlsv1.3", "TLSv1.3", "TLSv1.4", /TLS, TLSv1, TLSv1\.1, TLSv1\.2 or TLSv1\.3/],
    ["ssl.key.store", "/etc/client.p12", "/etc/client.p12", "", /file path/],
    ["ssl.key.store.type", "pem", "PEM", "BKS", /PKCS12 or PEM/],
    ["ssl.key.store.provider", "IBMJCE", "IBMJCE", "", /^/],
    ["ssl.trust.store", "/etc/trust.p12", "/etc/trust.p12", "", /file path/],
    ["ssl.trust.store.type", "PKCS12", "PKCS12", "JCEKS", /keytool -importkeystore/],
    ["ssl.trust.store.provider", "IBMJCEFIPS", "IBMJCEFIPS", "", /^/],
    [
      "ssl.ciphers",
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,AES256-SHA",
      "ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA",
      "TLS_MADE_UP_WITH_NOTHING",
      /TLS_MADE_UP_WITH_NOTHING/,
    ],
    ["ssl.ca", "/etc/ca.pem", "/etc/ca.pem", "", /PEM file path/],
    ["ssl.verify", "false", false, "sometimes", /true or false/],
    ["connectAttempts", "-1", -1, "0", /-1 or an integer from 1/],
    ["connectBackoff", "250", 250, "-5", /0 to 3600000/],
    ["connectionCacheTimeout", "0", 0, "soon", /0 to 2147483647/],
    ["publishAttempts", "7", 7, "-2", /-1 or an integer from 1/],
    ["publishBackoff", "0", 0, "1e3x", /0 to 3600000/],
    ["ack", "Manual", "manual", "auto", /read or manual/],
    ["will.qos", "1", 1, "9", /0, 1 or 2/],
    ["will.retain", "yes", true, "y", /true or false/],
  ];
  for (const [key, good, expected, bad, allowed] of cases) {
    const name = OPTION_NAMES.find((n) => n.toLowerCase() === key.toLowerCase())!;
    const extra = name.startsWith("will.") ? "&will.topic=t" : "";
    test(`${key}=${good} is accepted`, () => {
      const o = parseConnectionString(
        `${BASE}?${key}=${encodeURIComponent(good)}${extra}`,
      ) as unknown as Record<string, unknown>;
      assert.deepEqual(o[name], expected);
    });
    test(`${key}=${JSON.stringify(bad)} is refused, naming it and what is allowed`, () => {
      const error = rejects(
        () => parseConnectionString(`${BASE}?${key}=${encodeURIComponent(bad)}${extra}`),
        new RegExp(`'${key}'`),
        allowed,
      );
      assert.equal(error.option, key);
    });
  }

  test("passwords are accepted from parameters and never shown", () => {
    const o = withParam("password", "hunter2");
    assert.equal(o.password?.reveal(), "hunter2");
    for (const name of ["ssl.key.store.password", "ssl.trust.store.password", "ssl.key.password"]) {
      assert.equal(
        (withParam(name, "hunter2") as unknown as Record<string, Secret>)[name].reveal(),
        "hunter2",
      );
    }
  });

  test("ssl.cert and ssl.key are accepted together, inline PEM included", () => {
    const pem = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
    const o = parseConnectionString(BASE, { "ssl.cert": "/etc/c.pem", "ssl.key": pem });
    assert.equal(o["ssl.cert"], "/etc/c.pem");
    assert.equal(o["ssl.key"]?.reveal(), pem);
  });

  test("ssl.cert without ssl.key is refused", () => {
    rejects(() => withParam("ssl.cert", "/c.pem"), /ssl\.cert and ssl\.key go together/);
  });

  test("store bytes are accepted in an options object", () => {
    const bytes = new Uint8Array([1, 2, 3]);
    assert.equal(
      parseConnectionString(BASE, { "ssl.trust.store": bytes })["ssl.trust.store"],
      bytes,
    );
  });

  test("store types default from the file's extension", () => {
    assert.equal(withParam("ssl.key.store", "/x/client.pem")["ssl.key.store.type"], "PEM");
    assert.equal(withParam("ssl.key.store", "/x/client.p12")["ssl.key.store.type"], "PKCS12");
    assert.equal(withParam("ssl.trust.store", "/x/ca.crt")["ssl.trust.store.type"], "PEM");
  });

  test("JKS gets a message telling how to convert it", () => {
    rejects(
      () => withParam("ssl.key.store.type", "JKS"),
      /current value is JKS/,
      /keytool -importkeystore .* -deststoretype PKCS12/,
    );
  });

  test("SSLv3 is refused with the reason", () => {
    rejects(() => withParam("ssl.protocol", "SSLv3"), /SSL is broken/);
  });

  test("ssl.key.store.provider=SunJSSE on mqtt:// is refused for the scheme, not the value", () => {
    rejects(
      () => parseConnectionString("mqtt://h?ssl.key.store.provider=SunJSSE"),
      /^Cannot configure MQTT as 'ssl\.key\.store\.provider' is a TLS option, and ssl\.\* options need an mqtts:\/\/, ssl:\/\/ or wss:\/\/ broker URL: current brokerUrl is mqtt:\/\/h, with 'ssl\.key\.store\.provider' set to SunJSSE \(connect over TLS with mqtts:\/\/ or wss:\/\/ in place of mqtt:\/\/, or leave the ssl\.\* options out\)$/,
    );
  });

  test("every ssl.* option on a plain URL is refused for the scheme first, whatever its value", () => {
    const ssl = OPTION_NAMES.filter((name) => name.startsWith("ssl."));
    // [value, what the message shows of it]: a fine value and one the option refuses.
    const values: [string, RegExp][] = [["/etc/x.pem", /\/etc\/x\.pem|\*\*\*/], ["", /""|\*\*\*/]];
    for (const base of ["mqtt://h:1883", "tcp://h", "ws://h/mqtt", "mqtt://h1,h2"]) {
      for (const name of ssl) {
        for (const [value, shown] of values) {
          const error = rejects(
            () => parseConnectionString(`${base}?${name}=${encodeURIComponent(value)}`),
            new RegExp(
              `^Cannot configure MQTT as '${name.replaceAll(".", "\\.")}' is a TLS option`,
            ),
            /ssl\.\* options need an mqtts:\/\/, ssl:\/\/ or wss:\/\/ broker URL: current brokerUrl is (mqtt|ws):\/\//,
            shown,
          );
          assert.doesNotMatch(error.message, /must be/, `${name}=${value} on ${base}`);
          assert.equal(error.option, name);
        }
      }
    }
    rejects(
      () => parseConnectionString({ brokerUrl: "ws://h", "ssl.key.store.type": "JKS" }),
      /'ssl\.key\.store\.type' is a TLS option, .*current brokerUrl is ws:\/\/h, with 'ssl\.key\.store\.type' set to JKS/,
    );
  });

  test("the last will needs a topic without wildcards", () => {
    const o = parseConnectionString("mqtt://h?will.topic=status/me&will.payload=offline");
    assert.deepEqual([o["will.topic"], o["will.payload"], o["will.qos"], o["will.retain"]], [
      "status/me",
      "offline",
      0,
      false,
    ]);
    rejects(
      () => parseConnectionString("mqtt://h?will.payload=x"),
      /will\.\* options need will\.topic/,
    );
    rejects(() => parseConnectionString("mqtt://h?will.topic=a/%2B"), /'will\.topic'/, /wildcards/);
  });

  test("persistence=file needs a fixed clientId and defaults its folder", () => {
    rejects(() => parseConnectionString("mqtt://h?persistence=file"), /needs a fixed clientId/);
    rejects(
      () => parseConnectionString("mqtt://h?persistence=file"),
      /'clientId' is missing \(add clientId=<name> to the URL/,
    );
    rejects(
      () => parseConnectionString("mqtt://h", { persistence: "file" }),
      /^(?!.*must be memory or file)/,
    );
    assert.equal(
      parseConnectionString("mqtt://h?persistence=file&clientId=c1").localStorage,
      "./.mqtt-streams/c1",
    );
  });
});

describe("parseConnectionString: ports, topics and byte limits", () => {
  for (const port of ["99999", "65536", "-1", "0"]) {
    test(`port ${port} is refused, naming the port and the range`, () => {
      rejects(
        () => parseConnectionString(`mqtt://h:${port}?topic=a`),
        /'brokerUrl'/,
        new RegExp(`port must be from 1 to 65535, not ${port}\\)`),
      );
    });
  }

  test("ports 1 and 65535 are accepted", () => {
    assert.equal(parseConnectionString("mqtt://h:1").brokerUrl, "mqtt://h:1");
    assert.equal(parseConnectionString("ws://h:65535/mqtt").brokerUrl, "ws://h:65535/mqtt");
  });

  test("a lone surrogate in a topic is refused, not rewritten to U+FFFD", () => {
    const cases: [() => unknown, RegExp][] = [
      [() => parseConnectionString("mqtt://h?topic=a/\uD800"), /'topic'/],
      [
        () => parseConnectionString({ brokerUrl: "mqtt://h", topic: ["ok", "b\uDC00/c"] }),
        /'topic'/,
      ],
      [() => parseConnectionString("mqtt://h?topic=$share/g\uD800/a"), /'topic'/],
      [() => parseConnectionString("mqtt://h", { "will.topic": "x\uDBFF" }), /'will\.topic'/],
    ];
    for (const [parse, option] of cases) {
      const error = rejects(
        parse,
        option,
        /well-formed Unicode \(MQTT §1\.5\.4\)/,
        /lone surrogate/,
      );
      assert.doesNotMatch(error.message, /[\uD800-\uDFFF]/, "the message itself is well-formed");
    }
    // A surrogate pair is one well-formed character.
    assert.deepEqual(parseConnectionString("mqtt://h?topic=a/\u{1F600}").topic, ["a/\u{1F600}"]);
  });

  test("a record or filter topic with a lone surrogate is refused by the shared topic checks", () => {
    assert.match(topicNameProblem("a/\uD83D")!, /lone surrogate, U\+D83D, at index 2/);
    assert.match(topicFilterProblem("\uDE00/#")!, /lone surrogate/);
    assert.equal(topicNameProblem("a/\uD83D\uDE00"), undefined);
  });

  test("a record whose topic has a lone surrogate is refused, naming the chunk", () => {
    const reader = new RecordReader(parseConnectionString("mqtt://h"));
    assert.throws(
      () => reader.read({ topic: "a/\uD800", payload: "x" }),
      (e: unknown) =>
        e instanceof MqttRecordError && /chunk #0/.test(e.message) &&
        /lone surrogate/.test(e.message),
    );
  });

  test("a record with a 70 KB bad topic gets a short message, saying how much was cut", () => {
    const reader = new RecordReader(parseConnectionString("mqtt://h"));
    let error: unknown;
    try {
      reader.read({ topic: `${"a".repeat(70_000)}/b`, payload: "x" });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof MqttRecordError, `expected MqttRecordError, got ${error}`);
    assert.match(error.message, /cannot be longer than 65535 bytes/);
    assert.match(error.message, /more characters not shown/);
    assert.ok(error.message.length < 500, `${error.message.length} characters`);
  });

  test("a 70 KB bad topic is echoed cut, saying how much was cut", () => {
    const topic = `${"a".repeat(70_000)}/b+`;
    const error = rejects(
      () => parseConnectionString({ brokerUrl: "mqtt://h", topic }),
      /cannot be longer than 65535 bytes/,
      /… \(69803 more characters not shown\)/,
    );
    assert.ok(error.message.length < 500, `${error.message.length} characters`);
  });

  test("maxPacketSize defaults to 1 MiB and takes 1 to 268435455 bytes", () => {
    assert.equal(parseConnectionString("mqtt://h").maxPacketSize, 1_048_576);
    assert.equal(parseConnectionString("mqtt://h?maxPacketSize=1").maxPacketSize, 1);
    assert.equal(parseConnectionString("mqtt://h", { maxPacketSize: 4096 }).maxPacketSize, 4096);
    for (const bad of ["0", "-1", "268435456", "1.5", "1MB"]) {
      rejects(
        () => parseConnectionString(`mqtt://h?maxPacketSize=${bad}`),
        /'maxPacketSize' must be an integer from 1 to 268435455 \(bytes\)/,
        new RegExp(`current value is ${bad.replace(".", "\\.")}$`),
      );
    }
  });
});

describe("parseConnectionString: defaults", () => {
  test("are the documented ones", () => {
    const o = parseConnectionString("mqtt://h");
    assert.deepEqual(
      [
        o.qos,
        o.connectionTimeout,
        o.keepAlive,
        o.mqttVersion,
        o.maxInflight,
        o.autoReconnect,
        o.persistence,
        o.ack,
      ],
      [1, 30, 60, 4, 60, true, "memory", "read"],
    );
    assert.deepEqual(
      [
        o.connectAttempts,
        o.connectBackoff,
        o.connectionCacheTimeout,
        o.publishAttempts,
        o.publishBackoff,
      ],
      [5, 1000, 600_000, 3, 1000],
    );
    assert.equal(o["ssl.verify"], true);
    assert.equal(o.clientId, undefined);
  });

  test("cleanSession is true without a clientId and false with one", () => {
    assert.equal(parseConnectionString("mqtt://h").cleanSession, true);
    assert.equal(parseConnectionString("mqtt://h?clientId=c").cleanSession, false);
    assert.equal(parseConnectionString("mqtt://h?clientId=c&cleanSession=true").cleanSession, true);
  });

  test("a persistent session does not expire on MQTT 5, as on 3.1.1", () => {
    assert.equal(parseConnectionString("mqtt://h?clientId=c").sessionExpiryInterval, 0xffffffff);
    assert.equal(parseConnectionString("mqtt://h").sessionExpiryInterval, 0);
  });
});

describe("parseConnectionString: keys and precedence", () => {
  test("keys match case-insensitively, in the URL and in objects", () => {
    const o = parseConnectionString(
      "mqtt://h?QOS=0&CLEANSESSION=false",
      { KEEPALIVE: "5" } as MqttOptionsInit,
    );
    assert.deepEqual([o.qos, o.cleanSession, o.keepAlive], [0, false, 5]);
  });

  test("an unknown key suggests the nearest option", () => {
    const error = rejects(
      () => parseConnectionString("mqtt://h?cleanSesion=true"),
      /'cleanSesion' is not an option/,
      /did you mean 'cleanSession'/,
    );
    assert.equal(error.option, "cleanSesion");
    rejects(
      () =>
        parseConnectionString({ brokerUrl: "mqtt://h", keepalive_seconds: 1 } as MqttOptionsInit),
      /'keepalive_seconds' is not an option/,
    );
  });

  test("a key other than topic may not repeat in a URL", () => {
    rejects(() => parseConnectionString("mqtt://h?qos=1&QoS=2"), /'QoS' appears twice/);
  });

  test("overrides win over the object, which wins over the URL", () => {
    const o = parseConnectionString({
      brokerUrl: "mqtt://h?qos=0&keepAlive=1&topic=a",
      keepAlive: 2,
      topic: "b",
    }, { keepAlive: 3 });
    assert.deepEqual([o.qos, o.keepAlive, o.topic], [0, 3, ["b"]]);
  });

  test("an options object's values may be native types", () => {
    const o = parseConnectionString({
      brokerUrl: "mqtt://h",
      qos: 2,
      cleanSession: true,
      mqttVersion: 5,
      maxInflight: 10,
    });
    assert.deepEqual([o.qos, o.cleanSession, o.mqttVersion, o.maxInflight], [2, true, 5, 10]);
  });

  test("a malformed percent-encoding is refused", () => {
    rejects(
      () => parseConnectionString("mqtt://h?topic=%E0%A4%A"),
      /'topic' must be percent-encoded/,
    );
  });
});

describe("parseConnectionString: environment variables", () => {
  const vars = {
    MQTT_CONNECT_ATTEMPTS: ["connectAttempts", "9", 9],
    MQTT_CONNECT_BACKOFF: ["connectBackoff", "123", 123],
    MQTT_CONNECTION_CACHE_TIMEOUT: ["connectionCacheTimeout", "5000", 5000],
    MQTT_PUBLISH_ATTEMPTS: ["publishAttempts", "-1", -1],
    MQTT_PUBLISH_BACKOFF: ["publishBackoff", "77", 77],
  } as const;
  for (const [env, [name, value, expected]] of Object.entries(vars)) {
    test(`${env} sets ${name} when the options do not`, () => {
      process.env[env] = value;
      try {
        assert.equal(parseConnectionString("mqtt://h")[name], expected);
        assert.equal(
          parseConnectionString(`mqtt://h?${name}=42`)[name],
          42,
          "an explicit option wins",
        );
      } finally {
        delete process.env[env];
      }
    });
  }

  test("a bad environment value names the variable", () => {
    process.env.MQTT_CONNECT_ATTEMPTS = "lots";
    try {
      rejects(
        () => parseConnectionString("mqtt://h"),
        /environment variable MQTT_CONNECT_ATTEMPTS must be -1 or an integer/,
        /current value is lots/,
      );
    } finally {
      delete process.env.MQTT_CONNECT_ATTEMPTS;
    }
  });
});

describe("redaction", () => {
  const url =
    "mqtts://alice:hunter2@h?ssl.key.store.password=hunter2&ssl.trust.store.password=hunter2&ssl.key.password=hunter2";
  const secrets = /hunter2/;

  test("no password in the options' JSON, String or inspected forms", () => {
    const o = parseConnectionString(url);
    for (
      const text of [
        JSON.stringify(o),
        inspect(o, { depth: 5 }),
        String(o.password),
        `${o["ssl.key.password"]}`,
      ]
    ) {
      assert.doesNotMatch(text, secrets);
    }
  });

  test("no password in an error about it, nor about the URL", () => {
    const errors = [
      rejects(
        () => parseConnectionString({ brokerUrl: "mqtt://h", password: 5 as unknown as string }),
        /'password'/,
      ),
      rejects(() => parseConnectionString("mqtt://alice:hunter2@h?qos=7")),
      rejects(() => parseConnectionString("ftp://alice:hunter2@h"), /ftp:\/\/\*\*\*@h/),
      rejects(() => parseConnectionString("mqtt://h?password=hunter2&password=x")),
      rejects(() => parseConnectionString("mqtt://h?password=%E0%A4%A")),
    ];
    for (const error of errors) {
      for (const text of [error.message, String(error), JSON.stringify(error), inspect(error)]) {
        assert.doesNotMatch(text, secrets);
        assert.doesNotMatch(text, /%E0%A4%A/);
      }
    }
  });

  test("a Secret given directly stays a Secret", () => {
    const o = parseConnectionString("mqtt://h", { password: new Secret("hunter2") });
    assert.equal(o.password?.reveal(), "hunter2");
  });
});
