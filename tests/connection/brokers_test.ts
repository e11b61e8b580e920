// Several brokers in one connection: the multi-host form of a connection string, the list
// form of brokerUrl, and how their errors name the broker at fault without a secret.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  MqttConnectError,
  MqttOptionsError,
  MqttSink,
  MqttSource,
  MqttSubscribeError,
  parseConnectionString,
} from "../../mod.ts";
import type { MqttConnection } from "../../mod.ts";
import { freePort, startAedes } from "../../testing/broker.ts";
import { type HostileConnection, startHostile } from "../../testing/hostile.ts";
import { Attempts } from "../../src/connection/_attempts.ts";
import { failureOf, within } from "../../testing/helpers.ts";

const PASSWORD = "s3cr,et:p@ss";
const USER_INFO = `user:${encodeURIComponent(PASSWORD)}@`;

/** Parsing `connection` fails with an MqttOptionsError on brokerUrl matching every pattern, and no password. */
function refused(connection: MqttConnection, ...patterns: RegExp[]): void {
  let error: unknown;
  try {
    parseConnectionString(connection);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof MqttOptionsError, `expected MqttOptionsError, got ${error}`);
  for (const pattern of patterns) assert.match(error.message, pattern);
  for (const secret of [PASSWORD, encodeURIComponent(PASSWORD), "s3cr"]) {
    assert.ok(!error.message.includes(secret), `the password is in: ${error.message}`);
    assert.ok(!String(error.stack).includes(secret), "the password is in the stack");
  }
}

describe("parseConnectionString: several brokers", () => {
  test("reads hosts with and without ports, IPv6 in brackets, with one set of options", () => {
    const o = parseConnectionString(
      `mqtt://${USER_INFO}node1:1883,node2,[::1]:1885?topic=a/%23&qos=2`,
    );
    assert.equal(o.brokerUrl, "mqtt://node1:1883,node2,[::1]:1885");
    assert.deepEqual(o.brokers, ["mqtt://node1:1883", "mqtt://node2", "mqtt://[::1]:1885"]);
    assert.equal(o.username, "user");
    assert.equal(o.password?.reveal(), PASSWORD);
    assert.deepEqual(o.topic, ["a/#"]);
    assert.equal(o.qos, 2);
  });

  test("one broker stays what it was", () => {
    const o = parseConnectionString("tcp://localhost:1883?topic=t");
    assert.equal(o.brokerUrl, "mqtt://localhost:1883");
    assert.deepEqual(o.brokers, ["mqtt://localhost:1883"]);
  });

  test("a WebSocket path belongs to every broker", () => {
    const o = parseConnectionString("ws://a:8080,b:8081/mqtt");
    assert.deepEqual(o.brokers, ["ws://a:8080/mqtt", "ws://b:8081/mqtt"]);
  });

  test("brokerUrl may be a list of URLs with one broker each, their options merged", () => {
    const o = parseConnectionString({
      brokerUrl: [`tcp://${USER_INFO}a:1883?topic=t`, new URL("mqtt://b:1884"), "mqtt://c"],
      clientId: "ingest",
    });
    assert.equal(o.brokerUrl, "mqtt://a:1883,b:1884,c");
    assert.deepEqual(o.brokers, ["mqtt://a:1883", "mqtt://b:1884", "mqtt://c"]);
    assert.equal(o.password?.reveal(), PASSWORD);
    assert.deepEqual(o.topic, ["t"]);
    assert.equal(o.clientId, "ingest");
  });

  test("a bad port among several names the broker", () => {
    refused(
      `mqtt://${USER_INFO}a:1883,b:99999,c:1885`,
      /'brokerUrl'/,
      /broker 2 of 3 \(b:99999\): the port must be from 1 to 65535, not 99999/,
    );
    refused(`mqtt://${USER_INFO}a:0,b:1883`, /broker 1 of 2 \(a:0\): the port must be from 1/);
  });

  test("a bad or empty host among several names the broker and shows no password", () => {
    refused(`mqtt://${USER_INFO}a:1883,b%21x:1`, /broker 2 of 2: a host name may only hold/);
    refused(`mqtt://${USER_INFO}a:1883,,c`, /broker 2 of 3: no host/);
    refused(`mqtt://${USER_INFO}a:1883,`, /broker 2 of 2: no host/);
    refused(`mqtt://${USER_INFO}a,b,a`, /names the broker a twice/);
    refused(`mqtt://${USER_INFO}::1:1883,b`, /'brokerUrl'/);
  });

  test("a password whose '@' was lost is not shown as a host", () => {
    // The user info glued to the first host: no host a resolver knows, never echoed.
    refused(`mqtt://user:${PASSWORD.replace("@", "")}a:1883,b:1883`, /'brokerUrl'/);
  });

  test("a list must share one scheme, one path and one set of options", () => {
    refused({ brokerUrl: ["mqtt://a", "ws://b"] }, /share one scheme and one path/);
    refused({ brokerUrl: ["ws://a/x", "ws://b/y"] }, /share one scheme and one path/);
    refused(
      { brokerUrl: [`mqtt://${USER_INFO}a`, "mqtt://user:other@b"] },
      /elements 1 and 2 give different values of 'password'/,
    );
    refused(
      { brokerUrl: ["mqtt://a?qos=1", "mqtt://b?qos=2"] },
      /elements 1 and 2 give different values of 'qos'/,
    );
    refused(
      { brokerUrl: [`mqtt://${USER_INFO}a,b`, "mqtt://c"] },
      /element 1 of the list names several brokers/,
    );
    refused({ brokerUrl: [] }, /an empty list names no broker/);
    refused({ brokerUrl: ["mqtt://a", "mqtt://a"] }, /names the broker mqtt:\/\/a twice/);
  });
});

