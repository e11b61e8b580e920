// OpenTelemetry: metrics that agree with `stats`, spans whose trace crosses the broker
// (and a bridge), nothing without an SDK, and series bounded whatever the topics. The SDK
// parts are the real ones with their in-memory exporters; the brokers are real too.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type MeterProvider as ApiMeterProvider, metrics, trace } from "@opentelemetry/api";
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  type MqttMessage,
  type MqttRecord,
  MqttSink,
  type MqttSinkStats,
  MqttSource,
  type MqttSourceStats,
} from "../../mod.ts";
import { skipWithoutMosquitto, startMosquitto } from "../../testing/broker.ts";
import { denoExecutable, LOSSLESS, sleep, waitFor, within } from "../../testing/helpers.ts";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";

const SCOPE = "@mqtt-streams/core";

/** A MeterProvider with an in-memory exporter, and what it exports on demand, by metric name. */
function meters() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // The interval never passes in a test: collect() flushes by hand.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  return {
    meterProvider: provider as ApiMeterProvider,
    /** Every data point of this package's metrics, exported now. */
    async collect(): Promise<Map<string, DataPoint<unknown>[]>> {
      exporter.reset();
      await reader.forceFlush();
      const exported = new Map<string, DataPoint<unknown>[]>();
      for (const resource of exporter.getMetrics()) {
        for (const scope of resource.scopeMetrics) {
          if (scope.scope.name !== SCOPE) continue;
          for (const metric of scope.metrics) {
            exported.set(metric.descriptor.name, metric.dataPoints as DataPoint<unknown>[]);
          }
        }
      }
      return exported;
    },
    [Symbol.asyncDispose]: () => provider.shutdown(),
  };
}

/** A TracerProvider whose spans go to an in-memory exporter, shut down with the scope. */
function tracers() {
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(spans)],
  });
  return { spans, tracerProvider, [Symbol.asyncDispose]: () => tracerProvider.shutdown() };
}

/** The one value of a metric (its one series), or the series that match `attributes`. */
function valueOf(
  exported: Map<string, DataPoint<unknown>[]>,
  name: string,
  attributes: Record<string, unknown> = {},
): unknown {
  const points = (exported.get(name) ?? []).filter((point) =>
    Object.entries(attributes).every(([key, value]) => point.attributes[key] === value)
  );
  assert.equal(points.length, 1, `${name} ${JSON.stringify(attributes)}: ${points.length} series`);
  return points[0].value;
}

/** Which metric reports which stats field. */
const SOURCE_METRICS: Record<string, keyof MqttSourceStats> = {
  "messaging.client.consumed.messages": "received",
  "mqtt_streams.source.acked": "acked",
  "mqtt_streams.source.redelivered": "redelivered",
  "mqtt_streams.source.duplicates": "duplicates",
  "mqtt_streams.source.overlapping": "overlapping",
  "mqtt_streams.source.beyond_window": "beyondWindow",
  "mqtt_streams.source.reconnects": "reconnects",
  "mqtt_streams.source.failovers": "failovers",
  "mqtt_streams.source.buffered": "buffered",
  "mqtt_streams.source.held": "held",
};
const SINK_METRICS: Record<string, keyof MqttSinkStats> = {
  "messaging.client.sent.messages": "published",
  "mqtt_streams.sink.acked": "acked",
  "mqtt_streams.sink.retried": "retried",
  "mqtt_streams.sink.failed": "failed",
  "mqtt_streams.sink.inflight": "inflight",
  "mqtt_streams.sink.reconnects": "reconnects",
  "mqtt_streams.sink.failovers": "failovers",
};

/** Gauges: a stream that ended leaves their series. */
const GAUGES = new Set([
  "mqtt_streams.source.buffered",
  "mqtt_streams.source.held",
  "mqtt_streams.sink.inflight",
]);

/**
 * Checks every metric of a source and a sink against their stats, read at the same moment
 * (a gauge of a stream that ended has no series, and its stats field is 0).
 */
