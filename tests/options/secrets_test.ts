// Secrets never print, whatever the input: a seeded fuzz of mutated connection strings,
// the malformed strings seen to leak, the CLI's argument errors and inline key text.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { shown, stderrOf, thrown } from "./_shown.ts";
import { fuzzCount, prng } from "../../testing/helpers.ts";
import {
  MqttOptionsError,
  MqttSink,
  MqttSource,
  MqttStreamError,
  parseConnectionString,
} from "../../mod.ts";
import { parseCommand } from "../../cli/_args.ts";
import { main } from "../../cli.ts";
import { tlsOptions } from "../../src/connection/_tls.ts";
import { describeOption, OPTION_NAMES } from "../../src/options/options.ts";

const aborted = () => AbortSignal.abort(new Error("the test never connects"));

/** Builds a source and a sink that must not connect; the errors their constructors throw. */
function constructorErrors(connection: string): unknown[] {
  const errors: unknown[] = [];
  for (const Stream of [MqttSource, MqttSink]) {
    try {
      const stream = new Stream(connection, { signal: aborted() });
      if (stream instanceof MqttSource) stream.cancel().catch(() => {});
      else stream.abort().catch(() => {});
    } catch (error) {
      errors.push(error);
    }
  }
  return errors;
}

// --- a deterministic generator of mutated connection strings -----------------------------

const PASSWORD = "Zq7-Kx9!vL";
const IN_URL = "Zq7-Kx9%21vL";
/** The password as given, percent-decoded, and encoded once more. */
const FORMS = [IN_URL, PASSWORD, encodeURIComponent(IN_URL)];
const leaks = (text: string) => FORMS.some((form) => text.includes(form));

const VALID = [
  `mqtt://alice:${IN_URL}@broker.example:1883?topic=sensors/%2B/temp&qos=1&clientId=ingest`,
  `mqtts://bob:${IN_URL}@[::1]:8883?topic=a/%23&ssl.verify=false&ssl.key.password=${IN_URL}`,
  `ws://carol:${IN_URL}@localhost:9001/mqtt?topic=x/y&keepAlive=30&maxInflight=10`,
  `tcp://127.0.0.1:1883?username=dave&password=${IN_URL}&topic=t/1&mqttVersion=5`,
  `wss://erin:${IN_URL}@mq.example.com/ws?ssl.key.store.password=${IN_URL}&topic=$share/g/f/%23&qos=2`,
];
const CHARS = [..."%@:/?#[]&=+!$;,.-_~ aZ09\\|\"'<>{}é😀\n\u0000", "\uD800"];
const TOKENS = [
  "@",
  "://",
  ":",
  "//",
  "?",
  "#",
  "&",
  "=",
  "%",
  "%2",
  "%zz",
  "[",
  "]",
  ":99999",
  ":-1",
  ":0",
  "&password=",
  "&qos=9",
  "&topic=",
  "&topic=a/+b",
  "&ssl.key.password=",
  "&clientId=",
  "&persistence=file",
  "mqtt://",
  "-----BEGIN ",
  "\uDC00",
  "é",
];

function mutate(text: string, random: () => number): string {
  const at = (n: number) => Math.floor(random() * n);
  const pick = <T>(list: readonly T[]) => list[at(list.length)];
  const i = at(text.length + 1);
  switch (at(8)) {
    case 0:
      return text.slice(0, i) + pick(CHARS) + text.slice(i);
    case 1:
      return text.slice(0, i) + text.slice(i + 1);
    case 2:
      return text.slice(0, i) + pick(CHARS) + text.slice(i + 1);
    case 3: {
      // A copy of the password put in a path, a host or a topic is no longer a password to
      // anyone (nor to the library), so a copied segment never takes any of it.
      const from = at(text.length);
      const to = from + 1 + at(20);
      const overlaps = (start: number) => start >= 0 && start < to && from < start + IN_URL.length;
      if (overlaps(text.indexOf(IN_URL)) || overlaps(text.lastIndexOf(IN_URL))) return text;
      return text.slice(0, i) + text.slice(from, to) + text.slice(i);
    }
    case 4:
      return text.slice(0, i);
    case 5:
      return text.slice(0, i) + pick(TOKENS) + text.slice(i);
    case 6:
      return text.slice(0, i) + text.charAt(i + 1) + text.charAt(i) + text.slice(i + 2);
    default: {
      // Cut a run of characters out, as a careless edit would.
      return text.slice(0, i) + text.slice(i + 1 + at(6));
    }
  }
}

