// Gathers options from their sources (environment, connection string, options objects)
// into one map keyed by canonical option name, remembering how and where each was given
// so that errors can quote the caller's own spelling.
import { MqttOptionsError } from "./errors.ts";
import { Secret } from "./secret.ts";
import { readEnv } from "./_env.ts";
import { redactText, redactUrl } from "./_redact.ts";
import {
  brokerList,
  checkHost,
  joinBrokers,
  portProblem,
  sameSchemeAndPath,
  splitBrokers,
  whichBroker,
} from "./_brokers.ts";
import type { OptionMeta, OptionName } from "./_option_schema.ts";

/** One option as given, before validation. */
export interface RawOption {
  value: unknown;
  /** The key as the caller spelled it. */
  spelled: string;
  from: "environment" | "url" | "object";
}

type Describe = (name: OptionName) => { meta: OptionMeta };

/** Options as a caller writes them (options.ts's MqttOptionsInit, checked by the schema). */
type GivenOptions = { readonly [key: string]: unknown };

const SCHEMES: Record<string, string> = {
  mqtt: "mqtt",
  tcp: "mqtt",
  mqtts: "mqtts",
  ssl: "mqtts",
  ws: "ws",
  wss: "wss",
};

/** Collects every option from the environment, `connection` and `overrides`. */
export function collectOptions(
  connection: string | URL | GivenOptions,
  overrides: GivenOptions | undefined,
  names: readonly OptionName[],
  describe: Describe,
): Map<OptionName, RawOption> {
  const byLowerCase = new Map(names.map((n) => [n.toLowerCase(), n]));
  const raw = new Map<OptionName, RawOption>();
  for (const name of names) {
    const env = describe(name).meta.env;
    const value = env === undefined ? undefined : readEnv(env);
    if (value !== undefined && value !== "") {
      raw.set(name, { value, spelled: env!, from: "environment" });
    }
  }
  // A name that is not an option's may be a password parameter that lost its '='
  // (`passwordhunter2`): redacted like any value and, unless it is a typo of an option's
  // name or of plain characters, shown only as far as it matches one.
  const showKey = (key: string, typo = false) =>
    typo || /^[\w.-]*$/.test(key)
      ? redactText(key)
      : `${redactText(key.slice(0, commonPrefix(key.toLowerCase(), [...byLowerCase.keys()])))}…`;
  const canonical = (key: string): OptionName => {
    const name = byLowerCase.get(key.toLowerCase());
    if (name) return name;
    const near = nearest(key.toLowerCase(), [...byLowerCase.keys()]);
    // A typo has about the length of the name it misspells; more may be a glued value.
    const shown = showKey(key, near !== undefined && key.length <= near.length + 2);
    throw new MqttOptionsError(
      shown,
      `Cannot configure MQTT as '${shown}' is not an option${
        near ? ` (did you mean '${byLowerCase.get(near)}'?)` : ""
      }`,
    );
  };
  const addObject = (init: GivenOptions) => {
    const { brokerUrl, ...rest } = init;
    if (Array.isArray(brokerUrl)) addUrlList(raw, brokerUrl, canonical, describe, showKey);
    else if (brokerUrl !== undefined) addUrl(raw, brokerUrl, canonical, describe, showKey);
    for (const [key, value] of Object.entries(rest)) {
      if (value !== undefined) raw.set(canonical(key), { value, spelled: key, from: "object" });
    }
  };
  if (typeof connection === "string" || connection instanceof URL) {
    addUrl(raw, connection, canonical, describe, showKey);
  } else addObject(connection);
  if (overrides) addObject(overrides);
  if (!raw.has("brokerUrl")) {
    throw new MqttOptionsError(
      "brokerUrl",
      "Cannot configure MQTT as 'brokerUrl' must be a URL such as mqtt://host:1883: current value is missing",
    );
  }
  return raw;
}

