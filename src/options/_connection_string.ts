// Gathers options from their sources (environment, connection string, options objects)
// into one map keyed by canonical option name, remembering how and where each was given
// so that errors can quote the caller's own spelling.
import { MqttOptionsError } from "../errors.ts";
import { Secret } from "../secret.ts";
import { readEnv } from "./_env.ts";
import { redactText, redactUrl } from "../_redact.ts";
import {
  brokerList,
  checkHost,
  joinBrokers,
  portProblem,
  sameSchemeAndPath,
  splitBrokers,
  whichBroker,
} from "./_brokers.ts";
import { BAHIR_ALIASES, type OptionKeys, optionKeys } from "./_keys.ts";
import type { OptionMeta, OptionName } from "./_schema.ts";

/** One option as given, before validation. */
export interface RawOption {
  value: unknown;
  /** The key as the caller spelled it. */
  spelled: string;
  from: "environment" | "url" | "object";
  /**
   * Set when the option came from a part of a connection string that may be part of a
   * password (before the string's last '@', past where a URL parser ends the user info):
   * the connection string as it may be shown. An error about it shows that, and neither
   * the option's name nor its value ({@linkcode hiddenParameterError}).
   */
  hidden?: string;
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
  const keys = optionKeys(names);
  const raw = readEnvironment(names, describe);
  const addObject = (init: GivenOptions) => {
    const { brokerUrl, ...rest } = init;
    if (Array.isArray(brokerUrl)) addUrlList(raw, brokerUrl, keys, describe);
    else if (brokerUrl !== undefined) addUrl(raw, brokerUrl, keys, describe);
    // A key given twice (`qos` and `QoS`, or an option and its alias): the later one wins.
    for (const [key, value] of Object.entries(rest)) {
      if (value !== undefined) {
        raw.set(keys.canonical(key), { value, spelled: key, from: "object" });
      }
    }
  };
  if (typeof connection === "string" || connection instanceof URL) {
    addUrl(raw, connection, keys, describe);
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

/**
 * The options set by environment variables: each option's own (`MQTT_CONNECT_ATTEMPTS`) and
 * the Bahir connector's key (`spark.mqtt.client.connect.attempts`), read under that exact
 * name where the runtime can hold it (a POSIX shell cannot export a name with dots; `env`
 * can set one). Both set to different values is an error, as an option twice in a URL is.
 */
function readEnvironment(
  names: readonly OptionName[],
  describe: Describe,
): Map<OptionName, RawOption> {
  const raw = new Map<OptionName, RawOption>();
  const read = (name: OptionName, variable: string) => {
    const value = readEnv(variable);
    if (value === undefined || value === "") return;
    const earlier = raw.get(name);
    if (earlier?.value === value) return;
    if (earlier) {
      throw new MqttOptionsError(
        variable,
        `Cannot configure MQTT as environment variables ${earlier.spelled} and ${variable} both set '${name}', to different values: current values are ${
          redactText(String(earlier.value))
        } and ${redactText(value)} (set one of them)`,
      );
    }
    raw.set(name, { value, spelled: variable, from: "environment" });
  };
  for (const name of names) {
    const env = describe(name).meta.env;
    if (env !== undefined) read(name, env);
  }
  for (const [alias, name] of Object.entries(BAHIR_ALIASES)) {
    if (names.includes(name)) read(name, alias);
  }
  return raw;
}

/** Adds the broker, the user info and every query parameter of a connection string. */
function addUrl(
  raw: Map<OptionName, RawOption>,
  connection: unknown,
  keys: OptionKeys,
  describe: Describe,
): void {
  const text = connection instanceof URL ? connection.href : connection;
  if (typeof text !== "string") throw badUrl(`<${typeof text}>`, "not a string");
  const bad = (why: string) => badUrl(redactUrl(text), why);
  // A raw '/', '?' or '#' in a password ends the authority early for a URL parser, so an
  // '@' past it (in what looks like the path, the query or the fragment) may still end the
  // user info: then nothing before that '@' (hosts, ports, parameters) is echoed, as any of
  // it may be part of the password.
  const lastAt = text.lastIndexOf("@");
  const inDoubt = lastAt >= (/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(text)?.[0].length ?? 0);
  /** An error whose reason would echo hosts or ports of the string. */
  const badHosts = (why: string) => bad(inDoubt ? MISPLACED_AT : why);
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
      throw badHosts(`${whichBroker(host, i + 1, hosts.length)}: ${checked.problem}`);
    }
    return checked.host;
  });
  const port = portProblem(base);
  const first = hosts.length > 1 ? `${whichBroker(hosts[0], 0, hosts.length)}: ` : "";
  if (port) throw badHosts(first + port);
  // A URL parser takes ws:/host and ws:host for ws://host, and so what follows for a path.
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]/.test(base)) throw bad("no scheme:// before the host");
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    // Not the parser's TypeError as a cause: its message holds the input.
    throw badHosts("it cannot be parsed");
  }
  const scheme = SCHEMES[url.protocol.slice(0, -1).toLowerCase()];
  if (!scheme) throw bad(`unknown scheme ${redactText(url.protocol)}`);
  if (!url.hostname) throw badHosts(`${first}no host`);
  // What a URL parser leaves in a host name of mqtt:// (percent signs, '!', ...) is no host
  // a resolver knows, and may be user info whose ':' and '@' were lost: not echoed.
  if (!/^(?:[\w.-]+|\[[\da-f:.]+\])$/i.test(url.hostname)) {
    if (inDoubt) throw bad(MISPLACED_AT);
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
  if (twice !== undefined) throw badHosts(`it names the broker ${twice} twice`);
  raw.set("brokerUrl", {
    value: `${scheme}://${all.join(",")}${path}`,
    spelled: "brokerUrl",
    from: "url",
    // Its hosts come from before the last '@': shown only as the string is.
    hidden: inDoubt ? redactUrl(text) : undefined,
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
  let at = q + 1;
  for (const pair of q < 0 ? [] : text.slice(q + 1).split("&")) {
    // A parameter before the last '@' may be part of a password holding a raw '?' or '&':
    // an error about it, here or once its value is checked, names neither it nor its value.
    const hidden = at < lastAt ? redactUrl(text) : undefined;
    at += pair.length + 1;
    if (pair === "") continue;
    try {
      addParameter(raw, seen, pair, { keys, describe, bad, hidden });
    } catch (error) {
      throw hidden === undefined ? error : hiddenParameterError(hidden);
    }
  }
}

/** Adds one `key=value` of a connection string's query, `hidden` if it may be part of a password. */
function addParameter(
  raw: Map<OptionName, RawOption>,
  seen: Set<OptionName>,
  pair: string,
  { keys, describe, bad, hidden }: {
    keys: OptionKeys;
    describe: Describe;
    /** The error about the connection string, for `why`. */
    bad: (why: string) => MqttOptionsError;
    hidden: string | undefined;
  },
): void {
  const eq = pair.indexOf("=");
  const rawKey = eq < 0 ? pair : pair.slice(0, eq);
  if (rawKey.includes("@")) throw bad(MISPLACED_AT);
  const key = percentDecode(rawKey, "a parameter name", keys.show);
  const name = keys.canonical(key);
  const value = percentDecode(
    eq < 0 ? "" : pair.slice(eq + 1),
    key,
    describe(name).meta.secret ? () => "***" : redactText,
  );
  if (name === "brokerUrl") throw bad("brokerUrl cannot be a parameter of itself");
  const earlier = seen.has(name) ? raw.get(name)! : undefined;
  if (describe(name).meta.repeat) {
    const previous = earlier ? earlier.value as string[] : [];
    raw.set(name, {
      value: [...previous, value],
      spelled: key,
      from: "url",
      hidden: earlier?.hidden ?? hidden,
    });
  } else if (earlier) {
    if (earlier.hidden !== undefined) throw hiddenParameterError(earlier.hidden);
    // The same option under another name (an alias) says so: the two need not look alike.
    const also = earlier.spelled.toLowerCase() === key.toLowerCase()
      ? ""
      : ` (first as '${earlier.spelled}')`;
    throw new MqttOptionsError(
      key,
      `Cannot configure MQTT as '${key}' appears twice in the URL${also}; only topic may repeat`,
    );
  } else {
    raw.set(name, { value, spelled: key, from: "url", hidden });
  }
  seen.add(name);
}

/**
 * `brokerUrl` given as a list of connection strings with one broker each: their brokers
 * become one list, and their other options (user info, query) one set, which must agree
 * where two of them give the same option.
 */
function addUrlList(
  raw: Map<OptionName, RawOption>,
  list: readonly unknown[],
  keys: OptionKeys,
  describe: Describe,
): void {
  if (list.length === 0) throw badUrl("[]", "an empty list names no broker");
  const merged = new Map<OptionName, RawOption & { element: number }>();
  const urls: string[] = [];
  // Each element as an error may show it: its broker, or the string if that may hide a password.
  const shown: string[] = [];
  for (const [i, one] of list.entries()) {
    const part = new Map<OptionName, RawOption>();
    addUrl(part, one, keys, describe);
    const broker = part.get("brokerUrl")!;
    const url = broker.value as string;
    shown.push(broker.hidden ?? redactUrl(url));
    if (brokerList(url).length > 1) {
      throw badUrl(
        shown[i],
        `element ${
          i + 1
        } of the list names several brokers; give one broker a string, or all of them in one string`,
      );
    }
    if (urls.length > 0 && !sameSchemeAndPath(urls[0], url)) {
      throw badUrl(
        `${shown[0]} and ${shown[i]}`,
        "the brokers of one connection share one scheme and one path",
      );
    }
    urls.push(url);
    for (const [name, option] of part) {
      if (name === "brokerUrl") continue;
      const earlier = merged.get(name);
      if (earlier && !sameValue(earlier.value, option.value)) {
        const hidden = earlier.hidden ?? option.hidden;
        if (hidden !== undefined) throw hiddenParameterError(hidden);
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
  const twice = urls.findIndex((url, i) => urls.indexOf(url) !== i);
  const hidden = shown.some((text, i) => text !== redactUrl(urls[i]))
    ? shown.join(", ")
    : undefined;
  if (twice >= 0) {
    throw badUrl(hidden ?? redactUrl(joined), `it names the broker ${shown[twice]} twice`);
  }
  raw.set("brokerUrl", { value: joined, spelled: "brokerUrl", from: "object", hidden });
  for (const [name, { element: _, ...option }] of merged) raw.set(name, option);
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

/**
 * The error about a parameter that may be part of a password (`mqtt://user:pa?ss=x@host`):
 * it names the URL as `shown` (redacted), and neither the parameter nor its value.
 */
export function hiddenParameterError(shown: string): MqttOptionsError {
  return badUrl(
    shown,
    "a parameter before the last '@' is not valid, and is not shown, as it may be part of a password: in a user name or password write '/' as %2F, '?' as %3F, '&' as %26, '#' as %23 and '@' as %40, and in a parameter's value write '@' as %40",
  );
}

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
