// The results as Markdown tables (median, min–max of the runs, and the ratios the issue
// sets targets for) and the maxInflight sweep as an SVG line chart.
import { median, type Result } from "./_measure.ts";

const SECTIONS: Record<Result["section"], { title: string; about: string }> = {
  source: {
    title: "Source: `for await` over an MqttSource against a raw mqtt.js 'message' listener",
    about:
      "Each drains a persistent session that already holds every message (published by a raw mqtt.js publisher, window 50); the clock runs from connect to the last message. The source acknowledges when read (`ack=read`, `qos0Overflow=block`). mosquitto_sub includes its process start. The peers resume the session as raw mqtt.js does: async-mqtt's 'message' listener (its own mqtt.js 4), u8-mqtt's topic handler (it acknowledges a QoS 1 message once the handler returned). A peer that cannot do a workload says why instead of a figure.",
  },
  floor: {
    title: "The floor under a source: `for await` over a ReadableStream, no MQTT (msg/s)",
    about:
      "A ReadableStream (highWaterMark 60) of messages that already exist, read by `for await`. 1,000,000 ÷ this figure is what a message costs in the stream alone (µs), which a source pays on top of mqtt.js's own cost; docs/performance.md compares it with the gap between the source and raw mqtt.js.",
  },
  sink: {
    title:
      "Sink: `ReadableStream.from(records).pipeTo(new MqttSink(…))` against raw mqtt.js with the same window",
    about:
      "Both the sink and mqtt.js connect and close inside the clock. It stops when every QoS 1/2 publish is confirmed; at QoS 0, when the broker answered a PINGREQ sent after the last one (what `MqttSink.close()` waits for). 'mqtt.js serial' reuses one connected client and awaits each `publishAsync` (measured on a fifth of the records). mosquitto_pub -l includes its process start and keeps its own window (20). The peers connect and close inside the clock too and keep 60 publish promises outstanding (60 lanes, each awaiting its publish); at QoS 0 each ends with a PINGREQ round trip.",
  },
  persistence: {
    title: "Sink with the file store: `persistence=file` against `persistence=memory` (msg/s)",
    about:
      "The same `pipeTo(MqttSink)` with each store, a fresh clientId and folder a run. With `persistence=file` each `write()` resolves once its publish is written to the store's log (it survives the process being killed; `fdatasync` runs in the background); with `fsync=always`, once an `fdatasync` covering it returned (it survives a power loss too). The log's folder is in the system's temporary folder.",
  },
  bridge: {
    title:
      "Bridge: MqttSource (`ack=manual`) → TransformStream → MqttSink against a raw subscriber republishing through a raw client",
    about:
      "Both drain a full session and republish to another topic on the same broker, until every republish is confirmed. The raw bridge acknowledges on arrival (mqtt.js has no other way), so it loses what is in flight when it crashes; the library's acknowledges each message only after its republish is confirmed. The library runs with maxInflight 10, 60 (the default) and 256 on its source and sink alike; the raw bridge has no window and is measured again beside each. The bench mosquitto sends a subscriber at most 60 unacknowledged messages (max_inflight_messages 60), so a source window over 60 changes only the sink's.",
  },
  latency: {
    title: "Latency: publish to consumer at a fixed rate (ms)",
    about:
      "A raw publisher in the same process stamps each payload with its send time; the consumer (a `for await` loop, a raw 'message' listener, async-mqtt's listener or u8-mqtt's topic handler) takes the difference. Each run's p50, p99 and max; the table shows their median over the runs.",
  },
  memory: {
    title: "Memory: peak RSS growth of a process that reads nothing (MB)",
    about:
      "A child process subscribes and reads nothing while the messages are published; RSS is sampled every 20 ms against the RSS it had once subscribed. The naive figure is raw mqtt.js pushing every message onto an array.",
  },
  sweep: {
    title: "Sink throughput against maxInflight (msg/s)",
    about: "MqttSink with `maxInflight` = window, beside raw mqtt.js with the same window.",
  },
};

