// Timers and sockets that need not keep the process alive. Node and Bun timers are objects with
// ref()/unref(); Deno's are numeric ids with Deno.refTimer/unrefTimer; browsers have
// neither, and there nothing holds a page open anyway. Feature detection of globals, not
// imports, so the core still bundles for browsers.
import type { MqttClient } from "mqtt";

interface DenoTimers {
  refTimer(id: number): void;
  unrefTimer(id: number): void;
}

interface RefTimer {
  ref?(): void;
  unref?(): void;
}

function deno(): DenoTimers | undefined {
  const candidate = (globalThis as { Deno?: Partial<DenoTimers> }).Deno;
  return typeof candidate?.unrefTimer === "function" ? candidate as DenoTimers : undefined;
}

/** Lets the process exit while `timer` is pending. */
export function unrefTimer(timer: unknown): void {
  if (typeof timer === "object" && timer !== null) (timer as RefTimer).unref?.();
  else if (typeof timer === "number") deno()?.unrefTimer(timer);
}

/** Undoes {@linkcode unrefTimer}: the process waits for `timer` again. */
function refTimer(timer: unknown): void {
  if (typeof timer === "object" && timer !== null) (timer as RefTimer).ref?.();
  else if (typeof timer === "number") deno()?.refTimer(timer);
}

/**
 * Whether a client keeps the process alive: an idle one (a cached connection no sink
 * uses) does not, so a script that closed its last sink exits instead of waiting out
 * connectionCacheTimeout. Its socket and mqtt.js's keep-alive timer are unref'd.
 */
export class Idling {
  #idle = false;
  /** The keep-alive intervals mqtt.js has running (one at a time). */
  readonly #timers = new Set<unknown>();
  readonly #client: MqttClient;

  /** Installs mqtt.js's documented `timerVariant` option on `client`. */
  constructor(client: MqttClient) {
    this.#client = client;
    client.options.timerVariant = {
      set: (tick: () => void, ms: number) => {
        const timer = setInterval(tick, ms);
        this.#timers.add(timer);
        if (this.#idle) unrefTimer(timer);
        return timer as unknown as number;
      },
      clear: (timer: unknown) => {
        clearInterval(timer as number);
        this.#timers.delete(timer);
      },
    };
  }

  /**
   * Whether the client can idle without keeping the process alive: its transport is a
   * socket that can be unref'd (TCP, TLS). A WebSocket cannot.
   */
  get possible(): boolean {
    return typeof this.#socket?.unref === "function";
  }

  set(idle: boolean): void {
    if (this.#idle === idle) return;
    this.#idle = idle;
    const socket = this.#socket;
    if (idle) socket?.unref?.();
    else socket?.ref?.();
    for (const timer of this.#timers) (idle ? unrefTimer : refTimer)(timer);
  }

  get #socket(): RefTimer | undefined {
    return this.#client.stream as unknown as RefTimer | undefined;
  }
}
