// MQTT 5 against a broker that speaks only MQTT 3.1.1. MQTT 3.1.1 §3.1.2.2 has such a broker
// answer CONNACK 0x01 (unacceptable protocol level) and close, as aedes 1.x does; RabbitMQ 3.10's
// MQTT plugin closes the connection without a CONNACK. Either way the error must point at
// mqttVersion, not at a broker that "closed the connection without a reason".
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MqttConnectError, MqttSource } from "../../mod.ts";
import { startAedes } from "../../testing/broker.ts";
import { startHostile } from "../../testing/hostile.ts";
import { skipWithoutRabbitMQ, startRabbitMQ } from "../../testing/rabbitmq.ts";
import { failureOf, within } from "../../testing/helpers.ts";

const HINT = /may not support mqttVersion=5.*mqttVersion=4/;

/** How a source over MQTT 5 to `url` fails, after two attempts. */
function mqtt5Failure(url: string): Promise<unknown> {
  return failureOf(
    new MqttSource(`${url}?topic=t&mqttVersion=5&connectAttempts=2&connectBackoff=20`),
    10_000,
  );
}

describe("MQTT 5 against a broker that speaks MQTT 3.1.1 only", () => {
  test(
    "RabbitMQ 3.10 closes an MQTT 5 CONNECT without a CONNACK: the error says the broker may not support mqttVersion=5; mqttVersion=4 connects",
    {
      skip: skipWithoutRabbitMQ(),
      timeout: 120_000,
    },
    async () => {
      await using rabbit = await startRabbitMQ();
      const error = await mqtt5Failure(rabbit.url);
      console.log(`RabbitMQ, mqttVersion=5: ${(error as Error).message}`);
      assert.ok(error instanceof MqttConnectError, String(error));
      assert.equal(error.code, "CONNECT_CLOSED");
      assert.match(error.message, HINT);
      const source = new MqttSource(`${rabbit.url}?topic=t&qos=1&mqttVersion=4`);
      try {
        await within(source.ready, 10_000, "the source over MQTT 3.1.1");
      } finally {
        await source.cancel();
      }
    },
  );

  test("a server that closes on an MQTT 5 CONNECT (as RabbitMQ 3.10 does): the error says the broker may not support mqttVersion=5", async () => {
    await using server = await startHostile((conn) => conn.destroy());
    const error = await mqtt5Failure(server.url);
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.equal(server.connections, 2);
    assert.match(error.message, HINT);
  });

  test("with several brokers, each one closing on the MQTT 5 CONNECT says so", async () => {
    await using a = await startHostile((conn) => conn.destroy());
    await using b = await startHostile((conn) => conn.destroy());
    const error = await failureOf(
      new MqttSource(
        `mqtt://127.0.0.1:${a.port},127.0.0.1:${b.port}?topic=t&mqttVersion=5&connectAttempts=1`,
      ),
      10_000,
    );
    assert.ok(error instanceof MqttConnectError, String(error));
    for (const broker of [a, b]) {
      assert.match(error.message, new RegExp(`${broker.url}: [^;]*may not support mqttVersion=5`));
    }
  });

  test("aedes 1.x answers CONNACK 0x01 (unacceptable protocol level): the error says it does not support mqttVersion=5", async () => {
    await using broker = await startAedes();
    const error = await mqtt5Failure(broker.url);
    console.log(`aedes, mqttVersion=5: ${(error as Error).message}`);
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.equal(error.code, "CONNECT_REJECTED");
    assert.match(error.message, /CONNACK 1: Unacceptable protocol version/);
    assert.match(error.message, /does not support mqttVersion=5.*mqttVersion=4/);
  });

  test("a close before CONNACK over MQTT 3.1.1 says nothing of versions", async () => {
    await using server = await startHostile((conn) => conn.destroy());
    const error = await failureOf(
      new MqttSource(`${server.url}?topic=t&connectAttempts=1`),
      10_000,
    );
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.match(error.message, /closed the connection/);
    assert.doesNotMatch(error.message, /mqttVersion/);
  });

  test("an MQTT 5 connection lost after it was up says nothing of versions", async () => {
    await using server = await startHostile(async (conn) => {
      conn.connack();
      conn.suback((await conn.next("subscribe")).id, [1]);
      conn.destroy();
    });
    const error = await failureOf(
      new MqttSource(`${server.url}?topic=t&qos=1&mqttVersion=5&autoReconnect=false`),
      10_000,
    );
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.match(error.message, /Lost the connection/);
    assert.doesNotMatch(error.message, /mqttVersion/);
  });
});
