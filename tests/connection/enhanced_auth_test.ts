// MQTT 5 enhanced authentication (§4.12) through the init's `authenticate` hook: a real
// SCRAM-SHA-256 challenge–response (RFC 7677) run by the front of testing/auth_front.ts in
// front of a real mosquitto, which carries every message. Re-authentication (§4.12.1) with
// messages flowing, asked for and on a timer, and each way an exchange can fail.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import {
  type MqttAuthenticate,
  MqttConnectError,
  type MqttMessage,
  MqttSink,
  MqttSource,
} from "../../mod.ts";
import { skipWithoutMosquitto, startMosquitto } from "../../testing/broker.ts";
import { startAuthFront } from "../../testing/auth_front.ts";
import { ScramClient } from "../../testing/scram.ts";
import { failureOf, LOSSLESS, waitFor, within } from "../../testing/helpers.ts";

/** An authenticate hook that runs SCRAM-SHA-256 as `user`, with the password current at each exchange. */
function scram(user: string, password: () => string) {
  let client: ScramClient | undefined;
  const steps: string[] = [];
  const authenticate: MqttAuthenticate = async ({ step, data, reauthentication }) => {
    steps.push(`${reauthentication ? "re-" : ""}${step}`);
    if (step === "start") {
      client = new ScramClient(user, password());
      return client.first();
    }
    if (step === "continue") return await client!.final(data!);
    // The broker's signature proves it knows the password too (RFC 5802 §3).
    await client!.verify(data!);
  };
  return { authenticate, steps };
}

/** mosquitto (MQTT 5, lossless) behind the SCRAM front, with user alice. */
async function scramBroker(password = "pencil") {
  const mosquitto = await startMosquitto({ lines: LOSSLESS });
  const front = await startAuthFront({ upstreamPort: mosquitto.port, users: { alice: password } });
  return {
    front,
    url: front.url,
    async [Symbol.asyncDispose]() {
      await front.close();
      await mosquitto.close();
    },
  };
}

const V5 = "mqttVersion=5&authenticationMethod=SCRAM-SHA-256";

/** Reads `total` distinct numbered messages; resolves with them. */
async function readNumbers(source: MqttSource, total: number): Promise<Set<number>> {
  const reader = source.getReader();
  const received = new Set<number>();
  try {
    while (received.size < total) {
      const { value } = await reader.read() as { value: MqttMessage };
      received.add(Number(value.text()));
    }
  } finally {
    reader.releaseLock();
  }
  return received;
}

