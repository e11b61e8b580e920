// The examples' stand-in for a real broker: aedes embedded in the process, on a random
// port of 127.0.0.1. Replace its URL with your broker's.
import { Aedes } from "aedes";
import { createServer } from "node:net";

/** Starts an embedded broker; `close()` stops it. */
export async function embeddedBroker(): Promise<{ url: string; close(): Promise<void> }> {
  const aedes = await Aedes.createBroker();
  const server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
  const close = async () => {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { url, close };
}
