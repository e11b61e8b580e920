// Where an MQTT 5 redirection (§4.11: CONNACK or DISCONNECT 0x9C Use another server / 0x9D
// Server moved, with a Server Reference) may send the client. The next attempt carries the
// credentials there, so `redirect` decides: by default (list) only to a broker named in the
// connection string, so that one compromised or misconfigured node cannot send them to a
// host the user did not name (a certificate check would not stop it: any host with a
// certificate from a trusted CA passes); anywhere with any; nowhere with off. A redirection
// refused is a failed attempt on the broker that sent it, whose error names the reference
// (never a credential) and the option to change.
// This module is browser compatible.
import type { Packet } from "mqtt";
import type { MqttOptions } from "../options/options.ts";
import { brokerAddress, HOST_PORT } from "../options/_brokers.ts";
import { redactText } from "../_redact.ts";

/**
 * A redirection (MQTT 5 §4.11) that `redirect` does not allow, or that names no broker: the
 * failure of the attempt on the broker that sent it. Its message is the reason, in words.
 */
export class RedirectRefused extends Error {}

/** A CONNACK or DISCONNECT that sends the client elsewhere, from {@linkcode redirection}. */
export interface Redirection {
  /** The Server Reference: `host[:port]`, or several separated by spaces. */
  reference: string;
  /** What sent it: "CONNACK 0x9C Use another server". */
  packet: string;
}

/**
 * The Server Reference of a CONNACK or DISCONNECT that sends the client elsewhere (MQTT 5
 * §4.11: 0x9C Use another server, 0x9D Server moved), if it is one.
 */
export function redirection(packet: Packet): Redirection | undefined {
  if (packet.cmd !== "connack" && packet.cmd !== "disconnect") return undefined;
  const code = packet.reasonCode;
  if (code !== 0x9c && code !== 0x9d) return undefined;
  const reference = packet.properties?.serverReference;
  if (reference === undefined) return undefined;
  const name = code === 0x9c ? "Use another server" : "Server moved";
  return {
    reference,
    packet: `${packet.cmd.toUpperCase()} 0x${code.toString(16).toUpperCase()} ${name}`,
  };
}

/**
 * Where a redirection from the broker `from` sends the next attempt, as `redirect` allows:
 * the first reference of the Server Reference (MQTT 5 §4.11: space-separated, each `host`,
 * `host:port` or `[IPv6]:port`) that may be followed, as a broker URL of this connection's
 * scheme and path; or why none may. With redirect=list, a reference is followed only to a
 * broker of `options.brokers`, compared by host (case-insensitive, IPv6 without brackets)
 * and port (the scheme's default where none is given), never by what a name resolves to;
 * the attempt then goes to that broker as the connection string names it.
 */
export function redirectTarget(
  { reference, packet }: Redirection,
  from: string,
  options: Pick<MqttOptions, "redirect" | "brokers" | "password">,
): string | RedirectRefused {
  const shown = showReference(reference, options);
  const sent = `the broker sent the client to ${shown} (${packet})`;
  if (options.redirect === "off") {
    return new RedirectRefused(
      `${sent}, and redirect=off follows no redirection: set redirect=list to follow one to a broker of the connection string, or redirect=any to follow any`,
    );
  }
  const current = new URL(from);
  const path = current.pathname === "/" ? "" : current.pathname;
  const candidates = reference.trim().split(/\s+/).filter((r) => HOST_PORT.test(r));
  for (const candidate of candidates) {
    const url = `${current.protocol}//${candidate}${path}`;
    const address = addressOf(url);
    if (address === undefined) continue;
    if (options.redirect === "any") return url;
    const listed = options.brokers.find((broker) => sameAddress(addressOf(broker), address));
    if (listed !== undefined) return listed;
  }
  if (candidates.length === 0) {
    return new RedirectRefused(
      `${sent}, a Server Reference that names no host[:port] to go to`,
    );
  }
  return new RedirectRefused(
    `${sent}, a broker the connection string does not name: with redirect=list (the default) a redirection, which takes the credentials along, goes only to a broker of the connection string; add that broker to it, or set redirect=any to follow any`,
  );
}

/** Host (lower case, IPv6 without brackets) and port of a one-broker URL; undefined if it does not parse. */
function addressOf(url: string): { hostname: string; port: number } | undefined {
  try {
    const { hostname, port } = brokerAddress(url);
    return { hostname: hostname.toLowerCase(), port };
  } catch {
    return undefined;
  }
}

function sameAddress(
  a: { hostname: string; port: number } | undefined,
  b: { hostname: string; port: number },
): boolean {
  return a !== undefined && a.hostname === b.hostname && a.port === b.port;
}

/**
 * A Server Reference as a message may show it: it comes from the broker, which was sent the
 * password, so nothing of it that may hold a credential is echoed (user info, the password
 * itself), and it is cut and escaped like any echoed text.
 */
function showReference(reference: string, options: Pick<MqttOptions, "password">): string {
  const password = options.password?.reveal();
  if (password && reference.includes(password)) return "a Server Reference holding the password";
  return `'${redactText(reference.trim())}'`;
}