describe("connecting to several brokers", () => {
  test("a broker that is down is passed over at once, without waiting connectBackoff", async () => {
    await using broker = await startAedes();
    const down = await freePort();
    const source = new MqttSource(
      `mqtt://127.0.0.1:${down},127.0.0.1:${broker.port}?topic=t&connectBackoff=30000`,
    );
    try {
      await within(source.ready, 5_000, "the source on the second broker");
      assert.equal(source.stats.broker, broker.url);
      assert.equal(source.stats.failovers, 0, "the first connection made is no failover");
    } finally {
      await source.cancel();
    }
  });

  test("over WebSocket too: a message goes through the second broker when the first is down", async () => {
    await using broker = await startAedes({ transport: "ws" });
    const url = `ws://127.0.0.1:${await freePort()},127.0.0.1:${broker.port}?topic=ws/t&qos=1`;
    const source = new MqttSource(url);
    const reader = source.getReader();
    try {
      await within(source.ready, 5_000, "the source on the second broker");
      assert.equal(source.stats.broker, `ws://127.0.0.1:${broker.port}`);
      await ReadableStream.from(["over ws"]).pipeTo(new MqttSink(url));
      assert.equal((await within(reader.read(), 5_000, "the message")).value?.text(), "over ws");
    } finally {
      await reader.cancel();
    }
  });

  test("a SUBACK 0x80 from one of several brokers moves the source to the next, where it subscribes", async () => {
    // A cluster node refuses a SUBSCRIBE without a reason while it elects the leader that
    // would hold it (NATS does, for seconds after a node dies): a raw server stands in.
    await using refusing = await startHostile(async (conn) => {
      conn.connack();
      conn.suback((await conn.next("subscribe")).id, [0x80]);
    });
    await using broker = await startAedes();
    const source = new MqttSource(
      `mqtt://127.0.0.1:${refusing.port},127.0.0.1:${broker.port}?topic=t&connectBackoff=30000`,
    );
    try {
      await within(source.ready, 5_000, "the subscription on the second broker");
      assert.equal(source.stats.broker, broker.url);
      assert.equal(refusing.connections, 1);
    } finally {
      await source.cancel();
    }
  });

  test("brokers that all refuse a SUBSCRIBE end it with MqttSubscribeError after the attempts", async () => {
    const refuse = async (conn: HostileConnection) => {
      conn.connack();
      conn.suback((await conn.next("subscribe")).id, [0x80]);
    };
    await using a = await startHostile(refuse);
    await using b = await startHostile(refuse);
    const source = new MqttSource(
      `mqtt://127.0.0.1:${a.port},127.0.0.1:${b.port}?topic=t/x&connectAttempts=2&connectBackoff=20`,
    );
    const error = await failureOf(source, 10_000);
    assert.ok(error instanceof MqttSubscribeError, String(error));
    assert.equal(error.topic, "t/x");
    assert.match(error.message, /SUBACK 0x80/);
    assert.equal(a.connections + b.connections, 4);
  });

  test("brokers that accept and drop at once end it after connectAttempts rounds, each tried once a round", async () => {
    // No real broker accepts and drops at once: a raw server does.
    const dropAtOnce = (conn: { connack(): void; destroy(): void }) => {
      conn.connack();
      conn.destroy();
    };
    await using a = await startHostile(dropAtOnce);
    await using b = await startHostile(dropAtOnce);
    const source = new MqttSource(
      `mqtt://127.0.0.1:${a.port},127.0.0.1:${b.port}?topic=t&connectAttempts=3&connectBackoff=20`,
    );
    const error = await failureOf(source, 10_000);
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.equal(error.attempts, 3);
    assert.match(error.message, /any of 2 brokers after 3 attempts/);
    assert.match(error.message, new RegExp(`${a.url}: the broker accepted the connection`));
    assert.match(error.message, new RegExp(`${b.url}: the broker accepted the connection`));
    assert.equal(a.connections, 3);
    assert.equal(b.connections, 3);
  });

  test("brokers that accept and never answer cost connectionTimeout a round in all, each broker its share", async () => {
    // No real broker takes a CONNECT and stays silent on purpose: a raw server does.
    await using a = await startHostile();
    await using b = await startHostile();
    await using c = await startHostile();
    const source = new MqttSource(
      `mqtt://127.0.0.1:${a.port},127.0.0.1:${b.port},127.0.0.1:${c.port}?topic=t&connectionTimeout=3&connectAttempts=1`,
    );
    const started = performance.now();
    const error = await failureOf(source, 15_000);
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `3 silent brokers, connectionTimeout=3 s, 1 round: failed after ${seconds.toFixed(2)} s`,
    );
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.equal(error.code, "CONNECT_TIMEOUT");
    assert.deepEqual([a.connections, b.connections, c.connections], [1, 1, 1]);
    assert.ok(seconds >= 2.9 && seconds < 4.5, `one round took ${seconds} s`);
    for (const broker of [a, b, c]) {
      assert.match(
        error.message,
        new RegExp(`${broker.url}: no CONNACK within 1 s, its share of connectionTimeout=3 s`),
      );
    }
  });
});

