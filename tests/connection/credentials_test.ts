// Credentials from a function (the init's `credentials`), called before every connection
// attempt, against aedes whose `authenticate` hook accepts only the current token and which
// disconnects every client when a token expires, as a managed broker does with SAS tokens
// and JWTs: a source and a sink live through three rotations with nothing lost.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { inspect } from "node:util";
import {
  MqttConnectError,
  type MqttCredentials,
  type MqttMessage,
  MqttSink,
  MqttSource,
} from "../../mod.ts";
import { cachedConnections } from "../../src/connection/cache.ts";
import { freePort, startAedes } from "../../testing/broker.ts";
import { failureOf, sleep, waitFor, within } from "../../testing/helpers.ts";

/** An aedes that takes only the current token as the password of user "device". */
async function tokenBroker() {
  const aedes = await startAedes();
  const state = { token: "token-1", accepted: 0, refused: 0 };
  aedes.broker.authenticate = (_client, username, password, done) => {
    if (username === "device" && password?.toString() === state.token) {
      state.accepted++;
      return done(null, true);
    }
    state.refused++;
    // CONNACK 4 (MQTT 3.1.1: bad user name or password).
    done(Object.assign(new Error("bad token"), { returnCode: 4 }), false);
  };
  return {
    ...aedes,
    state,
    /** A new token; the old one expires: every client is disconnected. */
    rotate(token: string) {
      state.token = token;
      aedes.dropClients();
    },
  };
}

