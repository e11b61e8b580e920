// Passwords pasted raw into a connection string, with the characters a URL gives meaning to
// (',' '?' ':' '@' '/' '#' '&' '=' '[' ']' '%'), single- and multi-host: whatever parses or
// not, no error of parseConnectionString, of the constructors or of the CLI shows any of it.
// A seeded fuzz (issue 29, item 3), so every run tries the same passwords.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import { shown, stderrOf, thrown } from "./_shown.ts";
import { fuzzCount, prng } from "../../testing/helpers.ts";
import { MqttSink, MqttSource, MqttStreamError, parseConnectionString } from "../../mod.ts";
import { main } from "../../cli.ts";

const SEED = 29;
const MARKER = "S3CRET";
const SPECIALS = [",", "?", ":", "@", "/", "#", "&", "=", "[", "]", "%"];
/** Fillers: mixed-case trigrams that no message of the library holds by chance. */
const FILLERS = ["Zq7", "Kx9", "Vw4", "Jy2", "Qh8"];

/**
 * A password around the marker: the marker whole, or split in two by raw special characters,
 * with specials and fillers before and after, and at least one special somewhere.
 */
function password(random: () => number): string {
  const pick = <T>(list: readonly T[]) => list[Math.floor(random() * list.length)];
  const specials = () => pick(SPECIALS) + (random() < 0.3 ? pick(SPECIALS) : "");
  const cut = 1 + Math.floor(random() * (MARKER.length - 1));
  const core = random() < 0.5 ? MARKER : MARKER.slice(0, cut) + specials() + MARKER.slice(cut);
  let text = core;
  for (let n = Math.floor(random() * 3); n > 0; n--) {
    text = random() < 0.5 ? specials() + text : text + specials();
    if (random() < 0.4) text = random() < 0.5 ? pick(FILLERS) + text : text + pick(FILLERS);
  }
  return /[^A-Za-z0-9]/.test(text) ? text : text + specials();
}

/** Every run of three letters or digits of `password`: each would give part of it away. */
function pieces(password: string): string[] {
  return [MARKER, password, ...(password.match(/[A-Za-z0-9]{3,}/g) ?? [])];
}

const SINGLE = [
  (pw: string) => `mqtt://user:${pw}@h1:1883?topic=a`,
  (pw: string) => `mqtts://user:${pw}@h1:8883?topic=a/%23&qos=2`,
  (pw: string) => `ws://user:${pw}@h1:9001/mqtt?topic=a`,
  (pw: string) => `tcp://:${pw}@h1`,
  (pw: string) => `mqtt://user:${pw}@h1?topic=a&qos=9`,
];
const MULTI = [
  (pw: string) => `mqtt://user:${pw}@h1:1883,h2?topic=a`,
  (pw: string) => `mqtt://user:${pw}@h1,h2:1884,h3`,
  (pw: string) => `wss://user:${pw}@h1,h2/mqtt?topic=a`,
  (pw: string) => `ssl://user:${pw}@h1,h2:99999?topic=a`,
  (pw: string) => `mqtt://user:${pw}@h1,h1?topic=a`,
];

/** `count` passwords, each in one single-host and one multi-host connection string. */
function* cases(count: number): Generator<{ password: string; url: string; hosts: string }> {
  const random = prng(SEED);
  for (let n = 0; n < count; n++) {
    const pw = password(random);
    yield { password: pw, url: SINGLE[n % SINGLE.length](pw), hosts: "single" };
    yield { password: pw, url: MULTI[n % MULTI.length](pw), hosts: "multi" };
  }
}

/** The errors the source and the sink constructors throw for `url` (never connecting). */
function constructorErrors(url: string): unknown[] {
  const errors: unknown[] = [];
  const signal = AbortSignal.abort(new Error("the test never connects"));
  for (const Stream of [MqttSource, MqttSink]) {
    try {
      const stream = new Stream(url, { signal });
      if (stream instanceof MqttSource) stream.cancel().catch(() => {});
      else stream.abort().catch(() => {});
    } catch (error) {
      errors.push(error);
    }
  }
  return errors;
}

/** `text` percent-decoded where it is valid percent-encoding ("S%3CRET" is "S<RET"). */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const PASSWORDS = fuzzCount(3_000);
const SAFE = "mqtt://127.0.0.1:1?topic=a";

