// The hostile server of testing/hostile.ts checked against plain mqtt.js: what it encodes, mqtt.js
// understands, and what mqtt.js sends, it decodes. Tests of mqtt-streams rely on both.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import mqtt, { type MqttClient, type MqttClientEventCallbacks } from "mqtt";
import { encode, type Packet, PacketDecoder, startHostile } from "../../testing/hostile.ts";
import { waitFor, within } from "../../testing/helpers.ts";
import { makeCertificates } from "../../testing/broker.ts";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The arguments of the client's next `name` event, within 5 s. */
function event<E extends keyof MqttClientEventCallbacks>(
  client: MqttClient,
  name: E,
): Promise<Parameters<MqttClientEventCallbacks[E]>> {
  const arrived = new Promise<Parameters<MqttClientEventCallbacks[E]>>((resolve) => {
    const listener = (...args: Parameters<MqttClientEventCallbacks[E]>) => resolve(args);
    client.once(name, listener as MqttClientEventCallbacks[E]);
  });
  return within(arrived, 5_000, `mqtt.js event '${name}'`);
}

describe("PacketDecoder", () => {
  const payload = new Uint8Array(200).fill(7); // a Remaining Length of two bytes
  const packets: Exclude<Packet, { cmd: "connect" }>[] = [
    {
      cmd: "publish",
      topic: "a/b",
      payload,
      qos: 2,
      dup: true,
      retain: false,
      id: 300,
      properties: { topicAlias: 3, userProperties: [["k", "v"], ["k", "w"]] },
    },
    { cmd: "puback", id: 1, reasonCode: 0x10 },
    { cmd: "pubrel", id: 9, reasonCode: 0 },
    {
      cmd: "subscribe",
      id: 2,
      subscriptions: [{ topic: "x/#", qos: 1, options: 1 }],
      properties: {},
    },
    { cmd: "pingreq" },
    { cmd: "disconnect", reasonCode: 0x04 },
  ];
  const wire = packets.map((p) => encode.packet(p, 5));
  const all = new Uint8Array(wire.reduce((n, w) => n + w.length, 0));
  wire.reduce((at, w) => (all.set(w, at), at + w.length), 0);

  test("decodes packets fed one byte at a time, each when its last byte arrives", () => {
    const decoder = new PacketDecoder(5);
    const out: Packet[] = [];
    const completedAt: number[] = [];
    all.forEach((byte, i) => {
      for (const p of decoder.push(Uint8Array.of(byte))) (out.push(p), completedAt.push(i + 1));
    });
    assert.deepEqual(out, packets);
    assert.deepEqual(
      completedAt,
      wire.map((_, i) => wire.slice(0, i + 1).reduce((n, w) => n + w.length, 0)),
    );
  });

  test("decodes several packets from one chunk, and a chunk ending mid-packet", () => {
    const decoder = new PacketDecoder(5);
    const cut = wire[0].length + 3;
    assert.deepEqual(decoder.push(all.subarray(0, cut)), packets.slice(0, 1));
    assert.deepEqual(decoder.push(all.subarray(cut)), packets.slice(1));
  });

  test("encodes Remaining Length as 1 to 4 bytes and refuses more", () => {
    assert.deepEqual([...encode.varint(127)], [0x7f]);
    assert.deepEqual([...encode.varint(128)], [0x80, 0x01]);
    assert.deepEqual([...encode.varint(16_384)], [0x80, 0x80, 0x01]);
    assert.deepEqual([...encode.varint(268_435_455)], [0xff, 0xff, 0xff, 0x7f]);
    assert.throws(() => encode.varint(268_435_456), RangeError);
    const five = Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x01);
    assert.throws(() => new PacketDecoder().push(five), /over 4 bytes/);
  });

  test("refuses to encode MQTT 5 fields for MQTT 3.1.1", () => {
    const limits = { maximumPacketSize: 1_000 };
    assert.throws(
      () => encode.packet({ cmd: "connack", properties: limits }, 4),
      /only under MQTT 5/,
    );
    assert.throws(() => encode.packet({ cmd: "disconnect", reasonCode: 0x8b }, 4), /only under/);
    assert.deepEqual([...encode.packet({ cmd: "disconnect" }, 4)], [0xe0, 0]);
  });

  test("refuses a declared 200 MB packet from its header alone", () => {
    const head = encode.header(0x30, 200_000_000);
    assert.throws(() => new PacketDecoder(4, 1_000).push(head), /Remaining Length 200000000/);
  });
});

