// The SCRAM-SHA-256 front of testing/auth_front.ts driven by a raw TCP client, for what mqtt.js
// cannot be made to do: send each packet a byte at a time (the front reassembles packets whatever
// the TCP chunking), and hold its answer to a re-authentication challenge while it goes on
// reading and acknowledging messages (the front holds nothing back meanwhile, MQTT 5 §4.12.1).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createConnection } from "node:net";
import mqtt from "mqtt";
import { skipWithoutMosquitto, startMosquitto } from "../../testing/broker.ts";
import { LOSSLESS, sleep, waitFor, within } from "../../testing/helpers.ts";
import { decodeAuth, encodeAuth, PacketFramer, startAuthFront } from "../../testing/auth_front.ts";
import { encode, type Packet, PacketDecoder, type Properties } from "../../testing/mqtt_codec.ts";
import { ScramClient } from "../../testing/scram.ts";

const METHOD = "SCRAM-SHA-256";
const CONTINUE = 0x18, REAUTHENTICATE = 0x19;

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** What a raw client reads: the codec's packets, and AUTH. */
type Received = Packet | { cmd: "auth"; reasonCode: number; properties: Properties };

/**
 * A raw TCP client of the front, for what mqtt.js cannot be made to do: write a packet a byte at
 * a time, or hold its answer to a challenge while it reads and acknowledges messages.
 */
async function rawClient(port: number) {
  const socket = createConnection({ port, host: "127.0.0.1", noDelay: true });
  await within(once(socket, "connect"), 5_000, "a connection to the front");
  const framer = new PacketFramer(), decoder = new PacketDecoder(5), inbox: Received[] = [];
  let failure: unknown;
  socket.on("error", (error) => failure ??= error);
  socket.on("data", (chunk: Uint8Array) => {
    try {
      for (const bytes of framer.push(chunk)) {
        inbox.push(
          bytes[0] >> 4 === 15 ? { cmd: "auth", ...decodeAuth(bytes) } : decoder.push(bytes)[0],
        );
      }
    } catch (error) {
      failure ??= error;
    }
  });
  /** The next packet from the front, within 5 s. */
  const next = async (): Promise<Received> => {
    await waitFor(
      () => inbox.length > 0 || failure !== undefined,
      "a packet from the front",
      5_000,
    );
    if (!inbox.length) throw failure;
    return inbox.shift()!;
  };
  /** Writes `bytes` whole, or one byte a millisecond: then the front reads one-byte chunks. */
  const write = async (bytes: Uint8Array, dribble = false) => {
    if (!dribble) return void socket.write(bytes);
    for (const byte of bytes) (socket.write(Uint8Array.of(byte)), await sleep(1));
  };
  /** Authenticates with `scram` (CONNECT, AUTH): the CONNACK, once its server-final verifies. */
  const connect = async (scram: ScramClient, clientId: string, dribble = false) => {
    const properties = encode.properties({
      authenticationMethod: METHOD,
      authenticationData: scram.first(),
    });
    // CONNECT (MQTT 5 §3.1): "MQTT", level 5, Clean Start, keep alive 30, properties, client id.
    const parts = [
      encode.string("MQTT"),
      Uint8Array.of(5, 0x02, 0, 30),
      properties,
      encode.string(clientId),
    ];
    const length = parts.reduce((n, part) => n + part.length, 0);
    for (const part of [encode.header(0x10, length), ...parts]) await write(part, dribble);
    const challenge = await next();
    assert.ok(challenge.cmd === "auth" && challenge.reasonCode === CONTINUE, challenge.cmd);
    const final = await scram.final(challenge.properties.authenticationData!);
    await write(
      encodeAuth(CONTINUE, { authenticationMethod: METHOD, authenticationData: final }),
      dribble,
    );
    const connack = await next();
    assert.ok(connack.cmd === "connack" && connack.reasonCode === 0, JSON.stringify(connack));
    await scram.verify(connack.properties?.authenticationData ?? new Uint8Array());
    return connack;
  };
  return { socket, next, write, connect };
}

