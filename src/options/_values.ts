// The value schemas the options are made of: URL parameters and environment variables arrive
// as strings, so numbers, booleans and choices are coerced from them before they are checked.
// Each one also names the TypeScript type of what it outputs (`typed`), from which the
// MqttOptions interface is generated; tests/options/types_test.ts proves the two agree.
import * as v from "valibot";
import { Secret } from "../secret.ts";
import { topicFilterProblem, topicNameProblem } from "./_topic.ts";
import { toOpenSslCiphers } from "./_ciphers.ts";
import { redactText } from "../_redact.ts";

/** A value schema that names the TypeScript type of its output. */
export type Typed = v.SchemaWithPipe<
  readonly [v.GenericSchema, v.MetadataAction<unknown, { type: string }>]
>;

/** Attaches `type`, the TypeScript type of the schema's output, as MqttOptions writes it. */
const typed = <S extends v.GenericSchema>(type: string, schema: S) =>
  v.pipe(schema, v.metadata({ type }));

/** The TypeScript type of a choice among literals: `"a" | "b"`. */
const literals = (values: readonly (string | number)[]) =>
  values.map((value) => JSON.stringify(value)).join(" | ");

const toNumber = v.transform((x: unknown) =>
  typeof x === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(x) ? Number(x) : x
);
export const integer = (min: number, max: number) =>
  typed(
    "number",
    v.pipe(v.unknown(), toNumber, v.number(), v.integer(), v.minValue(min), v.maxValue(max)),
  );
export const attempts = () =>
  typed(
    "number",
    v.pipe(
      v.unknown(),
      toNumber,
      v.number(),
      v.integer(),
      v.check(
        (n) => n === -1 || (n >= 1 && n <= 1_000_000),
        (issue) => issue.input === 0 ? "0 attempts would never try; -1 tries for ever" : "",
      ),
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
  typed(
    "boolean",
    v.pipe(
      v.unknown(),
      v.transform((x) => (typeof x === "string" ? BOOLEANS[x.trim().toLowerCase()] ?? x : x)),
      v.boolean(),
    ),
  );
export const qos = () =>
  typed("0 | 1 | 2", v.pipe(integer(0, 2), v.transform((n) => n as 0 | 1 | 2)));
/** Case-insensitive choice among `values`; returns the canonical spelling. */
export const choice = <const T extends string>(values: readonly T[]) =>
  typed(
    literals(values),
    v.pipe(
      v.unknown(),
      v.transform((x) =>
        typeof x === "string"
          ? values.find((c) => c.toLowerCase() === x.trim().toLowerCase()) ?? x
          : x
      ),
      v.picklist(values),
    ),
  );
const MQTT_VERSIONS: Record<string, 3 | 4 | 5> = {
  "3": 3,
  "3.1": 3,
  "4": 4,
  "3.1.1": 4,
  "5": 5,
  "5.0": 5,
};
/** 3 (3.1), 4 (3.1.1) or 5, also as "3.1", "3.1.1" and "5.0". */
export const mqttVersion = () =>
  typed(
    literals([3, 4, 5]),
    v.pipe(
      v.unknown(),
      v.transform((x) => MQTT_VERSIONS[String(x).trim()] ?? x),
      v.picklist([3, 4, 5] as const),
    ),
  );
export const text = () => typed("string", v.pipe(v.string(), v.minLength(1)));
export const secret = () =>
  typed(
    "Secret",
    v.union([v.instance(Secret<string>), v.pipe(v.string(), v.transform((s) => new Secret(s)))]),
  );
/** Any Uint8Array, whatever its buffer (`v.instance` would type it `Uint8Array<ArrayBuffer>`). */
const bytes = () => v.custom<Uint8Array>((x) => x instanceof Uint8Array);
export const pemOrPath = () => typed("string | Uint8Array", v.union([text(), bytes()]));
export const keyOrPath = () =>
  typed(
    "Secret<string | Uint8Array>",
    v.union([
      v.instance(Secret<string | Uint8Array>),
      v.pipe(pemOrPath(), v.transform((k) => new Secret<string | Uint8Array>(k))),
    ]),
  );
export const storeType = () => choice(["PKCS12", "PEM"] as const);
export const topicFilters = () =>
  typed(
    "string[]",
    v.pipe(
      v.unknown(),
      v.transform((x) => (typeof x === "string" ? [x] : x)),
      v.array(
        v.pipe(
          v.string(),
          v.check(
            (f) => !topicFilterProblem(f),
            (issue) => topicFilterProblem(String(issue.input))!,
          ),
        ),
      ),
    ),
  );
/**
 * TLS ALPN protocol names (RFC 7301), separated by commas in a URL, or an array: each 1 to
 * 255 characters of printable ASCII, as the protocol ids a server compares byte for byte.
 */
export const protocolList = () =>
  typed(
    "string[]",
    v.pipe(
      v.unknown(),
      v.transform((x) => (typeof x === "string" ? x.split(",").map((p) => p.trim()) : x)),
      v.array(
        v.pipe(
          v.string(),
          v.regex(/^[\x21-\x7e]{1,255}$/, "a protocol is 1 to 255 printable ASCII characters"),
        ),
      ),
      v.minLength(1, "name at least one protocol"),
    ),
  );
/** A topic to publish to: no wildcards. */
export const topicName = () =>
  typed(
    "string",
    v.pipe(
      v.string(),
      v.check((t) => !topicNameProblem(t), (issue) => topicNameProblem(String(issue.input))!),
    ),
  );
export const payload = () => typed("string | Uint8Array", v.union([v.string(), bytes()]));
/** Cipher suites, OpenSSL or Java names, as an OpenSSL cipher list. */
export const cipherList = () =>
  typed(
    "string",
    v.pipe(
      text(),
      v.rawTransform(({ dataset, addIssue, NEVER }) => {
        const mapped = toOpenSslCiphers(dataset.value);
        if ("ciphers" in mapped) return mapped.ciphers;
        addIssue({
          message: `${
            redactText(mapped.unknown)
          } is not a Java cipher suite name this library knows; use its OpenSSL name`,
        });
        return NEVER;
      }),
    ),
  );