/** Options whose values are shown in messages: a topic, a client id, a QoS, ... */
const PLAIN_OPTIONS = new Set(
  OPTION_NAMES.filter((name) => !describeOption(name).meta.secret).map((n) => n.toLowerCase()),
);

/**
 * Whether mutations moved the password into the value of an option that is no secret
 * (`&topic=a/+b` put before it makes it part of a topic): it is that option's value now,
 * to the library as to anyone, so such a string is drawn again.
 */
function movedIntoPlainValue(text: string): boolean {
  const query = text.indexOf("?");
  for (let i = text.indexOf(IN_URL); i >= 0; i = text.indexOf(IN_URL, i + 1)) {
    if (query < 0 || i < query) continue;
    const parameter = text.slice(Math.max(text.lastIndexOf("&", i), query) + 1, i);
    const eq = parameter.indexOf("=");
    if (eq >= 0 && PLAIN_OPTIONS.has(parameter.slice(0, eq).toLowerCase())) return true;
  }
  return false;
}

/** `count` strings, each from one to three mutations of a valid one; `drawn.again` counts redraws. */
function* mutations(count: number, seed: number, drawn = { again: 0 }): Generator<string> {
  const random = prng(seed);
  for (let n = 0; n < count; n++) {
    let text = VALID[n % VALID.length];
    for (let k = 1 + Math.floor(random() * 3); k > 0; k--) text = mutate(text, random);
    if (movedIntoPlainValue(text)) {
      drawn.again++;
      n--;
      continue;
    }
    yield text;
  }
}

/** Mutated connection strings the fuzz tries. */
const MUTATIONS = fuzzCount(10_000);

describe("secrets: a seeded fuzz of connection strings", () => {
  test(`no message of ${MUTATIONS} mutated connection strings holds the password, and every error is an MqttStreamError`, async () => {
    for (const valid of VALID) parseConnectionString(valid);
    const started = Date.now();
    let parsed = 0, refused = 0, cliRefused = 0, either = 0;
    const drawn = { again: 0 };
    // Inputs whose password showed, by where: the library (parse, constructors) or the CLI.
    const leaked = { library: [] as string[], cli: [] as string[] };
    const foreign: string[] = [];
    for (const input of mutations(MUTATIONS, 17, drawn)) {
      const library: unknown[] = constructorErrors(input);
      let brokerUrl = "";
      const error = thrown(() => (brokerUrl = parseConnectionString(input).brokerUrl));
      if (error === undefined) parsed++;
      else {
        refused++;
        library.push(error);
      }
      for (const e of library) {
        if (!(e instanceof MqttStreamError)) foreign.push(`${input} → ${e}`);
      }
      const cli: string[] = [];
      for (const args of [["sub", input], ["sub", input, "extra"], ["bridge", input]]) {
        const e = thrown(() => parseCommand(args, false));
        if (e !== undefined) {
          cliRefused++;
          cli.push(...shown(e));
        }
      }
      cli.push(await stderrOf(() => main(["pub", input, input])));
      // Only what fails before connecting: a string that parses would connect.
      if (error !== undefined) cli.push(await stderrOf(() => main(["sub", input])));
      const inLibrary = leaks(brokerUrl) || library.some((e) => shown(e).some(leaks));
      if (inLibrary) leaked.library.push(input);
      if (cli.some(leaks)) leaked.cli.push(input);
      if (inLibrary || cli.some(leaks)) either++;
    }
    console.log(
      `fuzz: ${MUTATIONS} strings (${drawn.again} drawn again), ${parsed} parsed, ${refused} refused, ` +
        `${cliRefused} CLI argument errors; ` +
        `the password showed for ${either} (${leaked.library.length} in the library's errors, ` +
        `${leaked.cli.length} in the CLI's); ${foreign.length} errors were not MqttStreamError; ` +
        `${Date.now() - started} ms`,
    );
    assert.deepEqual(
      { library: leaked.library.slice(0, 10), cli: leaked.cli.slice(0, 10) },
      { library: [], cli: [] },
      `the password showed for ${either} inputs`,
    );
    assert.deepEqual(foreign.slice(0, 10), [], `${foreign.length} errors were not MqttStreamError`);
    assert.ok(
      parsed > MUTATIONS / 10 && refused > MUTATIONS / 10,
      "the mutations reach both outcomes",
    );
  });
});

