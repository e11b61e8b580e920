// aedes in a process of its own for the benchmark, so it does not share the measured
// client's CPU time: prints its URL, stops when stdin ends. Plain JavaScript, run by Node
// (aedes's own runtime): served by Deno's node:net, aedes stopped reading a second
// connection's stream of QoS 0 publishes (1,899 of 2,000 read), which Node and Bun do not.
// With --ws it serves MQTT over WebSocket too, and prints both URLs on one line.
import { Aedes } from "aedes";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import process from "node:process";
import { Duplex } from "node:stream";
import { WebSocketServer } from "ws";

const broker = await Aedes.createBroker();
const server = createServer(broker.handle);
const listen = (s) =>
  new Promise((resolve) => s.listen(0, "127.0.0.1", () => resolve(s.address().port)));
const urls = [`mqtt://127.0.0.1:${await listen(server)}`];
const web = createHttpServer();
if (process.argv.includes("--ws")) {
  new WebSocketServer({ server: web }).on("connection", (socket) => {
    broker.handle(packetFrames(socket));
  });
  urls.push(`ws://127.0.0.1:${await listen(web)}`);
}
console.log(urls.join(" "));

/**
 * A WebSocket as aedes's stream, sending what aedes writes in one turn of the event loop as
 * one frame. aedes writes a packet in pieces (fixed header, length, body), and
 * createWebSocketStream sends each piece as a frame of its own, so a PUBACK arrived as three
 * frames of 1, 1 and 2 bytes. Brokers such as mosquitto send a packet whole; so does this.
 */
function packetFrames(socket) {
  let pending = [];
  const flush = () => {
    const frame = Buffer.concat(pending);
    pending = [];
    if (socket.readyState === socket.OPEN) socket.send(frame);
  };
  const stream = new Duplex({
    read() {},
    write(chunk, _encoding, callback) {
      if (pending.length === 0) setImmediate(flush);
      pending.push(chunk);
      callback();
    },
    final(callback) {
      socket.close();
      callback();
    },
  });
  socket.on("message", (data) => stream.push(data));
  socket.on("close", () => stream.push(null));
  socket.on("error", (error) => stream.destroy(error));
  return stream;
}
process.stdin.resume();
await new Promise((resolve) => process.stdin.once("end", resolve));
await new Promise((resolve) => broker.close(resolve));
server.close();
web.close();
process.exit(0);
