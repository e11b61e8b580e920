// The logic of an MqttSink, as its WritableStream's underlying sink: a window of QoS 1/2
// publishes in flight, waiting while disconnected, resends, retries of transient
// refusals, and the end-to-end acknowledgement of bridged messages.
//
// Flow control (MQTT 5 §4.9): a QoS 1/2 publish takes a slot in this sink's window
// (maxInflight) and in its connection's (the broker's Receive Maximum, shared by the sinks
// on a cached connection); write() resolves once it is sent, and the next write waits
// while either window is full or the connection is down. The connection sends every
// unacknowledged QoS 1/2 publish again after a reconnect, before its onConnect listeners
// run; the sink counts those as retried and keeps their slots. Where a publish is sent and
// settled: src/connection/_outbound.ts.
import { backoffDelay } from "../options/_backoff.ts";
import { acquire, type Lease } from "../connection/cache.ts";
import type { Connection, Unsettled } from "../connection/connection.ts";
import { MqttPublishError, MqttStreamError } from "../errors.ts";
import type { MqttOptions } from "../options/options.ts";
import type { MqttSinkChunk, Publish } from "../record.ts";
import { RecordReader } from "./_record_reader.ts";
import { FAILED, isTransient, publishError } from "./_publish_error.ts";
import { type MqttSinkStats, sinkStats } from "./stats.ts";
import type { MqttCredentialsInit } from "../connection/credentials.ts";
import { checkReauthenticate, type EngineInit } from "./_init.ts";
import { observeSink, type SinkObserver } from "./hooks.ts";

/** The error.type of a publish given up on because the sink failed or was aborted. */
const GIVEN_UP = "aborted";

/**
 * What became of a publish, as the sink counts it and tells its observer: sent (QoS 1/2,
 * first time), sent again (as `attempt`), acknowledged, written (QoS 0), failed (with an
 * error type: a reason code, or FAILED), or given up on when the sink failed.
 */
type Outcome =
  | { kind: "sent" }
  | { kind: "retried"; attempt: number }
  | { kind: "acked" }
  | { kind: "written" }
  | { kind: "failed"; type: string }
  | { kind: "givenUp" };

/** The sink's logic, as the WritableStream's underlying sink. */
export class Publisher implements UnderlyingSink<MqttSinkChunk> {
  readonly options: MqttOptions;
  readonly stats: MqttSinkStats;
  readonly #counts = { published: 0, acked: 0, retried: 0, failed: 0 };
  readonly #reader: RecordReader;
  readonly #signal?: AbortSignal;
  /** Aborts connecting when the stream is aborted while start() still connects. */
  readonly #starting = new AbortController();
  #controller!: WritableStreamDefaultController;
  #lease?: Lease;
  /**
   * QoS 1/2 publishes of this sink not yet settled: sent and unacknowledged, or waiting to
   * retry. Its size is the sink's share of the window (`stats.inflight`).
   */
  #pending = new Set<Publish>();
  /** QoS 0 publishes written since the broker last confirmed it read everything. */
  #unflushed = 0;
  #error?: unknown;
  /** close() has let go of the connection. */
  #closed = false;
  /** Rejects when the sink fails, to wake a write or close that waits. */
  #failed: Promise<never>;
  #rejectFailed!: (error: unknown) => void;

  /** Transient refusals waiting to be sent again (each holds its window slot). */
  readonly #retries = new Map<ReturnType<typeof setTimeout>, Publish>();

  /** What observes the sink (telemetry, see hooks.ts), if anything does. */
  readonly #observer?: SinkObserver;

  /** The init's hooks, for the connection (and the cache's identity of it). */
  readonly #hooks: MqttCredentialsInit;

