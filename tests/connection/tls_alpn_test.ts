// ssl.alpn and ssl.servername, against a TLS front like AWS IoT Core's port 443 (testing/tls_front.ts):
// it takes only clients that offer the ALPN protocol x-amzn-mqtt-ca and send the SNI name
// iot.example.test, shows a certificate for that name only, and passes bytes to a real mosquitto.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type ConnectionOptions } from "node:tls";
import { MqttConnectError, MqttSink, MqttSource } from "../../mod.ts";
import {
  makeCertificates,
  skipUnless,
  skipWithoutMosquitto,
  startMosquitto,
} from "../../testing/broker.ts";
import { failureOf, LOSSLESS, waitFor, within } from "../../testing/helpers.ts";
import { hasNode, startTlsFront, type TlsFront } from "../../testing/tls_front.ts";

const ALPN = "x-amzn-mqtt-ca";
const NAME = "iot.example.test";
/** Seconds: a refused handshake must fail well before this, not by timing out. */
const CONNECTION_TIMEOUT = 5;

/** mosquitto (lossless), the test CA, and the front before it; all ended on dispose. */
async function startStack(): Promise<
  { front: TlsFront; ca: string; url: (query: string) => string } & AsyncDisposable
> {
  const broker = await startMosquitto({ lines: LOSSLESS });
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-tls-front-"));
  let front: TlsFront;
  try {
    const certificates = makeCertificates(dir);
    front = await startTlsFront({
      upstreamPort: broker.port,
      alpn: ALPN,
      servername: NAME,
      certificates,
    });
    const ca = certificates.ca;
    const base = `connectAttempts=1&connectionTimeout=${CONNECTION_TIMEOUT}&qos=1` +
      `&ssl.ca=${encodeURIComponent(ca)}`;
    return {
      front,
      ca,
      url: (query) => `${front.url}?${base}&${query}`,
      [Symbol.asyncDispose]: async () => {
        await front.close();
        await broker.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

const topicOf = () => `alpn/${crypto.randomUUID().slice(0, 8)}`;

/** Publishes `count` QoS 1 messages through `url` and reads them all back, in order. */
async function roundTrip(url: string, count: number): Promise<void> {
  await using source = new MqttSource(url);
  await within(source.ready, 10_000, "the source to subscribe");
  const writer = new MqttSink(url).getWriter();
  const reader = source.getReader();
  try {
    for (let i = 0; i < count; i++) await within(writer.write(`m${i}`), 10_000, `write ${i}`);
    await within(writer.close(), 10_000, "the sink to close");
    for (let i = 0; i < count; i++) {
      const { value } = await within(reader.read(), 10_000, `message ${i}`);
      assert.equal(value!.text(), `m${i}`);
    }
  } finally {
    reader.releaseLock();
  }
}

/** The MqttConnectError a source on `url` fails with, and how long it took (ms). */
async function connectFailure(url: string): Promise<{ error: MqttConnectError; ms: number }> {
  const started = Date.now();
  const error = await failureOf(new MqttSource(url), 15_000);
  assert.ok(error instanceof MqttConnectError, `expected MqttConnectError, got ${error}`);
  return { error, ms: Date.now() - started };
}

/**
 * A TLS connection from this runtime's node:tls to the front: resolves with the ALPN protocol
 * selected once the handshake completed, the names of the front's certificate, and the broker's
 * reply to an MQTT CONNECT sent through it; or with the handshake's error.
 */
function rawHandshake(
  front: TlsFront,
  options: ConnectionOptions,
): Promise<
  { protocol: string | false | null; names?: string; reply: number[] } | { error: Error }
> {
  return within(
    new Promise((resolve) => {
      const socket = connect({ host: "127.0.0.1", port: front.port, ...options });
      socket.once("error", (error) => resolve({ error }));
      socket.once("secureConnect", () => {
        // MQTT 3.1.1 CONNECT (§3.1), clean session, keepAlive 60 s, client id "raw".
        socket.write(
          new Uint8Array([0x10, 15, 0, 4, 77, 81, 84, 84, 4, 2, 0, 60, 0, 3, 114, 97, 119]),
        );
        socket.once("data", (data: Uint8Array) => {
          resolve({
            protocol: socket.alpnProtocol,
            names: socket.getPeerCertificate().subjectaltname,
            reply: [...data],
          });
          socket.destroy();
        });
      });
    }),
    10_000,
    "the raw TLS handshake",
  );
}

describe("TLS with ALPN and SNI (AWS IoT Core's port 443)", {
  skip: skipWithoutMosquitto() || skipUnless(hasNode, "node is not installed (the TLS front)"),
}, () => {
  test("the front takes only clients that offer its ALPN protocol and name it by SNI (raw node:tls)", async () => {
    await using stack = await startStack();
    const { front } = stack;
    const ca = readFileSync(stack.ca);
    const good = { ca, ALPNProtocols: [ALPN], servername: NAME };
    // CONNACK, accepted (MQTT 3.1.1 §3.2): the bytes went through to mosquitto and back.
    // The certificate names only NAME, so a client that verifies 127.0.0.1 refuses it.
    const accepted = { protocol: ALPN, names: `DNS:${NAME}`, reply: [0x20, 2, 0, 0] };
    assert.deepEqual(await rawHandshake(front, good), accepted);
    assert.deepEqual(
      await rawHandshake(front, { ...good, ALPNProtocols: ["mqtt", ALPN] }),
      accepted,
      "of two protocols offered, the front selects its own",
    );
    const failures: Record<string, ConnectionOptions> = {
      "no ALPN": { ca, servername: NAME },
      "another ALPN protocol": { ...good, ALPNProtocols: ["mqtt"] },
      "no SNI": { ca, ALPNProtocols: [ALPN] },
      // Verification off: only the front's SNI check can refuse it.
      "another SNI name": { ...good, servername: "other.test", rejectUnauthorized: false },
    };
    for (const [name, options] of Object.entries(failures)) {
      const result = await rawHandshake(front, options);
      assert.ok("error" in result, `${name}: the handshake succeeded`);
      const { code } = result.error as { code?: string };
      console.log(`${name}: ${code ?? ""} ${result.error.message.trim()}`);
    }
    await waitFor(() => front.log.length === 6, "the front to report every handshake", 5_000);
    assert.deepEqual(front.handshakes, {
      accepted: 2,
      refused: { alpn: 2, sni: 2, malformed: 0 },
      failed: 0,
    });
    assert.deepEqual(
      front.log.filter((h) => h.outcome === "refused").map((h) =>
        h.outcome === "refused" && h.alpn
      ),
      [undefined, ["mqtt"], [ALPN], [ALPN]],
      "the front read each ClientHello's ALPN offer",
    );
  });

  test("with ssl.alpn and ssl.servername a source and a sink round-trip 100 QoS 1 messages", async () => {
    await using stack = await startStack();
    await roundTrip(stack.url(`topic=${topicOf()}&ssl.alpn=${ALPN}&ssl.servername=${NAME}`), 100);
    assert.ok(stack.front.handshakes.accepted >= 1);
    assert.deepEqual(stack.front.handshakes.refused, { alpn: 0, sni: 0, malformed: 0 });
    for (const handshake of stack.front.log) {
      assert.deepEqual(handshake, { outcome: "accepted", servername: NAME, protocol: ALPN });
    }
  });

  test("without ssl.alpn the source fails at once with CONNECT_TLS saying the handshake failed", async () => {
    await using stack = await startStack();
    // Without ssl.servername too: the front checks ALPN first, so this is an ALPN refusal
    // whichever name is sent.
    const { error, ms } = await connectFailure(stack.url(`topic=${topicOf()}`));
    console.log(`without ssl.alpn (${ms} ms): ${error.message}`);
    assert.equal(error.code, "CONNECT_TLS", error.message);
    assert.match(error.message, /TLS handshake failed: .*set ssl.alpn/);
    assert.equal(error.attempts, 1);
    assert.ok(ms < CONNECTION_TIMEOUT * 1000, `took ${ms} ms: a timeout, not the refusal`);
    await waitFor(() => stack.front.handshakes.refused.alpn === 1, "the front's refusal", 5_000);
    assert.equal(stack.front.handshakes.accepted, 0);
  });

  test("without ssl.servername (ssl.alpn given) the source fails at once with CONNECT_TLS", async () => {
    await using stack = await startStack();
    const { error, ms } = await connectFailure(stack.url(`topic=${topicOf()}&ssl.alpn=${ALPN}`));
    console.log(`without ssl.servername (${ms} ms): ${error.message}`);
    assert.equal(error.code, "CONNECT_TLS", error.message);
    assert.match(error.message, /TLS handshake failed: .*set ssl.servername/);
    assert.ok(ms < CONNECTION_TIMEOUT * 1000, `took ${ms} ms: a timeout, not the refusal`);
    // No SNI is sent for an IP address (RFC 6066 §3), so the front refuses it.
    await waitFor(() => stack.front.handshakes.refused.sni === 1, "the front's refusal", 5_000);
    assert.equal(stack.front.handshakes.accepted, 0);
  });

  test("ssl.alpn with two protocols connects, and the front selects its own", async () => {
    await using stack = await startStack();
    await roundTrip(
      stack.url(`topic=${topicOf()}&ssl.alpn=mqtt,${ALPN}&ssl.servername=${NAME}`),
      10,
    );
    assert.ok(stack.front.handshakes.accepted >= 1);
    for (const handshake of stack.front.log) {
      assert.deepEqual(handshake, { outcome: "accepted", servername: NAME, protocol: ALPN });
    }
  });
});