describe("secrets: the malformed connection strings seen to leak", () => {
  // [connection string, the password as written in it]
  const cases: [string, string][] = [
    ["mqtt://u:50%off-Zq7Kx9@h", "50%off-Zq7Kx9"],
    ["mqtt://u:pw/Zq7Kx9@h", "pw/Zq7Kx9"],
    ["mqtt://u:12/Zq7Kx9@h", "12/Zq7Kx9"],
    ["ws://u:12/Zq7Kx9@h/mqtt", "12/Zq7Kx9"],
    ["mqtt://u:pw#Zq7Kx9@h", "pw#Zq7Kx9"],
    ["mqtt://u:12#Zq7Kx9@h", "12#Zq7Kx9"],
    ["mqtt://u:pw?Zq7Kx9@h", "pw?Zq7Kx9"],
    ["mqtt://u:12?Zq7Kx9@h", "12?Zq7Kx9"],
    ["mqtt:/u:Zq7Kx9@h", "Zq7Kx9"],
    ["mqtt:///u:Zq7Kx9@h", "Zq7Kx9"],
    ["u:Zq7Kx9@host:1883", "Zq7Kx9"],
    ["mqta:Zq7Kx9@host]", "Zq7Kx9"],
    ["ssl:123//u:Zq7Kx9@h:1", "Zq7Kx9"],
    ["mqtt://u:Zq7Kx9h:1883", "Zq7Kx9"],
    ["mqtt://h?qos=1password=Zq7Kx9", "Zq7Kx9"],
    ["mqtt://h?passwordZq7Kx9", "Zq7Kx9"],
    ["mqtts://h?ssl.key.pa.sswordZq7Kx9!", "Zq7Kx9"],
    ["mqtt://h?pa%swordZq7Kx9", "Zq7Kx9"],
    ["ws://h\\u:Zq7Kx9h/mqtt", "Zq7Kx9"],
    ["wss://u/x:Zq7Kx9h/mqtt", "Zq7Kx9"],
    ["mqtts://uZq7%21Kx9", "Zq7%21Kx9"],
    ["mqtt://u:73195520", "73195520"],
  ];
  for (const [input, password] of cases) {
    test(`${JSON.stringify(input)} is refused without showing its password`, () => {
      const errors = [thrown(() => parseConnectionString(input)), ...constructorErrors(input)];
      assert.equal(errors.length, 3, "the source and the sink constructors refuse it too");
      for (const error of errors) {
        assert.ok(error instanceof MqttOptionsError, `expected MqttOptionsError, got ${error}`);
        for (const text of shown(error)) {
          // The part after the special character is distinctive enough to be a leak on its own.
          assert.ok(!text.includes(password) && !text.includes("Zq7Kx9"), text);
        }
      }
    });
  }

  test("a sink's topic, which a malformed string can fill with user info, is shown redacted", () => {
    // A lost ':' and '@' before the query, and a '?' typed into it, leave user info in a topic.
    const input = "mqtt://h:1883?topic=se:Zq7Kx9@broker:1883?topic=a/%2B/b";
    for (const init of [{}, { topic: ["a", "b/:Zq7Kx9@x"] }]) {
      const error = thrown(() => new MqttSink(input, { ...init, signal: aborted() }));
      assert.ok(error instanceof MqttOptionsError, `expected MqttOptionsError, got ${error}`);
      for (const text of shown(error)) assert.doesNotMatch(text, /Zq7Kx9/);
    }
  });

  test("brokerUrl never holds the user info, even one with an unencoded '/'", () => {
    for (const input of ["ws://u:12/Zq7Kx9@h/mqtt", "wss://u:Zq7Kx9@h/mqtt", "ws://u:1@h/a@b"]) {
      const error = thrown(() => assert.doesNotMatch(parseConnectionString(input).brokerUrl, /@/));
      assert.ok(error === undefined || error instanceof MqttOptionsError, `${error}`);
    }
  });
});

