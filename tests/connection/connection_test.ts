import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { inspect } from "node:util";
import { backoffDelay } from "../../src/options/_backoff.ts";
import { Connection, type Unsettled } from "../../src/connection/connection.ts";
import { quietLog, randomClientId, toClientOptions } from "../../src/connection/_client_options.ts";
import { unsettled } from "../../src/connection/_outbound.ts";
import { checkInternals, MqttAdapter } from "../../src/connection/_mqtt.ts";
import type { IncomingPublish } from "../../src/message.ts";
import mqtt from "mqtt";
import { startHostile } from "../../testing/hostile.ts";
import { within } from "../../testing/helpers.ts";
import { MqttConnectError, MqttOptionsError, parseConnectionString } from "../../mod.ts";
import type { MqttOptionsInit } from "../../mod.ts";
import {
  freePort,
  skipWithoutMosquitto,
  startAedes,
  startMosquitto,
} from "../../testing/broker.ts";

/** Who waits for the next message each connection opened here receives, for roundTrip. */
const inboxes = new WeakMap<Connection, ((publish: IncomingPublish) => void)[]>();

async function open(url: string, overrides?: MqttOptionsInit): Promise<Connection> {
  const waiting: ((publish: IncomingPublish) => void)[] = [];
  const connection = await Connection.open(parseConnectionString(url, overrides), {
    deliver: (publish, ack) => {
      ack?.release();
      waiting.shift()?.(publish);
    },
  });
  inboxes.set(connection, waiting);
  return connection;
}

/**
 * Connects, checks a publish comes back, and ends: proof the connection really works.
 * Returns the message as it came back.
 */
async function roundTrip(
  connection: Connection,
  properties?: { userProperties: Record<string, string> },
): Promise<IncomingPublish> {
  try {
    await connection.subscribe([{ filter: "check/round-trip" }], 1);
    const received = new Promise<IncomingPublish>((resolve) =>
      inboxes.get(connection)!.push(resolve)
    );
    const settled = new Promise<Unsettled | undefined>((resolve) =>
      connection.publish(
        {
          index: 0,
          topic: "check/round-trip",
          payload: "hello",
          qos: 1,
          retain: false,
          properties,
        },
        (_publish, failure) => resolve(failure),
        () => {},
      )
    );
    assert.equal(await settled, undefined, "the broker acknowledged the publish");
    const publish = await received;
    assert.equal(new TextDecoder().decode(publish.payload), "hello");
    return publish;
  } finally {
    await connection.end();
  }
}

async function connectError(url: string, overrides?: MqttOptionsInit): Promise<MqttConnectError> {
  try {
    const connection = await open(url, overrides);
    await connection.end();
  } catch (error) {
    assert.ok(error instanceof MqttConnectError, `expected MqttConnectError, got ${error}`);
    return error;
  }
  assert.fail("connected, but a failure was expected");
}

describe("toClientOptions", () => {
  test("maps the Bahir connector's options onto mqtt.js's", async () => {
    const o = await toClientOptions(parseConnectionString(
      "tcp://alice:s%3Acret@127.0.0.1:1884?clientId=ingest&keepAlive=20&connectionTimeout=5&mqttVersion=5&maxInflight=7",
    ));
    assert.equal(o.protocol, "mqtt");
    assert.equal(o.hostname, "127.0.0.1");
    assert.equal(o.port, 1884);
    assert.equal(o.clientId, "ingest");
    assert.equal(o.clean, false);
    assert.equal(o.keepalive, 20);
    assert.equal(o.connectTimeout, 5000);
    assert.equal(o.protocolVersion, 5);
    assert.equal(o.username, "alice");
    assert.equal(o.password, "s:cret");
    assert.equal(o.queueQoSZero, false);
    assert.deepEqual(o.properties, {
      receiveMaximum: 7,
      sessionExpiryInterval: 0xffffffff,
      maximumPacketSize: 1_048_576,
    });
  });

  test("connectionTimeout=0 waits for ever instead of timing out at once", async () => {
    const o = await toClientOptions(parseConnectionString("mqtt://h?connectionTimeout=0"));
    assert.equal(o.connectTimeout, 2 ** 31 - 1);
  });

  test("maps the last will", async () => {
    const o = await toClientOptions(
      parseConnectionString(
        "mqtt://h?will.topic=status/a&will.payload=gone&will.qos=1&will.retain=true",
      ),
    );
    assert.deepEqual(o.will, { topic: "status/a", payload: "gone", qos: 1, retain: true });
  });

  test("maps ssl.protocol, ssl.ciphers and ssl.verify onto TLS options", async () => {
    const o = await toClientOptions(
      parseConnectionString(
        "ssl://h:8883?ssl.protocol=TLSv1.2&ssl.ciphers=SSL_RSA_WITH_AES_128_CBC_SHA&ssl.verify=false",
      ),
    ) as Record<string, unknown>;
    assert.equal(o.protocol, "mqtts");
    assert.equal(o.minVersion, "TLSv1.2");
    assert.equal(o.ciphers, "AES128-SHA");
    assert.equal(o.rejectUnauthorized, false);
  });

  test("verifies certificates unless told not to", async () => {
    const o = await toClientOptions(parseConnectionString("mqtts://h")) as Record<string, unknown>;
    assert.equal(o.rejectUnauthorized, true);
  });

  test("a missing certificate file is an MqttOptionsError naming the option", async () => {
    await assert.rejects(
      toClientOptions(parseConnectionString("mqtts://h?ssl.ca=/nonexistent/ca.pem")),
      (e: unknown) =>
        e instanceof MqttOptionsError && e.option === "ssl.ca" &&
        /nonexistent\/ca\.pem/.test(e.message),
    );
  });

  test("quietLog silences mqtt.js's log only when debug has it off", () => {
    const log = (on: boolean) => Object.assign(() => {}, { enabled: on });
    const off = { log: log(false) as (...args: unknown[]) => void };
    const offLog = off.log;
    quietLog(off);
    assert.notEqual(off.log, offLog);
    const on = { log: log(true) as (...args: unknown[]) => void };
    const onLog = on.log;
    quietLog(on);
    assert.equal(on.log, onLog);
  });

  test("random client ids are unique and at most 23 characters", () => {
    const ids = new Set(Array.from({ length: 100 }, randomClientId));
    assert.equal(ids.size, 100);
    for (const id of ids) assert.ok(id.length <= 23, id);
  });
});

