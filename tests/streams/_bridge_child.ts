// Run by sink_test.ts in a child process, which it kills with SIGKILL partway: a bridge
// from one broker to another that rewrites topics (in/x -> out/in/x). The source
// acknowledges a message (ack=manual) only once the sink's broker confirmed its copy, so
// whatever the kill interrupts is redelivered to the next run: at least once, end to end.
import process from "node:process";
import { type MqttMessage, MqttSink, MqttSource } from "../../mod.ts";

const [from, to] = process.argv.slice(-2);
await new MqttSource(from)
  .pipeThrough(
    new TransformStream({
      transform(message: MqttMessage, controller) {
        controller.enqueue({
          topic: `out/${message.topic}`,
          payload: message.payload,
          qos: message.qos,
          ack: () => message.ack(),
        });
      },
    }),
  )
  .pipeTo(new MqttSink(to));
