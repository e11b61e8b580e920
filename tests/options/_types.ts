// Compile-time proof that the generated MqttOptions (src/options/mqtt_options.ts) is the
// options' schema's output: the same keys, each mutually assignable, and the whole objects
// mutually assignable (so a field is optional in both or in neither). tests/options/
// types_test.ts type-checks this file; a mismatch fails with the field at fault named.
import type * as v from "valibot";
import type { MqttOptions } from "../../src/options/options.ts";
import type { OPTIONS_SCHEMA } from "../../src/options/_schema.ts";

/** What parsing returns, as the schema infers it. */
type Parsed = v.InferOutput<typeof OPTIONS_SCHEMA>;

/** `true` when A and B are assignable to each other. */
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** Each field: `true` when its two types agree. */
type Fields = {
  [K in keyof MqttOptions | keyof Parsed]-?: Mutual<Field<MqttOptions, K>, Field<Parsed, K>>;
};
type Field<T, K> = K extends keyof T ? T[K] : "missing";

export const sameKeys: Mutual<keyof MqttOptions, keyof Parsed> = true;
export const sameFields: Fields = {} as { [K in keyof Fields]: true };
export const interfaceFromSchema = (parsed: Parsed): MqttOptions => parsed;
export const schemaFromInterface = (options: MqttOptions): Parsed => options;
