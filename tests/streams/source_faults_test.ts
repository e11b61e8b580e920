// A source survives any single network fault, and cancels within 1 s whatever the broker
// does (issue 17). Drops at chosen moments (between CONNACK and SUBACK, at a PINGREQ),
// a SUBACK with a wrong packet id, a broker that accepts and drops for ever, one that never
// answers: protocol misbehaviour no real broker can be made to show, so these run against
// the raw server of testing/hostile.ts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MqttConnectError, MqttSource } from "../../mod.ts";
import { type HostileConnection, startHostile } from "../../testing/hostile.ts";
import { sleep, within } from "../../testing/helpers.ts";

/** Answers the next SUBSCRIBE with a SUBACK granting what was asked; returns its id. */
async function grant(connection: HostileConnection, ms = 5000): Promise<number> {
  const subscribe = await connection.next("subscribe", ms);
  connection.suback(subscribe.id, subscribe.subscriptions.map((s) => s.qos));
  return subscribe.id;
}

/**
 * Resumes the session, then answers its SUBSCRIBE with a backlog first, as a broker does:
 * QoS 1 messages `b1`…`b<count>`, `gap` ms apart, and only then the SUBACK.
 */
async function backlogBeforeSuback(connection: HostileConnection, count: number, gap = 0) {
  connection.connack({ sessionPresent: true });
  const subscribe = await connection.next("subscribe");
  for (let id = 1; id <= count; id++) {
    connection.publish({ topic: "t", payload: `b${id}`, qos: 1, id });
    if (gap) await sleep(gap);
  }
  connection.suback(subscribe.id, [1]);
}

/** Reads one message from `source` within `ms`. */
async function readOne(source: MqttSource, ms = 5000): Promise<string> {
  return (await readTexts(source, 1, ms))[0];
}

/** Reads `count` messages from `source`, each within `ms`; their payloads as text. */
async function readTexts(source: MqttSource, count: number, ms = 3000): Promise<string[]> {
  const reader = source.getReader();
  try {
    const texts = [];
    for (let i = 0; i < count; i++) {
      texts.push((await within(reader.read(), ms, "a message")).value!.text());
    }
    return texts;
  } finally {
    reader.releaseLock();
  }
}

