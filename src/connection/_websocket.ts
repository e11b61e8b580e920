// Which WebSocket carries ws:// and wss://. Feature detection of globals, not imports, so
// the core still bundles for browsers.
import type { IClientOptions } from "mqtt";

/**
 * Whether mqtt.js would run in browser mode (mirrors mqtt.js's is-browser.ts): a window
 * with a document, or a web worker that is not Deno. There mqtt.js's browser build uses
 * the native WebSocket already.
 */
function browserLike(): boolean {
  const g = globalThis as {
    window?: { document?: unknown };
    self?: { constructor?: { name?: string } };
    Deno?: unknown;
  };
  if (g.window?.document !== undefined) return true;
  return Boolean(g.self?.constructor?.name?.includes("WorkerGlobalScope")) && !g.Deno;
}

/**
 * Whether a connection with these mqtt.js options should go over the runtime's own
 * WebSocket (Deno, Bun, Node 22+) instead of the `ws` package mqtt.js picks outside
 * browsers. Node 20 has no global WebSocket and keeps the `ws` package.
 */
export function wantsRuntimeWebSocket(options: IClientOptions): boolean {
  return (options.protocol === "ws" || options.protocol === "wss") &&
    typeof (globalThis as { WebSocket?: unknown }).WebSocket === "function" && !browserLike();
}