describe("the SCRAM-SHA-256 front with a raw client", { skip: skipWithoutMosquitto() }, () => {
  let broker: Awaited<ReturnType<typeof startMosquitto>>;
  before(async () => {
    broker = await startMosquitto({ lines: LOSSLESS });
  });
  after(async () => {
    await broker?.close();
  });

  test("packets that arrive one byte at a time are reassembled, AUTH and CONNECT included", async () => {
    await using front = await startAuthFront({
      upstreamPort: broker.port,
      users: { alice: "s3cret" },
    });
    const raw = await rawClient(front.port);
    try {
      await raw.connect(new ScramClient("alice", "s3cret"), "dribble", true);
      const subscriptions = [{ topic: "scram/f", qos: 0 }];
      await raw.write(
        encode.packet({ cmd: "subscribe", id: 1, subscriptions, properties: {} }, 5),
        true,
      );
      assert.equal((await raw.next()).cmd, "suback");
      const payload = utf8.encode("byte by byte");
      await raw.write(
        encode.packet({ cmd: "publish", topic: "scram/f", qos: 0, payload, properties: {} }, 5),
        true,
      );
      const echo = await raw.next();
      assert.ok(echo.cmd === "publish", echo.cmd);
      assert.equal(text.decode(echo.payload), "byte by byte");
    } finally {
      raw.socket.destroy();
    }
  });

  test("while a re-authentication waits for the client's proof, messages keep flowing to that client", async () => {
    await using front = await startAuthFront({
      upstreamPort: broker.port,
      users: { alice: "one" },
    });
    const raw = await rawClient(front.port);
    // The publisher goes to mosquitto directly: the connection under test is the subscriber's.
    const publisher = await within(
      mqtt.connectAsync(broker.url, { reconnectPeriod: 0 }),
      5_000,
      "the publisher's CONNACK",
    );
    const total = 100;
    try {
      await raw.connect(new ScramClient("alice", "one"), "raw-subscriber");
      const subscriptions = [{ topic: "scram/g", qos: 1 }];
      await raw.write(encode.packet({ cmd: "subscribe", id: 1, subscriptions, properties: {} }, 5));
      assert.equal((await raw.next()).cmd, "suback");
      front.setPassword("alice", "two");
      const scram = new ScramClient("alice", "two");
      const authenticationData = scram.first();
      await raw.write(
        encodeAuth(REAUTHENTICATE, { authenticationMethod: METHOD, authenticationData }),
      );
      const challenge = await raw.next();
      assert.ok(challenge.cmd === "auth" && challenge.reasonCode === CONTINUE, challenge.cmd);
      const publishing = (async () => {
        for (let i = 0; i < total; i++) {
          await publisher.publishAsync("scram/g", `${i}`, { qos: 1 });
        }
      })();
      // The client answers the challenge only after half the messages: they came meanwhile.
      const payloads = new Set<string>();
      let answered = false, succeeded = false;
      while (payloads.size < total || !succeeded) {
        const packet = await raw.next();
        if (packet.cmd === "auth") {
          assert.equal(packet.reasonCode, 0);
          await scram.verify(packet.properties.authenticationData ?? new Uint8Array());
          succeeded = true;
          continue;
        }
        assert.ok(packet.cmd === "publish" && packet.id !== undefined, packet.cmd);
        payloads.add(text.decode(packet.payload));
        await raw.write(encode.packet({ cmd: "puback", id: packet.id }, 5));
        if (payloads.size === total / 2 && !answered) {
          answered = true;
          const final = await scram.final(challenge.properties.authenticationData!);
          await raw.write(
            encodeAuth(CONTINUE, { authenticationMethod: METHOD, authenticationData: final }),
          );
        }
      }
      await within(publishing, 10_000, `${total} PUBACKs`);
      assert.deepEqual({ ...front.counters }, {
        authentications: 1,
        reauthentications: 1,
        refused: 0,
      });
    } finally {
      raw.socket.destroy();
      await within(publisher.endAsync(), 5_000, "mqtt.js end");
    }
  });
});