describe("raw passwords: a seeded fuzz", () => {
  test(`no error shows any of ${PASSWORDS} passwords with raw URL characters, single- and multi-host (seed ${SEED})`, async () => {
    const started = Date.now();
    let urls = 0, parsed = 0, refused = 0, cliRuns = 0;
    // Passwords that showed (anywhere, in the library, in the CLI), and CLI runs that showed one.
    const showed = { any: new Set<string>(), library: new Set<string>(), cli: new Set<string>() };
    let cliShowed = 0;
    const byPath = new Map<string, number>();
    const runsByPath = new Map<string, number>();
    const examples: string[] = [];
    const foreign: string[] = [];
    // Parsed, but the password is not what the string's user info held: it went elsewhere.
    const misplaced: string[] = [];
    for (const { password: pw, url, hosts } of cases(PASSWORDS)) {
      urls++;
      const leaks = (text: string) => pieces(pw).some((piece) => text.includes(piece));
      const note = (where: string, text: string) => {
        showed.any.add(pw);
        byPath.set(where, (byPath.get(where) ?? 0) + 1);
        if (examples.length < 8) examples.push(`${where}: ${url} → ${text}`);
      };
      let options;
      const error = thrown(() => (options = parseConnectionString(url)));
      const library = [...constructorErrors(url)];
      if (error === undefined) {
        parsed++;
        if (options!.password?.reveal() !== decoded(pw)) misplaced.push(url);
        const text = JSON.stringify(options) + inspect(options, { depth: 5 });
        if (leaks(text)) {
          showed.library.add(pw);
          note(`options (${hosts})`, text);
        }
      } else {
        refused++;
        library.unshift(error);
      }
      for (const e of library) {
        if (!(e instanceof MqttStreamError)) foreign.push(`${url} → ${e}`);
        const leak = shown(e).find(leaks);
        if (leak !== undefined) {
          showed.library.add(pw);
          note(`library (${hosts})`, leak);
        }
      }
      const argvs: [string, string[]][] = [
        ["argument count", ["sub", url, "extra"]],
        ["argument count", ["bridge", url]],
        ["argument count", ["pub", url, url]],
        ["unknown command", [url]],
        ["unknown option", ["sub", `--${url}`]],
        ["option value", ["sub", SAFE, "--count", url]],
      ];
      // Only what fails before connecting: a string that parses would connect.
      if (error !== undefined) {
        argvs.push(
          ["options", ["sub", url]],
          ["options", ["pub", url]],
          ["options", ["bridge", url, SAFE]],
          ["options", ["bridge", SAFE, url]],
        );
      }
      for (const [path, argv] of argvs) {
        cliRuns++;
        runsByPath.set(path, (runsByPath.get(path) ?? 0) + 1);
        const printed = await stderrOf(() => main(argv));
        if (leaks(printed)) {
          cliShowed++;
          showed.cli.add(pw);
          note(`cli ${path}`, printed.trim());
        }
      }
    }
    const summary = `seed ${SEED}: ${urls} connection strings of ${PASSWORDS} passwords, ` +
      `${parsed} parsed, ${refused} refused; ${showed.any.size} passwords showed ` +
      `(${showed.library.size} in the library's errors, ${showed.cli.size} in the CLI's), ` +
      `in ${cliShowed} of ${cliRuns} CLI runs ` +
      `(showed, by where: ${JSON.stringify(Object.fromEntries(byPath))}; CLI runs by path: ` +
      `${JSON.stringify(Object.fromEntries(runsByPath))}); ${misplaced.length} parsed with the ` +
      `password elsewhere; ${Date.now() - started} ms`;
    console.log(summary);
    assert.deepEqual(examples, [], summary);
    assert.deepEqual(foreign.slice(0, 5), [], `${summary}; errors that are not MqttStreamError`);
    assert.deepEqual(misplaced.slice(0, 5), [], summary);
    assert.ok(
      parsed > PASSWORDS / 6 && refused > PASSWORDS / 6,
      `${summary}: both outcomes are reached`,
    );
  });
});

