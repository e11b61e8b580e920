// Run by telemetry_test.ts with OTEL_DENO=true: a sink and a source, and no OpenTelemetry
// set up at all. Deno registers its own providers with @opentelemetry/api, so their
// metrics and spans must reach Deno's OTLP exporter.
import { MqttSink, MqttSource } from "../../mod.ts";

const url = `${Deno.args[0]}?topic=otel/deno&qos=1&mqttVersion=5`;
const source = new MqttSource(url);
await source.ready;
await ReadableStream.from(["a", "b", "c"]).pipeTo(new MqttSink(url, { connectionCacheTimeout: 0 }));
let received = 0;
for await (const _ of source) if (++received === 3) break;
// Deno reads observable instruments at its export interval, not at exit (seen with Deno
// 2.9): stay for a few intervals (the test sets OTEL_METRIC_EXPORT_INTERVAL=100).
await new Promise((resolve) => setTimeout(resolve, 400));
console.log(`received ${received}`);
