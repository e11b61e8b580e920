// The value schemas the options are made of: URL parameters and environment variables arrive
// as strings, so numbers, booleans and choices are coerced from them before they are checked.
import * as v from "valibot";
import { Secret } from "./secret.ts";
import { topicFilterProblem } from "./_topic.ts";

const toNumber = v.transform((x: unknown) =>
  typeof x === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(x) ? Number(x) : x
);
export const integer = (min: number, max: number) =>
  v.pipe(v.unknown(), toNumber, v.number(), v.integer(), v.minValue(min), v.maxValue(max));
export const attempts = () =>
  v.pipe(
    v.unknown(),
    toNumber,
    v.number(),
    v.integer(),
    v.check(
      (n) => n === -1 || (n >= 1 && n <= 1_000_000),
      (issue) => issue.input === 0 ? "0 attempts would never try; -1 tries for ever" : "",
    ),
  );
const BOOLEANS: Record<string, boolean> = {
  true: true,
  false: false,
  "1": true,
  "0": false,
  yes: true,
  no: false,
  on: true,
  off: false,
};
export const boolean = () =>
  v.pipe(
    v.unknown(),
    v.transform((x) => (typeof x === "string" ? BOOLEANS[x.trim().toLowerCase()] ?? x : x)),
    v.boolean(),
  );
export const qos = () => v.pipe(integer(0, 2), v.transform((n) => n as 0 | 1 | 2));
/** Case-insensitive choice among `values`; returns the canonical spelling. */
export const choice = <const T extends string>(values: readonly T[]) =>
  v.pipe(
    v.unknown(),
    v.transform((x) =>
      typeof x === "string"
        ? values.find((c) => c.toLowerCase() === x.trim().toLowerCase()) ?? x
        : x
    ),
    v.picklist(values),
  );
export const text = () => v.pipe(v.string(), v.minLength(1));
export const secret = () =>
  v.union([v.instance(Secret<string>), v.pipe(v.string(), v.transform((s) => new Secret(s)))]);
export const pemOrPath = () => v.union([text(), v.instance(Uint8Array)]);
export const keyOrPath = () =>
  v.union([
    v.instance(Secret<string | Uint8Array>),
    v.pipe(pemOrPath(), v.transform((k) => new Secret<string | Uint8Array>(k))),
  ]);
export const storeType = () => choice(["PKCS12", "PEM"] as const);
export const topicFilters = () =>
  v.pipe(
    v.unknown(),
    v.transform((x) => (typeof x === "string" ? [x] : x)),
    v.array(
      v.pipe(
        v.string(),
        v.check((f) => !topicFilterProblem(f), (issue) => topicFilterProblem(String(issue.input))!),
      ),
    ),
  );

export const MQTT_VERSIONS: Record<string, 3 | 4 | 5> = {
  "3": 3,
  "3.1": 3,
  "4": 4,
  "3.1.1": 4,
  "5": 5,
  "5.0": 5,
};
