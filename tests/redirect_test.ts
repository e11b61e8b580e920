// MQTT 5 server redirection (§4.11): a broker that answers CONNECT with CONNACK 0x9C (Use
// another server), or ends a connection with DISCONNECT 0x9D (Server moved), naming another
// broker in its Server Reference. No real broker can be made to redirect, so the redirecting
// one is the raw server of tests/_hostile.ts; the broker it points at is a real mosquitto.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MqttConnectError, MqttSink, MqttSource } from "../mod.ts";
import { skipWithoutMosquitto, startMosquitto } from "./_broker.ts";
import { startHostile } from "./_hostile.ts";
import { failureOf, waitFor, within } from "./_helpers.ts";

const USE_ANOTHER_SERVER = 0x9c;
const SERVER_MOVED = 0x9d;

describe("server redirection", { skip: skipWithoutMosquitto() }, () => {
  test("CONNACK 0x9C with a Server Reference: the source lands on the broker it names", async () => {
    await using target = await startMosquitto();
    await using redirector = await startHostile((conn) =>
      conn.connack({
        reasonCode: USE_ANOTHER_SERVER,
        properties: { serverReference: `127.0.0.1:${target.port}` },
      })
    );
    const source = new MqttSource(
      `${redirector.url}?topic=r/t&qos=1&mqttVersion=5&connectBackoff=5000`,
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

  test("DISCONNECT 0x9D with a Server Reference moves a connected source there", async () => {
    await using target = await startMosquitto();
    await using mover = await startHostile(async (conn) => {
      conn.connack({ reasonCode: 0 });
      const subscribe = await conn.next("subscribe");
      conn.suback(subscribe.id, [1]);
      conn.disconnect(SERVER_MOVED, { serverReference: `127.0.0.1:${target.port}` });
    });
    const source = new MqttSource(
      `${mover.url}?topic=r/m&qos=1&mqttVersion=5&clientId=moved&connectBackoff=5000`,
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

  test("a redirection to a broker that is down ends, after the attempts, naming both", async () => {
    await using redirector = await startHostile((conn) =>
      conn.connack({
        reasonCode: USE_ANOTHER_SERVER,
        properties: { serverReference: "127.0.0.1:1" },
      })
    );
    const source = new MqttSource(
      `${redirector.url}?topic=t&mqttVersion=5&connectAttempts=2&connectBackoff=20`,
    );
    const error = await failureOf(source, 10_000);
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.match(error.message, /after 2 attempts/);
    // Each round: the redirecting broker, then the one it named.
    assert.equal(redirector.connections, 2);
    assert.match(error.message, /127\.0\.0\.1:1\b/);
  });
});
