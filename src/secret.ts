/**
 * A value that must not leak: passwords, passphrases, private keys.
 *
 * @module
 */

const REDACTED = "***";

/**
 * Holds a secret (a password, a passphrase or a private key) so that it never appears
 * in `String()`, `JSON.stringify`, `console.log` or an inspected object. Read it with
 * {@linkcode Secret.prototype.reveal}.
 *
 * @typeParam T The secret's type.
 *
 * @example Secrets print as ***
 * ```ts
 * import { Secret } from "@mqtt-streams/core";
 *
 * const password = new Secret("hunter2");
 * console.log(`${password}`, JSON.stringify({ password })); // *** {"password":"***"}
 * console.log(password.reveal()); // hunter2
 * ```
 */
export class Secret<T = string> {
  readonly #value: T;

  /**
   * Wraps a secret.
   *
   * @param value The secret.
   */
  constructor(value: T) {
    this.#value = value;
  }

  /**
   * Returns the secret itself. Call it only where the secret is used.
   *
   * @returns The wrapped value.
   */
  reveal(): T {
    return this.#value;
  }

  /**
   * Returns `***`.
   *
   * @returns `***`.
   */
  toString(): string {
    return REDACTED;
  }

  /**
   * Returns `***`, so `JSON.stringify` never shows the secret.
   *
   * @returns `***`.
   */
  toJSON(): string {
    return REDACTED;
  }

  /** Node's and Bun's `util.inspect` (and so `console.log`) show `***`. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `Secret(${REDACTED})`;
  }

  /** Deno's `Deno.inspect` (and so `console.log`) show `***`. */
  [Symbol.for("Deno.customInspect")](): string {
    return `Secret(${REDACTED})`;
  }
}
