// Must type-check (`deno task check` checks it, and tests/package/types_test.ts runs deno check on
// it): what the transforms infer from their schemas and filters. The files that must NOT
// type-check are in tests/package/types_test.ts.
import * as v from "valibot";
import { z } from "zod";
import {
  decodeJson,
  decodeText,
  merge,
  type MqttMessage,
  type MqttRecord,
  MqttSink,
  route,
  toRecord,
  validate,
} from "../../mod.ts";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;
export function expectType<_ extends true>(): void {}

const Temperature = v.object({ celsius: v.number() });
const Humidity = z.object({ percent: z.number() });

export async function routed(source: ReadableStream<MqttMessage>): Promise<void> {
  const router = route({
    "sensors/+site/temperature": Temperature,
    "sensors/+site/humidity": Humidity,
    "plants/+plant/lines/+line/#rest": v.string(),
  });
  for await (const r of source.pipeThrough(router)) {
    if (r.route === "sensors/+site/temperature") {
      expectType<Equal<typeof r.value, { celsius: number }>>();
      expectType<Equal<typeof r.params, { site: string }>>();
    } else if (r.route === "sensors/+site/humidity") {
      expectType<Equal<typeof r.value, { percent: number }>>();
    } else {
      expectType<Equal<typeof r.route, "plants/+plant/lines/+line/#rest">>();
      expectType<Equal<typeof r.params, { plant: string; line: string; rest: string }>>();
      expectType<Equal<typeof r.value, string>>();
    }
    expectType<Equal<typeof r.message, MqttMessage>>();
  }
}

export async function validated(source: ReadableStream<MqttMessage>): Promise<void> {
  const Parsed = v.pipe(v.string(), v.transform((s) => new Date(s)));
  for await (const { value } of source.pipeThrough(decodeText()).pipeThrough(validate(Parsed))) {
    expectType<Equal<typeof value, Date>>();
  }
  for await (const { value } of source.pipeThrough(validate(Humidity))) {
    expectType<Equal<typeof value, { percent: number }>>();
  }
  for await (const { value } of source.pipeThrough(decodeJson<{ n: number }>())) {
    expectType<Equal<typeof value, { n: number }>>();
  }
}

export async function merged(
  edge: ReadableStream<MqttMessage>,
  cloud: ReadableStream<MqttMessage>,
): Promise<void> {
  for await (const chunk of merge({ edge, cloud })) {
    expectType<Equal<typeof chunk.source, "edge" | "cloud">>();
    expectType<Equal<typeof chunk.message, MqttMessage>>();
  }
  const records = merge({ edge }, {
    tag: (message, source): MqttRecord => ({ topic: `${source}/${message.topic}`, payload: "" }),
  });
  expectType<Equal<typeof records, ReadableStream<MqttRecord>>>();
  await edge
    .pipeThrough(validate(Temperature))
    .pipeThrough(toRecord(({ value }) => ({ topic: "f", payload: String(value.celsius) })))
    .pipeTo(new MqttSink("mqtt://localhost?qos=1"));
}
