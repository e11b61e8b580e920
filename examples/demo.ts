// The demo: starts an embedded aedes broker on a random port, connects through
// mqtt-streams (connection string -> validated options -> connection with attempts and
// backoff), publishes a few sensor readings, reads them back, and stops by itself.
// Run: npx --yes deno@2 task demo
import { Aedes } from "aedes";
import { createServer } from "node:net";
import { parseConnectionString } from "../mod.ts";
import { Connection } from "../src/client.ts";

const broker = await Aedes.createBroker();
const server = createServer(broker.handle);
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as { port: number };

const url =
  `mqtt://demo:s3cret@127.0.0.1:${port}?topic=sensors/%2B/temperature&qos=1&clientId=demo&keepAlive=10`;
const options = parseConnectionString(url);
console.log("options:", JSON.stringify(options));

const connection = await Connection.open(options);
const { client } = connection;
try {
  await client.subscribeAsync(options.topic, { qos: options.qos });
  const sites = ["north", "south", "east"];
  const received = new Promise<void>((resolve) => {
    let count = 0;
    client.on("message", (topic, payload, packet) => {
      console.log(`received ${topic} qos=${packet.qos}: ${payload}`);
      if (++count === sites.length) resolve();
    });
  });
  for (const [i, site] of sites.entries()) {
    const reading = JSON.stringify({ site, celsius: 20 + i * 1.5 });
    await client.publishAsync(`sensors/${site}/temperature`, reading, { qos: options.qos });
    console.log(`published sensors/${site}/temperature: ${reading}`);
  }
  await Promise.race([
    received,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error("timed out waiting for messages")), 5000)
    ),
  ]);
  console.log(
    `done: ${sites.length} published, ${sites.length} received, ${connection.reconnects} reconnects`,
  );
} finally {
  await connection.end();
  await new Promise<void>((resolve) => broker.close(() => resolve()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