for (const version of [4, 5] as const) {
  test(`mqtt.js over MQTT ${version} connects, subscribes, and acks a PUBLISH it gets`, async () => {
    await using server = await startHostile();
    const client = mqtt.connect(server.url, {
      protocolVersion: version,
      clientId: `hostile-${version}`,
      keepalive: 30,
      reconnectPeriod: 0,
      properties: version === 5 ? { receiveMaximum: 7, maximumPacketSize: 5_000 } : undefined,
    });
    try {
      const conn = await server.accept();
      const { version: v, clientId, clean, keepalive, properties } = conn.connect;
      assert.deepEqual({ v, clientId, clean, keepalive }, {
        v: version,
        clientId,
        clean: true,
        keepalive: 30,
      });
      if (version === 5) {
        assert.deepEqual(properties, { receiveMaximum: 7, maximumPacketSize: 5_000 });
      }

      const limits = { maximumPacketSize: 1_000, receiveMaximum: 3, topicAliasMaximum: 2 };
      conn.connack(version === 5 ? { properties: limits } : {});
      const [connack] = await event(client, "connect");
      assert.deepEqual(connack.properties, version === 5 ? limits : undefined);

      const subscribed = client.subscribeAsync("in/+", { qos: 1 });
      const subscribe = await conn.next("subscribe");
      assert.deepEqual(subscribe.subscriptions, [{ topic: "in/+", qos: 1, options: 1 }]);
      conn.suback(subscribe.id, [1]);
      assert.equal((await within(subscribed, 5_000, "SUBACK"))[0].qos, 1);

      const message = event(client, "message");
      conn.publish({ topic: "in/x", payload: "hello", qos: 1, id: 7 });
      const [topic, payload] = await message;
      assert.deepEqual([topic, payload.toString()], ["in/x", "hello"]);
      assert.equal((await conn.next("puback")).id, 7);

      const published = client.publishAsync("out/y", "world", {
        qos: 1,
        retain: true,
        properties: version === 5 ? { contentType: "text/plain", userProperties: { a: "1" } } : {},
      });
      const publish = await conn.next("publish");
      assert.deepEqual(
        { ...publish, payload: new TextDecoder().decode(publish.payload) },
        {
          cmd: "publish",
          topic: "out/y",
          payload: "world",
          qos: 1,
          dup: false,
          retain: true,
          id: publish.id,
          ...(version === 5
            ? { properties: { contentType: "text/plain", userProperties: [["a", "1"]] } }
            : {}),
        },
      );
      assert.ok(publish.id! > 0);
      conn.puback(publish.id!);
      await within(published, 5_000, "PUBACK");
      assert.deepEqual(server.errors, []);
    } finally {
      client.end(true);
    }
  });

  test(`mqtt.js over MQTT ${version} runs QoS 2 both ways, unsubscribes and disconnects`, async () => {
    await using server = await startHostile((conn) => conn.connack());
    const client = mqtt.connect(server.url, { protocolVersion: version, reconnectPeriod: 0 });
    try {
      const conn = await server.accept();
      await event(client, "connect");
      const message = event(client, "message");
      conn.publish({ topic: "in/2", payload: "two", qos: 2, id: 8, dup: true });
      assert.equal((await conn.next("pubrec")).id, 8);
      conn.pubrel(8);
      assert.equal((await conn.next("pubcomp")).id, 8);
      const [, , packet] = await message;
      assert.deepEqual([packet.qos, packet.dup, packet.messageId], [2, true, 8]);

      const published = client.publishAsync("out/2", "two", { qos: 2 });
      const { id } = await conn.next("publish");
      conn.pubrec(id!);
      assert.equal((await conn.next("pubrel")).id, id);
      conn.pubcomp(id!);
      await within(published, 5_000, "PUBCOMP");

      const unsubscribed = client.unsubscribeAsync(["in/+", "in/#"]);
      const unsubscribe = await conn.next("unsubscribe");
      assert.deepEqual(unsubscribe.topics, ["in/+", "in/#"]);
      conn.sendPacket({ cmd: "unsuback", id: unsubscribe.id, codes: [0, 0x11] });
      await within(unsubscribed, 5_000, "UNSUBACK");

      // packets() ends when the socket closes, after the client's DISCONNECT.
      await client.endAsync();
      const rest: Packet[] = [];
      for await (const p of conn.packets()) rest.push(p);
      // mqtt.js writes an MQTT 5 DISCONNECT in full: reason code 0 and an empty property section.
      const v5 = { reasonCode: 0, properties: {} };
      assert.deepEqual(rest, [{ cmd: "disconnect", ...(version === 5 ? v5 : {}) }]);
      assert.deepEqual(server.errors, []);
    } finally {
      client.end(true);
    }
  });
}

