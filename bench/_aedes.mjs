// aedes in a process of its own for the benchmark, so it does not share the measured
// client's CPU time: prints its URL, stops when stdin ends. Plain JavaScript, run by Node
// (aedes's own runtime): served by Deno's node:net, aedes stopped reading a second
// connection's stream of QoS 0 publishes (1,899 of 2,000 read), which Node and Bun do not.
import { Aedes } from "aedes";
import { createServer } from "node:net";
import process from "node:process";

const broker = await Aedes.createBroker();
const server = createServer(broker.handle);
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
console.log(`mqtt://127.0.0.1:${server.address().port}`);
process.stdin.resume();
await new Promise((resolve) => process.stdin.once("end", resolve));
await new Promise((resolve) => broker.close(resolve));
server.close();
process.exit(0);