describe("MQTT 5 enhanced authentication", { skip: skipWithoutMosquitto() }, () => {
  test("a source and a sink authenticate with SCRAM-SHA-256 and round-trip 300 QoS 1 messages", async () => {
    await using broker = await scramBroker();
    const reader = scram("alice", () => "pencil");
    const writer = scram("alice", () => "pencil");
    const url = `${broker.url}?topic=scram/t&qos=1&${V5}`;
    await using source = new MqttSource(url, { authenticate: reader.authenticate });
    await within(source.ready, 10_000, "the source subscribed");
    const sink = new MqttSink(url, { authenticate: writer.authenticate });
    const reading = readNumbers(source, 300);
    const w = sink.getWriter();
    for (let i = 0; i < 300; i++) await w.write(String(i));
    await within(w.close(), 10_000, "the sink closed");
    assert.equal((await within(reading, 10_000, "300 messages")).size, 300);
    assert.deepEqual(reader.steps, ["start", "continue", "success"]);
    assert.equal(broker.front.counters.authentications, 2);
  });

  test("reauthenticate() with a rotated password, mid-stream: same connection, nothing lost", async () => {
    await using broker = await scramBroker();
    let password = "pencil";
    const hook = scram("alice", () => password);
    const url = `${broker.url}?topic=scram/re&qos=1&clientId=re-reader&${V5}`;
    await using source = new MqttSource(url, { authenticate: hook.authenticate });
    await within(source.ready, 10_000, "the source subscribed");
    const sink = new MqttSink(`${broker.url}?topic=scram/re&qos=1&${V5}`, {
      authenticate: scram("alice", () => password).authenticate,
    });
    const total = 500;
    const reading = readNumbers(source, total);
    const w = sink.getWriter();
    let reauthenticated: Promise<void> | undefined;
    for (let i = 0; i < total; i++) {
      if (i === 200) {
        // The credential changes; the live connection proves it knows the new one.
        password = "new-pencil";
        broker.front.setPassword("alice", password);
        reauthenticated = source.reauthenticate();
      }
      await w.write(String(i));
    }
    await within(reauthenticated!, 10_000, "the re-authentication");
    await within(w.close(), 10_000, "the sink closed");
    assert.equal((await within(reading, 10_000, `${total} messages`)).size, total);
    assert.equal(broker.front.counters.reauthentications, 1);
    assert.equal(source.stats.reconnects, 0, "the connection stayed up");
    assert.deepEqual(hook.steps, [
      "start",
      "continue",
      "success",
      "re-start",
      "re-continue",
      "re-success",
    ]);
  });

  test("reauthenticateInterval re-authenticates on a timer without dropping the connection", async () => {
    await using broker = await scramBroker();
    const hook = scram("alice", () => "pencil");
    await using source = new MqttSource(
      `${broker.url}?topic=scram/timer&qos=1&${V5}&reauthenticateInterval=1`,
      { authenticate: hook.authenticate },
    );
    await within(source.ready, 10_000, "the source subscribed");
    await waitFor(
      () => broker.front.counters.reauthentications >= 2,
      "two re-authentications",
      6_000,
    );
    assert.equal(source.stats.reconnects, 0);
  });

  test("a wrong password is refused by the broker: CONNECT_AUTH, not retried", async () => {
    await using broker = await scramBroker();
    const source = new MqttSource(`${broker.url}?topic=t&${V5}&connectAttempts=3`, {
      authenticate: scram("alice", () => "wrong").authenticate,
    });
    const error = await failureOf(source);
    assert.ok(error instanceof MqttConnectError, inspect(error));
    assert.equal(error.code, "CONNECT_AUTH");
    assert.equal(error.attempts, 1);
    assert.match(error.message, /CONNACK 135/);
  });

  test("a hook that refuses the broker's signature ends the connection for good with CONNECT_AUTH and its error as the cause", async () => {
    await using broker = await scramBroker();
    const why = new Error("server signature mismatch");
    const hook = scram("alice", () => "pencil");
    const source = new MqttSource(
      `${broker.url}?topic=t&${V5}&connectAttempts=2&connectBackoff=10`,
      {
        authenticate: (step) => {
          if (step.step === "success") throw why;
          return hook.authenticate(step);
        },
      },
    );
    const error = await failureOf(source);
    assert.ok(error instanceof MqttConnectError, inspect(error));
    assert.equal(error.code, "CONNECT_AUTH");
    assert.equal(error.cause, why);
    assert.equal(error.attempts, 1, "a broker that failed its proof is not tried again");
    assert.match(error.message, /authenticate function failed: Error: server signature mismatch/);
  });

  test("a re-authentication the broker refuses: the source fails with CONNECT_AUTH, and reauthenticate() with it", async () => {
    await using broker = await scramBroker();
    await using source = new MqttSource(`${broker.url}?topic=t&${V5}&connectBackoff=10`, {
      authenticate: scram("alice", () => "pencil").authenticate,
    });
    await within(source.ready, 10_000, "the source subscribed");
    // Rotated at the broker only: the client still proves the old password.
    broker.front.setPassword("alice", "rotated");
    const reauthenticated = source.reauthenticate().then(() => undefined, (e: unknown) => e);
    const error = await failureOf(source);
    assert.ok(error instanceof MqttConnectError, inspect(error));
    assert.equal(error.code, "CONNECT_AUTH");
    assert.equal(await within(reauthenticated, 5_000, "reauthenticate() to settle"), error);
  });

  test("reauthenticate() without an authenticationMethod is refused, naming the option", async () => {
    await using mosquitto = await startMosquitto();
    await using source = new MqttSource(`${mosquitto.url}?topic=t&mqttVersion=5`);
    await assert.rejects(source.reauthenticate(), /'authenticationMethod' must name/);
    await source.ready;
  });
});