describe("backoffDelay", () => {
  test("doubles from the base, with jitter between half and all of it", () => {
    assert.equal(backoffDelay(1, 1000, () => 0), 500);
    assert.equal(backoffDelay(1, 1000, () => 1), 1000);
    assert.equal(backoffDelay(3, 1000, () => 1), 4000);
  });

  test("is capped at 60 s", () => {
    assert.equal(backoffDelay(40, 1000, () => 1), 60_000);
  });
});

describe("Connection against aedes", () => {
  test("connects and round-trips a QoS 1 message", async () => {
    await using broker = await startAedes();
    await roundTrip(await open(broker.url));
  });

  test("stats is one live view of the connection's counts", async () => {
    await using broker = await startAedes();
    const connection = await open(broker.url);
    const stats = connection.stats;
    assert.equal(connection.stats, stats, "the same object each time");
    assert.deepEqual({ ...stats }, {
      reconnects: 0,
      broker: broker.url,
      failovers: 0,
      acked: 0,
      beyondWindow: 0,
      discarded: 0,
      recoveredFailed: 0,
      recoveredIncoming: 0,
      recoveredOutgoing: 0,
      damaged: 0,
    });
    await roundTrip(connection);
    assert.equal(stats.acked, 1, "read when asked: the round trip's PUBACK");
    assert.equal(connection.unacked, 0);
  });

  test("a refused port fails with CONNECT_REFUSED after connectAttempts attempts", async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await connectError(
      `mqtt://127.0.0.1:${port}?connectAttempts=3&connectBackoff=20`,
    );
    assert.equal(error.code, "CONNECT_REFUSED");
    assert.equal(error.attempts, 3);
    assert.match(error.message, new RegExp(`mqtt://127\\.0\\.0\\.1:${port} after 3 attempts`));
    assert.ok(Date.now() - started < 10_000);
  });

  test("the password never appears in a connect error", async () => {
    const port = await freePort();
    const error = await connectError(`mqtt://bob:hunter2@127.0.0.1:${port}?connectAttempts=1`);
    for (const text of [error.message, String(error), JSON.stringify(error), inspect(error)]) {
      assert.doesNotMatch(text, /hunter2/);
    }
  });

  test("connects on a later attempt when the broker comes up meanwhile", async () => {
    const port = await freePort();
    const connecting = open(`mqtt://127.0.0.1:${port}?connectAttempts=20&connectBackoff=50`);
    await new Promise((r) => setTimeout(r, 300));
    await using _broker = await startAedes({ port });
    const connection = await connecting;
    assert.ok(connection.connected);
    await connection.end();
  });

  test("an aborted signal stops connecting with the signal's reason", async () => {
    const port = await freePort();
    const controller = new AbortController();
    const connecting = Connection.open(
      parseConnectionString(`mqtt://127.0.0.1:${port}?connectAttempts=-1&connectBackoff=50`),
      { signal: controller.signal },
    );
    setTimeout(() => controller.abort(new Error("stop")), 200);
    await assert.rejects(connecting, /stop/);
  });

  test("an abort at any point of opening stops it, whatever it was waiting for", async () => {
    const port = await freePort();
    const url = `mqtt://127.0.0.1:${port}?connectAttempts=-1&connectBackoff=50`;
    // From the first await (TLS files, the store, the client) to the attempts.
    for (const ms of [0, 0, 1, 2, 5, 20]) {
      const controller = new AbortController();
      const connecting = Connection.open(parseConnectionString(url), { signal: controller.signal });
      if (ms === 0) queueMicrotask(() => controller.abort(new Error("stop")));
      else setTimeout(() => controller.abort(new Error("stop")), ms);
      await within(assert.rejects(connecting, /stop/), 5_000, `open() to stop (abort at ${ms} ms)`);
    }
  });

  test("reconnects after the broker drops the client, and counts it", async () => {
    await using broker = await startAedes();
    const connection = await open(broker.url, { connectBackoff: 20 });
    try {
      const reconnected = new Promise<void>((resolve) => connection.onConnect(() => resolve()));
      broker.dropClients();
      await reconnected;
      assert.equal(connection.stats.reconnects, 1);
    } finally {
      await connection.end();
    }
  });

  test("with autoReconnect=false a drop ends the connection with an error", async () => {
    await using broker = await startAedes();
    const connection = await open(broker.url, { autoReconnect: false });
    broker.dropClients();
    const error = await connection.closed;
    assert.ok(error instanceof MqttConnectError);
    assert.match(error.message, /Lost the connection .* autoReconnect is false/);
  });
});

