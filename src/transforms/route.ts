/**
 * {@linkcode route}: many schemas through one pipeline, each message checked against the
 * schema of the first topic filter it matches, with named wildcards, typed as a
 * discriminated union.
 *
 * @module
 */
// This module is browser compatible.
import type { MqttMessage } from "../message.ts";
import { type MqttInput, MqttTransform, type MqttTransformOptions } from "./mqtt_transform.ts";
import { inputMessage, inputSource } from "./_input.ts";
import type { InferOutput, StandardSchemaV1 } from "./standard_schema.ts";
import { checkInput, checkSchema } from "./_schema.ts";
import { namedFilter } from "./_named_filter.ts";

/**
 * The named wildcards of a filter as an object type:
 * `RouteParams<"sensors/+site/#rest">` is `{ site: string; rest: string }`.
 *
 * @typeParam Filter A topic filter with named wildcards.
 *
 * @example
 * ```ts
 * import type { RouteParams } from "@mqtt-streams/core";
 *
 * const params: RouteParams<"sensors/+site/+kind"> = { site: "north", kind: "temperature" };
 * console.log(params.site); // north
 * ```
 */
export type RouteParams<Filter extends string> = { [Name in RouteParamName<Filter>]: string };

/**
 * The names of a filter's named wildcards, as a union:
 * `RouteParamName<"sensors/+site/#rest">` is `"site" | "rest"`.
 *
 * @typeParam Filter A topic filter with named wildcards.
 *
 * @example
 * ```ts
 * import type { RouteParamName } from "@mqtt-streams/core";
 *
 * const name: RouteParamName<"plants/+plant/lines/+line"> = "line";
 * console.log(name); // line
 * ```
 */
export type RouteParamName<Filter extends string> = Filter extends `${infer Level}/${infer Rest}`
  ? RouteParamName<Level> | RouteParamName<Rest>
  : Filter extends `${"+" | "#"}${infer Name}` ? (Name extends "" ? never : Name)
  : never;

/**
 * What {@linkcode route} yields for the filter `Filter` and its schema `Schema`: one
 * branch of the union it yields, told apart by `route`.
 *
 * @typeParam Filter The route's filter.
 * @typeParam Schema Its schema.
 *
 * @example
 * ```ts
 * import { MqttMessage, type Routed } from "@mqtt-streams/core";
 * import * as v from "valibot";
 *
 * const Temperature = v.object({ celsius: v.number() });
 * const routed: Routed<"sensors/+site/temperature", typeof Temperature> = {
 *   route: "sensors/+site/temperature",
 *   params: { site: "north" },
 *   value: { celsius: 21.5 },
 *   message: new MqttMessage("sensors/north/temperature", new Uint8Array()),
 * };
 * console.log(routed.params.site, routed.value.celsius); // north 21.5
 * ```
 */
export interface Routed<Filter extends string, Schema extends StandardSchemaV1> {
  /** The filter that matched, as written in the routes. */
  readonly route: Filter;
  /** The levels its named wildcards matched (`#name`: the rest, joined with '/'). */
  readonly params: RouteParams<Filter>;
  /** The value, checked by the route's schema (its output type). */
  readonly value: InferOutput<Schema>;
  /** The message. */
  readonly message: MqttMessage;
  /** The name of its source, when it came through `merge`. */
  readonly source?: string;
}

/**
 * Routes: topic filters with named wildcards (`+name` one level, `#name` the rest), each
 * with the schema of its messages.
 *
 * @example
 * ```ts
 * import type { MqttRoutes } from "@mqtt-streams/core";
 * import * as v from "valibot";
 *
 * const routes = { "sensors/+site/temperature": v.object({ celsius: v.number() }) } satisfies MqttRoutes;
 * console.log(Object.keys(routes)); // [ "sensors/+site/temperature" ]
 * ```
 */
export type MqttRoutes = Record<string, StandardSchemaV1>;

/**
 * The union of what {@linkcode route} yields for `Routes`, one branch a filter.
 *
 * @typeParam Routes The routes.
 *
 * @example
 * ```ts
 * import type { RoutedUnion } from "@mqtt-streams/core";
 * import * as v from "valibot";
 *
 * const routes = { "door/+id": v.string(), "temp/+id": v.number() };
 * const describe = (r: RoutedUnion<typeof routes>) =>
 *   r.route === "door/+id" ? `door ${r.params.id} ${r.value}` : `${r.value.toFixed(1)} °C`;
 * console.log(typeof describe); // function
 * ```
 */
