// The command line's I/O: stdin as lines, stdout with backpressure, the progress line,
// and Ctrl-C. node:process and node:stream exist in Deno, Bun and Node alike.
import process from "node:process";
import { type MqttConnecting, redactConnectionString } from "../mod.ts";

/** Lines of stdin (without their newline), read only as fast as they are consumed. */
export async function* stdinLines(): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = "";
  for await (const chunk of process.stdin as AsyncIterable<Uint8Array>) {
    rest += decoder.decode(chunk, { stream: true });
    const lines = rest.split("\n");
    rest = lines.pop()!;
    for (const line of lines) yield line.endsWith("\r") ? line.slice(0, -1) : line;
  }
  rest += decoder.decode();
  if (rest !== "") yield rest;
}

/**
 * Stdout as a stream of text: a write resolves once the text is handed to the OS or buffered
 * within its limit; `close()` once all of it is flushed. An error of stdout (EPIPE) rejects
 * the write that waits, or else the next one.
 */
export function stdoutStream(): WritableStream<string> {
  const stdout = process.stdout;
  let failed: Error | undefined;
  let waiting: ((error: Error) => void) | undefined;
  // One error listener for the stream's life, not one a write: to a file or a pipe a write
  // is buffered and resolves before its callback runs, so listeners a write piled up past
  // Node's limit of 10 (MaxListenersExceededWarning, 19 lines per 1,000 messages).
  const onError = (error: Error) => {
    failed ??= error;
    waiting?.(error);
  };
  return new WritableStream({
    start() {
      stdout.on("error", onError);
    },
    write: (text) =>
      new Promise<void>((resolve, reject) => {
        if (failed) return reject(failed);
        if (stdout.write(text)) return resolve();
        const drained = () => {
          waiting = undefined;
          resolve();
        };
        waiting = (error) => {
          stdout.off("drain", drained);
          waiting = undefined;
          reject(error);
        };
        stdout.once("drain", drained);
      }),
    // The listener stays until what was buffered is flushed: an error after it is removed
    // would be an uncaught 'error' event.
    close: () =>
      new Promise<void>((resolve, reject) => {
        if (failed) return reject(failed);
        stdout.write("", (error) => {
          stdout.off("error", onError);
          if (error ?? failed) reject(error ?? failed);
          else resolve();
        });
      }),
  });
}

/**
 * The stderr of a running command, every second: while `connecting()` says a stream has been
 * connecting for a second or more (at first, or after a drop), a line naming the broker and
 * the attempt, each time they change, on a terminal or not; otherwise, while `on`,
 * `line()`: over itself on a terminal, else a line each.
 */
function progress(
  on: boolean,
  line: () => string,
  connecting: () => MqttConnecting | undefined,
): { stop(): void } {
  const tty = Boolean(process.stderr.isTTY);
  const print = (end: string) => process.stderr.write(`${tty ? "\r\x1b[K" : ""}${line()}${end}`);
  // Ticks in a row that found a stream connecting: the first tick comes a second after the
  // streams were made, so it counts as the second for the first connect.
  let ticks = 1;
  let said: string | undefined;
  const timer = setInterval(() => {
    const attempt = connecting();
    if (attempt === undefined) {
      ticks = 0;
      said = undefined;
      if (on) print(tty ? "" : "\n");
      return;
    }
    if (++ticks < 2) return;
    const text = connectingLine(attempt);
    if (text === said) return;
    said = text;
    // On a line of its own: a note may follow it (subscribed to …), and so may a progress line.
    process.stderr.write(`${tty ? "\r\x1b[K" : ""}mqtt-streams: ${text}\n`);
  }, 1000);
  return {
    stop() {
      clearInterval(timer);
      if (on) print("\n");
    },
  };
}

/** "connecting to mqtt://h:1883 (attempt 2 of 5)…", the broker redacted all the same. */
function connectingLine({ broker, attempt, attempts }: MqttConnecting): string {
  const of = attempts === -1 ? "" : ` of ${attempts}`;
  return `connecting to ${redactConnectionString(broker)} (attempt ${attempt}${of})…`;
}

/**
 * Calls `stop` on the first SIGINT or SIGTERM; a second one exits at once (130). Returns
 * a function that removes the handlers.
 */
function onInterrupt(stop: () => void): () => void {
  let count = 0;
  const handler = () => {
    if (count++ > 0) process.exit(130);
    process.stderr.write("mqtt-streams: stopping (again to force)\n");
    stop();
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}

/** A count per second over the last interval. */
function rate(): (total: number) => number {
  let last = 0;
  let at = Date.now();
  return (total) => {
    const now = Date.now();
    const perSecond = ((total - last) * 1000) / Math.max(1, now - at);
    last = total;
    at = now;
    return Math.round(perSecond);
  };
}

/**
 * What every command sets up: Ctrl-C (and SIGTERM) aborting `signal`, the progress line
 * `line` makes (given a per-second rate of a total), and the line that says which broker
 * and attempt `connecting()` (its streams' `stats.connecting`) waits for. `done()` undoes
 * them.
 */
export function controls(
  progressOn: boolean,
  line: (perSecond: (total: number) => number) => string,
  connecting: () => MqttConnecting | undefined,
): { signal: AbortSignal; done(): void } {
  const stop = new AbortController();
  const off = onInterrupt(() => stop.abort());
  const perSecond = rate();
  const shown = progress(progressOn, () => line(perSecond), connecting);
  return {
    signal: stop.signal,
    done() {
      shown.stop();
      off();
    },
  };
}
