/**
 * What a stream's init gives the connection for managed (cloud) brokers, beyond fixed
 * options: credentials fetched before every connection attempt (a token that expires),
 * MQTT 5 enhanced authentication (§4.12: a challenge–response, and re-authentication on a
 * live connection), and a WebSocket URL signed per connection. See docs/cloud.md.
 *
 * @module
 */

/**
 * What {@linkcode MqttCredentialsInit.credentials} returns for one connection attempt: a
 * field left out is the option's (`username` and `password` of the connection string).
 *
 * @example An Azure IoT Hub SAS token as the password
 * ```ts
 * import type { MqttCredentials } from "@mqtt-streams/core";
 *
 * const credentials: MqttCredentials = { password: "SharedAccessSignature sr=…&sig=…&se=…" };
 * console.log(credentials.username); // undefined: the connection string's user name is kept
 * ```
 */
export interface MqttCredentials {
  /** The user name of this attempt's CONNECT. */
  username?: string;
  /** The password of this attempt's CONNECT (a token). Never printed, counted or exported. */
  password?: string;
}

/**
 * One step of an MQTT 5 enhanced authentication exchange (§4.12), as the
 * {@linkcode MqttCredentialsInit.authenticate} hook sees it.
 *
 * @example
 * ```ts
 * import type { MqttAuthStep } from "@mqtt-streams/core";
 *
 * const step: MqttAuthStep = { step: "start", method: "SCRAM-SHA-256", reauthentication: false };
 * console.log(step.data); // undefined: the client speaks first
 * ```
 */
export interface MqttAuthStep {
  /**
   * `start`: return the data the exchange opens with (the CONNECT's Authentication Data,
   * or the AUTH 0x19 of a re-authentication); `continue`: the broker's challenge (AUTH
   * 0x18), return the answer; `success`: the broker's last data (on the CONNACK, or AUTH
   * 0x00 after a re-authentication), to check: throw to refuse the broker.
   */
  step: "start" | "continue" | "success";
  /** The authenticationMethod option. */
  method: string;
  /** The broker's Authentication Data (`continue`, `success`), if it sent any. */
  data?: Uint8Array;
  /** Whether the exchange re-authenticates a live connection (§4.12.1). */
  reauthentication: boolean;
}

/**
 * Answers each step of an enhanced authentication exchange with the data to send (bytes or
 * UTF-8 text), or undefined to send none; may be async. A hook that throws or rejects
 * fails the exchange: the attempt (or the re-authentication) ends with an
 * `MqttConnectError` of code `CONNECT_AUTH` whose cause is its error.
 *
 * @example A token as the whole exchange (a broker's JWT method)
 * ```ts
 * import type { MqttAuthenticate } from "@mqtt-streams/core";
 *
 * const authenticate: MqttAuthenticate = ({ step }) => step === "start" ? "eyJhbGciOi…" : undefined;
 * console.log(await authenticate({ step: "start", method: "OAUTH2-JWT", reauthentication: false }));
 * ```
 */
export type MqttAuthenticate = (
  step: MqttAuthStep,
) => Uint8Array | string | undefined | Promise<Uint8Array | string | undefined>;

/**
 * The cloud-broker part of an `MqttSourceInit` or `MqttSinkInit`: functions the connection
 * calls before every connection attempt (the first, each reconnect, each broker of a round),
 * each bounded by `connectionTimeout`. What they return is never printed, logged, counted
 * or exported. Sinks share a connection only with sinks given the same functions (the same
 * function objects, whatever they return).
 *
 * @example A token that expires, fetched for every attempt
 * ```ts
 * import type { MqttCredentialsInit } from "@mqtt-streams/core";
 *
 * const init: MqttCredentialsInit = {
 *   credentials: async () => ({ password: await fetchToken() }),
 * };
 * async function fetchToken(): Promise<string> {
 *   return "a token valid for an hour";
 * }
 * console.log(typeof init.credentials); // function
 * ```
 */
export interface MqttCredentialsInit {
  /**
   * Called before every connection attempt; its `username` and `password` replace the
   * options' for that attempt. A function that throws, rejects or does not settle within
   * `connectionTimeout` fails the attempt (code `CONNECT_AUTH`, its error as the cause),
   * which is retried within `connectAttempts` like any other.
   */
  credentials?: () => MqttCredentials | Promise<MqttCredentials>;
  /**
   * MQTT 5 enhanced authentication with the `authenticationMethod` option: gives the
   * CONNECT's authentication data, answers the broker's challenges, checks its last word;
   * and the same for each re-authentication (`reauthenticate()`, `reauthenticateInterval`).
   */
  authenticate?: MqttAuthenticate;
  /**
   * Called before every WebSocket connection attempt (ws://, wss://) with the URL it would
   * open; the URL it returns is opened instead (a URL signed for this connection, such as
   * AWS SigV4's). Its query is never printed.
   */
  webSocketUrl?: (url: string) => string | Promise<string>;
}
