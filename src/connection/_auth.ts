// MQTT 5 enhanced authentication (§4.12) on a connection: the exchange each CONNECT opens
// (its data comes from Credentials.fetch, before the attempt), the broker's challenges
// (AUTH 0x18) answered by the init's `authenticate` hook, the broker's last word checked
// (the CONNACK's or AUTH 0x00's data), and re-authentication (§4.12.1, AUTH 0x19) on a live
// connection, asked for or on a timer, while messages keep flowing: mqtt.js reads the next
// packets while an AUTH waits for its answer.
//
// A failed step never leaves a half-authenticated connection: the hook's error (or the
// broker's silence) ends the attempt or the connection with it, and the next attempt opens
// a whole new exchange, as the broker would require anyway after refusing one.
import type { MqttOptions } from "../options/options.ts";
import type { AuthPacket, AuthPort } from "./_ports.ts";
import { type Credentials, HookFailed } from "./_credentials.ts";
import { unrefTimer } from "./_timers.ts";

/** AUTH reason codes (MQTT 5 §3.15.2.1). */
const SUCCESS = 0x00;
const CONTINUE = 0x18;
const REAUTHENTICATE = 0x19;

/** A re-authentication asked for, settled when the broker accepts new data. */
interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

/** What the connection gives its enhanced authentication. */
export interface AuthenticationInit {
  /** Ends the current attempt or connection with `error`; the next attempt authenticates afresh. */
  fail(error: unknown): void;
  /** Ends the connection for good with `error`: the hook refused the broker's last word. */
  refuse(error: unknown): void;
  /** Aborted when the connection is over: a hook still running is abandoned. */
  signal: AbortSignal;
}

/** The enhanced authentication of one connection. */
export class Authentication {
  readonly #port: AuthPort;
  readonly #credentials: Credentials;
  readonly #options: MqttOptions;
  readonly #method: string;
  /** Ends the current attempt or connection with `error`: the next attempt authenticates afresh. */
  readonly #fail: (error: unknown) => void;
  /** Ends the connection for good with `error`: the client does not trust the broker. */
  readonly #refuse: (error: unknown) => void;
  readonly #signal: AbortSignal;
  /** Counts attempts: an answer that comes after its attempt ended is not sent. */
  #attempt = 0;
  /** A re-authentication runs on the current connection. */
  #reauthenticating = false;
  /** No AUTH 0x00 within connectionTimeout of an AUTH 0x19: the connection is not trusted. */
  #answerTimer?: ReturnType<typeof setTimeout>;
  /** The next re-authentication of reauthenticateInterval. */
  #intervalTimer?: ReturnType<typeof setTimeout>;
  #waiters: Waiter[] = [];
  /** The error the connection ended with, once it has. */
  #ended?: unknown;

  constructor(
    port: AuthPort,
    credentials: Credentials,
    options: MqttOptions,
    { fail, refuse, signal }: AuthenticationInit,
  ) {
    this.#port = port;
    this.#credentials = credentials;
    this.#options = options;
    this.#method = options.authenticationMethod!;
    this.#fail = fail;
    this.#refuse = refuse;
    this.#signal = signal;
    port.handleAuth((packet, reply) => this.#answer(packet, reply));
  }

  /** An attempt starts: answers owed to the one before are not sent. */
  attempt(): void {
    this.#attempt++;
    this.#reauthenticating = false;
    clearTimeout(this.#answerTimer);
    clearTimeout(this.#intervalTimer);
  }

  /**
   * The broker accepted the CONNECT: its last data (a SCRAM server signature) goes to the
   * hook to check, and the re-authentications asked for meanwhile are done, since this
   * connection was authenticated afresh.
   */
  connack(data: Uint8Array | undefined): void {
    const attempt = this.#attempt;
    this.#credentials.step(
      { step: "success", method: this.#method, data, reauthentication: false },
      this.#signal,
    ).then(() => {
      if (attempt !== this.#attempt) return;
      this.#authenticated();
      // The broker may not be who it says (its signature did not check out): trying it again
      // would only give it the exchange again.
    }, (error) => attempt === this.#attempt && this.#refuse(error));
  }

  /**
   * Re-authenticates the live connection (AUTH 0x19), or, while it is down, waits for the
   * next one, whose CONNECT authenticates afresh. Resolves once the broker accepted.
   *
   * @throws {MqttStreamError} The error the connection ended with, if it ends first.
   */
  reauthenticate(): Promise<void> {
    if (this.#ended !== undefined) return Promise.reject(this.#ended);
    const settled = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (this.#port.connected && !this.#reauthenticating) this.#start();
    return settled;
  }

  /** The connection ended for good: waiting and later re-authentications fail with its error. */
  end(error: unknown): void {
    this.#ended ??= error;
    this.attempt();
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }

  /** Sends AUTH 0x19 with the hook's opening data; the broker has connectionTimeout to accept. */
  #start(): void {
    const attempt = this.#attempt;
    this.#reauthenticating = true;
    clearTimeout(this.#intervalTimer);
    this.#credentials.step(
      { step: "start", method: this.#method, reauthentication: true },
      this.#signal,
    ).then((data) => {
      if (attempt !== this.#attempt) return;
      this.#port.sendAuth(this.#packet(REAUTHENTICATE, data));
      const seconds = this.#options.connectionTimeout;
      if (seconds === 0) return;
      this.#answerTimer = setTimeout(() => {
        this.#fail(
          new HookFailed(
            "authenticate",
            `the broker did not finish re-authentication (AUTH 0x19, ${this.#method}) within connectionTimeout=${seconds} s`,
          ),
        );
      }, seconds * 1000);
    }, (error) => attempt === this.#attempt && this.#fail(error));
  }

  /** Answers the broker's AUTH: a challenge (0x18) with the hook's data; success (0x00) checked. */
  #answer(packet: AuthPacket, reply: (error?: Error, packet?: AuthPacket) => void): void {
    const { reasonCode } = packet;
    // mqtt.js refuses any other reason a broker may not send (0x19 included).
    if (reasonCode !== CONTINUE && reasonCode !== SUCCESS) return reply();
    const attempt = this.#attempt;
    const reauthentication = this.#reauthenticating;
    this.#credentials.step({
      step: reasonCode === CONTINUE ? "continue" : "success",
      method: this.#method,
      data: packet.properties?.authenticationData,
      reauthentication,
    }, this.#signal).then((data) => {
      // An answer for an attempt that ended would open the next one's exchange out of turn.
      if (attempt !== this.#attempt) return;
      if (reasonCode === CONTINUE) return reply(undefined, this.#packet(CONTINUE, data));
      reply();
      this.#authenticated();
    }, (error) => attempt === this.#attempt && reply(error));
  }

  /** The broker accepted (CONNACK, or AUTH 0x00): waiters are done; the next re-authentication is armed. */
  #authenticated(): void {
    this.#reauthenticating = false;
    clearTimeout(this.#answerTimer);
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
    const seconds = this.#options.reauthenticateInterval;
    if (seconds > 0) {
      clearTimeout(this.#intervalTimer);
      this.#intervalTimer = setTimeout(() => {
        if (this.#port.connected && !this.#reauthenticating) this.#start();
      }, seconds * 1000);
      // The connection keeps the process alive, or lets it go when idle; its timer follows.
      unrefTimer(this.#intervalTimer);
    }
  }

  #packet(reasonCode: number, data: Uint8Array | undefined): AuthPacket {
    return {
      cmd: "auth",
      reasonCode,
      properties: {
        authenticationMethod: this.#method,
        ...(data !== undefined && { authenticationData: data }),
      },
    };
  }
}
