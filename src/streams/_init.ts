// A stream's init, split: the options it overrides, and what is not an option (the signal,
// the telemetry providers, the cloud brokers' hooks), which the engines (_receiver.ts,
// _publisher.ts) take as one object. The hooks are checked here, with the options they go
// with, so that a missing or wrong one fails the constructor, as a bad option does.
import { MqttOptionsError } from "../errors.ts";
import type { MqttCredentialsInit } from "../connection/credentials.ts";
import type { MqttOptions, MqttOptionsInit } from "../options/options.ts";
import type { MqttTelemetryInit } from "./hooks.ts";

/** What an engine is given besides its options. */
export interface EngineInit {
  signal?: AbortSignal;
  telemetry: MqttTelemetryInit;
  hooks: MqttCredentialsInit;
}

/** The init of a source or sink: options, signal, telemetry providers and hooks. */
export type StreamInit = MqttOptionsInit & MqttTelemetryInit & MqttCredentialsInit & {
  signal?: AbortSignal;
};

/** The names of the hooks, in the order they are checked. */
const HOOKS = ["credentials", "authenticate", "webSocketUrl"] as const;

/** Splits a stream's init into the options it overrides and the rest. */
export function splitInit(init: StreamInit): { overrides: MqttOptionsInit; engine: EngineInit } {
  const {
    signal,
    meterProvider,
    tracerProvider,
    credentials,
    authenticate,
    webSocketUrl,
    ...overrides
  } = init;
  return {
    overrides,
    engine: {
      signal,
      telemetry: { meterProvider, tracerProvider },
      hooks: { credentials, authenticate, webSocketUrl },
    },
  };
}

/**
 * Checks the hooks against the options: each is a function, and authenticationMethod has
 * its authenticate function.
 *
 * @throws {MqttOptionsError} Naming the hook or option at fault.
 */
export function checkHooks(hooks: MqttCredentialsInit, options: MqttOptions): void {
  for (const name of HOOKS) {
    const hook = hooks[name];
    if (hook !== undefined && typeof hook !== "function") {
      throw new MqttOptionsError(
        name,
        `Cannot connect as '${name}' must be a function: current value is ${
          hook === null ? "null" : `a ${typeof hook}`
        }`,
      );
    }
  }
  if (hooks.webSocketUrl !== undefined && !/^wss?:/.test(options.brokerUrl)) {
    throw new MqttOptionsError(
      "webSocketUrl",
      `Cannot connect as 'webSocketUrl' signs WebSocket URLs and the broker URL must be ws:// or wss://: current value is ${
        options.brokerUrl.slice(0, options.brokerUrl.indexOf(":"))
      }:// (leave webSocketUrl out, or connect over wss://)`,
    );
  }
  const method = options.authenticationMethod;
  if (method !== undefined && hooks.authenticate === undefined) {
    throw new MqttOptionsError(
      "authenticationMethod",
      `Cannot authenticate as 'authenticationMethod' needs an authenticate function in the stream's init to answer the broker: current value is ${method} (give { authenticate } beside the options)`,
    );
  }
}

/**
 * Rejects a re-authentication where there is no enhanced authentication to repeat.
 *
 * @throws {MqttOptionsError} Naming authenticationMethod.
 */
export function checkReauthenticate(options: MqttOptions): void {
  if (options.authenticationMethod !== undefined) return;
  throw new MqttOptionsError(
    "authenticationMethod",
    "Cannot re-authenticate as 'authenticationMethod' must name an MQTT 5 enhanced authentication method: current value is none (set it with mqttVersion=5, and an authenticate function in the stream's init)",
  );
}
