// Runtime-specific: ws:// and wss:// over the runtime's own WebSocket (Deno, Bun, Node 22+)
// rather than the `ws` package mqtt.js picks outside browsers. Under Deno, mqtt.js over
// the `ws` package sends the first frame of CONNECT and then nothing (seen with Deno 2.9
// and ws 8.23); the runtime's WebSocket works everywhere it exists. Loaded with import()
// only for a WebSocket URL, since it reaches into mqtt.js's node build, which a browser
// bundle does not need: there mqtt.js's browser build uses the native WebSocket itself.
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { browserStreamBuilder } from "mqtt/lib/connect/ws";
import { MqttOptionsError } from "../../errors.ts";

/** The TLS options mqtt.js would hand to the `ws` package, and where they come from. */
const TLS_OPTIONS: Record<string, string> = {
  ca: "ssl.ca / ssl.trust.store",
  cert: "ssl.cert / ssl.key.store",
  key: "ssl.key / ssl.key.store",
  pfx: "ssl.key.store",
  minVersion: "ssl.protocol",
  ciphers: "ssl.ciphers",
  rejectUnauthorized: "ssl.verify",
  servername: "ssl.servername",
};

/** Bun's WebSocket takes TLS options as a second-argument field, beside the protocols. */
interface BunWebSocketInit {
  protocols: string[];
  tls: Record<string, unknown>;
}

/**
 * An mqtt.js client (not yet connected: `manualConnect`) whose transport is the runtime's
 * own WebSocket. `options` are mqtt.js's client options, TLS ones included.
 *
 * @throws {MqttOptionsError} When TLS options are given on a runtime whose WebSocket
 *   cannot take them (Deno): it names the option and the way round it.
 */
export function webSocketClient(options: IClientOptions): MqttClient {
  const tls = tlsOf(options);
  const opts: IClientOptions = { ...options };
  if (tls) {
    const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
    if (!isBun) throw noTls(tls);
    // Bun's constructor takes an init object where the standard one takes protocols.
    opts.createWebsocket = (url, protocols) =>
      Reflect.construct(WebSocket, [url, { protocols, tls } satisfies BunWebSocketInit]);
  }
  // client.options is the object the builder reads (mqtt.js fills in its defaults there).
  return new mqtt.MqttClient((client) => browserStreamBuilder(client, client.options), opts);
}

/** The TLS options that ask for more than the runtime's default trust, or undefined. */
function tlsOf(options: IClientOptions): Record<string, unknown> | undefined {
  if (options.protocol !== "wss") return undefined;
  const given = options as Record<string, unknown>;
  const tls: Record<string, unknown> = {};
  for (const name of Object.keys(TLS_OPTIONS)) {
    if (given[name] === undefined) continue;
    if (name === "rejectUnauthorized" && given[name] === true) continue;
    tls[name] = given[name];
  }
  if (given.passphrase !== undefined && (tls.key || tls.pfx)) tls.passphrase = given.passphrase;
  return Object.keys(tls).length ? tls : undefined;
}

function noTls(tls: Record<string, unknown>): MqttOptionsError {
  const name = Object.keys(tls).find((key) => key !== "passphrase")!;
  const option = TLS_OPTIONS[name].split(" / ")[0];
  return new MqttOptionsError(
    option,
    `Cannot connect over wss:// as '${option}' must be unset where the WebSocket takes no TLS options (Deno): current value is ${
      name === "rejectUnauthorized" ? "false" : "set"
    } (trust a private CA with DENO_CERT=<file> or --cert <file>, or use mqtts://)`,
  );
}
