// examples/jetstream_sink.ts on its own: the subject and id helpers, and what the sink does
// when JetStream will not take a message (one nats-server with JetStream, aedes in front).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstream, type JetStreamClient as JetStream } from "@nats-io/jetstream";
import { MqttMessage, MqttPublishError, MqttSink, MqttSource } from "../../mod.ts";
import { startAedes } from "../../testing/broker.ts";
import { readN, within } from "../../testing/helpers.ts";
import { skipWithoutNats, startNats } from "../../testing/nats.ts";
import {
  digestId,
  JetStreamSink,
  topicSubject,
  userPropertyId,
} from "../../examples/jetstream_sink.ts";

const message = (topic: string, payload: string, properties?: MqttMessage["properties"]) =>
  new MqttMessage(topic, new TextEncoder().encode(payload), { qos: 1, properties });

describe("examples/jetstream_sink.ts", () => {
  test("topicSubject maps topic levels to subject tokens, and what a token cannot hold to _", () => {
    const subject = topicSubject("mqtt");
    assert.equal(subject(message("plant/line-1/temp", "")), "mqtt.plant.line-1.temp");
    assert.equal(subject(message("a.b/ c/*/>/", "")), "mqtt.a_b._c._._._");
  });

  test("userPropertyId takes the producer's property; digestId tells topic and payload apart", async () => {
    const id = userPropertyId("msg-id");
    assert.equal(await id(message("t", "x", { userProperties: { "msg-id": "42" } })), "42");
    assert.equal(await id(message("t", "x", { userProperties: { "msg-id": ["7", "8"] } })), "7");
    assert.equal(await id(message("t", "x")), undefined);
    const [a, b, c] = await Promise.all([
      digestId(message("t", "x")),
      digestId(message("t", "x")),
      digestId(message("t/x", "")),
    ]);
    assert.match(a!, /^[0-9a-f]{64}$/);
    assert.equal(a, b);
    assert.notEqual(a, c);
  });

  test("a messageId that throws errors the sink with MqttPublishError, and acknowledges nothing", async () => {
    let acked = 0;
    // No publish is made: the id fails first, so no NATS server is needed.
    const sink = new JetStreamSink({} as JetStream, {
      subject: "mqtt",
      messageId: () => {
        throw new Error("no id here");
      },
    });
    const writer = sink.getWriter();
    await writer.write(
      new MqttMessage("plant/a", new Uint8Array(), { qos: 1, ack: () => acked++ }),
    );
    const error = await writer.closed.catch((e) => e);
    assert.ok(error instanceof MqttPublishError, String(error));
    assert.match(error.message, /its subject or id failed: no id here/);
    assert.equal(acked, 0);
  });

  test(
    "with no stream for its subject the sink errors with MqttPublishError after retryForMs, and the message is not acknowledged",
    { skip: skipWithoutNats() },
    async () => {
      await using nats = await startNats();
      await using broker = await startAedes();
      const nc = await connect({ servers: nats.natsUrl });
      try {
        const url = `${broker.url}?topic=plant/%23&qos=1&clientId=js-none&ack=manual`;
        const source = new MqttSource(url);
        await within(source.ready, 10_000, "subscribed");
        await new MqttSink(`${broker.url}?qos=1`).getWriter().write({
          topic: "plant/a",
          payload: "kept",
        });
        const sink = new JetStreamSink(jetstream(nc), { subject: "nowhere", retryForMs: 1_000 });
        const started = Date.now();
        const error = await within(source.pipeTo(sink).catch((e) => e), 10_000, "the pipe");
        const took = Date.now() - started;
        assert.ok(error instanceof MqttPublishError, String(error));
        assert.match(
          error.message,
          /\(subject nowhere\.plant\.a\) after \d+ attempts in 1 s \(retryForMs\)/,
        );
        assert.equal(error.topic, "plant/a");
        assert.ok(took >= 800 && took < 5_000, `errored after ${took} ms`);
        assert.ok(sink.stats.retried > 0);
        assert.equal(sink.stats.stored, 0);
        // Never acknowledged: the broker sends it again to the same clientId.
        const again = new MqttSource(url);
        const [message] = await readN(again, 1, 10_000);
        assert.equal(message.text(), "kept");
        await again.cancel();
      } finally {
        await nc.close();
      }
    },
  );
});
