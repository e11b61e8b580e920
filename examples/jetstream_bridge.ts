// A bridge from an MQTT broker into a NATS JetStream stream, at least once (see
// jetstream_sink.ts): a source with a persistent session and ack=manual, piped into a
// JetStreamSink. Kill it at any point and start it again with the same clientId: what
// JetStream had not confirmed comes again from the MQTT broker, and JetStream drops the
// copies it already has when messages carry an id.
//
// Run: npx --yes deno@2 run -A examples/jetstream_bridge.ts MQTT_URL NATS_SERVERS [SUBJECT_PREFIX] [--id=user-property:NAME|digest]
//   MQTT_URL      the source, with topic and clientId: mqtt://host:1883?topic=plant/%23&clientId=bridge-1
//                 (qos=1, ack=manual and a persistent session are set here)
//   NATS_SERVERS  comma-separated: nats://n1:4222,nats://n2:4222,nats://n3:4222
//   SUBJECT_PREFIX  messages go to PREFIX.<topic levels> ("mqtt" by default); a stream must
//                 capture them, for example, with the nats CLI:
//                 nats stream add MQTT --subjects 'mqtt.>' --replicas 3 --dupe-window 2m
//   --id          where each message's id comes from, for JetStream's deduplication:
//                 an MQTT 5 user property of the producer's, or the digest of topic and payload
// It prints `ready` once subscribed, then the sink's stats as a JSON line every second;
// SIGINT or SIGTERM stops it (what is in flight is not acknowledged, and comes again).
import { connect } from "@nats-io/transport-node";
import {
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
} from "@nats-io/jetstream";
import process from "node:process";
import { parseArgs } from "node:util";
import { MqttSource } from "../mod.ts";
import { digestId, JetStreamSink, type MessageId, userPropertyId } from "./jetstream_sink.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: { id: { type: "string" } },
});
const [mqttUrl, natsServers, prefix = "mqtt"] = positionals;
if (!mqttUrl || !natsServers) {
  console.error("usage: jetstream_bridge.ts MQTT_URL NATS_SERVERS [SUBJECT_PREFIX] [--id=…]");
  process.exit(2);
}
let messageId: MessageId | undefined;
if (values.id === "digest") messageId = digestId;
else if (values.id?.startsWith("user-property:")) {
  messageId = userPropertyId(values.id.slice("user-property:".length));
} else if (values.id !== undefined) {
  console.error(`--id must be user-property:NAME or digest, not ${values.id}`);
  process.exit(2);
}

// The NATS client reconnects on its own, to any server of the cluster, for ever.
const nc = await connect({
  servers: natsServers.split(","),
  maxReconnectAttempts: -1,
  reconnectTimeWait: 250,
});
const subject = `${prefix}.>`;
const stream = await findStream(subject);
const source = new MqttSource(mqttUrl, { qos: 1, ack: "manual", cleanSession: false });
const sink = new JetStreamSink(jetstream(nc), { subject: prefix, messageId });
const stop = new AbortController();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => stop.abort(new Error(`stopped by ${signal}`)));
}
// Piped at once, not after `source.ready`: a resumed session's backlog comes before the
// SUBACK, and past maxInflight messages the source waits for a reader.
const piping = source.pipeTo(sink, { signal: stop.signal });
source.ready.then(
  () => console.log(`ready: ${source.stats.broker} -> stream ${stream}`),
  () => {}, // the pipe fails with the same error
);
const report = setInterval(() => console.log(JSON.stringify(sink.stats)), 1_000);
let status = 0;
try {
  await piping;
} catch (error) {
  if (!stop.signal.aborted) {
    console.error(`the bridge failed: ${(error as Error).message}`);
    status = 1;
  }
} finally {
  clearInterval(report);
  console.log(JSON.stringify(sink.stats));
  await nc.close();
}
process.exitCode = status;

/**
 * The stream that captures `subject`. JetStream may not answer for a while (a leader
 * election after a node died): asked again for up to 30 s. A stream that does not exist
 * ends the bridge, with how to create one.
 */
async function findStream(subject: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await (await jetstreamManager(nc)).streams.find(subject);
    } catch (error) {
      const missing = error instanceof JetStreamApiError &&
        error.code === JetStreamApiCodes.StreamNotFound;
      if (missing || Date.now() > deadline) {
        console.error(
          `no JetStream stream captures ${subject} (${(error as Error).message}): ` +
            "create one first (see the head of examples/jetstream_bridge.ts)",
        );
        await nc.close();
        process.exit(1);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}
