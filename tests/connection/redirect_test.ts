// MQTT 5 server redirection (§4.11): a broker that answers CONNECT with CONNACK 0x9C (Use
// another server), or ends a connection with DISCONNECT 0x9D (Server moved), naming another
// broker in its Server Reference. No real broker can be made to redirect, so the redirecting
// one is the raw server of testing/hostile.ts; the broker it points at is a real mosquitto.
// A redirection takes the credentials along, so it is followed only where `redirect` allows:
// to a broker of the connection string (list, the default), anywhere (any), or nowhere (off).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MqttConnectError, MqttSink, MqttSource, parseConnectionString } from "../../mod.ts";
import { RedirectRefused, redirectTarget } from "../../src/connection/_redirect.ts";
import { makeCertificates, skipWithoutMosquitto, startMosquitto } from "../../testing/broker.ts";
import { type HostileConnection, type HostileServer, startHostile } from "../../testing/hostile.ts";
import { failureOf, waitFor, within } from "../../testing/helpers.ts";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const USE_ANOTHER_SERVER = 0x9c;
const SERVER_MOVED = 0x9d;
const PASSWORD = "r3direct-s3cret";

/** A raw server that answers every CONNECT with CONNACK 0x9C naming `reference`. */
function redirectingTo(reference: () => string) {
  return (conn: HostileConnection) =>
    conn.connack({
      reasonCode: USE_ANOTHER_SERVER,
      properties: { serverReference: reference() },
    });
}

/**
 * A broker that would harvest credentials: it accepts every CONNECT and SUBSCRIBE, and keeps
 * the passwords it was sent.
 */
async function startHarvester(): Promise<HostileServer & { passwords: string[] }> {
  const passwords: string[] = [];
  const server = await startHostile(async (conn) => {
    if (conn.connect.password) passwords.push(new TextDecoder().decode(conn.connect.password));
    conn.connack();
    const subscribe = await conn.next("subscribe");
    conn.suback(subscribe.id, [1]);
  });
  return Object.assign(server, { passwords });
}

/** A raw server that closes every connection on its CONNECT: a broker that is not serving. */
const startClosing = () => startHostile((conn) => conn.destroy());

