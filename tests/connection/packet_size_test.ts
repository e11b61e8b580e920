// Limits in bytes, both ways (issue 17). In: maxPacketSize (1 MiB by default), sent as
// MQTT 5's Maximum Packet Size and enforced from a packet's header, before its body is
// buffered, on 3.1.1 too. Out: a record over the broker's CONNACK Maximum Packet Size, or
// over what MQTT can frame, is refused before anything is sent.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import mqtt from "mqtt";
import { MqttProtocolError, MqttRecordError, MqttSink, MqttSource } from "../../mod.ts";
import {
  FrameScanner,
  MQTT_LARGEST_PACKET,
  publishSize,
} from "../../src/connection/_packet_size.ts";
import { encode, startHostile } from "../../testing/hostile.ts";
import { skipWithoutMosquitto, startAedes, startMosquitto } from "../../testing/broker.ts";
import { LOSSLESS, within } from "../../testing/helpers.ts";

/** The error a source's first read fails with. */
async function readError(source: MqttSource, ms = 5000): Promise<unknown> {
  return await within(source.getReader().read(), ms, "the error").then(
    ({ value }) => assert.fail(`read a message of ${value?.payload.length} bytes`),
    (error) => error,
  );
}

describe("FrameScanner and publishSize", () => {
  test("find a packet over the limit from its header, across chunks of any size", () => {
    const small = encode.packet({
      cmd: "publish",
      topic: "t",
      payload: new Uint8Array([120]),
      qos: 0,
    });
    const big = encode.header(0x30, 200_000_000);
    const stream = new Uint8Array([...small, ...small, ...big, 1, 2, 3]);
    for (const size of [1, 2, 3, 7, stream.length]) {
      const scanner = new FrameScanner(1000);
      let found;
      for (let i = 0; i < stream.length && !found; i += size) {
        found = scanner.scan(stream.subarray(i, i + size));
      }
      assert.equal(found?.packet, "PUBLISH", `chunks of ${size}`);
      assert.equal(found?.size, 1 + 4 + 200_000_000);
    }
  });

  test("find a Remaining Length of five bytes malformed, whatever the limit, across chunks", () => {
    const small = encode.packet({ cmd: "pingresp" });
    const stream = new Uint8Array([...small, 0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    for (const size of [1, 3, stream.length]) {
      const scanner = new FrameScanner(MQTT_LARGEST_PACKET);
      let found;
      for (let i = 0; i < stream.length && !found; i += size) {
        found = scanner.scan(stream.subarray(i, i + size));
      }
      assert.deepEqual(found && { packet: found.packet, malformed: found.malformed }, {
        packet: "PUBLISH",
        malformed: true,
      }, `chunks of ${size}`);
    }
    // Four bytes, the largest: over a small limit, not malformed.
    const largest = new FrameScanner(1000).scan(Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0x7f));
    assert.deepEqual(largest, { packet: "PUBLISH", size: 268_435_460, offset: 0 });
  });

  test("publishSize is the size mqtt.js writes, MQTT 5 properties included", async () => {
    const records = [
      { topic: "a", payload: "", qos: 0 as const },
      { topic: "sensors/é/temp", payload: "x".repeat(200), qos: 0 as const },
      { topic: "t", payload: new Uint8Array(20_000), qos: 0 as const },
      {
        topic: "p",
        payload: "ü",
        qos: 0 as const,
        properties: {
          payloadFormatIndicator: true,
          messageExpiryInterval: 60,
          contentType: "text/plain",
          responseTopic: "replies/1",
          correlationData: new Uint8Array(16),
          userProperties: { trace: "abc", tags: ["a", "bé"] },
        },
      },
    ];
    const sizes: number[] = [];
    await using server = await startHostile((connection) => {
      let bytes = 0;
      connection.socket.on("data", (chunk: Uint8Array) => (bytes += chunk.length));
      connection.connack();
      (async () => {
        for (let i = 0; i < records.length; i++) {
          await connection.next("publish");
          sizes.push(bytes - sizes.reduce((a, b) => a + b, 0));
        }
      })().catch(() => {});
    });
    const client = await mqtt.connectAsync(server.url, { protocolVersion: 5 });
    for (const r of records) {
      client.publish(r.topic, r.payload as string, {
        qos: r.qos,
        properties: r.properties as mqtt.IClientPublishOptions["properties"],
      });
      await within(
        (async () => {
          while (sizes.length < records.indexOf(r) + 1) await new Promise((f) => setTimeout(f, 5));
        })(),
        2000,
        "the publish to arrive",
      );
    }
    await client.endAsync(true);
    assert.deepEqual(sizes, records.map((r) => publishSize(r, 5)));
  });
});

describe("maxPacketSize bounds what comes in", () => {
  for (const version of [4, 5] as const) {
    test(`a PUBLISH declaring 200 MB is refused from its header (MQTT ${version})`, async () => {
      let disconnect: Promise<number | undefined> | undefined;
      let advertised: number | undefined;
      await using server = await startHostile(async (connection) => {
        advertised = connection.connect.properties?.maximumPacketSize;
        connection.connack();
        const subscribe = await connection.next("subscribe");
        connection.suback(subscribe.id, [1]);
        // The header, then 2 MiB of a body that would be 200 MB.
        connection.send(encode.header(0x32, 200_000_000));
        connection.send(encode.string("t"));
        connection.send(new Uint8Array([0, 1]));
        for (let i = 0; i < 32; i++) connection.send(new Uint8Array(64 * 1024));
        disconnect = connection.next("disconnect", 2000).then((p) => p.reasonCode, () => undefined);
      });
      const source = new MqttSource(`${server.url}?topic=t&qos=1&mqttVersion=${version}`);
      const error = await readError(source, 3000);
      assert.ok(error instanceof MqttProtocolError, String(error));
      assert.match(
        (error as Error).message,
        /sent a PUBLISH of 200000005 bytes, over 'maxPacketSize' \(1048576 bytes\): raise maxPacketSize/,
      );
      if (version === 5) {
        assert.equal(advertised, 1_048_576, "sent as CONNECT's Maximum Packet Size");
        assert.equal(await disconnect, 0x95, "DISCONNECT: Packet too large");
      }
      assert.equal(server.connections, 1, "not retried: the broker would send it again");
    });
  }

  test(
    "over MQTT 3.1.1 mosquitto sends a 2 MiB message, which fails the source; raised, it arrives",
    {
      skip: skipWithoutMosquitto(),
    },
    async () => {
      await using broker = await startMosquitto({ lines: LOSSLESS });
      const small = new MqttSource(`${broker.url}?topic=big&qos=1`);
      const large = new MqttSource(`${broker.url}?topic=big&qos=1&maxPacketSize=4194304`);
      await Promise.all([small.ready, large.ready]);
      const client = await mqtt.connectAsync(broker.url);
      await client.publishAsync("big", new Uint8Array(2 * 1024 * 1024) as unknown as string, {
        qos: 1,
      });
      await client.endAsync();
      const error = await readError(small);
      assert.ok(error instanceof MqttProtocolError);
      const reader = large.getReader();
      const { value } = await within(reader.read(), 5000, "the large message");
      assert.equal(value!.payload.length, 2 * 1024 * 1024);
      reader.releaseLock();
      await large.cancel();
    },
  );

  test(
    "over MQTT 5 mosquitto keeps to the Maximum Packet Size: the large message is not sent to the source",
    {
      skip: skipWithoutMosquitto(),
    },
    async () => {
      // MQTT 5 §3.1.2.11.4: the broker discards it for this client, as if delivered. The
      // source cannot see or count it; the README says so.
      await using broker = await startMosquitto({ lines: LOSSLESS });
      await using source = new MqttSource(`${broker.url}?topic=big&qos=1&mqttVersion=5`);
      await source.ready;
      const client = await mqtt.connectAsync(broker.url);
      await client.publishAsync("big", new Uint8Array(2 * 1024 * 1024) as unknown as string, {
        qos: 1,
      });
      await client.publishAsync("big", "small", { qos: 1 });
      await client.endAsync();
      const reader = source.getReader();
      const { value } = await within(reader.read(), 5000, "the next message");
      assert.equal(value!.text(), "small");
      assert.equal(source.stats.received, 1);
      reader.releaseLock();
    },
  );
});

describe("a malformed Remaining Length is a protocol error, not a large packet", () => {
  for (const version of [4, 5] as const) {
    test(`five Remaining Length bytes end the source with MqttProtocolError saying so, with no advice on maxPacketSize (MQTT ${version})`, async () => {
      let disconnect: Promise<number | undefined> | undefined;
      await using server = await startHostile(async (connection) => {
        connection.connack();
        connection.suback((await connection.next("subscribe")).id, [1]);
        // A PUBLISH whose Remaining Length has a continuation bit on its fourth byte.
        connection.send(Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x7f));
        disconnect = connection.next("disconnect", 2000).then((p) => p.reasonCode, () => undefined);
      });
      const source = new MqttSource(`${server.url}?topic=t&qos=1&mqttVersion=${version}`);
      const error = await readError(source, 3000);
      console.log(`malformed Remaining Length, MQTT ${version}: ${(error as Error).message}`);
      assert.ok(error instanceof MqttProtocolError, String(error));
      const { message } = error as Error;
      assert.match(message, /Remaining Length/);
      assert.match(message, /malformed/);
      assert.match(message, /more than four bytes/);
      assert.match(message, version === 5 ? /MQTT 5 §1\.5\.5/ : /MQTT 3\.1\.1 §2\.2\.3/);
      assert.doesNotMatch(message, /maxPacketSize|268435460/);
      if (version === 5) assert.equal(await disconnect, 0x81, "DISCONNECT: Malformed Packet");
      assert.equal(server.connections, 1, "not retried: the broker would send it again");
    });
  }
});