describe("Connection against mosquitto", { skip: skipWithoutMosquitto() }, () => {
  test("accepts a good user name and password", async () => {
    await using broker = await startMosquitto({ users: { alice: "wonder land" } });
    await roundTrip(await open(broker.url.replace("mqtt://", "mqtt://alice:wonder%20land@")));
  });

  test("a wrong password fails at once with CONNECT_AUTH naming the user, not the password", async () => {
    await using broker = await startMosquitto({ users: { alice: "wonder land" } });
    const error = await connectError(broker.url.replace("mqtt://", "mqtt://alice:not-it@"), {
      connectAttempts: 5,
    });
    assert.equal(error.code, "CONNECT_AUTH");
    assert.equal(error.attempts, 1, "bad credentials are not retried");
    assert.match(error.message, /as user 'alice'/);
    assert.doesNotMatch(error.message, /not-it/);
  });

  test("MQTT 5: a wrong password fails with CONNECT_AUTH", async () => {
    await using broker = await startMosquitto({ users: { alice: "pw" } });
    const error = await connectError(broker.url.replace("mqtt://", "mqtt://alice:bad@"), {
      mqttVersion: 5,
    });
    assert.equal(error.code, "CONNECT_AUTH");
  });

  test("MQTT 5 round trip", async () => {
    await using broker = await startMosquitto();
    const connection = await open(broker.url, { mqttVersion: 5, clientId: "v5-client" });
    // User properties exist only in MQTT 5: they come back only if both ends speak it.
    const publish = await roundTrip(connection, { userProperties: { version: "5" } });
    assert.deepEqual(
      { ...(publish.properties as { userProperties?: object }).userProperties },
      { version: "5" },
    );
  });

  test("TLS with a CA-signed server certificate and a PEM CA", async () => {
    await using broker = await startMosquitto({ tls: true });
    await roundTrip(await open(broker.url, { "ssl.ca": broker.certificates!.ca }));
  });

  test("TLS with an inline PEM CA", async () => {
    await using broker = await startMosquitto({ tls: true });
    await roundTrip(
      await open(broker.url, { "ssl.ca": readFileSync(broker.certificates!.ca, "utf8") }),
    );
  });

  test("TLS with a PKCS12 trust store", async () => {
    await using broker = await startMosquitto({ tls: true });
    const c = broker.certificates!;
    await roundTrip(
      await open(broker.url, {
        "ssl.trust.store": c.caP12,
        "ssl.trust.store.password": c.p12Password,
      }),
    );
  });

  test("TLS with a wrong CA fails with CONNECT_TLS at the first attempt", async () => {
    await using broker = await startMosquitto({ tls: true });
    const error = await connectError(broker.url, {
      "ssl.ca": broker.certificates!.otherCa,
      connectAttempts: 3,
    });
    assert.equal(error.code, "CONNECT_TLS", error.message);
    assert.match(error.message, /TLS/);
    assert.equal(error.attempts, 1);
  });

  test("TLS client certificate as PEM cert and key", async () => {
    await using broker = await startMosquitto({ tls: true, requireCertificate: true });
    const c = broker.certificates!;
    await roundTrip(
      await open(broker.url, { "ssl.ca": c.ca, "ssl.cert": c.clientCert, "ssl.key": c.clientKey }),
    );
  });

  test("TLS client certificate from a PKCS12 key store", async () => {
    await using broker = await startMosquitto({ tls: true, requireCertificate: true });
    const c = broker.certificates!;
    await roundTrip(
      await open(broker.url, {
        "ssl.ca": c.ca,
        "ssl.key.store": c.clientP12,
        "ssl.key.store.password": c.p12Password,
      }),
    );
  });

  test("TLS without the client certificate the broker requires fails", async () => {
    await using broker = await startMosquitto({ tls: true, requireCertificate: true });
    const error = await connectError(broker.url, {
      "ssl.ca": broker.certificates!.ca,
      connectAttempts: 2,
      connectBackoff: 20,
    });
    assert.ok(["CONNECT_TLS", "CONNECT_CLOSED"].includes(error.code), error.message);
  });
});