describe("secrets: the command line", () => {
  const url = "mqtt://u:Zq7Kx9@h:1883?topic=a";
  const argv: string[][] = [
    ["sub", url, "extra"],
    ["bridge", url],
    ["pub", url, url],
    ["pub", `${url}&password=Zq7Kx9`, "x"],
    [url],
    ["sub", `-----BEGIN ${url}\n&more`],
  ];
  for (const args of argv) {
    test(`'${args.join(" ")}' names its arguments without the password`, async () => {
      const error = thrown(() => parseCommand(args, false));
      assert.ok(error instanceof Error);
      for (const text of shown(error)) assert.doesNotMatch(text, /Zq7Kx9/);
      const printed = await stderrOf(() => main(args));
      assert.match(printed, /^mqtt-streams: /);
      assert.doesNotMatch(printed, /Zq7Kx9/);
    });
  }

  test("an argument-count error still says what it got", () => {
    const error = thrown(() => parseCommand(["pub", url, url], false)) as Error;
    assert.match(error.message, /expected <url>, got 'mqtt:\/\/\*\*\*@h:1883\?…' 'mqtt/);
  });
});

describe("secrets: key text", () => {
  const keyText = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7Zq7Kx9";
  // Inline PEM, so that ssl.cert is read without a file and ssl.key is the one at fault.
  const cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

  test("ssl.key given as text without a PEM header is never shown, while a path is named", async () => {
    for (
      const key of [keyText, `${keyText}\n${keyText}`, `-----BEGN PRIVATE KEY-----\n${keyText}`]
    ) {
      let error: unknown;
      try {
        await tlsOptions(parseConnectionString("mqtts://h", { "ssl.cert": cert, "ssl.key": key }));
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof MqttOptionsError, `expected MqttOptionsError, got ${error}`);
      assert.match(error.message, /'ssl\.key'/);
      assert.match(error.message, /not shown, as it may be key text/);
      for (const text of shown(error)) assert.doesNotMatch(text, /Zq7Kx9/);
    }
    // A path is no secret: the file that cannot be read is named.
    const path = "/nonexistent-Zq7Kx9/client.key";
    const missing = await tlsOptions(
      parseConnectionString("mqtts://h", { "ssl.cert": cert, "ssl.key": path }),
    )
      .then(() => undefined, (e) => e);
    assert.ok(missing instanceof MqttOptionsError);
    assert.match(
      missing.message,
      /current value is \/nonexistent-Zq7Kx9\/client\.key \(.*ENOENT|No such file/i,
    );
  });

  test("a sink given ssl.key as text fails without showing it", async () => {
    const sink = new MqttSink("mqtts://127.0.0.1:1?topic=t&connectAttempts=1", {
      "ssl.cert": cert,
      "ssl.key": keyText,
    });
    const writer = sink.getWriter();
    const error = await writer.write("x").then(() => undefined, (e) => e);
    assert.ok(error instanceof MqttStreamError, `expected MqttStreamError, got ${error}`);
    for (const text of shown(error)) assert.doesNotMatch(text, /Zq7Kx9/);
  });

  test("key store text given with a plain mqtt:// URL is not shown", () => {
    for (const name of ["ssl.key.store", "ssl.trust.store", "ssl.cert", "ssl.key"]) {
      const error = thrown(() => parseConnectionString("mqtt://h", { [name]: keyText }));
      assert.ok(error instanceof MqttOptionsError, `expected MqttOptionsError, got ${error}`);
      assert.match(error.message, /ssl\.\* options need an mqtts:\/\//);
      for (const text of shown(error)) assert.doesNotMatch(text, /Zq7Kx9/);
    }
  });

  test("key store text, and key text in other ssl.* options, are not shown", async () => {
    for (
      const init of [
        { "ssl.key.store": keyText },
        { "ssl.key.store": `${keyText}\n` },
        { "ssl.trust.store": `-----BEGN CERTIFICATE-----\n${keyText}` },
        { "ssl.ca": `-----BEGN CERTIFICATE-----\n${keyText}` },
      ]
    ) {
      let error: unknown;
      try {
        await tlsOptions(parseConnectionString("mqtts://h", init));
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof MqttOptionsError, `expected MqttOptionsError, got ${error}`);
      for (const text of shown(error)) assert.doesNotMatch(text, /Zq7Kx9/);
    }
  });
});