describe("MqttSource survives a single network fault", () => {
  test("a drop between CONNACK and SUBACK on the first connect is retried", async () => {
    let n = 0;
    await using server = await startHostile(async (connection) => {
      connection.connack();
      const subscribe = await connection.next("subscribe");
      if (n++ === 0) return connection.destroy(); // the SUBSCRIBE is lost with the connection
      connection.suback(subscribe.id, [1]);
      connection.publish({ topic: "t", payload: "after the cut", qos: 1, id: 7 });
    });
    await using source = new MqttSource(
      `${server.url}?topic=t&qos=1&connectAttempts=5&connectBackoff=50`,
    );
    assert.equal(await readOne(source), "after the cut");
    assert.equal(server.connections, 2);
    await within(source.ready, 1000, "ready");
  });

  test("a drop before SUBACK on the reconnect of a clean session is retried", async () => {
    let n = 0;
    await using server = await startHostile(async (connection) => {
      connection.connack();
      const subscribe = await connection.next("subscribe");
      const k = n++;
      if (k === 1) return connection.destroy();
      connection.suback(subscribe.id, [1]);
      if (k === 0) return void setTimeout(() => connection.destroy(), 50);
      connection.publish({ topic: "t", payload: "third connection", qos: 1, id: 9 });
    });
    await using source = new MqttSource(`${server.url}?topic=t&qos=1&connectBackoff=50`);
    assert.equal(await readOne(source), "third connection");
    assert.equal(server.connections, 3);
  });

  test("a persistent session subscribes again after a drop before SUBACK, though the broker says it resumed", async () => {
    let n = 0;
    const subscribes: number[] = [];
    await using server = await startHostile(async (connection) => {
      // The broker had the session from the first CONNECT on: sessionPresent from then on.
      connection.connack({ sessionPresent: n > 0 });
      const k = n++;
      const subscribe = await connection.next("subscribe");
      subscribes.push(k);
      if (k === 0) return connection.destroy();
      connection.suback(subscribe.id, [1]);
      connection.publish({ topic: "t", payload: "subscribed", qos: 1, id: 3 });
    });
    await using source = new MqttSource(
      `${server.url}?topic=t&qos=1&clientId=keeper&cleanSession=false&connectBackoff=50`,
    );
    assert.equal(await readOne(source), "subscribed");
    assert.deepEqual(subscribes, [0, 1]);
  });

  test("a SUBACK with a wrong packet id is bounded by connectionTimeout and retried", async () => {
    let n = 0;
    await using server = await startHostile(async (connection) => {
      connection.connack();
      const subscribe = await connection.next("subscribe");
      if (n++ === 0) return connection.suback(subscribe.id + 1, [1]);
      connection.suback(subscribe.id, [1]);
      connection.publish({ topic: "t", payload: "right id", qos: 1, id: 4 });
    });
    const started = Date.now();
    await using source = new MqttSource(
      `${server.url}?topic=t&qos=1&connectionTimeout=1&connectBackoff=50`,
    );
    assert.equal(await readOne(source, 5000), "right id");
    const took = Date.now() - started;
    assert.equal(server.connections, 2);
    assert.ok(took >= 900 && took < 4000, `retried after connectionTimeout: ${took} ms`);
  });

  test("a SUBACK that never comes ends in MqttConnectError after connectAttempts", async () => {
    await using server = await startHostile(async (connection) => {
      connection.connack();
      await connection.next("subscribe").catch(() => {});
    });
    const source = new MqttSource(
      `${server.url}?topic=t&qos=1&connectionTimeout=1&connectAttempts=2&connectBackoff=50`,
    );
    const error = await within(source.getReader().read(), 6000, "the error").then(
      () => assert.fail("read a message"),
      (error) => error,
    );
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.equal(error.attempts, 2);
    assert.match(error.message, /no SUBACK within connectionTimeout=1 s/);
    assert.equal(server.connections, 2);
  });

  test("a broker that accepts and drops again and again ends in MqttConnectError", async () => {
    await using server = await startHostile((connection) => {
      connection.connack();
      setTimeout(() => connection.destroy(), 20);
    });
    const source = new MqttSource(
      `${server.url}?topic=t&qos=1&connectAttempts=3&connectBackoff=20`,
    );
    const error = await within(source.getReader().read(), 5000, "the error").then(
      () => assert.fail("read a message"),
      (error) => error,
    );
    assert.ok(error instanceof MqttConnectError, String(error));
    assert.equal(error.attempts, 3);
    assert.match(error.message, /accepted the connection \(CONNACK\) and then closed it/);
    assert.equal(server.connections, 3);
  });

  test("a backlog before the SUBACK, with the reader stalled past connectionTimeout, costs no reconnect", async () => {
    // The SUBACK waits behind the backlog, unread while the source holds a message past
    // its window.
    await using server = await startHostile((connection) => backlogBeforeSuback(connection, 10));
    await using source = new MqttSource(
      `${server.url}?topic=t&qos=1&clientId=backlog&cleanSession=false&maxInflight=2` +
        "&connectionTimeout=1&connectBackoff=50",
    );
    await sleep(2500);
    const texts = await readTexts(source, 10);
    assert.deepEqual(texts, Array.from({ length: 10 }, (_, i) => `b${i + 1}`));
    await within(source.ready, 1000, "ready");
    assert.equal(server.connections, 1);
  });

  test("a backlog that trickles in for longer than connectionTimeout before the SUBACK costs no reconnect", async () => {
    // Each packet restarts the bound on the broker's silence: 6 messages 400 ms apart
    // (2.4 s, over twice connectionTimeout=1), then the SUBACK.
    await using server = await startHostile((connection) =>
      backlogBeforeSuback(connection, 6, 400)
    );
    await using source = new MqttSource(
      `${server.url}?topic=t&qos=1&clientId=trickle&cleanSession=false` +
        "&connectionTimeout=1&connectBackoff=50",
    );
    const texts = await readTexts(source, 6);
    await within(source.ready, 2000, "ready");
    assert.deepEqual(texts, ["b1", "b2", "b3", "b4", "b5", "b6"]);
    assert.equal(server.connections, 1);
  });

  test("a reader that stalls while the broker's PINGRESP waits behind held messages keeps its connection", async () => {
    // keepAlive=1: mqtt.js sends PINGREQ after 1 s and gives up 0.5 s later without a
    // PINGRESP. The broker answers that PINGREQ with more messages than the window and
    // then the PINGRESP: the source holds a message, stops reading, and the PINGRESP
    // waits unread while the reader stalls for 4 keep-alive periods.
    await using server = await startHostile(async (connection) => {
      connection.connack();
      await grant(connection);
      let first = true;
      for await (const packet of connection.packets(10_000)) {
        if (packet.cmd !== "pingreq") continue;
        if (first) {
          for (let id = 1; id <= 10; id++) {
            connection.publish({ topic: "t", payload: `m${id}`, qos: 1, id });
          }
          first = false;
        }
        connection.sendPacket({ cmd: "pingresp" });
      }
    }, { pingResponder: false });
    await using source = new MqttSource(
      `${server.url}?topic=t&qos=1&keepAlive=1&maxInflight=2&connectBackoff=50`,
    );
    await within(source.ready, 3000, "ready");
    await sleep(4500); // the burst comes at about 1 s; the reader stalls until 4.5 s
    assert.equal(source.stats.held, 1, "the source held a message and stopped reading");
    const reader = source.getReader();
    const texts = [];
    for (let i = 0; i < 10; i++) {
      texts.push((await within(reader.read(), 3000, "read")).value!.text());
    }
    assert.deepEqual(texts, Array.from({ length: 10 }, (_, i) => `m${i + 1}`));
    assert.equal(source.stats.reconnects, 0);
    assert.equal(server.connections, 1);
    reader.releaseLock();
  });
});