/** Each peer's ratio to raw mqtt.js, the baseline every column shares. */
const PEER_RATIOS: [string, string, string][] = ["async-mqtt", "u8-mqtt"].map((
  peer,
) => [`${peer} ÷ mqtt.js`, peer, "mqtt.js"]);

/** Ratio columns: [header, numerator who, denominator who]. */
const RATIOS: Partial<Record<Result["section"], [string, string, string][]>> = {
  source: [["MqttSource ÷ mqtt.js", "MqttSource", "mqtt.js"], ...PEER_RATIOS],
  sink: [
    ["MqttSink ÷ mqtt.js", "MqttSink", "mqtt.js"],
    ["MqttSink ÷ serial", "MqttSink", "mqtt.js serial"],
    ["mqtt.js ÷ serial", "mqtt.js", "mqtt.js serial"],
    ...PEER_RATIOS,
  ],
  persistence: [
    ["file ÷ memory", "persistence=file", "persistence=memory"],
    ["fsync=always ÷ memory", "persistence=file, fsync=always", "persistence=memory"],
  ],
  bridge: [["library ÷ mqtt.js", "MqttSource → MqttSink", "mqtt.js"]],
  latency: [["MqttSource ÷ mqtt.js", "MqttSource", "mqtt.js"], ...PEER_RATIOS],
  memory: [["MqttSource ÷ naive", "MqttSource", "mqtt.js + array queue"]],
  sweep: [["MqttSink ÷ mqtt.js", "MqttSink", "mqtt.js"]],
};

function figure(value: number, unit: Result["unit"]): string {
  if (unit === "msg/s") return Math.round(value).toLocaleString("en-US");
  return value.toFixed(1);
}

function cell(result: Result | undefined): string {
  if (!result) return "";
  if (result.note) return `— (${result.note})`;
  const m = figure(median(result.runs), result.unit);
  if (result.runs.length < 2) return m;
  const min = figure(Math.min(...result.runs), result.unit);
  const max = figure(Math.max(...result.runs), result.unit);
  return `${m} (${min}–${max})`;
}

/** The Markdown tables, one a section, in the order the results came. */
export function markdownTables(results: Result[]): string {
  const out: string[] = [];
  for (const section of Object.keys(SECTIONS) as Result["section"][]) {
    const rows = results.filter((r) => r.section === section);
    if (rows.length === 0) continue;
    const whos = [...new Set(rows.map((r) => r.who))];
    const ratios = RATIOS[section] ?? [];
    const keyOf = (r: Result) => [r.broker, r.case, r.x ?? "", r.runtime].join("\u0000");
    const groups = new Map<string, Result[]>();
    for (const r of rows) groups.set(keyOf(r), [...(groups.get(keyOf(r)) ?? []), r]);
    const sweep = section === "sweep";
    out.push(`## ${SECTIONS[section].title}\n`, SECTIONS[section].about, "");
    const head = ["broker", "workload", ...(sweep ? ["maxInflight"] : []), "runtime", ...whos];
    out.push(`| ${[...head, ...ratios.map(([name]) => name)].join(" | ")} |`);
    out.push(
      `|${head.map(() => "---").join("|")}|${ratios.map(() => "---:").join("|")}${
        ratios.length ? "|" : ""
      }`,
    );
    for (const group of groups.values()) {
      const first = group[0];
      const by = (who: string) => group.find((r) => r.who === who);
      const ratioCells = ratios.map(([, top, bottom]) => {
        const [a, b] = [by(top), by(bottom)];
        return a?.runs.length && b?.runs.length ? (median(a.runs) / median(b.runs)).toFixed(2) : "";
      });
      out.push(
        `| ${
          [
            first.broker,
            first.case,
            ...(sweep ? [String(first.x)] : []),
            first.runtime,
            ...whos.map((who) => cell(by(who))),
            ...ratioCells,
          ].join(" | ")
        } |`,
      );
    }
    out.push("");
  }
  return out.join("\n");
}

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"];