export type RoutedUnion<Routes extends MqttRoutes> = {
  [Filter in keyof Routes & string]: Routed<Filter, Routes[Filter]>;
}[keyof Routes & string];

/**
 * The transform {@linkcode route} returns: an {@linkcode MqttTransform} that also tells
 * the plain MQTT filters to subscribe to.
 *
 * @typeParam Routes The routes.
 *
 * @example Subscribe to what the routes need
 * ```ts
 * import { route } from "@mqtt-streams/core";
 * import * as v from "valibot";
 *
 * const router = route({ "sensors/+site/temperature": v.number(), "logs/#path": v.string() });
 * console.log(router.filters); // [ "sensors/+/temperature", "logs/#" ]
 * ```
 */
export class MqttRouter<Routes extends MqttRoutes>
  extends MqttTransform<MqttInput, RoutedUnion<Routes>> {
  /** The MQTT filters of the routes, named wildcards removed: what a source subscribes to. */
  readonly filters: string[];

  /**
   * Creates a router; {@linkcode route} is the short way.
   *
   * @param routes Filters with named wildcards, each with its schema.
   * @param options The `onInvalid` policy, for invalid and unmatched messages.
   * @throws {TypeError} When a filter or a schema is invalid, or `onInvalid` is not
   * "error", "drop" or a WritableStream.
   */
  constructor(routes: Routes, options?: MqttTransformOptions) {
    const table = Object.entries(routes).map(([name, schema]) => ({
      filter: namedFilter("route", name),
      schema: checkSchema("route", `the schema of '${name}'`, schema),
    }));
    if (table.length === 0) {
      throw new TypeError("Cannot create route() as 'routes' must name at least one filter");
    }
    const names = table.map(({ filter }) => filter.name).join(", ");
    super("route", (input) => {
      const message = inputMessage(input);
      const parts = message.topic.split("/");
      for (const { filter, schema } of table) {
        const params = filter.match(message.topic, parts);
        if (!params) continue;
        return checkInput(schema, input, (value) =>
          ({
            route: filter.name,
            params,
            value,
            message,
            ...inputSource(input),
          }) as RoutedUnion<Routes>);
      }
      return { issues: [{ message: `no route matches the topic (routes: ${names})` }] };
    }, options);
    this.filters = [...new Set(table.map(({ filter }) => filter.filter))];
  }
}

/**
 * Routes each message to the first filter it matches, checks its value against that
 * filter's schema, and yields `{ route, params, value, message }`: a discriminated union
 * on `route`, each branch typed by its schema's output and its filter's named wildcards.
 * The value checked is the one a decoder put beside the message, else the payload parsed
 * as JSON. A message that matches no filter, or fails its schema, follows `onInvalid`.
 *
 * @typeParam Routes The routes, inferred.
 * @param routes Filters with named wildcards (`+name`, `#name`), each with its schema
 * (valibot, or any Standard Schema v1 object).
 * @param options The `onInvalid` policy. @default {{ onInvalid: "error" }}
 * @returns The router; its `filters` are what to subscribe to.
 * @throws {TypeError} When a filter or a schema is invalid, or `onInvalid` is not
 * "error", "drop" or a WritableStream.
 *
 * @example Two schemas through one pipeline
 * ```ts
 * import { MqttMessage, route } from "@mqtt-streams/core";
 * import * as v from "valibot";
 *
 * const router = route({
 *   "sensors/+site/temperature": v.object({ celsius: v.number() }),
 *   "sensors/+site/humidity": v.object({ percent: v.number() }),
 * });
 * const text = (s: string) => new TextEncoder().encode(s);
 * const messages = ReadableStream.from([
 *   new MqttMessage("sensors/north/temperature", text('{"celsius":21.5}')),
 *   new MqttMessage("sensors/south/humidity", text('{"percent":40}')),
 * ]);
 * for await (const r of messages.pipeThrough(router)) {
 *   if (r.route === "sensors/+site/temperature") console.log(r.params.site, r.value.celsius); // north 21.5
 *   else console.log(r.params.site, r.value.percent); // south 40
 * }
 * ```
 */
export function route<const Routes extends MqttRoutes>(
  routes: Routes,
  options?: MqttTransformOptions,
): MqttRouter<Routes> {
  return new MqttRouter(routes, options);
}
