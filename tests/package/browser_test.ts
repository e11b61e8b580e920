// The core in a real browser: esbuild bundles tests/package/_browser_page.ts (which imports mod.ts)
// for the browser, mqtt resolving to its browser build; headless Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core, no browser download) loads the page, which
// round-trips messages over WebSocket to an aedes embedded here. The test reads the
// outcome off the page and keeps a screenshot.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";
import { skipUnless, startAedes } from "../../testing/broker.ts";
import { BROWSER_BUNDLE, within } from "../../testing/helpers.ts";

const CHROMIUM = "/usr/bin/chromium";

/**
 * Leaves out what the core loads with import() only outside browsers (the file store,
 * files and the runtime's WebSocket): a browser never runs it. Without this plugin,
 * `--external:node:*` bundles too, only larger.
 */
const leaveOutRuntime: esbuild.Plugin = {
  name: "leave-out-runtime",
  setup(build) {
    build.onResolve(
      { filter: /(\/runtime\/[^/]+|\/stores\/file_store)\.ts$/ },
      (args) => ({ path: args.path, external: true }),
    );
  },
};

/** The page's bundle and the files esbuild put in it (built once for both tests). */
let bundleOnce: Promise<{ code: string; inputs: string[] }> | undefined;
const bundle = () => (bundleOnce ??= build());

async function build(): Promise<{ code: string; inputs: string[] }> {
  try {
    const result = await esbuild.build({
      entryPoints: [new URL("./_browser_page.ts", import.meta.url).pathname],
      ...BROWSER_BUNDLE,
      plugins: [leaveOutRuntime],
    });
    return { code: result.outputFiles[0].text, inputs: Object.keys(result.metafile.inputs) };
  } finally {
    await esbuild.stop();
  }
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>mqtt-streams in a browser</title></head>
<body style="font-family: sans-serif">
<h1>mqtt-streams: MqttSink → broker → MqttSource, over WebSocket</h1>
<p id="status">running…</p>
<ol id="messages"></ol>
<script type="module" src="/page.js"></script>
</body></html>`;

/** Serves the page and its bundle on a random port of 127.0.0.1. */
async function servePage(code: string) {
  const server = createServer((request, response) => {
    const js = request.url === "/page.js";
    response.writeHead(200, { "content-type": js ? "text/javascript" : "text/html" });
    response.end(js ? code : PAGE);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/`,
    [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const skip = () =>
  skipUnless(existsSync(CHROMIUM), `${CHROMIUM} is not installed (apt-get install chromium)`);

describe("in a browser", { skip: skip() }, () => {
  test("the bundle of mod.ts holds mqtt's browser build and no node: module", async () => {
    const { inputs } = await bundle();
    assert.deepEqual(inputs.filter((input) => input.startsWith("node:")), []);
    assert.ok(inputs.some((input) => input.endsWith("mqtt/dist/mqtt.esm.js")), inputs.join("\n"));
    assert.deepEqual(inputs.filter((input) => /mqtt\/build\/|\/ws\//.test(input)), []);
  });

  test("Chromium round-trips 20 JSON messages over ws:// with MqttSink and MqttSource", async () => {
    const { code } = await bundle();
    await using broker = await startAedes({ transport: "ws" });
    await using page = await servePage(code);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      // Root in a container has no user namespaces for Chromium's sandbox.
      args: ["--no-sandbox"],
    });
    try {
      const tab = await browser.newPage();
      const errors: string[] = [];
      tab.on("pageerror", (error) => errors.push(error.message));
      await tab.goto(`${page.url}?broker=${encodeURIComponent(broker.url)}&count=20`);
      const handle = await within(
        tab.waitForFunction(() => (globalThis as { result?: unknown }).result, undefined, {
          timeout: 30_000,
        }),
        35_000,
        "the page's result",
      );
      const result = await handle.jsonValue() as {
        received: number[];
        qos: number[];
        stats: { received: number; acked: number };
        sinkStats: { published: number; acked: number };
        error?: string;
      };
      assert.equal(result.error, undefined);
      assert.deepEqual(errors, []);
      assert.deepEqual(result.received, Array.from({ length: 20 }, (_, n) => n));
      assert.deepEqual(result.qos, Array(20).fill(1));
      assert.deepEqual(result.sinkStats, { published: 20, acked: 20 });
      assert.ok(result.stats.received >= 20, JSON.stringify(result.stats));
      assert.equal(await tab.locator("#messages li").count(), 20);
      assert.match(await tab.locator("#status").innerText(), /20 messages round-tripped/);
      const file = join(tmpdir(), "mqtt-streams-browser.png");
      await tab.screenshot({ path: file, fullPage: true });
      const png = readFileSync(file);
      assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG");
      console.log(`screenshot: ${file} (${png.length} bytes)`);
    } finally {
      await browser.close();
    }
  });
});
