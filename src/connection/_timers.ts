// Timers and sockets that need not keep the process alive. Node and Bun timers are objects with
// ref()/unref(); Deno's are numeric ids with Deno.refTimer/unrefTimer; browsers have
// neither, and there nothing holds a page open anyway. Feature detection of globals, not
// imports, so the core still bundles for browsers.
import type { IdlingPort } from "./_ports.ts";

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
  readonly #mqtt: IdlingPort;

  /** Makes mqtt.js's keep-alive run on timers of its own (mqtt.js's `timerVariant`). */
  constructor(mqtt: IdlingPort) {
    this.#mqtt = mqtt;
    mqtt.useTimers({
      set: (tick, ms) => {
        const timer = setInterval(tick, ms);
        this.#timers.add(timer);
        if (this.#idle) unrefTimer(timer);
        return timer;
      },
      clear: (timer) => {
        clearInterval(timer as ReturnType<typeof setInterval>);
        this.#timers.delete(timer);
      },
    });
  }

  /**
   * Whether the client can idle without keeping the process alive: its transport is a
   * socket that can be unref'd (TCP, TLS). A WebSocket cannot.
   */
  get possible(): boolean {
    return this.#mqtt.canUnref;
  }

  set(idle: boolean): void {
    if (this.#idle === idle) return;
    this.#idle = idle;
    this.#mqtt.refSocket(!idle);
    for (const timer of this.#timers) (idle ? unrefTimer : refTimer)(timer);
  }
}