  constructor(options: MqttOptions, { signal, telemetry, hooks }: EngineInit) {
    this.options = options;
    this.#signal = signal;
    this.#hooks = hooks;
    this.#reader = new RecordReader(options);
    this.#failed = new Promise((_, reject) => (this.#rejectFailed = reject));
    this.#failed.catch(() => {});
    this.stats = sinkStats(this.#counts, this.#pending, () => this.#lease?.connection, options);
    this.#observer = observeSink(this, telemetry);
  }

  /**
   * Counts what became of `publish` and tells its observer: the one place a publish's
   * outcome is recorded.
   */
  #record(publish: Publish, outcome: Outcome): void {
    const counts = this.#counts;
    switch (outcome.kind) {
      case "sent":
        counts.published++;
        return;
      case "retried":
        counts.retried++;
        publish.observer?.retried(outcome.attempt);
        return;
      case "acked":
        counts.acked++;
        publish.observer?.end();
        return;
      case "written":
        counts.published++;
        publish.observer?.end();
        return;
      case "failed":
        counts.failed++;
        publish.observer?.end(outcome.type);
        return;
      case "givenUp":
        counts.failed++;
        publish.observer?.end(GIVEN_UP);
    }
  }

  /** Settles once the sink holds its connection (or its start failed). */
  #started?: Promise<void>;

  start(controller: WritableStreamDefaultController): Promise<void> {
    return this.#started = this.#open(controller);
  }

  /**
   * Re-authenticates the sink's connection once it holds one (MQTT 5 enhanced
   * authentication, see Connection.reauthenticate); every sink sharing it is served.
   */
  async reauthenticate(): Promise<void> {
    checkReauthenticate(this.options);
    await this.#started;
    await this.#connection.reauthenticate();
  }

  async #open(controller: WritableStreamDefaultController): Promise<void> {
    this.#controller = controller;
    // The stream aborts this signal at once, before it waits for the write in flight to
    // settle (writer.abort(), sink.abort()): failing here rejects that write, which a
    // full window or a silent broker would otherwise hold for ever, so the abort goes on.
    // Not controller.error(): the stream is aborting, and an error now would make its
    // abort() reject (WHATWG Streams, WritableStreamAbort).
    // It also stops connecting: a WritableStream calls abort() only once start() settled.
    controller.signal?.addEventListener("abort", () => {
      this.#starting.abort(controller.signal.reason);
      this.#fail(controller.signal.reason, true, false);
    }, { once: true });
    const starting = this.#starting.signal;
    const signal = this.#signal ? AbortSignal.any([this.#signal, starting]) : starting;
    const lease = await acquire(this.options, { signal, hooks: this.#hooks });
    this.#lease = lease;
    if (this.#error !== undefined) return void await lease.release(true);
    const { connection } = lease;
    connection.closed.then((error) => error && this.#fail(error));
    // The connection has just sent every unacknowledged publish again (see the header).
    this.#offConnect = connection.onConnect(() => {
      for (const publish of this.#pending) {
        this.#record(publish, { kind: "retried", attempt: publish.attempt ?? 1 });
      }
    });
    this.#signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Removes the sink's onConnect listener. */
  #offConnect?: () => void;

  #onAbort = () => {
    this.#controller.error(this.#signal!.reason);
    this.abort(this.#signal!.reason);
  };

  get #connection(): Connection {
    return this.#lease!.connection;
  }

  /**
   * Publishes one chunk. Synchronous while the connection is up and the window has room
   * (the common case, and the cheap one); a promise when it must wait.
   */
  write(chunk: MqttSinkChunk): void | Promise<void> {
    let publish: Publish | undefined;
    try {
      publish = this.#reader.read(chunk);
      // Before the size check: on MQTT 5 the trace context adds user properties.
      if (this.#observer) publish.observer = this.#observer.sending(publish);
      this.#connection.checkSize(publish);
    } catch (error) {
      // Refused before it was sent: not counted, but its observer hears why.
      publish?.observer?.end((error as Error).name ?? "Error");
      throw this.#fail(error);
    }
    if (publish.qos === 0) return this.#publishQoS0(publish, 1);
    if (this.#hasRoom()) return this.#start(publish);
    return this.#room().then(() => this.#start(publish), (error) => {
      throw this.#fail(error);
    });
  }

  /** Whether a QoS 1/2 publish may go out now: connected, and room in both windows. */
  #hasRoom(): boolean {
    return this.#error === undefined && this.#pending.size < this.options.maxInflight &&
      this.#connection.hasRoom;
  }