describe("MqttSource cancels within 1 s", () => {
  test("while connecting to a broker that never sends CONNACK", async () => {
    await using server = await startHostile(() => {}, { connectTimeout: 60_000 });
    const source = new MqttSource(`${server.url}?topic=t&connectionTimeout=30`);
    const connection = await server.accept();
    await within(source.cancel(), 1000, "cancel()");
    await within(connection.closed, 1000, "the socket to close");
  });

  test("while waiting for a SUBACK that never comes", async () => {
    await using server = await startHostile((connection) => connection.connack());
    const source = new MqttSource(`${server.url}?topic=t&connectionTimeout=30`);
    const connection = await server.accept();
    await connection.next("subscribe");
    await within(source.cancel(), 1000, "cancel()");
    await within(connection.closed, 1000, "the socket to close");
  });

  test("when the broker answers neither UNSUBSCRIBE nor DISCONNECT, and never closes", async () => {
    await using server = await startHostile(async (connection) => {
      connection.connack();
      await grant(connection);
    });
    const source = new MqttSource(`${server.url}?topic=t`);
    await within(source.ready, 3000, "ready");
    const connection = await server.accept();
    await within(source.cancel(), 1000, "cancel()");
    await within(connection.closed, 1000, "the socket to close");
  });

  test("while reconnecting with attempts for ever", async () => {
    const server = await startHostile(async (connection) => {
      connection.connack();
      await grant(connection);
    });
    const source = new MqttSource(`${server.url}?topic=t&connectAttempts=-1&connectBackoff=100`);
    await within(source.ready, 3000, "ready");
    await server.close();
    await sleep(300);
    await within(source.cancel(), 1000, "cancel()");
  });
});
