// MQTT over WebSocket on Deno and Bun: ws:// and wss:// go over the runtime's own
// WebSocket. (The broker matrix round-trips every QoS over ws:// too.)
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { MqttConnectError, MqttOptionsError, MqttSink, MqttSource } from "../../mod.ts";
import { wantsRuntimeWebSocket } from "../../src/connection/_websocket.ts";
import { freePort, startAedes } from "../../testing/broker.ts";
import { exited, spawnScript, within } from "../../testing/helpers.ts";

const isDeno = typeof Deno === "object";
const uniqueId = () => `ws_${crypto.randomUUID().slice(0, 8)}`;

describe("MQTT over WebSocket", () => {
  test("ws:// and wss:// use the runtime's own WebSocket on Deno and Bun; mqtt:// does not", () => {
    assert.equal(wantsRuntimeWebSocket({ protocol: "ws" }), true);
    assert.equal(wantsRuntimeWebSocket({ protocol: "wss" }), true);
    assert.equal(wantsRuntimeWebSocket({ protocol: "mqtt" }), false);
  });

  test("a ws:// URL with a path carries a binary payload intact", async () => {
    await using broker = await startAedes({ transport: "ws" });
    const topic = `ws/${uniqueId()}`;
    // aedes answers on any path; a path must not break the URL mqtt.js builds.
    const url = `${broker.url}/mqtt?topic=${topic}&qos=1`;
    await using source = new MqttSource(url);
    await source.ready;
    const writer = new MqttSink(url).getWriter();
    await writer.write(new Uint8Array([0, 255, 1]));
    await writer.close();
    const reader = source.getReader();
    const { value } = await within(reader.read(), 10_000, "the binary message");
    assert.deepEqual(value!.payload, new Uint8Array([0, 255, 1]));
    reader.releaseLock();
  });

  test("wss:// with ssl.ca round-trips QoS 1 messages (Bun: in process; Deno: the CA in DENO_CERT)", async () => {
    await using broker = await startAedes({ transport: "wss" });
    const ca = broker.certificates!.ca;
    if (isDeno) {
      // Deno's WebSocket takes no TLS options: ssl.ca is refused, naming the way round it.
      await assert.rejects(
        new MqttSource(`${broker.url}?topic=t&ssl.ca=${encodeURIComponent(ca)}`).ready,
        (error: Error) => {
          assert.ok(error instanceof MqttOptionsError, String(error));
          assert.equal(error.option, "ssl.ca");
          assert.match(error.message, /'ssl.ca' must be unset .*DENO_CERT/);
          return true;
        },
      );
      const child = spawnScript(new URL("./_wss_child.ts", import.meta.url), [broker.url, "20"], {
        stdout: "pipe",
      }, { DENO_CERT: ca });
      let out = "";
      child.stdout!.on("data", (chunk) => (out += chunk));
      const { code } = await within(exited(child), 30_000, "the wss:// child");
      assert.equal(code, 0);
      assert.match(out, /received 20/);
      return;
    }
    const topic = `wss/${uniqueId()}`;
    const url = `${broker.url}?topic=${topic}&qos=1&ssl.ca=${encodeURIComponent(ca)}`;
    await using source = new MqttSource(url);
    await source.ready;
    const writer = new MqttSink(url).getWriter();
    for (let i = 0; i < 20; i++) await writer.write(`m${i}`);
    await writer.close();
    const reader = source.getReader();
    for (let i = 0; i < 20; i++) {
      const { value } = await within(reader.read(), 10_000, `message ${i}`);
      assert.equal(value!.text(), `m${i}`);
    }
    reader.releaseLock();
  });

  test("a ws:// port where nothing listens fails with CONNECT_REFUSED, not CONNECT_CLOSED", async () => {
    const port = await freePort();
    const source = new MqttSource(
      `ws://127.0.0.1:${port}?topic=t&connectAttempts=2&connectBackoff=20`,
    );
    await assert.rejects(within(source.ready, 15_000, "the refusal"), (error: Error) => {
      assert.ok(error instanceof MqttConnectError, String(error));
      assert.equal(error.code, "CONNECT_REFUSED", error.message);
      assert.equal(error.attempts, 2);
      assert.match(error.message, new RegExp(`ws://127\\.0\\.0\\.1:${port}`));
      return true;
    });
  });

  test("a ws:// server that answers HTTP without upgrading fails with CONNECT_REFUSED naming the path", async () => {
    const server = createServer((_, response) => response.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      const source = new MqttSource(`ws://127.0.0.1:${port}/nope?topic=t&connectAttempts=1`);
      await assert.rejects(within(source.ready, 15_000, "the refusal"), (error: Error) => {
        assert.ok(error instanceof MqttConnectError, String(error));
        assert.equal(error.code, "CONNECT_REFUSED", error.message);
        assert.match(error.message, /does not accept MQTT over WebSocket at that path: .*404/);
        return true;
      });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test("wss:// refuses a broker certificate from an unknown CA", async () => {
    await using broker = await startAedes({ transport: "wss" });
    const source = new MqttSource(`${broker.url}?topic=t&connectAttempts=1`);
    await assert.rejects(within(source.ready, 15_000, "the refusal"), (error: Error) => {
      assert.ok(error instanceof MqttConnectError, String(error));
      assert.equal(error.code, "CONNECT_TLS", error.message);
      return true;
    });
  });
});