/** Adds the broker, the user info and every query parameter of a connection string. */
function addUrl(
  raw: Map<OptionName, RawOption>,
  connection: unknown,
  canonical: (key: string) => OptionName,
  describe: Describe,
  showKey: (key: string) => string,
): void {
  const text = connection instanceof URL ? connection.href : connection;
  if (typeof text !== "string") throw badUrl(`<${typeof text}>`, "not a string");
  const bad = (why: string) => badUrl(redactUrl(text), why);
  // The query is split by hand: URLSearchParams would turn '+' into a space and a URL
  // parser would take an unencoded '#' for a fragment, and both are topic wildcards.
  const q = text.indexOf("?");
  // Several brokers (`mqtt://u:p@node1:1883,node2:1883`), as PostgreSQL and MongoDB URIs
  // write them, are no URL a parser takes: each host is checked alone, and the rest of
  // the string with the first host alone.
  const { base, hosts } = splitBrokers(q < 0 ? text : text.slice(0, q));
  const others = hosts.slice(1).map((host, i) => {
    const checked = checkHost(base.slice(0, base.indexOf(":")), host);
    if ("problem" in checked) {
      throw bad(`${whichBroker(host, i + 1, hosts.length)}: ${checked.problem}`);
    }
    return checked.host;
  });
  const port = portProblem(base);
  const first = hosts.length > 1 ? `${whichBroker(hosts[0], 0, hosts.length)}: ` : "";
  if (port) throw bad(first + port);
  // A URL parser takes ws:/host and ws:host for ws://host, and so what follows for a path.
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]/.test(base)) throw bad("no scheme:// before the host");
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    // Not the parser's TypeError as a cause: its message holds the input.
    throw bad("it cannot be parsed");
  }
  const scheme = SCHEMES[url.protocol.slice(0, -1).toLowerCase()];
  if (!scheme) throw bad(`unknown scheme ${redactText(url.protocol)}`);
  if (!url.hostname) throw bad(`${first}no host`);
  // What a URL parser leaves in a host name of mqtt:// (percent signs, '!', ...) is no host
  // a resolver knows, and may be user info whose ':' and '@' were lost: not echoed.
  if (!/^(?:[\w.-]+|\[[\da-f:.]+\])$/i.test(url.hostname)) {
    throw badUrl(
      `${url.protocol}//…`,
      "its host name may only hold letters, digits, '.', '-' and '_' (write an internationalized name in its xn-- form)",
    );
  }
  // A '/', '?' or '#' in a password ends the authority early, leaving the rest of the user
  // info (and its '@') in the path, the fragment or the query.
  if (url.pathname.includes("@") || url.hash.includes("@")) throw bad(MISPLACED_AT);
  if (url.hash) throw bad("a '#' before the query; write a topic's '#' as %23");
  const path = url.pathname === "/" ? "" : url.pathname;
  // Likewise a lost '?' leaves the query, passwords and all, in a WebSocket URL's path,
  // and a lost '@' with a '/' (or a '\\', which a URL parser reads as '/') before it leaves
  // `user:password` there.
  if (/[=&]/.test(path)) throw bad(MISPLACED_QUERY);
  if (path.includes(":") || base.includes("\\")) throw bad(MISPLACED_USER_INFO);
  if (path && (scheme === "mqtt" || scheme === "mqtts")) {
    throw bad(`a path means nothing to ${url.protocol}//; paths are for ws:// and wss://`);
  }
  const all = [url.host, ...others];
  const twice = all.find((host, i) => all.indexOf(host) !== i);
  if (twice !== undefined) throw bad(`it names the broker ${twice} twice`);
  raw.set("brokerUrl", {
    value: `${scheme}://${all.join(",")}${path}`,
    spelled: "brokerUrl",
    from: "url",
  });
  // The user info is never echoed, the user name included: a malformed string can move
  // part of the password into it.
  if (url.username) {
    raw.set("username", {
      value: percentDecode(url.username, "username", () => "***"),
      spelled: "username",
      from: "url",
    });
  }
  if (url.password) {
    raw.set("password", {
      value: new Secret(percentDecode(url.password, "password", () => "***")),
      spelled: "password",
      from: "url",
    });
  }
  const seen = new Set<OptionName>();
  for (const pair of q < 0 ? [] : text.slice(q + 1).split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    if (rawKey.includes("@")) throw bad(MISPLACED_AT);
    const key = percentDecode(rawKey, "a parameter name", showKey);
    const name = canonical(key);
    const value = percentDecode(
      eq < 0 ? "" : pair.slice(eq + 1),
      key,
      describe(name).meta.secret ? () => "***" : redactText,
    );
    if (name === "brokerUrl") throw bad("brokerUrl cannot be a parameter of itself");
    if (describe(name).meta.repeat) {
      const previous = seen.has(name) ? raw.get(name)!.value as string[] : [];
      raw.set(name, { value: [...previous, value], spelled: key, from: "url" });
    } else if (seen.has(name)) {
      throw new MqttOptionsError(
        key,
        `Cannot configure MQTT as '${key}' appears twice in the URL; only topic may repeat`,
      );
    } else {
      raw.set(name, { value, spelled: key, from: "url" });
    }
    seen.add(name);
  }
}

