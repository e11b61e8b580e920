// Keeps a session alive while the source has paused the reading of packets (see
// _inbound.ts): PINGRESPs then wait unread in the socket like everything else, so
// mqtt.js's keep-alive would end the connection. When a pause begins this restarts
// mqtt.js's countdown (1.5 × keepAlive from then, which a PINGREQ mqtt.js sent just before
// could otherwise end, its PINGRESP unread behind the held message), and at every tick of
// 0.5 × keepAlive that saw a pause it sends a PINGREQ (the broker needs a packet within
// 1.5 × keepAlive, MQTT 3.1.1 §3.1.2.10) and restarts the countdown again.

/** What this file calls on mqtt.js's client, through the adapter (_mqtt.ts) or a test's fake. */
export interface KeepAliveClient {
  connected: boolean;
  /** Seconds. */
  keepalive: number;
  sendPing(): void;
  reschedulePing(force?: boolean): void;
}

/** Pings across pauses of the reading of packets, on one mqtt.js client. */
export class PausedKeepAlive {
  readonly #client: KeepAliveClient;
  #pauses = 0;
  #pinger?: ReturnType<typeof setInterval>;
  /** Whether reading was paused at any time since the pinger's last tick. */
  #pausedSinceTick = false;

  constructor(client: KeepAliveClient) {
    this.#client = client;
  }

  /** Whether the reading of packets is paused now. */
  get paused(): boolean {
    return this.#pauses > 0;
  }

  /** A pause begins (pauses may overlap: each is ended by one resume). */
  pause(): void {
    if (this.#pauses++ === 0 && this.#client.connected) {
      // mqtt.js cannot read a PINGRESP from now on: its countdown starts again here.
      this.#client.reschedulePing(true);
    }
    this.#pausedSinceTick = true;
    // One timer for the life of the connection, made at the first pause: pauses come and
    // go at the pace of reads, too often for a timer each.
    if (this.#pinger || !this.#client.keepalive) return;
    const period = Math.max(50, Math.floor(this.#client.keepalive * 500));
    this.#pinger = setInterval(() => {
      // Only across a pause: while packets flow, mqtt.js's own keep-alive is right.
      if (this.#pausedSinceTick && this.#client.connected) {
        this.#client.sendPing();
        this.#client.reschedulePing(true);
      }
      this.#pausedSinceTick = this.#pauses > 0;
    }, period);
  }

  resume(): void {
    if (this.#pauses > 0) this.#pauses--;
  }

  /** Stops the timer; called when the connection ends. */
  dispose(): void {
    this.#pauses = 0;
    clearInterval(this.#pinger);
    this.#pinger = undefined;
  }
}