describe("credentials from a function", () => {
  test("a source and a sink read and publish across three token rotations with nothing lost", async () => {
    await using broker = await tokenBroker();
    // The token service: what the function returns is whatever is current when it is called.
    const calls = { source: 0, sink: 0 };
    const credentials = (who: keyof typeof calls) => async (): Promise<MqttCredentials> => {
      calls[who]++;
      await sleep(5);
      return { username: "device", password: broker.state.token };
    };
    const url = `${broker.url}?topic=tokens/t&qos=1&clientId=rotating-reader&connectBackoff=50`;
    const source = new MqttSource(url, { credentials: credentials("source") });
    await within(source.ready, 10_000, "the source subscribed");
    const sink = new MqttSink(`${broker.url}?topic=tokens/t&qos=1&connectBackoff=50`, {
      credentials: credentials("sink"),
    });
    const writer = sink.getWriter();
    const total = 400;
    const received: number[] = [];
    const reading = (async () => {
      const reader = source.getReader();
      while (received.length < total) {
        const { value } = await reader.read() as { value: MqttMessage };
        const n = Number(value.text());
        // A QoS 1 redelivery after a reconnect is at least once: counted once here.
        if (!received.includes(n)) received.push(n);
      }
      reader.releaseLock();
    })();
    for (let i = 0; i < total; i++) {
      if (i > 0 && i % 100 === 0) {
        const before = { ...calls };
        broker.rotate(`token-${i / 100 + 1}`);
        // Both come back with the new token before the next rotation (which would otherwise
        // find one of them still away, and cost it no reconnect).
        await waitFor(
          () =>
            calls.source > before.source && calls.sink > before.sink &&
            broker.state.accepted >= 2 * (i / 100 + 1),
          `both reconnected after rotation ${i / 100}`,
        );
      }
      await within(writer.write(String(i)), 20_000, `write ${i}`);
    }
    await within(writer.close(), 20_000, "the sink closed");
    await within(reading, 20_000, `read ${received.length} of ${total}`);
    assert.deepEqual(
      received.toSorted((a, b) => a - b),
      Array.from({ length: total }, (_, i) => i),
    );
    console.log(
      `credentials calls: source ${calls.source}, sink ${calls.sink}; broker accepted ${broker.state.accepted}, refused ${broker.state.refused}; source reconnects ${source.stats.reconnects}`,
    );
    // One call per attempt: the first connect and a reconnect after each of 3 rotations.
    assert.ok(calls.source >= 4 && calls.sink >= 4, `calls ${JSON.stringify(calls)}`);
    assert.ok(source.stats.reconnects >= 3);
    await source.cancel();
  });

  test("it is called for each broker of a round: a dead first broker, then the live one", async () => {
    await using broker = await tokenBroker();
    const dead = await freePort();
    const asked: number[] = [];
    const source = new MqttSource(
      `mqtt://127.0.0.1:${dead},127.0.0.1:${broker.port}?topic=t&connectBackoff=10`,
      {
        credentials: () => {
          asked.push(Date.now());
          return { username: "device", password: broker.state.token };
        },
      },
    );
    await within(source.ready, 10_000, "the source subscribed on the second broker");
    assert.equal(asked.length, 2, "one call for each broker tried");
    assert.equal(source.stats.broker, `mqtt://127.0.0.1:${broker.port}`);
    await source.cancel();
  });

  test("a function that throws fails each attempt with CONNECT_AUTH, its error as the cause, after connectAttempts", async () => {
    await using broker = await tokenBroker();
    const why = new Error("token service unavailable");
    let calls = 0;
    const source = new MqttSource(
      `${broker.url}?topic=t&connectAttempts=3&connectBackoff=10`,
      {
        credentials: () => {
          calls++;
          throw why;
        },
      },
    );
    const error = await failureOf(source);
    assert.ok(error instanceof MqttConnectError, inspect(error));
    assert.equal(error.code, "CONNECT_AUTH");
    assert.equal(error.cause, why);
    assert.equal(error.attempts, 3);
    assert.equal(calls, 3);
    assert.match(error.message, /credentials function failed: Error: token service unavailable/);
    assert.equal(broker.state.accepted + broker.state.refused, 0, "no attempt reached the broker");
  });

  test("a function that never settles is bounded by connectionTimeout", async () => {
    await using broker = await tokenBroker();
    const started = Date.now();
    const source = new MqttSource(`${broker.url}?topic=t&connectAttempts=1&connectionTimeout=1`, {
      credentials: () => new Promise<MqttCredentials>(() => {}),
    });
    const error = await failureOf(source, 5_000);
    assert.ok(error instanceof MqttConnectError, inspect(error));
    assert.equal(error.code, "CONNECT_AUTH");
    assert.match(error.message, /did not settle within connectionTimeout=1 s/);
    assert.ok(Date.now() - started < 4_000, `${Date.now() - started} ms`);
  });

  test("what the function returns appears in no error, stats or inspection", async () => {
    await using broker = await tokenBroker();
    const secret = "S3cr3t-T0ken-never-shown";
    const source = new MqttSource(`${broker.url}?topic=t&connectAttempts=1`, {
      credentials: () => ({ username: "device", password: secret }),
    });
    const error = await failureOf(source);
    assert.ok(error instanceof MqttConnectError);
    assert.equal(error.code, "CONNECT_AUTH");
    const shown = [inspect(error, { depth: 5 }), String(error), JSON.stringify(source.stats)]
      .join("\n");
    assert.ok(!shown.includes(secret), shown);
    assert.ok(!shown.includes("device"), "the function's user name is not shown either");
  });

  test("a function that returns no object, or a password that is not a string, fails clearly", async () => {
    await using broker = await tokenBroker();
    for (
      const [given, why] of [
        [undefined, /it returned undefined/],
        [{ password: 42 }, /its password is not a string/],
      ] as const
    ) {
      const source = new MqttSource(`${broker.url}?topic=t&connectAttempts=1`, {
        credentials: () => given as unknown as MqttCredentials,
      });
      const error = await failureOf(source);
      assert.ok(error instanceof MqttConnectError);
      assert.equal(error.code, "CONNECT_AUTH");
      assert.match(error.message, why);
    }
  });

  test("sinks share a connection only when given the same function, whatever it returns", async () => {
    await using broker = await tokenBroker();
    const url = `${broker.url}?topic=shared/t&qos=1`;
    const token = () => ({ username: "device", password: broker.state.token });
    const same = () => ({ username: "device", password: broker.state.token });
    const before = cachedConnections();
    const sinks = [
      new MqttSink(url, { credentials: token }),
      new MqttSink(url, { credentials: token }),
      new MqttSink(url, { credentials: same }),
    ];
    const writers = sinks.map((sink) => sink.getWriter());
    await Promise.all(writers.map((writer) => within(writer.write("x"), 10_000, "write")));
    assert.equal(cachedConnections(), before + 2);
    assert.equal(broker.state.accepted, 2);
    await Promise.all(writers.map((writer) => writer.abort()));
    await waitFor(() => cachedConnections() === before, "the cache is empty again", 5_000);
  });

  test("a hook that is not a function is refused by the constructor, naming it", () => {
    assert.throws(
      () => new MqttSource("mqtt://localhost?topic=t", { credentials: "token" as never }),
      /'credentials' must be a function: current value is a string/,
    );
    assert.throws(
      () => new MqttSink("mqtts://localhost?topic=t", { webSocketUrl: (url) => url }),
      /'webSocketUrl' .* must be ws:\/\/ or wss:\/\/: current value is mqtts:\/\//,
    );
    assert.throws(
      () =>
        new MqttSource("mqtt://localhost?topic=t&mqttVersion=5&authenticationMethod=SCRAM-SHA-256"),
      /'authenticationMethod' needs an authenticate function .*: current value is SCRAM-SHA-256/,
    );
  });
});