/**
 * `brokerUrl` given as a list of connection strings with one broker each: their brokers
 * become one list, and their other options (user info, query) one set, which must agree
 * where two of them give the same option.
 */
function addUrlList(
  raw: Map<OptionName, RawOption>,
  list: readonly unknown[],
  canonical: (key: string) => OptionName,
  describe: Describe,
  showKey: (key: string) => string,
): void {
  if (list.length === 0) throw badUrl("[]", "an empty list names no broker");
  const merged = new Map<OptionName, RawOption & { element: number }>();
  const urls: string[] = [];
  for (const [i, one] of list.entries()) {
    const part = new Map<OptionName, RawOption>();
    addUrl(part, one, canonical, describe, showKey);
    const url = part.get("brokerUrl")!.value as string;
    if (brokerList(url).length > 1) {
      throw badUrl(
        redactUrl(url),
        `element ${
          i + 1
        } of the list names several brokers; give one broker a string, or all of them in one string`,
      );
    }
    if (urls.length > 0 && !sameSchemeAndPath(urls[0], url)) {
      throw badUrl(
        `${redactUrl(urls[0])} and ${redactUrl(url)}`,
        "the brokers of one connection share one scheme and one path",
      );
    }
    urls.push(url);
    for (const [name, option] of part) {
      if (name === "brokerUrl") continue;
      const earlier = merged.get(name);
      if (earlier && !sameValue(earlier.value, option.value)) {
        throw new MqttOptionsError(
          "brokerUrl",
          `Cannot configure MQTT as the brokers of 'brokerUrl' must share one set of options: elements ${
            earlier.element + 1
          } and ${i + 1} give different values of '${name}'`,
        );
      }
      merged.set(name, { ...option, element: i });
    }
  }
  const joined = joinBrokers(urls);
  const twice = urls.find((url, i) => urls.indexOf(url) !== i);
  if (twice !== undefined) {
    throw badUrl(redactUrl(joined), `it names the broker ${redactUrl(twice)} twice`);
  }
  raw.set("brokerUrl", { value: joined, spelled: "brokerUrl", from: "object" });
  for (const [name, { value, spelled, from }] of merged) raw.set(name, { value, spelled, from });
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Secret && b instanceof Secret) return a.reveal() === b.reveal();
  return JSON.stringify(a) === JSON.stringify(b);
}

const MISPLACED_AT =
  "an '@' after the host; in a user name or password write '/' as %2F, '?' as %3F, '#' as %23 and '@' as %40";

const MISPLACED_USER_INFO =
  "a ':' in the path or a '\\' in the URL, as if user info had lost its '@'; write them as %3A and %5C if they belong to the path";

const MISPLACED_QUERY =
  "an '=' or '&' in the path, as if the '?' before the query were missing; write them as %3D and %26 if they belong to the path";

function badUrl(shown: string, why: string): MqttOptionsError {
  return new MqttOptionsError(
    "brokerUrl",
    `Cannot configure MQTT as 'brokerUrl' must be a URL such as mqtt://host:1883 (schemes mqtt, tcp, mqtts, ssl, ws, wss): current value is ${shown} (${why})`,
  );
}

/** Percent-decodes `text`, the value of `what`; an error shows it as `show` makes it. */
function percentDecode(text: string, what: string, show: (text: string) => string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new MqttOptionsError(
      what,
      `Cannot configure MQTT as '${what}' must be percent-encoded correctly: current value is ${
        show(text)
      }`,
    );
  }
}

/** The length of the longest start `word` shares with a candidate. */
function commonPrefix(word: string, candidates: string[]): number {
  let longest = 0;
  for (const candidate of candidates) {
    let n = 0;
    while (n < word.length && word[n] === candidate[n]) n++;
    longest = Math.max(longest, n);
  }
  return longest;
}

/** The candidate nearest to `word` by edit distance, if it is near enough to be a typo. */
function nearest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}
