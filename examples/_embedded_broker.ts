// The examples' stand-in for a real broker: aedes embedded in the process, on a random
// port of 127.0.0.1, over TCP or (webSocket: true) over WebSocket. Replace its URL with
// your broker's.
import { Aedes } from "aedes";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Socket } from "node:net";
import { createWebSocketStream, WebSocketServer } from "ws";

/** Starts an embedded broker; `close()` stops it. */
export async function embeddedBroker(
  { webSocket = false }: { webSocket?: boolean } = {},
): Promise<{ url: string; close(): Promise<void> }> {
  const aedes = await Aedes.createBroker();
  let server;
  if (webSocket) {
    server = createHttpServer();
    new WebSocketServer({ server }).on("connection", (socket) => {
      aedes.handle(createWebSocketStream(socket) as unknown as Socket);
    });
  } else server = createServer(aedes.handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const url = `${webSocket ? "ws" : "mqtt"}://127.0.0.1:${port}`;
  const close = async () => {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { url, close };
}
