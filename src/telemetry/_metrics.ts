// The streams' stats as OpenTelemetry metrics: observable instruments, one set per MeterProvider,
// and one batch callback that reads every live stream's stats when the SDK collects. Nothing
// is recorded per message, so the numbers are `stats`' numbers at that moment. Streams whose
// attributes are the same are summed (the SDK keeps one observation per series and
// collection), and a stream that ends leaves its counters' last values behind, so that a
// counter never goes back.
import {
  type Attributes,
  type BatchObservableResult,
  createNoopMeter,
  type Histogram,
  type Meter,
  type MeterProvider,
  type Observable,
} from "@opentelemetry/api";
import type { MqttSinkStats, MqttSourceStats } from "../streams/stats.ts";
import manifest from "../../deno.json" with { type: "json" };

/** Which kind of stream reports. */
export type StreamKind = "source" | "sink";

/**
 * Every instrument: counters (monotonic) and up-down counters (what is queued or in
 * flight now, exported as gauges), with their descriptions.
 */
const INSTRUMENTS = {
  "messaging.client.consumed.messages": [
    true,
    "Messages that arrived from the broker, dropped ones included (source stats.received).",
  ],
  "mqtt_streams.source.acked": [true, "PUBACKs and PUBCOMPs a source sent (stats.acked)."],
  "mqtt_streams.source.dropped": [
    true,
    "Messages a source dropped, by mqtt_streams.drop.reason: qos0_overflow (its queue was full, qos0Overflow=drop) or session_lost (persistence=file: QoS 2 messages whose session the broker lost) (stats.dropped).",
  ],
  "mqtt_streams.source.redelivered": [
    true,
    "Messages that arrived with DUP set (stats.redelivered).",
  ],
  "mqtt_streams.source.duplicates": [
    true,
    "Copies of a message that overlapping filters brought and a source acknowledged unread, another copy being delivered (MQTT 5; stats.duplicates).",
  ],
  "mqtt_streams.source.overlapping": [
    true,
    "Messages delivered over MQTT 3.1.1 whose topic matches two or more subscribed filters, which a broker may send once per filter (stats.overlapping).",
  ],
  "mqtt_streams.source.beyond_window": [
    true,
    "QoS 1/2 messages the broker sent past the window of maxInflight (stats.beyondWindow).",
  ],
  "mqtt_streams.source.reconnects": [
    true,
    "Reconnects of a source's connection (stats.reconnects).",
  ],
  "mqtt_streams.source.failovers": [
    true,
    "Reconnects of a source that landed on another broker (stats.failovers).",
  ],
  "mqtt_streams.source.buffered": [
    false,
    "Messages in a source's queue, not yet read (stats.buffered).",
  ],
  "mqtt_streams.source.held": [
    false,
    "Messages a source holds outside its queue while it stopped reading (stats.held).",
  ],
  "messaging.client.sent.messages": [
    true,
    "Publishes a sink sent, at every QoS, resends not counted again (sink stats.published).",
  ],
  "mqtt_streams.sink.acked": [true, "QoS 1/2 publishes the broker acknowledged (stats.acked)."],
  "mqtt_streams.sink.retried": [true, "Publishes a sink sent again (stats.retried)."],
  "mqtt_streams.sink.failed": [true, "Publishes a sink gave up on (stats.failed)."],
  "mqtt_streams.sink.inflight": [
    false,
    "QoS 1/2 publishes sent and not yet acknowledged (stats.inflight).",
  ],
  "mqtt_streams.sink.reconnects": [
    true,
    "Reconnects of a sink's connection, of all the sinks that share it (stats.reconnects).",
  ],
  "mqtt_streams.sink.failovers": [
    true,
    "Reconnects of a sink that landed on another broker (stats.failovers).",
  ],
} as const satisfies Record<string, readonly [boolean, string]>;

/** The name of an instrument. */
export type InstrumentName = keyof typeof INSTRUMENTS;

/** One number a stream reports: its instrument, attributes of its own, and how to read it. */
export interface Series {
  readonly instrument: InstrumentName;
  readonly attributes?: Attributes;
  read(): number;
}

/** The series of a source; `overflowDropped` is the part of stats.dropped its queue dropped. */
export function sourceSeries(stats: MqttSourceStats, overflowDropped: () => number): Series[] {
  const reason = (name: string) => ({ "mqtt_streams.drop.reason": name });
  return [
    {
      instrument: "messaging.client.consumed.messages",
      attributes: { "messaging.operation.name": "receive" },
      read: () => stats.received,
    },
    { instrument: "mqtt_streams.source.acked", read: () => stats.acked },
    {
      instrument: "mqtt_streams.source.dropped",
      attributes: reason("qos0_overflow"),
      read: overflowDropped,
    },
    {
      instrument: "mqtt_streams.source.dropped",
      attributes: reason("session_lost"),
      read: () => stats.dropped - overflowDropped(),
    },
    { instrument: "mqtt_streams.source.redelivered", read: () => stats.redelivered },
    { instrument: "mqtt_streams.source.duplicates", read: () => stats.duplicates },
    { instrument: "mqtt_streams.source.overlapping", read: () => stats.overlapping },
    { instrument: "mqtt_streams.source.beyond_window", read: () => stats.beyondWindow },
    { instrument: "mqtt_streams.source.reconnects", read: () => stats.reconnects },
    { instrument: "mqtt_streams.source.failovers", read: () => stats.failovers },
    { instrument: "mqtt_streams.source.buffered", read: () => stats.buffered },
    { instrument: "mqtt_streams.source.held", read: () => stats.held },
  ];
}

