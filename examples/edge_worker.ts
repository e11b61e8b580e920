// An edge worker in the fetch-handler shape that Deno Deploy, `deno serve`, Cloudflare
// Workers and Bun.serve share: each POST of JSON lines is published to the broker over
// wss://, and answered 202 only once the broker confirmed every line (QoS 1), or 400
// naming the first line that is not JSON (the lines before it are published and confirmed,
// the rest are not). Only web APIs: Request/Response, streams, and the runtime's WebSocket.
//
// Deploy with your broker (the MQTT_URL environment variable, or `env.MQTT_URL` where the
// platform passes an env object):
//   MQTT_URL='wss://user:pass@broker.example.com/mqtt?topic=ingest/readings&qos=1' \
//     deno serve --allow-net=broker.example.com --allow-env examples/edge_worker.ts
// examples/edge_worker_run.ts runs it here, against an embedded broker over ws://.
import { MqttSink } from "../mod.ts"; // from JSR: "jsr:@mqtt-streams/core"

/** What the platform may pass as the handler's second argument. */
export interface Env {
  MQTT_URL?: string;
}

/** Splits text into lines, without the line ends; a last line without one counts too. */
function lines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(text, controller) {
      const parts = (rest + text).split(/\r?\n/);
      rest = parts.pop()!;
      for (const line of parts) if (line.trim()) controller.enqueue(line);
    },
    flush(controller) {
      if (rest.trim()) controller.enqueue(rest);
    },
  });
}

/** The broker URL: `env.MQTT_URL`, else the MQTT_URL environment variable where readable. */
function brokerUrl(env: Env | undefined): string | undefined {
  const deno = (globalThis as { Deno?: { env: { get(name: string): string | undefined } } })
    .Deno;
  return env?.MQTT_URL ?? deno?.env.get("MQTT_URL");
}

export default {
  async fetch(request: Request, env?: Env): Promise<Response> {
    const url = brokerUrl(env);
    if (!url) return Response.json({ error: "MQTT_URL is not set" }, { status: 500 });
    if (request.method !== "POST" || !request.body) {
      return Response.json({ error: "POST JSON lines" }, { status: 405 });
    }
    let published = 0;
    let bad: string | undefined;
    try {
      await request.body
        .pipeThrough(new TextDecoderStream())
        .pipeThrough(lines())
        .pipeThrough(
          new TransformStream<string, string>({
            transform(line, controller) {
              try {
                JSON.parse(line);
              } catch {
                // Ends the stream here rather than erroring it: the sink then closes
                // normally, so every line before this one is published and confirmed.
                bad = `line ${published + 1} is not JSON: ${line.slice(0, 60)}`;
                return controller.terminate();
              }
              published++;
              controller.enqueue(line);
            },
          }),
        )
        .pipeTo(new MqttSink(url));
    } catch (error) {
      // The broker could not be reached, or refused a publish after its attempts.
      return Response.json({ error: (error as Error).message, published }, { status: 502 });
    }
    if (bad) return Response.json({ error: bad, published }, { status: 400 });
    return Response.json({ published }, { status: 202 });
  },
};
