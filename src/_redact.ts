// What an error message or a CLI line may echo of a value the caller gave. Every echo of
// caller input goes through here, because a malformed connection string cannot be trusted
// to keep its password where a URL parser would find it: a '/', '?' or '#' in it moves the
// end of the user info, a missing '@' glues it to the host, a missing '&' glues a
// 'password=' parameter to the one before. So redaction works on the raw text, and leans
// towards hiding too much.
import { Secret } from "./secret.ts";

/** Echoed values longer than this are cut, saying how much was left out. */
export const MAX_SHOWN = 200;

const HIDDEN = "***";
const SCHEME_SLASHES = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
// A PEM block, or what follows a BEGIN line whose END is missing.
const PEM_BLOCK = /-----BEGIN[\s\S]*?(?:-----END[^\n]*?-----|$)/g;
// `password`, `ssl.key.password`, `ssl.trust.store.password`, ... and whatever follows up to
// the next parameter: `password=x`, but also `passwordx` after a lost '=', and a mangled
// name that still starts like one (`ssl.key.passordx`).
const PASSWORD_PARAM = /(password|(?:^|[.&=])pas)([^&]*)/gi;
// An '=' inside a value: a lost '&' (or a '&' typed into a name) glued the next parameter,
// perhaps a password, onto this one, so what follows it is not shown.
const GLUED_PARAM = /=[^&]+/g;
// Control characters and lone surrogates: shown as escapes, so that the message stays one
// readable line and is itself well-formed.
const UNPRINTABLE = /\p{Cc}|\p{Cs}/gu;

/**
 * Any text a caller gave (an option's value, a parameter's name), as it may be echoed:
 * user info up to the last '@' hidden, `*password` parameters hidden, PEM blocks hidden,
 * unprintable characters escaped, and at most {@linkcode MAX_SHOWN} characters.
 */
export function redactText(text: string): string {
  return cut(escape(hideParams(hideUserInfo(hidePem(text)))));
}

/**
 * A connection string, as it may be echoed. Only what is recognizably safe is shown: the
 * scheme, `***@` for everything up to the last '@' of the whole string, a host and port that
 * look like one, and a path of plain characters. Anything else is `***` or `/…`, and the
 * query is left out (`?…`). The last '@' of the whole string, not of what looks like the
 * authority: a raw '?', '/' or '#' in a password ends the authority early for a URL
 * parser, so an '@' in what looks like the query or the path may end the user info.
 * Public as `redactConnectionString` (the command line echoes its arguments with it).
 *
 * @param text A connection string as given, well-formed or not.
 * @returns What of it may be logged or shown.
 *
 * @example Log which broker a pipeline uses, never its password
 * ```ts
 * import { redactConnectionString } from "@mqtt-streams/core";
 *
 * const url = "mqtts://ingest:s3cret@broker.example:8883?topic=plant/%23&password=x";
 * console.log(`connecting to ${redactConnectionString(url)}`);
 * // connecting to mqtts://***@broker.example:8883?…
 * ```
 */
export function redactUrl(text: string): string {
  const scheme = SCHEME_SLASHES.exec(text)?.[0] ?? "";
  const at = text.lastIndexOf("@");
  const rest = text.slice(Math.max(scheme.length, at + 1));
  const q = rest.indexOf("?");
  const base = q < 0 ? rest : rest.slice(0, q);
  const slash = base.indexOf("/");
  const authority = slash < 0 ? base : base.slice(0, slash);
  const path = slash < 0 ? "" : base.slice(slash);
  return cut(escape(
    scheme + (at < 0 ? "" : `${HIDDEN}@`) + showAuthority(authority) +
      (/^[\w.~/-]*$/.test(path) ? path : "/…") + (q < 0 ? "" : "?…"),
  ));
}

/**
 * `host:port` as given if it looks like one, else as much of the host as does, then ***;
 * a list of brokers (`host1:port,host2:port`) host by host.
 */
function showAuthority(authority: string): string {
  if (authority.includes(",")) return authority.split(",").map(showAuthority).join(",");
  const host = /^(?:\[[\da-f:.]*\]|[\w.-]*)/i.exec(authority)![0];
  const after = authority.slice(host.length);
  // A port has at most five digits; more may be a password whose '@' was lost.
  if (/^(?::-?\d{0,5})?$/.test(after)) return authority;
  return after.startsWith(":") ? `${host}:${HIDDEN}` : HIDDEN;
}

/**
 * A value of an option, as an error message shows it: secrets as `***`, bytes as their
 * length, strings redacted and cut, lists item by item.
 */
export function showValue(value: unknown, secret = false): string {
  if (secret || value instanceof Secret) return HIDDEN;
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  if (typeof value === "string") return value === "" ? '""' : redactText(value);
  if (Array.isArray(value)) return cut(value.map((item) => showValue(item)).join(", "));
  if (value === null || typeof value !== "object") return String(value);
  // An object may hold anything; its type is enough to say it is not what was expected.
  return `<${value.constructor?.name ?? "object"}>`;
}

/**
 * A file path given for a TLS option, as it may be echoed, or undefined when it may be key
 * or certificate text rather than a path (text without a PEM header: base64, several
 * lines), which is never echoed.
 */
export function showPath(value: string): string | undefined {
  const keyLike = value.includes("-----") || /[\s\p{Cc}]/u.test(value) ||
    /^[A-Za-z0-9+/=]{32,}$/.test(value) || value.length > 1024;
  return keyLike ? undefined : redactText(value);
}

function hidePem(text: string): string {
  return text.replace(PEM_BLOCK, "<PEM block>");
}

/** Hides everything from the start of the authority up to the last '@'. */
function hideUserInfo(text: string): string {
  const at = text.lastIndexOf("@");
  if (at < 0) return text;
  const scheme = SCHEME_SLASHES.exec(text)?.[0] ?? "";
  return (scheme.length <= at ? scheme : "") + HIDDEN + text.slice(at);
}

function hideParams(text: string): string {
  return text.replace(PASSWORD_PARAM, (_, name: string, rest: string) => {
    // The name alone (`ssl.key.password`) holds nothing.
    if (rest === "" || (/pas$/i.test(name) && /^sword$/i.test(rest))) return name + rest;
    return `${name}${rest.startsWith("=") ? "=" : ""}${HIDDEN}`;
  }).replace(GLUED_PARAM, `=${HIDDEN}`);
}

function escape(text: string): string {
  return text.replace(
    UNPRINTABLE,
    (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`,
  );
}

/** At most MAX_SHOWN characters (a surrogate pair is not split), saying how many were cut. */
function cut(text: string, max = MAX_SHOWN): string {
  if (text.length <= max) return text;
  const end = /[\uD800-\uDBFF]/.test(text[max - 1]) ? max - 1 : max;
  return `${text.slice(0, end)}… (${text.length - end} more characters not shown)`;
}