describe("the outbound side reads mqtt.js's publish failures", () => {
  test("a QoS 1 publish mqtt.js fails as the connection closes is 'dropped': sent again, never refused", async () => {
    // mqtt.js 5.16 gives this failure no code, only the text "Connection closed"; the
    // outbound side reads it in one place, and this pins that text against mqtt.js itself.
    await using server = await startHostile((connection) => connection.connack());
    const client = mqtt.connect(server.url, { reconnectPeriod: 0, clean: true });
    const failed = new Promise<Error | undefined>((resolve) =>
      client.on("connect", () => client.publish("t", "x", { qos: 1 }, (error) => resolve(error)))
    );
    const connection = await server.accept();
    await connection.next("publish"); // never acknowledged
    client.end(true);
    const error = await within(failed, 5_000, "mqtt.js to fail the publish");
    assert.ok(error instanceof Error, "mqtt.js failed the unacknowledged publish");
    assert.equal(unsettled(error).kind, "dropped", error.message);
  });

  test("a refusal with a reason code is 'refused', named in words", () => {
    const error = Object.assign(new Error("Publish error: Not authorized"), { code: 0x87 });
    assert.deepEqual(
      { ...unsettled(error), error: undefined },
      { kind: "refused", reasonCode: 0x87, reason: "not authorized", error: undefined },
    );
  });
});

describe("the outbound side hands mqtt.js compact payloads", () => {
  test("a publish that is a view into a larger buffer is stored in a buffer of its own size", async () => {
    // A broker that never acknowledges: the publish stays in mqtt.js's (memory) store, which
    // keeps the very packet mqtt.js stored (its deep copy), seen here as it is put.
    await using server = await startHostile((conn) => conn.connack());
    const connection = await Connection.open(parseConnectionString(server.url));
    const put = mqtt.Store.prototype.put;
    const puts: { payload?: unknown }[] = [];
    mqtt.Store.prototype.put = function (packet, cb) {
      puts.push(packet as { payload?: unknown });
      return put.call(this, packet, cb);
    };
    try {
      const readBuffer = new Uint8Array(1 << 20);
      const view = readBuffer.subarray(4096, 4096 + 64).fill(7);
      await new Promise<void>((stored) =>
        connection.publish(
          { index: 0, topic: "t", payload: view, qos: 1, retain: false },
          () => {},
          () => stored(),
        )
      );
      const payload = puts.at(-1)?.payload as Uint8Array;
      assert.deepEqual([...payload], [...view]);
      // Before: mqtt.js's deep copy took the whole 1 MiB the view looks into.
      assert.equal(payload.buffer.byteLength, 64);
    } finally {
      mqtt.Store.prototype.put = put;
      await connection.end(true);
    }
  });
});

describe("the adapter to mqtt.js", () => {
  test("this mqtt.js has every member the adapter patches or calls", () => {
    // Never connected, so nothing to end.
    assert.doesNotThrow(() => new MqttAdapter(mqtt.connect({ manualConnect: true })));
  });

  test("a member missing fails with CONNECT_REJECTED naming it and mqtt.js's version", () => {
    const client = mqtt.connect({ manualConnect: true });
    Object.defineProperty(client, "_sendPacket", { value: undefined });
    assert.throws(
      () => new MqttAdapter(client),
      (error: unknown) =>
        error instanceof MqttConnectError && error.code === "CONNECT_REJECTED" &&
        error.message.includes(`Cannot connect with mqtt.js ${mqtt.MqttClient.VERSION} as`) &&
        /'_sendPacket' must be a function: it is missing .*mqtt 5\.16/.test(error.message),
    );
  });

  test("a member of another kind fails the same way", () => {
    const client = mqtt.connect({ manualConnect: true });
    Object.defineProperty(client, "_incomingQoS2Ids", { value: [] });
    assert.throws(
      () => checkInternals(client),
      /'_incomingQoS2Ids' must be a Set: it is an object/,
    );
  });
});