describe("server redirection", { skip: skipWithoutMosquitto() }, () => {
  test("redirect=any: CONNACK 0x9C lands the source on the broker it names, outside the connection string", async () => {
    await using target = await startMosquitto();
    await using redirector = await startHostile(redirectingTo(() => `127.0.0.1:${target.port}`));
    const source = new MqttSource(
      `${redirector.url}?topic=r/t&qos=1&mqttVersion=5&connectBackoff=5000&redirect=any`,
    );
    const reader = source.getReader();
    try {
      // The redirection is followed at once, not after connectBackoff.
      await waitFor(() => source.stats.broker !== undefined, "the source to connect", 4_000);
      assert.equal(source.stats.broker, target.url);
      assert.equal(redirector.connections, 1);
      await using sink = new MqttSink(`${target.url}?topic=r/t&qos=1&mqttVersion=5`);
      const writer = sink.getWriter();
      await writer.write("through the broker it was sent to");
      const { value } = await within(reader.read(), 10_000, "the message");
      assert.equal(value?.text(), "through the broker it was sent to");
      await writer.close();
    } finally {
      await reader.cancel();
    }
  });

  test("DISCONNECT 0x9D with a Server Reference moves a connected source to that broker of the connection string", async () => {
    await using target = await startMosquitto();
    await using mover = await startHostile(async (conn) => {
      conn.connack({ reasonCode: 0 });
      const subscribe = await conn.next("subscribe");
      conn.suback(subscribe.id, [1]);
      conn.disconnect(SERVER_MOVED, { serverReference: `127.0.0.1:${target.port}` });
    });
    // Not followed, the source would wait connectBackoff (the connection lasted less) first.
    const source = new MqttSource(
      `mqtt://127.0.0.1:${mover.port},127.0.0.1:${target.port}?topic=r/m&qos=1&mqttVersion=5&clientId=moved&connectBackoff=5000`,
    );
    const reader = source.getReader();
    try {
      await waitFor(
        () => source.stats.broker === target.url,
        "the source to move to the broker named",
        4_000,
      );
      assert.equal(source.stats.failovers, 1);
      assert.equal(source.stats.reconnects, 1);
      await using sink = new MqttSink(`${target.url}?topic=r/m&qos=1&mqttVersion=5`);
      const writer = sink.getWriter();
      // Subscribed again on the new broker (no session there): what is published arrives.
      await writer.write("after the move");
      const { value } = await within(reader.read(), 10_000, "the message");
      assert.equal(value?.text(), "after the move");
      await writer.close();
    } finally {
      await reader.cancel();
    }
  });

  test("redirect=any: a redirection to a broker that is down ends, after the attempts, naming both", async () => {
    await using redirector = await startHostile(redirectingTo(() => "127.0.0.1:1"));
    const source = new MqttSource(
      `${redirector.url}?topic=t&mqttVersion=5&connectAttempts=2&connectBackoff=20&redirect=any`,
    );
    const error = await failureOf(source, 10_000);
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.match(error.message, /after 2 attempts/);
    // Each round: the redirecting broker, then the one it named.
    assert.equal(redirector.connections, 2);
    assert.match(error.message, /127\.0\.0\.1:1\b/);
  });

  for (const policy of ["list", "any"] as const) {
    test(`redirect=${policy}: a Server Reference to a broker of the connection string is followed at once, past the brokers before it`, async () => {
      await using target = await startMosquitto();
      await using between = await startClosing();
      await using redirector = await startHostile(
        redirectingTo(() => `127.0.0.1:${target.port}`),
      );
      const source = new MqttSource(
        `mqtt://127.0.0.1:${redirector.port},127.0.0.1:${between.port},127.0.0.1:${target.port}?topic=t&mqttVersion=5&connectBackoff=5000&redirect=${policy}`,
      );
      try {
        await within(source.ready, 4_000, "the source on the broker named");
        assert.equal(source.stats.broker, target.url);
        assert.equal(redirector.connections, 1);
        assert.equal(between.connections, 0, "the broker between them was passed over");
      } finally {
        await source.cancel();
      }
    });
  }

  test("redirect=off follows none, not even to a broker of the connection string: the round goes on in order", async () => {
    await using target = await startMosquitto();
    await using between = await startClosing();
    await using redirector = await startHostile(redirectingTo(() => `127.0.0.1:${target.port}`));
    const source = new MqttSource(
      `mqtt://127.0.0.1:${redirector.port},127.0.0.1:${between.port},127.0.0.1:${target.port}?topic=t&mqttVersion=5&connectBackoff=5000&redirect=off`,
    );
    try {
      await within(source.ready, 4_000, "the source on the third broker");
      assert.equal(source.stats.broker, target.url);
      assert.equal(redirector.connections, 1);
      assert.equal(between.connections, 1, "the brokers are tried in the order given");
    } finally {
      await source.cancel();
    }
  });
});

describe("redirections within a round", () => {
  test("a redirection followed is one more attempt of the round: every broker of the list is still tried", async () => {
    await using redirector = await startHostile(redirectingTo(() => "127.0.0.1:1"));
    await using b = await startClosing();
    await using c = await startClosing();
    const source = new MqttSource(
      `mqtt://127.0.0.1:${redirector.port},127.0.0.1:${b.port},127.0.0.1:${c.port}?topic=t&mqttVersion=5&connectAttempts=1&redirect=any`,
    );
    const error = await failureOf(source, 10_000);
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.deepEqual([redirector.connections, b.connections, c.connections], [1, 1, 1]);
    assert.match(error.message, /127\.0\.0\.1:1: nothing accepts connections there/);
  });

  test("a broker that redirects to itself ends its round instead of looping", async () => {
    let port = 0;
    await using loop = await startHostile(redirectingTo(() => `127.0.0.1:${port}`));
    port = loop.port;
    const source = new MqttSource(
      `${loop.url}?topic=t&mqttVersion=5&connectAttempts=2&connectBackoff=20`,
    );
    const error = await failureOf(source, 10_000);
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.match(error.message, /after 2 attempts/);
    assert.equal(loop.connections, 4, "two a round: the broker, then where it sent the client");
  });
});

