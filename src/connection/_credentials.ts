// What an attempt connects with, fetched before it: the init's credentials, the opening
// data of an enhanced authentication, a signed WebSocket URL (credentials.ts). mqtt.js builds
// each attempt's CONNECT synchronously from its client options, right after its transport,
// so the hooks run first (Connection.#prepare) and `apply` then hands their results to the
// attempt's options. What they return lives only here and in mqtt.js's options: never in an
// error, a log line, the stats or telemetry.
import type { IClientOptions } from "mqtt";
import type { MqttOptions } from "../options/options.ts";
import { redactText } from "../_redact.ts";
import type { MqttAuthStep, MqttCredentials, MqttCredentialsInit } from "./credentials.ts";

/** A binary MQTT 5 property, as mqtt.js types it. */
type Binary = NonNullable<NonNullable<IClientOptions["properties"]>["authenticationData"]>;

/** Which hook failed. */
type Hook = keyof MqttCredentialsInit;

/** A hook threw, rejected or did not settle in time: the attempt (or exchange) failed. */
export class HookFailed extends Error {
  constructor(readonly hook: Hook, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** What the hooks gave for the next attempt. */
interface Prepared {
  credentials?: MqttCredentials;
  authenticationData?: Uint8Array;
  url?: string;
}

/** The hooks of one connection, and what they gave for the coming attempt. */
export class Credentials {
  readonly #hooks: MqttCredentialsInit;
  readonly #options: MqttOptions;
  #prepared: Prepared = {};
  /** Enhanced authentication runs: authenticationMethod, with its authenticate hook. */
  readonly enhanced: boolean;
  /** webSocketUrl signs each attempt's URL: given, and the brokers are ws:// or wss://. */
  readonly #signs: boolean;

  constructor(options: MqttOptions, hooks: MqttCredentialsInit) {
    this.#options = options;
    this.#hooks = hooks;
    this.enhanced = options.authenticationMethod !== undefined && hooks.authenticate !== undefined;
    this.#signs = hooks.webSocketUrl !== undefined && options.brokerUrl.startsWith("ws");
  }

  /** Whether a hook must run before each attempt. */
  get needed(): boolean {
    return this.#hooks.credentials !== undefined || this.enhanced || this.#signs;
  }

  /**
   * Runs the hooks for an attempt on `broker`, each within connectionTimeout.
   *
   * @throws {HookFailed} When a hook threw, rejected or timed out, or `signal` aborted.
   */
  async fetch(broker: string, signal: AbortSignal): Promise<void> {
    const { credentials, webSocketUrl } = this.#hooks;
    this.#prepared = {};
    const prepared: Prepared = {};
    if (credentials) {
      const given = await this.#call("credentials", () => credentials(), signal);
      prepared.credentials = checkCredentials(given);
    }
    if (this.enhanced) {
      prepared.authenticationData = await this.step({
        step: "start",
        method: this.#options.authenticationMethod!,
        reauthentication: false,
      }, signal);
    }
    if (webSocketUrl && this.#signs) {
      const url = await this.#call(
        "webSocketUrl",
        () => webSocketUrl(new URL(broker).href),
        signal,
      );
      if (typeof url !== "string" || !/^wss?:\/\//.test(url)) {
        throw new HookFailed(
          "webSocketUrl",
          `the webSocketUrl function must return a ws:// or wss:// URL: it returned ${
            typeof url === "string" ? "another kind of URL" : typeof url
          }`,
        );
      }
      prepared.url = url;
    }
    this.#prepared = prepared;
  }

  /**
   * Runs the authenticate hook for one step of an exchange, within connectionTimeout, and
   * returns the data to send.
   *
   * @throws {HookFailed} When it threw, rejected or timed out, or `signal` aborted.
   */
  async step(step: MqttAuthStep, signal: AbortSignal): Promise<Uint8Array | undefined> {
    const authenticate = this.#hooks.authenticate!;
    const data = await this.#call("authenticate", () => authenticate(step), signal);
    if (data === undefined || data instanceof Uint8Array) return data;
    if (typeof data === "string") return new TextEncoder().encode(data);
    throw new HookFailed(
      "authenticate",
      `the authenticate function must return bytes, a string or undefined: it returned ${typeof data}`,
    );
  }

  /** Hands what the hooks gave to the attempt's mqtt.js options (mqtt.js builds its CONNECT from them). */
  apply(clientOptions: IClientOptions): void {
    const { credentials, authenticationData, url } = this.#prepared;
    if (credentials) {
      clientOptions.username = credentials.username ?? this.#options.username;
      clientOptions.password = credentials.password ?? this.#options.password?.reveal();
    }
    if (this.enhanced) {
      const properties = {
        ...clientOptions.properties,
        authenticationMethod: this.#options.authenticationMethod,
      };
      // mqtt-packet writes any Uint8Array; mqtt.js types binary properties as Buffers.
      if (authenticationData) properties.authenticationData = authenticationData as Binary;
      else delete properties.authenticationData;
      clientOptions.properties = properties;
    }
    if (url !== undefined) clientOptions.transformWsUrl = () => url;
  }

  /** Calls `hook`, bounded by connectionTimeout and `signal`. */
  #call<T>(hook: Hook, call: () => T | Promise<T>, signal: AbortSignal): Promise<T> {
    const seconds = this.#options.connectionTimeout;
    return new Promise<T>((resolve, reject) => {
      const timer = seconds === 0 ? undefined : setTimeout(() => {
        done();
        reject(
          new HookFailed(
            hook,
            `the ${hook} function did not settle within connectionTimeout=${seconds} s`,
          ),
        );
      }, seconds * 1000);
      const onAbort = () => {
        done();
        reject(new HookFailed(hook, `the ${hook} function was abandoned: the connection ended`));
      };
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      new Promise<T>((run) => run(call())).then((value) => {
        done();
        resolve(value);
      }, (error) => {
        done();
        reject(
          new HookFailed(hook, `the ${hook} function failed: ${describe(error)}`, { cause: error }),
        );
      });
    });
  }
}

/** `given`, if it is what `credentials` must return. */
function checkCredentials(given: unknown): MqttCredentials {
  const { username, password } = (given ?? {}) as Record<string, unknown>;
  const wrong = typeof given !== "object" || given === null
    ? `it returned ${given === null ? "null" : typeof given}`
    : username !== undefined && (typeof username !== "string" || username === "")
    ? "its username is not a non-empty string"
    : password !== undefined && typeof password !== "string"
    ? "its password is not a string"
    : undefined;
  if (wrong === undefined) return given as MqttCredentials;
  throw new HookFailed(
    "credentials",
    `the credentials function must return { username?, password? } with strings: ${wrong}`,
  );
}

/**
 * An error's message, for ours: the hook's own words (its result is never in them), redacted
 * like any text a caller gave, since a token service's error may quote what it was sent.
 */
function describe(error: unknown): string {
  return redactText(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}
