// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and
// `tracestate` a sink writes into an MQTT 5 publish's user properties and a source reads
// back, for when the application registered no propagator of its own (an SDK's
// TracerProvider alone registers none, and the API's default does nothing).
import {
  type Context,
  createTraceState,
  isSpanContextValid,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  trace,
} from "@opentelemetry/api";

/** version-traceId-parentId-flags; later versions may append fields after a '-'. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** One value of a carrier's field: the first, when a user property repeats. */
function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** The W3C trace context propagator: `traceparent` and `tracestate`. */
export const W3C_TRACE_CONTEXT: TextMapPropagator = {
  inject(context: Context, carrier: unknown, setter: TextMapSetter): void {
    const span = trace.getSpanContext(context);
    if (!span || !isSpanContextValid(span)) return;
    const flags = (span.traceFlags & 0xff).toString(16).padStart(2, "0");
    setter.set(carrier, "traceparent", `00-${span.traceId}-${span.spanId}-${flags}`);
    const state = span.traceState?.serialize();
    if (state) setter.set(carrier, "tracestate", state);
  },

  extract(context: Context, carrier: unknown, getter: TextMapGetter): Context {
    const match = TRACEPARENT.exec(first(getter.get(carrier, "traceparent"))?.trim() ?? "");
    // Version ff is invalid; version 00 has exactly four fields.
    if (!match || match[1] === "ff" || (match[1] === "00" && match[5])) return context;
    const span: SpanContext = {
      traceId: match[2],
      spanId: match[3],
      traceFlags: parseInt(match[4], 16),
      isRemote: true,
    };
    if (!isSpanContextValid(span)) return context;
    const state = getter.get(carrier, "tracestate");
    if (state !== undefined) {
      span.traceState = createTraceState(Array.isArray(state) ? state.join(",") : state);
    }
    return trace.setSpanContext(context, span);
  },

  fields(): string[] {
    return ["traceparent", "tracestate"];
  },
};