describe("a redirection outside the connection string", () => {
  for (const policy of [undefined, "off"] as const) {
    test(
      `${
        policy ? `redirect=${policy}` : "by default"
      }: a Server Reference naming a host:port outside the connection string is not connected to, and the error names it and 'redirect'`,
      async () => {
        await using harvester = await startHarvester();
        const reference = `127.0.0.1:${harvester.port}`;
        await using redirector = await startHostile(redirectingTo(() => reference));
        const source = new MqttSource(
          `mqtt://user:${PASSWORD}@127.0.0.1:${redirector.port}?topic=t&mqttVersion=5&connectAttempts=2&connectBackoff=20${
            policy ? `&redirect=${policy}` : ""
          }`,
        );
        const error = await failureOf(source, 10_000);
        assert.equal(harvester.connections, 0, "a connection was made to the host named");
        assert.deepEqual(harvester.passwords, []);
        assert.equal(redirector.connections, 2, "a failed attempt a round");
        assert.ok(error instanceof MqttConnectError, String(error));
        assert.equal(error.code, "CONNECT_REJECTED");
        assert.match(error.message, /after 2 attempts/);
        assert.ok(error.message.includes(`'${reference}'`), error.message);
        assert.match(error.message, /CONNACK 0x9c/i);
        assert.match(error.message, policy === "off" ? /redirect=off/ : /redirect=any/);
        for (const text of [error.message, String(error.stack)]) {
          assert.ok(!text.includes(PASSWORD), `the password is in: ${text}`);
        }
        console.log(`refused redirection: ${error.message}`);
      },
    );
  }

  test("a DISCONNECT 0x9D naming a host outside the list does not move the source; with autoReconnect=false it ends naming the reference", async () => {
    await using harvester = await startHarvester();
    await using mover = await startHostile(async (conn) => {
      conn.connack({ reasonCode: 0 });
      const subscribe = await conn.next("subscribe");
      conn.suback(subscribe.id, [1]);
      conn.disconnect(SERVER_MOVED, { serverReference: `127.0.0.1:${harvester.port}` });
    });
    const source = new MqttSource(
      `mqtt://user:${PASSWORD}@127.0.0.1:${mover.port}?topic=t&qos=1&mqttVersion=5&autoReconnect=false`,
    );
    const error = await failureOf(source, 10_000);
    assert.equal(harvester.connections, 0);
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.match(error.message, /Lost the connection/);
    assert.ok(error.message.includes(`'127.0.0.1:${harvester.port}'`), error.message);
    assert.match(error.message, /DISCONNECT 0x9d/i);
    assert.match(error.message, /redirect=any/);
    assert.ok(!error.message.includes(PASSWORD));
  });

  test("over TLS too: a broker with a valid certificate is not followed to another host with one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-redirect-"));
    try {
      const certificates = makeCertificates(dir);
      const tls = {
        cert: readFileSync(certificates.serverCert),
        key: readFileSync(certificates.serverKey),
      };
      const passwords: string[] = [];
      await using harvester = await startHostile((conn) => {
        if (conn.connect.password) passwords.push(new TextDecoder().decode(conn.connect.password));
        conn.connack();
      }, { tls });
      await using redirector = await startHostile(
        redirectingTo(() => `127.0.0.1:${harvester.port}`),
        { tls },
      );
      const source = new MqttSource(
        `mqtts://user:${PASSWORD}@127.0.0.1:${redirector.port}?topic=t&mqttVersion=5&connectAttempts=1&ssl.ca=${
          encodeURIComponent(certificates.ca)
        }`,
      );
      const error = await failureOf(source, 10_000);
      assert.ok(redirector.connections >= 1, "the redirecting broker was reached over TLS");
      assert.equal(harvester.connections, 0);
      assert.deepEqual(passwords, []);
      assert.ok(error instanceof MqttConnectError, String(error));
      assert.match(error.message, /redirect=any/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("which Server References are followed", () => {
  const packet = "CONNACK 0x9C Use another server";
  /** Where a redirection from the first broker of `connection` goes, or why it does not. */
  const target = (connection: string, reference: string) => {
    const options = parseConnectionString(connection);
    const to = redirectTarget({ reference, packet }, options.brokers[0], options);
    return to instanceof RedirectRefused ? `refused: ${to.message}` : to;
  };

  test("redirect=list compares host and port, with the scheme's default port where one is left out", () => {
    const list = "mqtt://Node1.example:1883,node2.example,[::1]:1885,[fe80::1]";
    assert.equal(target(list, "node2.example:1883"), "mqtt://node2.example");
    assert.equal(target(list, "NODE2.EXAMPLE"), "mqtt://node2.example");
    assert.equal(target(list, "node1.example"), "mqtt://Node1.example:1883");
    assert.equal(target(list, "[::1]:1885"), "mqtt://[::1]:1885");
    assert.equal(target(list, "[0:0:0:0:0:0:0:1]:1885"), "mqtt://[::1]:1885");
    assert.equal(target(list, "[FE80::1]:1883"), "mqtt://[fe80::1]");
    assert.match(target(list, "node2.example:1884"), /^refused: .*'node2\.example:1884'/);
    assert.match(target(list, "[::1]"), /^refused: .*redirect=any/);
    assert.match(target(list, "node3.example"), /^refused: .*does not name/);
    // A name is not resolved: 127.0.0.1 is not `localhost` to the list.
    assert.match(target("mqtt://localhost:1883,b", "127.0.0.1:1883"), /^refused/);
  });

  test("the scheme's default port: 8883 for mqtts, 443 for wss, and the path kept", () => {
    assert.equal(target("mqtts://a,b", "b:8883"), "mqtts://b");
    assert.match(target("mqtts://a,b", "b:1883"), /^refused/);
    assert.equal(target("wss://a,b:443/mqtt", "b"), "wss://b/mqtt");
    assert.equal(target("ws://a,b/mqtt", "b:80"), "ws://b/mqtt");
  });

  test("the first reference that may be followed, of several separated by spaces", () => {
    assert.equal(target("mqtt://a,b,c", "x:1883  c:1883 b"), "mqtt://c");
    assert.equal(
      target("mqtt://a,b?redirect=any", "bad/ref x.example:1884"),
      "mqtt://x.example:1884",
    );
  });

  test("redirect=any follows any host:port, keeping the scheme and path; redirect=off none", () => {
    assert.equal(target("wss://a/mqtt?redirect=any", "[::2]:9001"), "wss://[::2]:9001/mqtt");
    assert.match(target("mqtt://a,b?redirect=off", "b"), /^refused: .*redirect=off follows no/);
  });

  test("a reference that names no host[:port] is refused, and nothing in it that may be a credential is shown", () => {
    assert.match(target("mqtt://a?redirect=any", "mqtt://b:1883"), /names no host\[:port\]/);
    const shown = target("mqtt://a?redirect=any", "user:hunter2@b:1883");
    assert.match(shown, /^refused: .*'\*\*\*@b:1883'/);
    assert.ok(!shown.includes("hunter2"), shown);
    const echoed = target(`mqtt://u:${PASSWORD}@a`, `${PASSWORD}.evil:1883`);
    assert.ok(!echoed.includes(PASSWORD), echoed);
    assert.match(echoed, /a Server Reference holding the password/);
  });
});
