// Timers that need not keep the process alive. Node and Bun timers are objects with
// ref()/unref(); Deno's are numeric ids with Deno.refTimer/unrefTimer; browsers have
// neither, and there nothing holds a page open anyway. Feature detection of globals, not
// imports, so the core still bundles for browsers.

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
export function refTimer(timer: unknown): void {
  if (typeof timer === "object" && timer !== null) (timer as RefTimer).ref?.();
  else if (typeof timer === "number") deno()?.refTimer(timer);
}
