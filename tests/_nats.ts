// NATS server's MQTT listener as a test broker: Debian's nats-server spawned with a temp
// config on random 127.0.0.1 ports, JetStream on (its MQTT sessions, retained messages
// and QoS 1 queues live in JetStream streams, kept in the temp folder).
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type BrokerProcess,
  brokerProcess,
  freePort,
  skipUnless,
  type TestBroker,
} from "./_broker.ts";

/** Whether nats-server can be spawned here. */
export const hasNats: boolean = spawnSync("nats-server", ["--version"]).error === undefined;

/** The `skip` option of a test that needs nats-server ({@linkcode skipUnless}). */
export function skipWithoutNats(): string | false {
  return skipUnless(hasNats, "nats-server is not installed (apt-get install nats-server)");
}

/**
 * Starts nats-server with its MQTT listener on a random port of 127.0.0.1. `ackWait` is
 * its `mqtt.ack_wait`: NATS resends an unacknowledged QoS 1 message only after that long,
 * even when the session resumes (30 s by default; 2 s here, so tests need not wait).
 */
export async function startNats(
  { ackWait = "2s" }: { ackWait?: string } = {},
): Promise<TestBroker & BrokerProcess> {
  const dir = mkdtempSync(join(tmpdir(), "mqtt-streams-nats-"));
  const port = await freePort();
  const config = [
    // Its own client port is random too (-1); only the MQTT listener is used.
    "listen: 127.0.0.1:-1",
    // MQTT needs JetStream, and JetStream a server name.
    "server_name: mqtt_streams_test",
    `jetstream { store_dir: "${join(dir, "jetstream")}" }`,
    `mqtt { listen: 127.0.0.1:${port}, ack_wait: "${ackWait}" }`,
  ];
  writeFileSync(join(dir, "nats.conf"), config.join("\n") + "\n");
  const broker = await brokerProcess("nats-server", ["-c", join(dir, "nats.conf")], port, dir);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    ...broker,
    [Symbol.asyncDispose]: broker.close,
  };
}
