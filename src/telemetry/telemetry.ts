// OpenTelemetry as the streams' observer: loading this module installs it (mod.ts does), and
// every stream made afterwards reports its metrics and spans through it (see
// src/streams/hooks.ts). It imports the streams' hooks; the streams never import it.
import { observeStreams } from "../streams/hooks.ts";
import { sinkSeries, sourceSeries } from "./_metrics.ts";
import { openTelemetry } from "./_observer.ts";

observeStreams({
  source({ options, stats, overflowDropped }, init) {
    const telemetry = openTelemetry(options, "source", init);
    telemetry?.observe(sourceSeries(stats, overflowDropped));
    return telemetry;
  },
  sink({ options, stats }, init) {
    const telemetry = openTelemetry(options, "sink", init);
    telemetry?.observe(sinkSeries(stats));
    return telemetry;
  },
});