/** A line chart: `series` by name, each point's x placed by its rank among all the xs. */
export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Map<string, { x: number; y: number }[]>;
  /** The colour group of a series (a runtime): series of one group share a colour. */
  group: (name: string) => string;
  /** Whether a series is a baseline, drawn dashed. */
  baseline: (name: string) => boolean;
}

/** A line chart of the sweep: msg/s against maxInflight, a line for each runtime and client. */
export function sweepChart(results: Result[]): string {
  const rows = results.filter((r) => r.section === "sweep" && r.x !== undefined);
  const series = new Map<string, { x: number; y: number }[]>();
  const runtimeOf = new Map<string, string>();
  for (const r of rows) {
    const name = `${r.who}, ${r.runtime}`;
    runtimeOf.set(name, r.runtime);
    series.set(name, [...(series.get(name) ?? []), { x: r.x!, y: median(r.runs) }]);
  }
  return lineChart({
    title: "Sink throughput (QoS 1) against maxInflight",
    xLabel: "maxInflight (window)",
    yLabel: "msg/s",
    series,
    group: (name) => runtimeOf.get(name)!,
    baseline: (name) => name.startsWith("mqtt.js"),
  });
}

/** Draws `chart` as an SVG document. */
export function lineChart(chart: LineChart): string {
  const points = [...chart.series.values()].flat();
  const xs = [...new Set(points.map((p) => p.x))].sort((a, b) => a - b);
  const groups = [...new Set([...chart.series.keys()].map(chart.group))];
  const [width, height, left, right, top, bottom] = [780, 400, 80, 280, 40, 50];
  const top_ = Math.max(1, ...points.map((p) => p.y));
  const step = 10 ** Math.floor(Math.log10(top_));
  const yMax = Math.ceil(top_ / step) * step;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const xAt = (x: number) => left + (xs.length < 2 ? 0 : xs.indexOf(x) / (xs.length - 1)) * plotW;
  const yAt = (y: number) => top + plotH - (y / yMax) * plotH;
  const svg: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="22" font-size="14">${escape(chart.title)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const y = (yMax / 4) * i;
    svg.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${yAt(y)}" y2="${yAt(y)}" stroke="#ddd"/>`,
      `<text x="${left - 8}" y="${yAt(y) + 4}" text-anchor="end">${
        Number(y.toPrecision(3)).toLocaleString("en-US")
      }</text>`,
    );
  }
  for (const x of xs) {
    svg.push(
      `<text x="${xAt(x)}" y="${top + plotH + 20}" text-anchor="middle">${
        x.toLocaleString("en-US")
      }</text>`,
    );
  }
  svg.push(
    `<text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle">${
      escape(chart.xLabel)
    }</text>`,
    `<text x="16" y="${top + plotH / 2}" transform="rotate(-90 16 ${
      top + plotH / 2
    })" text-anchor="middle">${escape(chart.yLabel)}</text>`,
  );
  let index = 0;
  for (const [name, line] of chart.series) {
    const color = COLORS[groups.indexOf(chart.group(name)) % COLORS.length];
    const dash = chart.baseline(name) ? ` stroke-dasharray="6 4"` : "";
    const sorted = [...line].sort((a, b) => a.x - b.x);
    const path = sorted.map((p) => `${xAt(p.x)},${yAt(p.y)}`).join(" ");
    svg.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const p of sorted) {
      svg.push(`<circle cx="${xAt(p.x)}" cy="${yAt(p.y)}" r="3" fill="${color}"/>`);
    }
    const ly = top + 10 + index * 20;
    svg.push(
      `<line x1="${width - right + 12}" x2="${
        width - right + 40
      }" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`,
      `<text x="${width - right + 46}" y="${ly + 4}">${escape(name)}</text>`,
    );
    index++;
  }
  svg.push("</svg>");
  return svg.join("\n") + "\n";
}

function escape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}
