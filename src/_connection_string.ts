// Gathers options from their sources (environment, connection string, options objects)
// into one map keyed by canonical option name, remembering how and where each was given
// so that errors can quote the caller's own spelling.
import { MqttOptionsError } from "./errors.ts";
import { Secret } from "./secret.ts";
import { readEnv } from "./_env.ts";
import type { MqttConnection, MqttOptionsInit } from "./options.ts";
import type { OptionMeta, OptionName } from "./_option_schema.ts";

/** One option as given, before validation. */
export interface RawOption {
  value: unknown;
  /** The key as the caller spelled it. */
  spelled: string;
  from: "environment" | "url" | "object";
}

type Describe = (name: OptionName) => { meta: OptionMeta };

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
  connection: MqttConnection,
  overrides: MqttOptionsInit | undefined,
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
  const canonical = (key: string): OptionName => {
    const name = byLowerCase.get(key.toLowerCase());
    if (name) return name;
    const near = nearest(key.toLowerCase(), [...byLowerCase.keys()]);
    throw new MqttOptionsError(
      key,
      `Cannot configure MQTT as '${key}' is not an option${
        near ? ` (did you mean '${byLowerCase.get(near)}'?)` : ""
      }`,
    );
  };
  const addObject = (init: MqttOptionsInit) => {
    const { brokerUrl, ...rest } = init as Record<string, unknown>;
    if (brokerUrl !== undefined) addUrl(raw, brokerUrl, canonical, describe);
    for (const [key, value] of Object.entries(rest)) {
      if (value !== undefined) raw.set(canonical(key), { value, spelled: key, from: "object" });
    }
  };
  if (typeof connection === "string" || connection instanceof URL) {
    addUrl(raw, connection, canonical, describe);
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
): void {
  const text = connection instanceof URL ? connection.href : connection;
  const badUrl = (why: string) =>
    new MqttOptionsError(
      "brokerUrl",
      `Cannot configure MQTT as 'brokerUrl' must be a URL such as mqtt://host:1883 (schemes mqtt, tcp, mqtts, ssl, ws, wss): current value is ${
        typeof text === "string" ? redactUrl(text) : String(text)
      } (${why})`,
    );
  if (typeof text !== "string") throw badUrl("not a string");
  // The query is split by hand: URLSearchParams would turn '+' into a space and a URL
  // parser would take an unencoded '#' for a fragment, and both are topic wildcards.
  const q = text.indexOf("?");
  let url: URL;
  try {
    url = new URL(q < 0 ? text : text.slice(0, q));
  } catch {
    throw badUrl("it cannot be parsed");
  }
  const scheme = SCHEMES[url.protocol.slice(0, -1).toLowerCase()];
  if (!scheme) throw badUrl(`unknown scheme ${url.protocol}`);
  if (!url.hostname) throw badUrl("no host");
  if (url.hash) throw badUrl("a '#' before the query; write a topic's '#' as %23");
  const path = url.pathname === "/" ? "" : url.pathname;
  if (path && (scheme === "mqtt" || scheme === "mqtts")) {
    throw badUrl(
      `a path (${path}) means nothing to ${url.protocol}//; paths are for ws:// and wss://`,
    );
  }
  raw.set("brokerUrl", {
    value: `${scheme}://${url.host}${path}`,
    spelled: "brokerUrl",
    from: "url",
  });
  if (url.username) {
    raw.set("username", {
      value: decode(url.username, "username"),
      spelled: "username",
      from: "url",
    });
  }
  if (url.password) {
    raw.set("password", {
      value: new Secret(decode(url.password, "password")),
      spelled: "password",
      from: "url",
    });
  }
  const seen = new Set<OptionName>();
  for (const pair of q < 0 ? [] : text.slice(q + 1).split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = decode(eq < 0 ? pair : pair.slice(0, eq), "a parameter name");
    const name = canonical(key);
    const value = decode(eq < 0 ? "" : pair.slice(eq + 1), key, describe(name).meta.secret);
    if (name === "brokerUrl") throw badUrl("brokerUrl cannot be a parameter of itself");
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

function decode(text: string, what: string, secret = false): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new MqttOptionsError(
      what,
      `Cannot configure MQTT as '${what}' must be percent-encoded correctly: current value is ${
        secret ? "***" : text
      }`,
    );
  }
}

/** A URL with the password of its user info replaced by ***. */
function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*:)[^/?#@]*@/i, "$1***@");
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
