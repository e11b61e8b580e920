/**
 * {@linkcode merge}: several streams (sources on several brokers) into one, each chunk
 * tagged with the name of its stream, read no faster than the consumer reads.
 *
 * @module
 */
// This module is browser compatible.
import { MqttMessage } from "../message.ts";

/**
 * A chunk of stream `Name` as {@linkcode merge} tags it by default: a message becomes
 * `{ source, message }`; an object that carries one (what `decodeJson`, `validate` or
 * `route` yield) gets a `source` field; any other value becomes `{ source, value }`.
 *
 * @typeParam Name The stream's name.
 * @typeParam T Its chunks.
 *
 * @example
 * ```ts
 * import { MqttMessage, type Tagged } from "@mqtt-streams/core";
 *
 * const tagged: Tagged<"edge", MqttMessage> = { source: "edge", message: new MqttMessage("a", new Uint8Array()) };
 * console.log(tagged.source); // edge
 * ```
 */
export type Tagged<Name extends string, T> = T extends MqttMessage
  ? { readonly source: Name; readonly message: T }
  : T extends { readonly message: MqttMessage } ? Omit<T, "source"> & { readonly source: Name }
  : { readonly source: Name; readonly value: T };

/**
 * The union of {@linkcode Tagged} chunks `merge(sources)` yields.
 *
 * @typeParam Sources The named streams.
 *
 * @example
 * ```ts
 * import type { MqttSource, TaggedUnion } from "@mqtt-streams/core";
 *
 * type Both = TaggedUnion<{ edge: MqttSource; cloud: MqttSource }>;
 * const name = (chunk: Both) => chunk.source; // "edge" | "cloud"
 * console.log(typeof name); // function
 * ```
 */
export type TaggedUnion<Sources extends Record<string, ReadableStream<unknown>>> = {
  [Name in keyof Sources & string]: Tagged<
    Name,
    Sources[Name] extends ReadableStream<infer T> ? T : never
  >;
}[keyof Sources & string];

/**
 * Options of {@linkcode merge}.
 *
 * @typeParam Sources The named streams.
 * @typeParam U What the merged stream yields.
 *
 * @example Tag records with a user property
 * ```ts
 * import type { MergeOptions, MqttMessage, MqttRecord } from "@mqtt-streams/core";
 *
 * const options: MergeOptions<{ a: ReadableStream<MqttMessage> }, MqttRecord> = {
 *   tag: (message, source) => ({ ...message, properties: { userProperties: { source } } }),
 * };
 * console.log(typeof options.tag); // function
 * ```
 */
export interface MergeOptions<Sources extends Record<string, ReadableStream<unknown>>, U> {
  /** Makes the merged chunk of a chunk and its stream's name. @default {the Tagged form} */
  tag?: (
    chunk: Sources[keyof Sources] extends ReadableStream<infer T> ? T : never,
    source: keyof Sources & string,
  ) => U;
}

/**
 * Merges named streams into one. Each chunk is tagged with the name of the stream it came
 * from (see {@linkcode Tagged}, or give `tag`). Backpressure is kept: the merged stream
 * has no queue of its own and reads each stream at most one chunk ahead of its consumer,
 * so a fast source waits (its broker holding the rest) instead of filling memory; ready
 * streams take turns, so a busy one does not starve a quiet one. It ends when all the
 * streams end; it errors, cancelling the others, when one errors; cancelling it cancels
 * them all.
 *
 * @typeParam Sources The named streams, inferred.
 * @typeParam U What it yields. @default {TaggedUnion<Sources>}
 * @param sources The streams by name, e.g. `{ edge: sourceA, cloud: sourceB }`.
 * @param options How to tag a chunk.
 * @returns One stream of tagged chunks.
 * @throws {TypeError} When `sources` names no stream, or one is not a ReadableStream.
 *
 * @example Two sources, one loop
 * ```ts
 * import { merge, MqttMessage } from "@mqtt-streams/core";
 *
 * const edge = ReadableStream.from([new MqttMessage("plant/temp", new TextEncoder().encode("71"))]);
 * const cloud = ReadableStream.from([new MqttMessage("fleet/temp", new TextEncoder().encode("65"))]);
 * for await (const { source, message } of merge({ edge, cloud })) {
 *   console.log(source, message.topic); // edge plant/temp, then cloud fleet/temp
 * }
 * ```
 */
export function merge<
  const Sources extends Record<string, ReadableStream<unknown>>,
  U = TaggedUnion<Sources>,
>(sources: Sources, options: MergeOptions<Sources, U> = {}): ReadableStream<U> {
  const names = Object.keys(sources);
  if (names.length === 0) throw new TypeError("Cannot merge as 'sources' names no stream");
  for (const name of names) {
    if (!(sources[name] instanceof ReadableStream)) {
      throw new TypeError(
        `Cannot merge as source '${name}' must be a ReadableStream: current value is ${
          String(sources[name])
        }`,
      );
    }
  }
  const tag = options.tag ?? (defaultTag as NonNullable<MergeOptions<Sources, U>["tag"]>);
  type Read = { input: Input; result: ReadableStreamReadResult<unknown> };
  type Input = { name: string; reader: ReadableStreamDefaultReader<unknown>; read?: Promise<Read> };
  let live: Input[] = names.map((name) => ({ name, reader: sources[name].getReader() }));
  let turn = 0;
  const cancelAll = async (reason: unknown) => {
    await Promise.all(live.map(({ reader }) => reader.cancel(reason).catch(() => {})));
  };
  return new ReadableStream<U>({
    async pull(controller) {
      while (live.length > 0) {
        for (const input of live) {
          input.read ??= input.reader.read().then((result) => ({ input, result }));
        }
        // Promise.race settles with the first settled promise in array order, so rotating
        // the array gives each ready stream its turn.
        const start = turn++ % live.length;
        const order = [...live.slice(start), ...live.slice(0, start)];
        let read: Read;
        try {
          read = await Promise.race(order.map((input) => input.read!));
        } catch (error) {
          await cancelAll(error);
          throw error;
        }
        read.input.read = undefined;
        if (read.result.done) {
          live = live.filter((input) => input !== read.input);
          continue;
        }
        controller.enqueue(
          tag(read.result.value as never, read.input.name),
        );
        return;
      }
      controller.close();
    },
    cancel: cancelAll,
  }, { highWaterMark: 0 });
}

function defaultTag(chunk: unknown, source: string): unknown {
  if (chunk instanceof MqttMessage) return { source, message: chunk };
  if (typeof chunk === "object" && chunk !== null && "message" in chunk) {
    return { ...chunk, source };
  }
  return { source, value: chunk };
}