/** The series of a sink. */
export function sinkSeries(stats: MqttSinkStats): Series[] {
  return [
    {
      instrument: "messaging.client.sent.messages",
      attributes: { "messaging.operation.name": "send" },
      read: () => stats.published,
    },
    { instrument: "mqtt_streams.sink.acked", read: () => stats.acked },
    { instrument: "mqtt_streams.sink.retried", read: () => stats.retried },
    { instrument: "mqtt_streams.sink.failed", read: () => stats.failed },
    { instrument: "mqtt_streams.sink.inflight", read: () => stats.inflight },
    { instrument: "mqtt_streams.sink.reconnects", read: () => stats.reconnects },
    { instrument: "mqtt_streams.sink.failovers", read: () => stats.failovers },
  ];
}

/** A series with its instrument and full attributes, as the callback observes it. */
interface Observed {
  readonly instrument: Observable;
  readonly attributes: Attributes;
  /** The instrument's name and the attributes, as one string. */
  readonly key: string;
  readonly monotonic: boolean;
  read(): number;
}

/** The instrumentation scope: this package, named and versioned where the package is (deno.json). */
export const SCOPE: string = manifest.name;
/** The package's version, from deno.json (the one place it is written). */
export const SCOPE_VERSION: string = manifest.version;

/** The buckets semantic conventions advise for messaging durations (seconds). */
const DURATION_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
];

/** The duration histograms: what each kind of stream times, per message. */
const DURATIONS = {
  source: [
    "messaging.process.duration",
    "Time from a message's arrival to its acknowledgement to the broker (QoS 1/2): with ack=read until the consumer read it, with ack=manual until message.ack().",
  ],
  sink: [
    "messaging.client.operation.duration",
    "Time from a publish's write to the broker's acknowledgement (PUBACK/PUBCOMP), or for QoS 0 until it was written to the connection.",
  ],
} as const;

/**
 * The instruments of one MeterProvider, the streams reporting to it, and what ended
 * streams left. One a provider, not a Meter: a provider may hand out a new Meter each
 * time (Deno's does), and instruments of one name must be made once.
 */
export class StreamMeters {
  readonly #meter: Meter;
  readonly #instruments = new Map<InstrumentName, Observable>();
  readonly #streams = new Set<Observed[]>();
  /** The last values of the counters of the streams that ended, by key. */
  readonly #retired: Sums = new Map();
  readonly #durations = new Map<StreamKind, Histogram>();

  constructor(meter: Meter) {
    this.#meter = meter;
    for (const [name, [monotonic, description]] of Object.entries(INSTRUMENTS)) {
      const options = { description, unit: "{message}" };
      this.#instruments.set(
        name as InstrumentName,
        monotonic
          ? meter.createObservableCounter(name, options)
          : meter.createObservableUpDownCounter(name, options),
      );
    }
    meter.addBatchObservableCallback(this.#collect, [...this.#instruments.values()]);
  }

  #collect = (result: BatchObservableResult): void => {
    const sums: Sums = new Map();
    for (const { observed, value } of this.#retired.values()) add(sums, observed, value);
    for (const stream of this.#streams) {
      for (const observed of stream) add(sums, observed, observed.read());
    }
    for (const { observed, value } of sums.values()) {
      result.observe(observed.instrument, value, observed.attributes);
    }
  };

  /** The duration histogram of a kind of stream. */
  duration(kind: StreamKind): Histogram {
    let histogram = this.#durations.get(kind);
    if (!histogram) {
      const [name, description] = DURATIONS[kind];
      histogram = this.#meter.createHistogram(name, {
        description,
        unit: "s",
        advice: { explicitBucketBoundaries: DURATION_BUCKETS },
      });
      this.#durations.set(kind, histogram);
    }
    return histogram;
  }

  /**
   * Reports `series`, with the stream's `attributes`, until the function it returns is
   * called (idempotent).
   */
  observe(attributes: Attributes, series: Series[]): () => void {
    const stream: Observed[] = series.map(({ instrument, attributes: own, read }) => {
      const all = { ...attributes, ...own };
      return {
        instrument: this.#instruments.get(instrument)!,
        attributes: all,
        key: `${instrument} ${JSON.stringify(all)}`,
        monotonic: INSTRUMENTS[instrument][0],
        read,
      };
    });
    this.#streams.add(stream);
    return () => {
      if (this.#streams.delete(stream)) this.#retire(stream);
    };
  }

  /** Keeps the last values of an ending stream's counters. */
  #retire(stream: Observed[]): void {
    for (const observed of stream) {
      if (observed.monotonic) add(this.#retired, observed, observed.read());
    }
  }
}

/** Values summed by series (an instrument's name and attributes, as one key). */
type Sums = Map<string, { observed: Observed; value: number }>;

/** Adds `value` to the sum of `observed`'s series. */
function add(sums: Sums, observed: Observed, value: number): void {
  const sum = sums.get(observed.key);
  if (sum) sum.value += value;
  else sums.set(observed.key, { observed, value });
}

const NOOP_METER = createNoopMeter();
const registries = new WeakMap<MeterProvider, StreamMeters>();

/** The streams' instruments of `provider`; undefined when it is the API's no-op. */
export function streamMeters(provider: MeterProvider): StreamMeters | undefined {
  let meters = registries.get(provider);
  if (meters) return meters;
  const meter = provider.getMeter(SCOPE, SCOPE_VERSION);
  if (meter === NOOP_METER) return undefined;
  registries.set(provider, meters = new StreamMeters(meter));
  return meters;
}
