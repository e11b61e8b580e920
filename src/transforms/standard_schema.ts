/**
 * The Standard Schema v1 interface (https://standardschema.dev), which valibot, zod and
 * arktype schemas implement: {@linkcode validate} and {@linkcode route} accept any of them
 * without depending on one.
 *
 * @module
 */
// This module is browser compatible.

/**
 * A schema of any library that implements Standard Schema v1 (valibot 1, zod 3.24+,
 * arktype 2, ...): its `~standard` property validates a value and carries its types.
 *
 * @typeParam Input What the schema accepts.
 * @typeParam Output What it yields.
 *
 * @example A hand-written schema
 * ```ts
 * import type { StandardSchemaV1 } from "@mqtt-streams/core";
 *
 * const celsius: StandardSchemaV1<unknown, number> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (value) =>
 *       typeof value === "number" ? { value } : { issues: [{ message: "expected a number" }] },
 *   },
 * };
 * console.log(celsius["~standard"].validate(21.5)); // { value: 21.5 }
 * ```
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": StandardSchemaProps<Input, Output>;
}

/**
 * The `~standard` property of a {@linkcode StandardSchemaV1}.
 *
 * @typeParam Input What the schema accepts.
 * @typeParam Output What it yields.
 *
 * @example
 * ```ts
 * import type { StandardSchemaProps } from "@mqtt-streams/core";
 *
 * const props: StandardSchemaProps<string> = {
 *   version: 1,
 *   vendor: "example",
 *   validate: (value) => typeof value === "string" ? { value } : { issues: [{ message: "not text" }] },
 * };
 * console.log(props.vendor); // example
 * ```
 */
export interface StandardSchemaProps<Input = unknown, Output = Input> {
  /** The version of the standard: 1. */
  readonly version: 1;
  /** The library that made the schema. */
  readonly vendor: string;
  /** Validates a value: its output, or the issues that make it invalid. */
  readonly validate: (
    value: unknown,
  ) => StandardSchemaResult<Output> | Promise<StandardSchemaResult<Output>>;
  /** The input and output types, for inference only. */
  readonly types?: { readonly input: Input; readonly output: Output } | undefined;
}

/**
 * What a {@linkcode StandardSchemaV1} validation returns: the output value, or the issues.
 *
 * @typeParam Output The schema's output type.
 *
 * @example
 * ```ts
 * import type { StandardSchemaResult } from "@mqtt-streams/core";
 *
 * const result: StandardSchemaResult<number> = { issues: [{ message: "expected a number", path: ["celsius"] }] };
 * console.log(result.issues?.length); // 1
 * ```
 */
export type StandardSchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<StandardSchemaIssue> };

/**
 * One problem a schema found: a message, and where in the value (a path of keys).
 *
 * @example
 * ```ts
 * import type { StandardSchemaIssue } from "@mqtt-streams/core";
 *
 * const issue: StandardSchemaIssue = { message: "expected a number", path: ["readings", 0, { key: "celsius" }] };
 * console.log(issue.path?.length); // 3
 * ```
 */
export interface StandardSchemaIssue {
  /** What is wrong. */
  readonly message: string;
  /** Where: keys, or segments holding a key. */
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/**
 * The output type of a {@linkcode StandardSchemaV1}: what {@linkcode validate} yields.
 *
 * @typeParam Schema The schema.
 *
 * @example
 * ```ts
 * import type { InferOutput, StandardSchemaV1 } from "@mqtt-streams/core";
 *
 * const celsius: StandardSchemaV1<unknown, number> = {
 *   "~standard": { version: 1, vendor: "example", validate: (value) => ({ value: Number(value) }) },
 * };
 * const reading: InferOutput<typeof celsius> = 21.5;
 * console.log(reading); // 21.5
 * ```
 */
export type InferOutput<Schema extends StandardSchemaV1> = NonNullable<
  Schema["~standard"]["types"]
>["output"];