test("mqtt.js gets an MQTT 5 DISCONNECT's reason code, then the socket closes", async () => {
  await using server = await startHostile((conn) => {
    conn.connack();
    conn.disconnect(0x8b, { reasonString: "going down" });
  });
  const client = mqtt.connect(server.url, { protocolVersion: 5, reconnectPeriod: 0 });
  try {
    const [packet] = await event(client, "disconnect");
    assert.equal(packet.reasonCode, 0x8b);
    assert.deepEqual(packet.properties, { reasonString: "going down" });
    await event(client, "close");
  } finally {
    client.end(true);
  }
});

test("answers PINGREQ on its own, so mqtt.js's keep-alive holds", async () => {
  await using server = await startHostile((conn) => conn.connack());
  const client = mqtt.connect(server.url, { keepalive: 1, reconnectPeriod: 0 });
  const received: string[] = [];
  client.on("packetreceive", (p) => received.push(p.cmd));
  try {
    const conn = await server.accept();
    await conn.next("pingreq", 3_000);
    await waitFor(() => received.includes("pingresp"), "PINGRESP", 3_000);
    assert.ok(client.connected);
  } finally {
    client.end(true);
  }
});

test("stays silent to PINGREQ when told, so mqtt.js's keep-alive times out", async () => {
  await using server = await startHostile((conn) => conn.connack(), { pingResponder: false });
  const client = mqtt.connect(server.url, { keepalive: 1, reconnectPeriod: 0 });
  const errors: Error[] = [];
  client.on("error", (error) => errors.push(error));
  try {
    const conn = await server.accept();
    await conn.next("pingreq", 3_000);
    await within(conn.closed, 5_000, "the client closing the connection");
    assert.match(String(errors[0]), /Keepalive timeout/);
  } finally {
    client.end(true);
  }
});

test("a server that drops every connection sees each reconnect", async () => {
  await using server = await startHostile((conn) => conn.destroy());
  const client = mqtt.connect(server.url, { reconnectPeriod: 20, connectTimeout: 2_000 });
  try {
    await waitFor(() => server.connections >= 3, "three connections", 5_000);
    const conn = await server.accept();
    await within(conn.closed, 1_000, "the first connection closed");
    await assert.rejects(conn.next("publish"), /connection closed/);
    assert.deepEqual(server.errors, []);
  } finally {
    client.end(true);
  }
});

test("serves MQTT over TLS with the certificate it is given; mqtt.js connects trusting its CA", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-hostile-tls-"));
  try {
    const certificates = makeCertificates(dir);
    await using server = await startHostile((conn) => conn.connack(), {
      tls: {
        cert: readFileSync(certificates.serverCert),
        key: readFileSync(certificates.serverKey),
      },
    });
    assert.match(server.url, /^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const client = mqtt.connect(server.url, {
      ca: readFileSync(certificates.ca),
      reconnectPeriod: 0,
    });
    try {
      await event(client, "connect");
      assert.equal(server.connections, 1);
      assert.deepEqual(server.errors, []);
    } finally {
      client.end(true);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