  /** Waits until {@linkcode #hasRoom}, sending what is batched first. */
  #room(): Promise<void> {
    this.#connection.sendBatch();
    return this.#until(() => this.#hasRoom());
  }

  /** Waits until connected. */
  #connected(): Promise<void> {
    return this.#until(() => this.#connection.connected);
  }

  /**
   * Waits until `ready()` holds, checking again at every acknowledgement, connect or
   * disconnect on the connection; rejects with the sink's error when it fails.
   */
  async #until(ready: () => boolean): Promise<void> {
    while (!ready()) {
      if (this.#error !== undefined) throw this.#error;
      await Promise.race([this.#connection.changed(), this.#failed]);
    }
    if (this.#error !== undefined) throw this.#error;
  }

  #start(publish: Publish): void | Promise<void> {
    this.#pending.add(publish);
    this.#connection.reserve();
    this.#record(publish, { kind: "sent" });
    if (this.options.persistence === "memory") return this.#send(publish, 1);
    // persistence=file: write() resolves once mqtt.js's store holds the publish, so that a
    // process killed after it resolved sends it again when it restarts.
    const stored = new Promise<void>((resolve) => (publish.stored = resolve));
    this.#send(publish, 1);
    // Stored at once (fsync=batch): the write resolves without a promise.
    if (!publish.stored) return;
    return Promise.race([stored, this.#failed]);
  }

  /** The publish is in the connection's store (or acknowledged): its write may resolve. */
  #stored = (publish: Publish): void => {
    publish.stored?.();
    publish.stored = undefined;
  };

  /**
   * Writes a QoS 0 publish to the connection; no acknowledgement will come. mqtt.js calls
   * back at once when the socket takes the bytes, later when its buffer is full.
   */
  #publishQoS0(publish: Publish, attempt: number): void | Promise<void> {
    if (this.#error !== undefined) throw this.#error;
    if (!this.#connection.connected) {
      return this.#connected().then(() => this.#publishQoS0(publish, attempt), (error) => {
        throw this.#fail(error);
      });
    }
    this.#written = undefined;
    const connection = this.#connection;
    connection.publishQoS0(publish, this.#onWritten);
    if (this.#written !== undefined) return this.#settleQoS0(publish, attempt, this.#written);
    // The socket's buffer is full: send what is held, and wait for it to drain.
    connection.sendBatch();
    return new Promise<Error | null>((resolve) => (this.#whenWritten = resolve))
      .then((error) => this.#settleQoS0(publish, attempt, error));
  }

  /**
   * mqtt.js's callback for the QoS 0 publish being written: one object for all of them,
   * since the stream hands over one chunk at a time.
   */
  #onWritten = (error?: Error) => {
    const waiting = this.#whenWritten;
    this.#whenWritten = undefined;
    if (waiting) waiting(error ?? null);
    else this.#written = error ?? null;
  };
  /** The outcome of the last QoS 0 write when mqtt.js called back at once. */
  #written: Error | null | undefined;
  #whenWritten?: (error: Error | null) => void;

  #settleQoS0(publish: Publish, attempt: number, error: Error | null): void | Promise<void> {
    if (!error) {
      this.#record(publish, { kind: "written" });
      this.#unflushed++;
      publish.ack?.();
      return;
    }
    // The connection dropped between the check and the write: mqtt.js keeps no QoS 0
    // offline (queueQoSZero=false), so this sink sends it again once reconnected.
    if (!this.#mayRetry(attempt)) {
      // Not counted in failed: a QoS 0 publish never takes a slot in the sink's window.
      publish.observer?.end(FAILED);
      throw this.#fail(publishError(this.options, publish, { kind: "failed", error }, attempt));
    }
    this.#record(publish, { kind: "retried", attempt: attempt + 1 });
    return this.#publishQoS0(publish, attempt + 1);
  }

  /** Sends a QoS 1/2 publish (again); its window slot is held from #start until settled. */
  #send(publish: Publish, attempt: number): void {
    publish.attempt = attempt;
    this.#connection.publish(publish, this.#settled, this.#stored);
  }

  /** The outcome of a QoS 1/2 publish (one function for all, as the outbound side calls back). */
  #settled = (publish: Publish, failure: Unsettled | undefined): void => {
    const attempt = publish.attempt ?? 1;
    if (failure?.kind === "dropped" && this.#error === undefined) {
      // The connection failed publishes it had queued behind its resends when it dropped
      // again, or QoS 2 publishes whose session the broker lost: an outage (bounded by
      // connectAttempts), not a failed attempt. Send it again.
      this.#record(publish, { kind: "retried", attempt });
      this.#resend(publish, attempt);
      return;
    }
    const transient = failure?.kind === "failed" ||
      (failure?.kind === "refused" && isTransient(failure.reasonCode!));
    if (transient && this.#mayRetry(attempt) && this.#error === undefined) {
      this.#record(publish, { kind: "retried", attempt: attempt + 1 });
      // The slot stays taken while the retry waits: the window bounds what is unsettled.
      const timer = setTimeout(() => {
        this.#retries.delete(timer);
        this.#resend(publish, attempt + 1);
      }, backoffDelay(attempt, this.options.publishBackoff));
      this.#retries.set(timer, publish);
      return;
    }
    this.#connection.settle();
    if (!this.#pending.delete(publish)) return; // given up on when the sink failed
    if (failure) {
      const type = failure.reasonCode === undefined
        ? FAILED
        : `0x${failure.reasonCode.toString(16)}`;
      this.#record(publish, { kind: "failed", type });
      this.#fail(publishError(this.options, publish, failure, attempt));
      return;
    }
    this.#record(publish, { kind: "acked" });
    this.#stored(publish);
    publish.ack?.();
  };

  async #resend(publish: Publish, attempt: number): Promise<void> {
    try {
      await this.#connected();
    } catch {
      // The sink failed meanwhile; the publish was counted as given up on.
      this.#connection.settle();
      return;
    }
    this.#send(publish, attempt);
  }

  #mayRetry(attempt: number): boolean {
    return this.options.publishAttempts === -1 || attempt < this.options.publishAttempts;
  }

  /**
   * Resolves once every publish is acknowledged and the broker has read the QoS 0 ones,
   * then lets go of the connection.
   */
  async close(): Promise<void> {
    await this.#until(() => this.#pending.size === 0);
    if (this.#unflushed > 0) {
      await Promise.race([this.#flush(), this.#failed]);
    }
    this.#closed = true;
    await this.#release(false);
  }

  /** Waits for the broker to confirm it read the QoS 0 publishes, reconnecting if need be. */
  async #flush(): Promise<void> {
    const unflushed = this.#unflushed;
    await this.#connected();
    try {
      await this.#connection.flush();
      this.#unflushed -= unflushed;
    } catch (error) {
      throw this.#fail(
        new MqttPublishError(
          `Cannot confirm ${unflushed} QoS 0 publish${
            unflushed === 1 ? "" : "es"
          } to ${this.options.brokerUrl}: ${
            (error as Error).message
          }; QoS 0 has no resend, they may be lost`,
          this.options.topic[0] ?? "",
          { cause: error },
        ),
      );
    }
  }

  /** Whether the sink closed or failed: nothing is left to release. */
  get over(): boolean {
    return this.#error !== undefined || this.#closed;
  }

  /** Disconnects at once (when no other sink shares the connection); unsettled publishes are given up. */
  async abort(reason?: unknown): Promise<void> {
    this.#fail(reason ?? new MqttStreamError("ABORTED", "The sink was aborted"), true);
    await this.#release(true);
  }

  /** The sink is over: counts what is unsettled as failed, errors the stream, wakes waiters. */
  #fail(error: unknown, now = false, errorStream = true): unknown {
    if (this.#error !== undefined) return this.#error;
    this.#error = error;
    for (const publish of this.#pending) this.#record(publish, { kind: "givenUp" });
    this.#pending.clear();
    // A retry that waits holds its slot in the connection's window, which other sinks may share.
    for (const timer of this.#retries.keys()) {
      clearTimeout(timer);
      this.#connection.settle();
    }
    this.#retries.clear();
    this.#rejectFailed(error);
    if (errorStream) this.#controller.error(error);
    // The stream already carries its error. abort() awaits the same release (a lease lets go
    // once) and rejects with its failure; without an abort (the connection failed, a publish
    // was refused) a failure to end the connection behind that error (its store could not
    // close) has no one left to reach.
    this.#release(now).catch(() => {});
    return error;
  }

  async #release(now: boolean): Promise<void> {
    const lease = this.#lease;
    this.#observer?.close();
    if (lease) {
      this.#offConnect?.();
      this.#signal?.removeEventListener("abort", this.#onAbort);
      await lease.release(now);
    }
  }
}