describe("raw passwords: the strings seen to leak (issue 29)", () => {
  // [connection string, what must not show]
  const cases: [string, RegExp][] = [
    ["mqtt://user:,Secret?@h1:1883,h2?topic=a", /Secret/],
    ["mqtt://user:?Secret=x@h1", /Secret/],
    ["mqtt://user:1883?Secret&x=1@h1", /Secret/],
    ["mqtt://user:1883?qos=Secret&x@h1", /Secret/],
    ["mqtt://user:1883?Secret=1&qos=1@h1", /Secret/],
    ["mqtt://user:S/ecret@h1,h2", /ecret/],
    ["mqtt://user:99999?Secret@h1", /99999|Secret/],
    // Each parameter valid alone, so the checks after parsing (a clientId for persistence, a
    // TLS scheme for ssl.*) are the ones that must not name them.
    ["mqtt://user:1883?persistence=file&topic=Secret@h1", /Secret|persistence/],
    ["mqtt://user:1883?ssl.key.store.provider=Secret&topic=a@h1", /Secret|ssl\./],
  ];
  for (const [url, secret] of cases) {
    test(`${JSON.stringify(url)} is refused without showing its password, in the library and the CLI`, async () => {
      const errors = [thrown(() => parseConnectionString(url)), ...constructorErrors(url)];
      assert.equal(errors.length, 3, "the source and the sink constructors refuse it too");
      for (const error of errors) {
        assert.ok(error instanceof MqttStreamError, `expected MqttStreamError, got ${error}`);
        assert.match(error.message, /current value is mqtt:\/\/\*\*\*@h1/);
        for (const text of shown(error)) assert.doesNotMatch(text, secret);
      }
      const argvs = [["sub", url, "x"], ["bridge", url], ["pub", url, url], [url], ["sub", url]];
      for (const argv of argvs) {
        const printed = await stderrOf(() => main(argv));
        assert.match(printed, /^mqtt-streams: /);
        assert.doesNotMatch(printed, secret, argv.join(" "));
      }
    });
  }

  test("the checks that follow parsing show such a string's hosts only as the string is shown", () => {
    // 'user:1883' may be user info whose password holds a raw '?': it is shown as ***.
    const url = "mqtt://user:1883?topic=Secret@h1";
    const errors = [
      thrown(() => parseConnectionString(url, { "ssl.ca": "/etc/ca.pem" })),
      thrown(() => parseConnectionString({ brokerUrl: [url, "ws://b"] })),
      thrown(() => parseConnectionString({ brokerUrl: [url, url] })),
      thrown(() => parseConnectionString({ brokerUrl: [url, "mqtt://b?topic=other"] })),
    ];
    for (const error of errors) {
      assert.ok(error instanceof MqttStreamError, `expected MqttStreamError, got ${error}`);
      assert.match(error.message, /mqtt:\/\/\*\*\*@h1/);
      for (const text of shown(error)) assert.doesNotMatch(text, /user:|Secret|'topic'/);
    }
  });

  test("an argument-count error shows the URL from its last '@' on", async () => {
    const url = "mqtt://user:,Secret?@h1:1883,h2?topic=a";
    assert.equal(
      await stderrOf(() => main(["pub", url, url])),
      "mqtt-streams: pub: expected <url>, got 'mqtt://***@h1:1883,h2?…' 'mqtt://***@h1:1883,h2?…' (see --help)\n",
    );
  });

  test("an '@' in a query value still parses, and errors after the last '@' still name the option", () => {
    assert.deepEqual(parseConnectionString("mqtt://h?topic=a@b").topic, ["a@b"]);
    assert.deepEqual(parseConnectionString("mqtt://u:p@h?topic=a@b&qos=2").qos, 2);
    const after = thrown(() => parseConnectionString("mqtt://u:p@h?topic=a@b&qos=9"));
    assert.match(String(after), /'qos' must be 0, 1 or 2: current value is 9/);
    // Before it, a parameter may be part of a password: neither it nor its value shows.
    const before = thrown(() => parseConnectionString("mqtt://h?qos=9&topic=a@b"));
    assert.match(String(before), /a parameter before the last '@' is not valid, and is not shown/);
    assert.match(String(before), /in a parameter's value write '@' as %40/);
    assert.doesNotMatch(String(before), /qos|9/);
  });
});

describe("raw passwords: first use", () => {
  test("a source and a sink whose string parsed fail to connect without showing the password", async () => {
    // Parsed strings from the fuzz: a raw ',' ':' '@' '=' '&' '[' or ']' is fine in user info.
    const parsed = [...cases(300)].filter(({ url }) => !thrown(() => parseConnectionString(url)));
    const sample = parsed.slice(0, 6);
    assert.equal(sample.length, 6);
    const init = { connectAttempts: 1, connectBackoff: 0, connectionTimeout: 2 };
    for (const { password: pw, url } of sample) {
      // The same user info and query against a closed port: the connection is refused.
      const at = url.lastIndexOf("@");
      const query = url.indexOf("?", at);
      const local = `mqtt${url.slice(url.indexOf(":"), at)}@127.0.0.1:1${
        query < 0 ? "" : url.slice(query)
      }`;
      const source = new MqttSource(local, { ...init, topic: "a" });
      const sink = new MqttSink(local, { ...init, topic: "a" });
      const failures = await Promise.all([
        source.getReader().read().then(() => undefined, (e: unknown) => e),
        sink.getWriter().write("x").then(() => undefined, (e: unknown) => e),
      ]);
      for (const failure of failures) {
        assert.ok(failure instanceof MqttStreamError, `${local}: ${failure}`);
        for (const text of shown(failure)) {
          for (const piece of pieces(pw)) assert.ok(!text.includes(piece), `seed ${SEED}: ${text}`);
        }
      }
    }
  });
});
