// The hosts of a connection string: one broker or several of one cluster
// (`mqtt://user:pw@node1:1883,node2,[::1]:1885`, as PostgreSQL and MongoDB URIs write them),
// checked host by host, since no URL parser takes a list of hosts.
// This module is browser compatible.

/**
 * The brokers of a validated `brokerUrl` (`mqtt://node1:1883,node2:1883/path`), one URL
 * each (`mqtt://node1:1883/path`), in order.
 */
export function brokerList(brokerUrl: string): string[] {
  const { scheme, hosts, path } = brokerParts(brokerUrl);
  return hosts.map((host) => `${scheme}//${host}${path}`);
}

/** The port each scheme listens on unless a broker's URL names one (mqtt.js's defaults). */
const DEFAULT_PORTS: Record<string, number> = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 };

/**
 * The host (an IPv6 address without its brackets) and port that a one-broker URL points at:
 * its scheme's port when it names none.
 */
export function brokerAddress(broker: string): { hostname: string; port: number } {
  const url = new URL(broker);
  return {
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port ? Number(url.port) : DEFAULT_PORTS[url.protocol.slice(0, -1)],
  };
}

/** One `brokerUrl` naming every broker of `urls` (each a validated one-broker URL). */
export function joinBrokers(urls: readonly string[]): string {
  const { scheme, path } = brokerParts(urls[0]);
  return `${scheme}//${urls.map((url) => brokerParts(url).hosts[0]).join(",")}${path}`;
}

/** Whether two validated one-broker URLs share their scheme and path, as brokers of one connection must. */
export function sameSchemeAndPath(a: string, b: string): boolean {
  const [x, y] = [brokerParts(a), brokerParts(b)];
  return x.scheme === y.scheme && x.path === y.path;
}

/** A validated brokerUrl's scheme (`mqtt:`), hosts and path (hosts hold no '/'). */
function brokerParts(brokerUrl: string): { scheme: string; hosts: string[]; path: string } {
  const colon = brokerUrl.indexOf("://");
  const rest = brokerUrl.slice(colon + 3);
  const slash = rest.indexOf("/");
  return {
    scheme: brokerUrl.slice(0, colon + 1),
    hosts: (slash < 0 ? rest : rest.slice(0, slash)).split(","),
    path: slash < 0 ? "" : rest.slice(slash),
  };
}

/**
 * A connection string without its query, split into its hosts and the same string with
 * the first host alone: `mqtt://u@a:1,b:2/p` gives `mqtt://u@a:1/p` and `[a:1, b:2]`.
 */
export function splitBrokers(base: string): { base: string; hosts: string[] } {
  const head = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(base);
  if (!head) return { base, hosts: [] };
  const authority = head[1];
  const list = authority.slice(authority.lastIndexOf("@") + 1);
  if (!list.includes(",")) return { base, hosts: [list] };
  const hosts = list.split(",");
  const single = head[0].slice(0, head[0].length - list.length) + hosts[0];
  return { base: single + base.slice(head[0].length), hosts };
}

/** One host of several, `host[:port]`, checked and normalized as a URL parser would for `scheme`. */
export function checkHost(scheme: string, host: string): { host: string } | { problem: string } {
  if (host === "") return { problem: "no host" };
  const port = portProblem(`mqtt://${host}`);
  if (port) return { problem: port };
  if (!HOST_PORT.test(host)) {
    return {
      problem:
        "a host name may only hold letters, digits, '.', '-' and '_' (write an internationalized name in its xn-- form), and an IPv6 address goes in brackets",
    };
  }
  try {
    return { host: new URL(`${scheme}://${host}`).host };
  } catch {
    return { problem: "it cannot be parsed" };
  }
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`: what a host of several may look like. */
export const HOST_PORT = /^(?:[\w.-]+|\[[\da-f:.]+\])(?::\d{1,5})?$/i;

/** "broker 2 of 3 (node2:1883)": which of several brokers; its host only if it looks like one. */
export function whichBroker(host: string, index: number, count: number): string {
  return `broker ${index + 1} of ${count}${HOST_PORT.test(host) ? ` (${host})` : ""}`;
}

/**
 * What is wrong with the port of `base` (a connection string without its query), if
 * anything: a URL parser would only say it cannot parse it, and would take port 0 for the
 * scheme's default.
 */
export function portProblem(base: string): string | undefined {
  const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(base)?.[1];
  if (authority === undefined) return undefined;
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1);
  const port = /^(?:\[[^\]]*\]|[^:[\]]*):(-?\d+)$/.exec(hostPort)?.[1];
  if (port === undefined) return undefined;
  if (Number(port) >= 1 && Number(port) <= 65535) return undefined;
  // Only a port's few digits are echoed: anything else after the ':', more digits included,
  // may be a password whose '@' was lost.
  return `the port must be from 1 to 65535, not ${
    port.replace("-", "").length <= 5 ? port : `a number of ${port.length} characters`
  }`;
}
