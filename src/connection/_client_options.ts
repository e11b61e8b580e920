// Validated options -> mqtt.js's client options (TLS, MQTT 5, will).
import type { IClientOptions } from "mqtt";
import type { MqttOptions } from "../options/options.ts";
import { backoffDelay } from "../options/_backoff.ts";
import { brokerAddress } from "../options/_brokers.ts";
import { tlsOptions } from "./_tls.ts";

/** setTimeout's largest delay: what "wait for ever" becomes for connectTimeout. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A client id for a connection without a fixed one: unique, and at most 23 characters (MQTT 3.1.1 §3.1.3.1). */
export function randomClientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(5));
  return `mqttstreams_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Points mqtt.js's client options (the object its transport builders read, and fill in)
 * at `broker`, one of several, before an attempt: host, port and the TLS server name (SNI,
 * and the name the certificate is verified against: `servername` if given, else the host). The
 * CONNACK timer of the attempt is Attempts' (a broker's share of connectionTimeout), so
 * mqtt.js's own is put out of the way.
 */
export function aimAt(clientOptions: IClientOptions, broker: string, servername?: string): void {
  const { hostname, port } = brokerAddress(broker);
  clientOptions.hostname = clientOptions.host = hostname;
  clientOptions.port = port;
  // mqtt.js sets the TLS server name (SNI) from the host at the first attempt, and keeps it:
  // each attempt sends its own broker's name, or ssl.servername when given.
  const tls = clientOptions as { servername?: string };
  if (servername === undefined) delete tls.servername;
  else tls.servername = servername;
  // mqtt.js 5.16 reads connectTimeout in connect(), attempt by attempt, after building the
  // transport (through the streamBuilder that calls this). Its timeout arms the next attempt
  // before the close where Attempts sets that attempt's delay (a silent first broker of
  // several cost connectBackoff more), so Attempts runs the timer and closes the attempt.
  clientOptions.connectTimeout = MAX_TIMER_MS;
}

/** Maps validated options onto mqtt.js's client options, reading TLS files where named. */
export async function toClientOptions(options: MqttOptions): Promise<IClientOptions> {
  const url = new URL(options.brokers[0]);
  const protocol = url.protocol.slice(0, -1) as "mqtt" | "mqtts" | "ws" | "wss";
  const v5 = options.mqttVersion === 5;
  const clientOptions: IClientOptions = {
    protocol,
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port ? Number(url.port) : undefined,
    path: url.pathname === "/" ? undefined : url.pathname,
    clientId: options.clientId ?? randomClientId(),
    clean: options.cleanSession,
    keepalive: options.keepAlive,
    protocolVersion: options.mqttVersion,
    // What mqtt.js would wait; each attempt's aimAt hands the CONNACK timer to Attempts.
    connectTimeout: options.connectionTimeout === 0
      ? MAX_TIMER_MS
      : options.connectionTimeout * 1000,
    reconnectPeriod: Math.max(1, backoffDelay(1, options.connectBackoff)),
    // mqtt.js's offline queue for QoS 0 has no bound; sinks apply backpressure instead.
    queueQoSZero: false,
    // Connect refusals are classified below; transient ones are retried by us.
    reconnectOnConnackError: true,
    // Sources resubscribe themselves, so that a refused subscription errors the stream.
    resubscribe: false,
    username: options.username,
    password: options.password?.reveal(),
    properties: v5
      ? {
        receiveMaximum: options.maxInflight,
        sessionExpiryInterval: options.sessionExpiryInterval,
        // MQTT 5 §3.1.2.11.4: the broker must not send a larger packet (it drops the
        // message for this client instead); guardIncoming enforces it on 3.1.1 too.
        maximumPacketSize: options.maxPacketSize,
      }
      : undefined,
  };
  if (options["will.topic"] !== undefined) {
    clientOptions.will = {
      topic: options["will.topic"],
      payload: (options["will.payload"] ?? "") as string,
      qos: options["will.qos"],
      retain: options["will.retain"],
    };
  }
  if (protocol === "mqtts" || protocol === "wss") {
    Object.assign(clientOptions, await tlsOptions(options));
  }
  return clientOptions;
}

/**
 * Silences mqtt.js's client log when `debug` has it off (DEBUG=mqttjs* turns it on, read
 * when the connection opens). Off, each of its ~10 calls a packet still gathers its
 * arguments into an array before finding it has nothing to do: 6-9% of a QoS 0 drain's
 * CPU (bench/suite.ts, source).
 */
export function quietLog(client: { log: (...args: unknown[]) => void }): void {
  if (!(client.log as { enabled?: boolean }).enabled) client.log = () => {};
}
