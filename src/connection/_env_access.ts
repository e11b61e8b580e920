// Under Deno, mqtt.js's dependencies read the environment as they load: readable-stream
// reads READABLE_STREAM and debug lists every variable (for DEBUG_*). Without --allow-env
// (all of it: a list of names is not enough for debug's listing) the import of mqtt dies
// with a NotCapable stack trace from inside readable-stream. connection.ts imports this
// module before mqtt, so that loading fails with a message that names the flag instead.
// Feature detection of globals, not imports, so the core still bundles for browsers.
import { MqttStreamError } from "../errors.ts";

interface DenoLike {
  permissions?: { querySync?(descriptor: { name: "env" }): { state: string } };
  stdin?: { isTerminal?(): boolean };
  stderr?: { isTerminal?(): boolean };
}

const deno = (globalThis as { Deno?: DenoLike }).Deno;
const state = deno?.permissions?.querySync?.({ name: "env" }).state;
// "prompt" where Deno can ask (stdin and stderr on a terminal) lets the user grant it then.
const canAsk = Boolean(deno?.stdin?.isTerminal?.() && deno?.stderr?.isTerminal?.());
if (state === "denied" || (state === "prompt" && !canAsk)) {
  throw new MqttStreamError(
    "PERMISSION",
    "Cannot load mqtt-streams as Deno denies environment access: run with --allow-env (mqtt.js's dependencies readable-stream and debug read the environment as they load)",
  );
}
