// Reads an environment variable where the runtime allows it, and quietly returns
// undefined where it does not (browsers, edge workers, Deno without --allow-env).
// Feature detection of globals, not imports, so the core still bundles for browsers.

interface DenoLike {
  permissions?: { querySync?(d: { name: "env"; variable: string }): { state: string } };
  env?: { get(name: string): string | undefined };
}
interface ProcessLike {
  env?: Record<string, string | undefined>;
}

/** The value of environment variable `name`, or undefined when unset or unreadable. */
export function readEnv(name: string): string | undefined {
  const g = globalThis as { Deno?: DenoLike; process?: ProcessLike };
  try {
    if (g.Deno) {
      // Ask first: reading without the permission would prompt in a terminal.
      const state = g.Deno.permissions?.querySync?.({ name: "env", variable: name }).state;
      return state === "granted" ? g.Deno.env?.get(name) : undefined;
    }
    return g.process?.env?.[name];
  } catch {
    return undefined;
  }
}
