// Running a Standard Schema v1 over a message's value, for validate() and route().
import type { MqttIssue } from "../errors.ts";
import { MqttMessage } from "../message.ts";
import { parseJson } from "./json_line.ts";
import type { MqttInput } from "./_input.ts";
import type { StandardSchemaIssue, StandardSchemaV1 } from "./standard_schema.ts";

type Checked = { value: unknown } | { issues: MqttIssue[] };

/** The schema, if it is a Standard Schema v1 object; a TypeError naming `what` if not. */
export function checkSchema(stage: string, what: string, schema: unknown): StandardSchemaV1 {
  const props = (schema as StandardSchemaV1 | undefined)?.["~standard"];
  if (typeof props?.validate === "function" && props.version === 1) {
    return schema as StandardSchemaV1;
  }
  throw new TypeError(
    `Cannot create ${stage}() as ${what} must be a Standard Schema v1 object (a valibot, zod or arktype schema): current value is ${
      describeSchema(schema)
    }`,
  );
}

/**
 * The value to check of an input: the value a decoder put beside the message, else the
 * payload parsed as JSON.
 */
export function valueOf(input: MqttInput): Checked {
  if (input instanceof MqttMessage) return parseJson(input.payload);
  return "value" in input ? { value: input.value } : parseJson(input.message.payload);
}

/**
 * Checks the value of `input` (see {@linkcode valueOf}) with `schema`: what `make` makes
 * of the schema's output, or the issues (with plain paths).
 */
export function checkInput<O>(
  schema: StandardSchemaV1,
  input: MqttInput,
  make: (output: unknown) => O,
): { value: O } | { issues: MqttIssue[] } | Promise<{ value: O } | { issues: MqttIssue[] }> {
  const decoded = valueOf(input);
  if ("issues" in decoded) return decoded;
  const result = schema["~standard"].validate(decoded.value);
  const done = (result: Parameters<typeof settle>[0]) => {
    const checked = settle(result);
    return "issues" in checked ? checked : { value: make(checked.value) };
  };
  return result instanceof Promise ? result.then(done) : done(result);
}

function settle(
  result: { value?: unknown; issues?: ReadonlyArray<StandardSchemaIssue> },
): Checked {
  if (!result.issues) return { value: result.value };
  return { issues: result.issues.map(issueOf) };
}

function issueOf(issue: StandardSchemaIssue): MqttIssue {
  if (!issue.path?.length) return { message: issue.message };
  const path = issue.path.map((segment) => {
    const key = typeof segment === "object" ? segment.key : segment;
    return typeof key === "number" ? key : String(key);
  });
  return { message: issue.message, path };
}

function describeSchema(value: unknown): string {
  if (value === null || typeof value !== "object") return String(value);
  return `an object with keys ${Object.keys(value).slice(0, 5).join(", ") || "none"}`;
}
