// Aborting a sink settles at once in every state (issue 17): connecting, a full window
// against a broker that never acknowledges, a write waiting for room, reconnecting. A
// broker that never sends PUBACK is a protocol violation no real broker will commit, so
// these run against the raw server of testing/hostile.ts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MqttSink } from "../../mod.ts";
import { type HostileConnection, startHostile } from "../../testing/hostile.ts";
import { sleep, waitFor, within } from "../../testing/helpers.ts";

/** A broker that accepts, grants, and never acknowledges a publish. */
async function silentBroker() {
  const connections: HostileConnection[] = [];
  const server = await startHostile((connection) => {
    connections.push(connection);
    connection.connack();
  });
  return { server, connections };
}

/** A sink with `maxInflight` publishes unacknowledged and one more write waiting for room. */
async function fullWindow(url: string, init: { signal?: AbortSignal } = {}) {
  const sink = new MqttSink(`${url}?topic=t&qos=1&maxInflight=5`, init);
  const writer = sink.getWriter();
  const written = [];
  for (let i = 0; i < 5; i++) written.push(writer.write(`m${i}`));
  await Promise.all(written);
  const waiting = writer.write("m5");
  waiting.catch(() => {});
  await sleep(50);
  assert.equal(sink.stats.inflight, 5, "the window is full");
  return { sink, writer, waiting };
}

describe("MqttSink aborts within 1 s", () => {
  test("writer.abort() with a full window: the waiting write rejects with the reason", async () => {
    const { server, connections } = await silentBroker();
    await using _ = server;
    const { sink, writer, waiting } = await fullWindow(server.url);
    const reason = new Error("stop now");
    await within(writer.abort(reason), 1000, "writer.abort()");
    await assert.rejects(waiting, (error) => error === reason);
    assert.equal(sink.stats.failed, 5, "the unacknowledged publishes are counted as failed");
    await within(connections[0].closed, 1000, "the socket to close");
  });

  test("sink.abort() after releaseLock() with a write waiting for room", async () => {
    const { server, connections } = await silentBroker();
    await using _ = server;
    const { sink, writer, waiting } = await fullWindow(server.url);
    writer.releaseLock();
    const reason = new Error("released and aborted");
    await within(sink.abort(reason), 1000, "sink.abort()");
    await assert.rejects(waiting, (error) => error === reason);
    assert.equal(sink.stats.failed, 5);
    await within(connections[0].closed, 1000, "the socket to close");
  });

  test("the sink's own signal stops a pipe whose write waits for room", async () => {
    const { server, connections } = await silentBroker();
    await using _ = server;
    const controller = new AbortController();
    const sink = new MqttSink(`${server.url}?topic=t&qos=1&maxInflight=5`, {
      signal: controller.signal,
    });
    let pulled = 0;
    const source = new ReadableStream<string>({
      pull: (c) => c.enqueue(`m${pulled++}`),
    }, { highWaterMark: 0 });
    // The same signal for the pipe and the sink: the pipe alone waits for the write in
    // flight before it aborts its destination (WHATWG Streams, ReadableStreamPipeTo).
    const piping = source.pipeTo(sink, { signal: controller.signal });
    piping.catch(() => {});
    await waitFor(() => sink.stats.inflight === 5, "the window to fill");
    const reason = new Error("pipe aborted");
    controller.abort(reason);
    await assert.rejects(within(piping, 1000, "pipeTo"), (error) => error === reason);
    assert.equal(sink.stats.failed, 5);
    await within(connections[0].closed, 1000, "the socket to close");
  });

  test("await using: leaving the scope with a writer still holding the sink aborts it", async () => {
    const { server, connections } = await silentBroker();
    await using _ = server;
    let waiting!: Promise<void>;
    const started = Date.now();
    {
      const held = await fullWindow(server.url);
      await using _sink = held.sink;
      waiting = held.waiting;
    }
    assert.ok(Date.now() - started < 2000);
    await assert.rejects(waiting);
    await within(connections[0].closed, 1000, "the socket to close");
  });

  test("sink.abort() while connecting to a broker that never sends CONNACK", async () => {
    await using server = await startHostile(() => {}, { connectTimeout: 60_000 });
    const sink = new MqttSink(`${server.url}?topic=t&qos=1&connectionTimeout=30`);
    const connection = await server.accept();
    const reason = new Error("no CONNACK");
    await within(sink.abort(reason), 1000, "sink.abort()");
    await within(connection.closed, 1000, "the socket to close");
  });

  test("sink.abort() while reconnecting, with attempts for ever", async () => {
    const { server, connections } = await silentBroker();
    const sink = new MqttSink(
      `${server.url}?topic=t&qos=1&connectAttempts=-1&connectBackoff=200`,
    );
    const writer = sink.getWriter();
    await writer.write("first");
    await server.close(); // the broker is gone, and the sink tries again and again
    await within(connections[0].closed, 1000, "the drop");
    await sleep(300);
    // Disconnected by now: the write waits for the connection (Bun may still have taken
    // it, when its socket saw the close late: then it is one more unacknowledged).
    let taken = false;
    const waiting = writer.write("second").then(() => (taken = true));
    waiting.catch(() => {});
    await sleep(300);
    const reason = new Error("gave up");
    await within(writer.abort(reason), 1000, "writer.abort()");
    if (!taken) await assert.rejects(waiting, (error) => error === reason);
    assert.equal(
      sink.stats.failed,
      sink.stats.published,
      "every unacknowledged publish is counted",
    );
  });

  test("close() waiting for acknowledgements that never come is stopped by abort()", async () => {
    const { server, connections } = await silentBroker();
    await using _ = server;
    const sink = new MqttSink(`${server.url}?topic=t&qos=1`);
    const writer = sink.getWriter();
    await writer.write("unacknowledged");
    const closing = writer.close();
    closing.catch(() => {});
    await sleep(100);
    const reason = new Error("no PUBACK");
    // The close in flight fails with the reason, and so does the abort that failed it
    // (WHATWG Streams, WritableStreamFinishInFlightCloseWithError).
    const aborting = writer.abort(reason);
    await assert.rejects(within(aborting, 1000, "writer.abort()"), (error) => error === reason);
    await assert.rejects(closing, (error) => error === reason);
    assert.equal(sink.stats.failed, 1);
    await within(connections[0].closed, 1000, "the socket to close");
  });
});