function assertAgree(
  exported: Map<string, DataPoint<unknown>[]>,
  source: { stats: MqttSourceStats },
  sink?: { stats: MqttSinkStats },
): void {
  for (const [name, field] of Object.entries(SOURCE_METRICS)) {
    assert.equal(valueOf(exported, name), source.stats[field], `${name} = stats.${field}`);
  }
  const dropped = exported.get("mqtt_streams.source.dropped") ?? [];
  const total = dropped.reduce((sum, point) => sum + (point.value as number), 0);
  assert.equal(total, source.stats.dropped, "mqtt_streams.source.dropped = stats.dropped");
  if (!sink) return;
  for (const [name, field] of Object.entries(SINK_METRICS)) {
    const value = GAUGES.has(name) && !exported.get(name)?.length ? 0 : valueOf(exported, name);
    assert.equal(value, sink.stats[field], `${name} = stats.${field}`);
  }
}

/** A stream of `n` text payloads. */
const texts = (n: number, prefix = "m") =>
  ReadableStream.from(Array.from({ length: n }, (_, i) => `${prefix} ${i}`));

/** Reads `n` messages from `source`, then lets go of it (the source stays open). */
async function read(source: MqttSource, n: number): Promise<MqttMessage[]> {
  const reader = source.getReader();
  const messages: MqttMessage[] = [];
  try {
    while (messages.length < n) {
      const { value, done } = await within(reader.read(), 10_000, `message ${messages.length}`);
      if (done) break;
      messages.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  return messages;
}

/** Waits until `read()` has not changed for `quiet` ms. */
async function settled(read: () => string, quiet = 300): Promise<void> {
  let last = read();
  for (let i = 0; i < 100; i++) {
    await sleep(quiet);
    const now = read();
    if (now === last) return;
    last = now;
  }
}

describe("OpenTelemetry", { skip: skipWithoutMosquitto(), timeout: 120_000 }, () => {
  test("after 1,000 QoS 1 messages through a sink and a source, every metric equals its stats field and each histogram has 1,000 observations", async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    await using telemetry = meters();
    const { meterProvider } = telemetry;
    await using source = new MqttSource(`${broker.url}?topic=otel/%23&qos=1&maxInflight=20`, {
      meterProvider,
    });
    await source.ready;
    const sink = new MqttSink(`${broker.url}?topic=otel/readings&qos=1`, {
      meterProvider,
      connectionCacheTimeout: 0,
    });
    const writer = sink.getWriter();
    for (let i = 0; i < 1_000; i++) await writer.write(`m ${i}`);
    await waitFor(() => sink.stats.acked === 1_000, "1,000 PUBACKs");
    // Half read, the rest waiting at the broker and in the queue: the gauges are non-zero.
    await read(source, 500);
    await settled(() => JSON.stringify({ ...source.stats }));
    let exported = await telemetry.collect();
    assert.ok(source.stats.buffered > 0, `${source.stats.buffered} buffered`);
    assertAgree(exported, source, sink);
    await writer.close();
    await read(source, 500);
    await waitFor(() => source.stats.acked === 1_000, "the last acknowledgement");
    exported = await telemetry.collect();
    assertAgree(exported, source, sink);
    assert.deepEqual(
      [source.stats.received, source.stats.acked, sink.stats.published, sink.stats.acked],
      [1_000, 1_000, 1_000, 1_000],
    );
    const processed = valueOf(exported, "messaging.process.duration") as Histogram;
    const sent = valueOf(exported, "messaging.client.operation.duration") as Histogram;
    assert.equal(processed.count, 1_000);
    assert.equal(sent.count, 1_000);
    assert.ok(sent.sum! > 0 && processed.sum! > 0, "durations are measured");
    // The attributes name the system, the broker, the filter and the topic: no topic name.
    const [point] = exported.get("messaging.client.consumed.messages")!;
    assert.deepEqual(point.attributes, {
      "messaging.system": "mqtt",
      "server.address": "127.0.0.1",
      "server.port": broker.port,
      "mqtt_streams.qos": 1,
      "messaging.destination.template": "otel/#",
      "messaging.operation.name": "receive",
    });
    assert.equal(
      exported.get("messaging.client.sent.messages")![0].attributes["messaging.destination.name"],
      "otel/readings",
    );
  });

  test("QoS 0 messages a full source drops are counted with their reason, as in stats.dropped", async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    await using telemetry = meters();
    await using source = new MqttSource(`${broker.url}?topic=burst&qos=0&maxInflight=5`, {
      meterProvider: telemetry.meterProvider,
    });
    await source.ready;
    await texts(200).pipeTo(
      new MqttSink(`${broker.url}?topic=burst&qos=0`, { connectionCacheTimeout: 0 }),
    );
    await waitFor(() => source.stats.received === 200, "200 arrivals");
    const exported = await telemetry.collect();
    assert.equal(source.stats.dropped, 195);
    assert.equal(
      valueOf(exported, "mqtt_streams.source.dropped", {
        "mqtt_streams.drop.reason": "qos0_overflow",
      }),
      195,
    );
    assert.equal(
      valueOf(exported, "mqtt_streams.source.dropped", {
        "mqtt_streams.drop.reason": "session_lost",
      }),
      0,
    );
    assertAgree(exported, source);
  });

  test("a trace crosses mosquitto: the consumer span is the child of the producer span and links to it, and the message carries its context", async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    await using tracing = tracers();
    const { spans, tracerProvider } = tracing;
    const v5 = "&mqttVersion=5&qos=1";
    await using source = new MqttSource(`${broker.url}?topic=traced/%23${v5}`, {
      tracerProvider,
    });
    await source.ready;
    await texts(3).pipeTo(
      new MqttSink(`${broker.url}?topic=traced/a${v5}`, {
        tracerProvider,
        connectionCacheTimeout: 0,
      }),
    );
    const messages = await read(source, 3);
    await waitFor(() => spans.getFinishedSpans().length === 6, "6 spans");
    const producers = spans.getFinishedSpans().filter((s) => s.kind === 3); // PRODUCER
    const consumers = spans.getFinishedSpans().filter((s) => s.kind === 4); // CONSUMER
    assert.equal(producers.length, 3);
    assert.equal(consumers.length, 3);
    for (const [i, consumer] of consumers.entries()) {
      const producer = producers[i];
      assert.equal(producer.name, "send traced/a");
      assert.equal(consumer.name, "process traced/#");
      assert.equal(consumer.spanContext().traceId, producer.spanContext().traceId);
      assert.equal(consumer.parentSpanContext?.spanId, producer.spanContext().spanId);
      assert.equal(consumer.links[0].context.spanId, producer.spanContext().spanId);
      assert.equal(consumer.attributes["messaging.destination.name"], "traced/a");
      // The handler's view: the message's context is the consumer span's.
      assert.equal(
        trace.getSpanContext(messages[i].context!)?.spanId,
        consumer.spanContext().spanId,
      );
      const { traceparent } = messages[i].properties!.userProperties! as Record<string, string>;
      assert.equal(
        traceparent,
        `00-${producer.spanContext().traceId}-${producer.spanContext().spanId}-01`,
      );
    }
  });

  test("a bridge (source → sink) carries one trace id from the first publisher to the last consumer", async () => {
    await using edge = await startMosquitto({ lines: LOSSLESS });
    await using cloud = await startMosquitto({ lines: LOSSLESS });
    await using tracing = tracers();
    const { spans, tracerProvider } = tracing;
    const v5 = "mqttVersion=5&qos=1";
    await using consumer = new MqttSource(`${cloud.url}?topic=cloud/%23&${v5}`, {
      tracerProvider,
    });
    await consumer.ready;
    const bridgeSource = new MqttSource(
      `${edge.url}?topic=edge/%23&${v5}&ack=manual&clientId=bridge`,
      { tracerProvider },
    );
    await bridgeSource.ready;
    // The bridge renames the topic; the record carries the message's context and ack.
    const bridged = bridgeSource
      .pipeThrough(
        new TransformStream<MqttMessage, MqttRecord>({
          transform: (message, controller) =>
            controller.enqueue({
              topic: "cloud/in",
              payload: message.payload,
              context: message.context,
              ack: () => message.ack(),
            }),
        }),
      )
      .pipeTo(
        new MqttSink(`${cloud.url}?topic=cloud/in&${v5}`, {
          tracerProvider,
          connectionCacheTimeout: 0,
        }),
      );
    await texts(5).pipeTo(
      new MqttSink(`${edge.url}?topic=edge/in&${v5}`, {
        tracerProvider,
        connectionCacheTimeout: 0,
      }),
    );
    const delivered = await read(consumer, 5);
    await waitFor(() => spans.getFinishedSpans().length === 20, "20 spans (4 a message)");
    await bridgeSource[Symbol.asyncDispose]();
    await bridged;
    const all = spans.getFinishedSpans();
    const firsts = all.filter((s) => s.name === "send edge/in");
    assert.equal(firsts.length, 5);
    for (const [i, message] of delivered.entries()) {
      const traceId = trace.getSpanContext(message.context!)!.traceId;
      assert.ok(firsts.some((s) => s.spanContext().traceId === traceId), `message ${i}`);
      // producer → consumer (edge) → producer (bridge) → consumer (cloud), parent to child.
      const chain = all.filter((s) => s.spanContext().traceId === traceId);
      assert.deepEqual(chain.map((s) => s.name).sort(), [
        "process cloud/#",
        "process edge/#",
        "send cloud/in",
        "send edge/in",
      ]);
      const byId = new Map(chain.map((s) => [s.spanContext().spanId, s]));
      const parentName = (s: ReadableSpan) =>
        byId.get(s.parentSpanContext?.spanId ?? "")?.name ?? "(root)";
      assert.deepEqual(
        Object.fromEntries(chain.map((s) => [s.name, parentName(s)])),
        {
          "send edge/in": "(root)",
          "process edge/#": "send edge/in",
          "send cloud/in": "process edge/#",
          "process cloud/#": "send cloud/in",
        },
      );
    }
  });

  test("on MQTT 3.1.1 nothing is injected: the consumer span starts a trace of its own", async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    await using tracing = tracers();
    const { spans, tracerProvider } = tracing;
    await using source = new MqttSource(`${broker.url}?topic=old&qos=1`, { tracerProvider });
    await source.ready;
    await texts(1).pipeTo(
      new MqttSink(`${broker.url}?topic=old&qos=1`, { tracerProvider, connectionCacheTimeout: 0 }),
    );
    const [message] = await read(source, 1);
    await waitFor(() => spans.getFinishedSpans().length === 2, "2 spans");
    const [producer, consumer] = [3, 4].map((kind) =>
      spans.getFinishedSpans().find((s) => s.kind === kind)!
    );
    assert.equal(message.properties, undefined);
    assert.notEqual(consumer.spanContext().traceId, producer.spanContext().traceId);
    assert.equal(consumer.parentSpanContext, undefined);
    assert.deepEqual(consumer.links, []);
  });

  test("without an SDK the pipeline works and nothing reaches a provider; with telemetry=false not even a given one", async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    // A provider that is neither registered nor passed, and one passed with telemetry off.
    await using bystander = meters();
    await using refused = meters();
    await using tracing = tracers();
    const { spans, tracerProvider } = tracing;
    assert.equal(metrics.getMeterProvider().constructor.name, "NoopMeterProvider");
    const off = { telemetry: false, meterProvider: refused.meterProvider, tracerProvider };
    await using source = new MqttSource(`${broker.url}?topic=quiet&mqttVersion=5`, off);
    await using plain = new MqttSource(`${broker.url}?topic=quiet&mqttVersion=5`);
    await Promise.all([source.ready, plain.ready]);
    await texts(100).pipeTo(
      new MqttSink(`${broker.url}?topic=quiet&mqttVersion=5`, {
        ...off,
        connectionCacheTimeout: 0,
      }),
    );
    const [received, alsoReceived] = await Promise.all([read(source, 100), read(plain, 100)]);
    assert.equal(received.length + alsoReceived.length, 200);
    assert.equal(received[0].context, undefined);
    assert.equal(alsoReceived[0].context, undefined);
    assert.equal(received[0].properties?.userProperties, undefined, "no trace context sent");
    assert.equal((await bystander.collect()).size, 0);
    assert.equal((await refused.collect()).size, 0);
    assert.equal(spans.getFinishedSpans().length, 0);
  });

  test("streams report to the global providers an SDK registered", async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    await using telemetry = meters();
    await using tracing = tracers();
    const { spans, tracerProvider } = tracing;
    metrics.setGlobalMeterProvider(telemetry.meterProvider);
    trace.setGlobalTracerProvider(tracerProvider);
    try {
      await using source = new MqttSource(`${broker.url}?topic=global&qos=1`);
      await source.ready;
      await texts(10).pipeTo(
        new MqttSink(`${broker.url}?topic=global&qos=1`, { connectionCacheTimeout: 0 }),
      );
      await read(source, 10);
      await waitFor(() => source.stats.acked === 10, "10 acknowledgements");
      const exported = await telemetry.collect();
      assert.equal(valueOf(exported, "messaging.client.consumed.messages"), 10);
      assert.equal(valueOf(exported, "messaging.client.sent.messages"), 10);
      await waitFor(() => spans.getFinishedSpans().length === 20, "20 spans");
    } finally {
      // Bun runs every test file in one process: leave no global behind.
      metrics.disable();
      trace.disable();
    }
  });

  test("10,000 distinct topics make a bounded number of series; telemetry.topics=true puts them on the histograms", async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    await using telemetry = meters();
    const { meterProvider } = telemetry;
    await using source = new MqttSource(`${broker.url}?topic=many/%23&qos=1&maxInflight=100`, {
      meterProvider,
    });
    await source.ready;
    const records = (n: number, prefix: string) =>
      ReadableStream.from(
        Array.from({ length: n }, (_, i) => ({ topic: `${prefix}/${i}`, payload: `${i}` })),
      );
    const sink = new MqttSink(`${broker.url}?qos=1&maxInflight=100`, {
      meterProvider,
      connectionCacheTimeout: 0,
    });
    const reading = read(source, 10_000);
    await records(10_000, "many").pipeTo(sink);
    assert.equal((await reading).length, 10_000);
    await waitFor(() => source.stats.acked === 10_000, "10,000 acknowledgements");
    const exported = await telemetry.collect();
    const series = [...exported.values()].reduce((sum, points) => sum + points.length, 0);
    // One series an instrument, and two for the drop reasons.
    assert.ok(series <= 20, `${series} series for 10,000 topics`);
    assert.equal(
      (valueOf(exported, "messaging.client.operation.duration") as Histogram).count,
      10_000,
    );

    // Asked for, topics are attributes of the histograms (and of nothing else).
    await using topical = new MqttSource(
      `${broker.url}?topic=few/%23&qos=1&telemetry.topics=true`,
      { meterProvider },
    );
    await topical.ready;
    const readingFew = read(topical, 100);
    await records(100, "few").pipeTo(
      new MqttSink(`${broker.url}?qos=1`, { connectionCacheTimeout: 0 }),
    );
    await readingFew;
    await waitFor(() => topical.stats.acked === 100, "100 acknowledgements");
    const after = await telemetry.collect();
    const perTopic = after.get("messaging.process.duration")!.filter((point) =>
      point.attributes["messaging.destination.template"] === "few/#"
    );
    assert.equal(perTopic.length, 100);
    assert.equal(
      after.get("messaging.client.consumed.messages")!.filter((p) =>
        p.attributes["messaging.destination.template"] === "few/#"
      ).length,
      1,
    );
  });

  test("with OTEL_DENO=true and no code, Deno's OTLP exporter sends the streams' metrics and spans", async () => {
    await using broker = await startMosquitto({ lines: LOSSLESS });
    // An OTLP/HTTP receiver: what Deno posts, by path (protobuf keeps names as UTF-8).
    const posted = new Map<string, string>();
    const server = createServer((request, response) => {
      const latin1 = new TextDecoder("latin1");
      request.on("data", (chunk: Uint8Array) => {
        posted.set(request.url!, (posted.get(request.url!) ?? "") + latin1.decode(chunk));
      });
      request.on("end", () => response.writeHead(200).end());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const child = spawn(
        denoExecutable(),
        ["run", "-A", new URL("./_deno_pipeline_child.ts", import.meta.url).pathname, broker.url],
        {
          stdio: ["ignore", "pipe", "inherit"],
          env: {
            ...process.env,
            OTEL_DENO: "true",
            OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${
              (server.address() as AddressInfo).port
            }`,
            OTEL_METRIC_EXPORT_INTERVAL: "100",
          },
        },
      );
      let output = "";
      child.stdout!.on("data", (chunk) => (output += chunk));
      const code = await within(
        new Promise((resolve) => child.once("exit", resolve)),
        60_000,
        "the Deno pipeline",
      ).catch((error) => {
        child.kill("SIGKILL");
        throw error;
      });
      assert.equal(code, 0, output);
      assert.match(output, /received 3/);
      const metricsPosted = posted.get("/v1/metrics") ?? "";
      for (
        const name of [
          "messaging.client.sent.messages",
          "messaging.client.consumed.messages",
          "mqtt_streams.source.acked",
          "mqtt_streams.sink.acked",
          "messaging.process.duration",
          "messaging.client.operation.duration",
        ]
      ) assert.ok(metricsPosted.includes(name), `${name} in the metrics Deno exported`);
      const tracesPosted = posted.get("/v1/traces") ?? "";
      assert.ok(tracesPosted.includes("send otel/deno"), "the producer spans");
      assert.ok(tracesPosted.includes("process otel/deno"), "the consumer spans");
    } finally {
      server.close();
    }
  });
});
