// SCRAM-SHA-256 of testing/scram.ts, the challenge–response behind the MQTT 5 enhanced
// authentication tests: the RFC 7677 §3 test vector on both sides, and the failures that make it
// a real check (a wrong password, a forged server signature, a nonce the server did not extend).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ScramClient, ScramServer } from "../../testing/scram.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

// RFC 7677 §3.
const VECTOR = {
  user: "user",
  password: "pencil",
  clientNonce: "rOprNGfwEbeRWgbNEkqO",
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," +
    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," +
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};
const salt = Uint8Array.from(atob(VECTOR.salt), (c) => c.charCodeAt(0));

/** A whole exchange between a client knowing `password` and `server`. */
async function exchange(server: ScramServer, user: string, password: string) {
  const client = new ScramClient(user, password);
  const started = server.start(client.first());
  const result = await started.finish(await client.final(started.serverFirst));
  return { client, result };
}

describe("ScramClient", () => {
  test("computes the client-final-message of RFC 7677 §3 and accepts its server signature", async () => {
    const client = new ScramClient(VECTOR.user, VECTOR.password);
    assert.equal(text.decode(client.first(VECTOR.clientNonce)), VECTOR.clientFirst);
    const final = await client.final(utf8.encode(VECTOR.serverFirst));
    assert.equal(text.decode(final), VECTOR.clientFinal);
    await client.verify(utf8.encode(VECTOR.serverFinal));
  });

  test("rejects a tampered server signature", async () => {
    const client = new ScramClient(VECTOR.user, VECTOR.password);
    client.first(VECTOR.clientNonce);
    await client.final(utf8.encode(VECTOR.serverFirst));
    const forged = VECTOR.serverFinal.replace("6rri", "6rrj");
    await assert.rejects(client.verify(utf8.encode(forged)), /server signature is wrong/);
  });

  test("rejects the server signature of another password", async () => {
    const client = new ScramClient(VECTOR.user, "not pencil");
    client.first(VECTOR.clientNonce);
    await client.final(utf8.encode(VECTOR.serverFirst));
    await assert.rejects(client.verify(utf8.encode(VECTOR.serverFinal)), /signature is wrong/);
  });

  test("rejects a server-final-message with an error attribute", async () => {
    const client = new ScramClient(VECTOR.user, VECTOR.password);
    client.first(VECTOR.clientNonce);
    await client.final(utf8.encode(VECTOR.serverFirst));
    await assert.rejects(client.verify(utf8.encode("e=invalid-proof")), /invalid-proof/);
  });

  test("refuses a server nonce that does not extend its own", async () => {
    const client = new ScramClient(VECTOR.user, VECTOR.password);
    client.first("another-nonce");
    await assert.rejects(client.final(utf8.encode(VECTOR.serverFirst)), /does not extend/);
  });

  test("draws a fresh nonce for each exchange and forgets the previous one", async () => {
    const client = new ScramClient("user", "pencil");
    const nonces = new Set(
      Array.from({ length: 20 }, () => text.decode(client.first()).split("r=")[1]),
    );
    assert.equal(nonces.size, 20);
    // The last first() replaced the vector's exchange: its server-first no longer fits.
    await assert.rejects(client.final(utf8.encode(VECTOR.serverFirst)), /does not extend/);
  });
});

describe("ScramServer", () => {
  test("answers RFC 7677 §3 with its server-first and server-final messages", async () => {
    const server = new ScramServer();
    server.setPassword(VECTOR.user, VECTOR.password, salt);
    const started = server.start(utf8.encode(VECTOR.clientFirst), VECTOR.serverNonce);
    assert.equal(started.username, "user");
    assert.equal(text.decode(started.serverFirst), VECTOR.serverFirst);
    const result = await started.finish(utf8.encode(VECTOR.clientFinal));
    assert.ok(result.ok, JSON.stringify(result));
    assert.equal(text.decode(result.serverFinal), VECTOR.serverFinal);
  });

  test("accepts a client that knows the password, and the client accepts it", async () => {
    const { client, result } = await exchange(
      new ScramServer({ alice: "s3cret" }),
      "alice",
      "s3cret",
    );
    assert.ok(result.ok);
    await client.verify(result.serverFinal);
  });

  test("refuses a wrong password and an unknown user alike", async () => {
    const server = new ScramServer({ alice: "s3cret" });
    const wrong = await exchange(server, "alice", "guess");
    assert.deepEqual(wrong.result, {
      ok: false,
      username: "alice",
      reason: "wrong proof (wrong password)",
    });
    const unknown = await exchange(server, "mallory", "s3cret");
    assert.equal(unknown.result.ok, false);
  });

  test("uses a new password from the next exchange, while one already started keeps the old", async () => {
    const server = new ScramServer({ alice: "one" });
    const client = new ScramClient("alice", "one");
    const before = server.start(client.first());
    server.setPassword("alice", "two");
    // An exchange already started keeps the credentials it started with.
    assert.ok((await before.finish(await client.final(before.serverFirst))).ok);
    assert.equal((await exchange(server, "alice", "one")).result.ok, false);
    assert.ok((await exchange(server, "alice", "two")).result.ok);
  });

  test("refuses a replayed client-final-message and a tampered nonce", async () => {
    const server = new ScramServer({ alice: "s3cret" });
    const client = new ScramClient("alice", "s3cret");
    const started = server.start(client.first());
    const final = await client.final(started.serverFirst);
    assert.ok((await started.finish(final)).ok);
    assert.equal((await started.finish(final)).ok, false, "a second finish");
    const again = server.start(client.first());
    const replay = await again.finish(final);
    assert.deepEqual(replay, { ok: false, username: "alice", reason: "the nonce differs" });
  });

  test("refuses a client-first-message that asks for channel binding", () => {
    const server = new ScramServer({ user: "pencil" });
    assert.throws(() => server.start(utf8.encode("p=tls-unique,,n=user,r=abc")), TypeError);
  });
});