describe("each broker's share of connectionTimeout", () => {
  test("an equal share of what is left of the round: a broker that failed fast leaves its time to the next", () => {
    const attempts = new Attempts(
      parseConnectionString("mqtt://a,b,c?connectionTimeout=6&connectAttempts=2"),
    );
    const shares: (number | undefined)[] = [];
    for (let i = 0; i < 6; i++) {
      attempts.aim();
      shares.push(attempts.connackTimeout);
      attempts.closed(new Error("refused at once"));
    }
    attempts.stop();
    // Each round: 6 s ÷ 3, then what is left ÷ 2, then what is left (within a few ms).
    const rounded = shares.map((ms) => Math.round(ms! / 100) / 10);
    assert.deepEqual(rounded, [2, 3, 6, 2, 3, 6]);
  });

  test("at least 1 s each (or connectionTimeout, if shorter), the whole of it for one broker, none with 0", () => {
    const first = (connection: string) => {
      const attempts = new Attempts(parseConnectionString(connection));
      attempts.aim();
      attempts.stop();
      return attempts.connackTimeout;
    };
    const many = Array.from({ length: 12 }, (_, i) => `h${i}`).join(",");
    assert.equal(first(`mqtt://${many}?connectionTimeout=6`), 1000);
    assert.equal(first("mqtt://a,b,c?connectionTimeout=1"), 1000);
    assert.equal(first("mqtt://a?connectionTimeout=6"), 6000);
    assert.equal(first("mqtt://a,b?connectionTimeout=0"), undefined);
  });
});