describe("a record over the packet limit is refused before anything is sent", () => {
  test(
    "over the broker's CONNACK Maximum Packet Size: MqttRecordError naming the chunk; the records before it arrive",
    {
      skip: skipWithoutMosquitto(),
    },
    async () => {
      await using broker = await startMosquitto({
        lines: [...LOSSLESS, "max_packet_size 1000000"],
      });
      const received: string[] = [];
      const subscriber = await mqtt.connectAsync(broker.url);
      subscriber.on("message", (_topic, payload) => received.push(payload.toString().slice(0, 10)));
      await subscriber.subscribeAsync("out", { qos: 1 });
      const sink = new MqttSink(`${broker.url}?topic=out&qos=1&mqttVersion=5`);
      const writer = sink.getWriter();
      await writer.write("before");
      const started = Date.now();
      const error = await writer.write(new Uint8Array(2_000_000)).then(
        () => assert.fail("a 2 MB record was accepted"),
        (error) => error,
      );
      assert.ok(Date.now() - started < 1000, "refused at once");
      assert.ok(error instanceof MqttRecordError, String(error));
      assert.equal(error.index, 1);
      assert.match(
        error.message,
        /chunk #1 to 'out' as its PUBLISH packet is 2000012 bytes, over the broker's Maximum Packet Size \(CONNACK\) of 1000000 bytes/,
      );
      await within(
        (async () => {
          while (received.length < 1) await new Promise((r) => setTimeout(r, 10));
        })(),
        5000,
        "the record before it",
      );
      assert.deepEqual(received, ["before"]);
      assert.equal(sink.stats.published, 1);
      await subscriber.endAsync();
    },
  );

  test("over what MQTT can frame (268,435,455 bytes)", async () => {
    await using broker = await startAedes();
    const sink = new MqttSink(`${broker.url}?topic=out&qos=0`);
    const writer = sink.getWriter();
    await writer.write("fits");
    const error = await writer.write(new Uint8Array(300_000_000)).then(
      () => assert.fail("a 300 MB record was accepted"),
      (error) => error,
    );
    assert.ok(error instanceof MqttRecordError, String(error));
    assert.match(
      error.message,
      /chunk #1 .* over the largest packet MQTT can send of 268435460 bytes/,
    );
  });
});
