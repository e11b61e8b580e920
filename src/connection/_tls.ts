// TLS options for mqtt.js (as Node, Deno and Bun's `node:tls` take them), from the ssl.*
// options: PEM paths, text or bytes, PKCS12 key stores, and PKCS12 trust stores.
import { MqttOptionsError } from "../errors.ts";
import type { MqttOptions } from "../options/options.ts";
import { redactText, showPath } from "../_redact.ts";

/** Node-style TLS options (as Node, Deno and Bun's `node:tls` take them). */
export async function tlsOptions(options: MqttOptions): Promise<Record<string, unknown>> {
  const tls: Record<string, unknown> = { rejectUnauthorized: options["ssl.verify"] };
  if (options["ssl.protocol"] !== "TLS") tls.minVersion = options["ssl.protocol"];
  if (options["ssl.ciphers"]) tls.ciphers = options["ssl.ciphers"];
  // AWS IoT Core takes MQTT on port 443 when the client offers x-amzn-mqtt-ca (RFC 7301).
  if (options["ssl.alpn"]) tls.ALPNProtocols = options["ssl.alpn"];
  // The name sent (SNI) and verified; aimAt sets it again at each attempt.
  if (options["ssl.servername"]) tls.servername = options["ssl.servername"];
  const ca: (string | Uint8Array)[] = [];
  if (options["ssl.ca"] !== undefined) ca.push(await pem(options["ssl.ca"], "ssl.ca"));
  const trust = options["ssl.trust.store"];
  if (trust !== undefined) {
    const bytes = await pem(trust, "ssl.trust.store");
    if (options["ssl.trust.store.type"] === "PEM") ca.push(bytes);
    else {
      // No runtime's TLS takes a PKCS12 file without a private key, so its certificates
      // are read here (WebCrypto only) and passed on as PEM.
      const { pkcs12Certificates } = await import("./_pkcs12.ts");
      ca.push(
        ...await pkcs12Certificates(
          toBytes(bytes),
          options["ssl.trust.store.password"]?.reveal(),
          "ssl.trust.store",
        ),
      );
    }
  }
  if (ca.length) tls.ca = ca;
  const store = options["ssl.key.store"];
  if (store !== undefined) {
    const bytes = await pem(store, "ssl.key.store");
    const passphrase = options["ssl.key.store.password"]?.reveal();
    if (options["ssl.key.store.type"] === "PEM") {
      Object.assign(tls, { cert: bytes, key: bytes, passphrase });
    } else {
      // Checked here: on a wrong password the runtime's TLS throws a plain Error, and only
      // when it connects.
      const { checkKeyStorePassword } = await import("./_pkcs12.ts");
      await checkKeyStorePassword(toBytes(bytes), passphrase);
      Object.assign(tls, { pfx: bytes, passphrase });
    }
  }
  if (options["ssl.cert"] !== undefined) tls.cert = await pem(options["ssl.cert"], "ssl.cert");
  const key = options["ssl.key"]?.reveal();
  if (key !== undefined) {
    tls.key = await pem(key, "ssl.key");
    if (options["ssl.key.password"]) tls.passphrase = options["ssl.key.password"].reveal();
  }
  return tls;
}

/** PEM text or bytes as given, or the contents of the file a path names. */
async function pem(value: string | Uint8Array, option: string): Promise<string | Uint8Array> {
  if (typeof value !== "string" || value.includes("-----BEGIN")) return value;
  // Only reached when a file is named, so the file-system code stays out of the core.
  const { readFileBytes } = await import("./runtime/files.ts");
  try {
    return await readFileBytes(value);
  } catch (error) {
    // Text without a PEM header (a pasted key, a base64 store) is taken for a path and
    // fails here: then neither it nor the runtime's error, whose message repeats it, is shown.
    const path = showPath(value);
    const code = (error as { code?: unknown }).code;
    const why = path === undefined
      ? `${typeof code === "string" ? `${code}; ` : ""}not shown, as it may be key text: ` +
        "give PEM text with its -----BEGIN line, or a file path"
      : redactText((error as Error).message);
    throw new MqttOptionsError(
      option,
      `Cannot configure MQTT as '${option}' must name a readable file: current value is ${
        path ?? `<${value.length} characters>`
      } (${why})`,
      path === undefined ? undefined : { cause: error },
    );
  }
}

function toBytes(value: string | Uint8Array): Uint8Array {
  return typeof value === "string" ? new TextEncoder().encode(value) : value;
}
