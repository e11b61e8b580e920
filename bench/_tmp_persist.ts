import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MqttSink } from "../mod.ts";
import { startMosquitto } from "../tests/_broker.ts";

const broker = await startMosquitto({
  lines: ["max_queued_messages 0", "max_inflight_messages 60"],
});
const count = 20_000;
const records = Array.from(
  { length: count },
  (_, i) => new TextEncoder().encode(String(i).padStart(64, "0")),
);
let n = 0;
async function run(mode: string) {
  const folder = mkdtempSync(join(tmpdir(), "pb-"));
  const extra = mode === "memory" ? {} : {
    persistence: "file" as const,
    localStorage: folder,
    fsync: mode.split(":")[1] as "batch" | "always",
  };
  const t = performance.now();
  await ReadableStream.from(records).pipeTo(
    new MqttSink(broker.url, {
      topic: "pb/x",
      qos: 1,
      clientId: `pb${n++}`,
      connectionCacheTimeout: 0,
      ...extra,
    }),
  );
  const ms = performance.now() - t;
  rmSync(folder, { recursive: true, force: true });
  return count / ms * 1000;
}
for (let r = 0; r < 7; r++) {
  for (const mode of ["memory", "file:batch"]) console.log(r, mode, Math.round(await run(mode)));
}
await broker.close();
