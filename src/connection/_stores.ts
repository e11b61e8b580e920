// The file store of persistence=file, handed to mqtt.js as its incoming and outgoing stores, and the
// accounts of what the store brought back from an earlier run. The store's code is loaded
// with import() only when persistence=file is asked for, so the core stays free of
// file-system code and bundles for browsers.
import type { IClientOptions } from "mqtt";
import type { MqttStreamError } from "../errors.ts";
import type { MqttOptions } from "../options/options.ts";
import type { FileStores } from "../stores/store.ts";
import type { OutgoingRegistry } from "./_ports.ts";

/**
 * Opens the file store of `options` (persistence=file).
 *
 * @throws {MqttStreamError} code "STORE_LOCKED" or "STORE_FAILED".
 */
export async function openStores(options: MqttOptions): Promise<FileStores> {
  const { openFileStores } = await import("../stores/file_store.ts");
  return openFileStores(options.localStorage!, options.fsync);
}

/** mqtt.js's client options that make it use `stores`. */
export function storeOptions(stores: FileStores): Partial<IClientOptions> {
  return {
    incomingStore: stores.incoming as IClientOptions["incomingStore"],
    outgoingStore: stores.outgoing as IClientOptions["outgoingStore"],
  };
}

/** A connection's file store, and what became of what it recovered. */
export class Persisted {
  /**
   * Publishes recovered from the store that the broker refused when they were sent again,
   * or QoS 2 ones past PUBREC whose session the broker lost (only their PUBREL was stored,
   * so they cannot be sent again).
   */
  recoveredFailed = 0;
  /**
   * QoS 2 messages received (PUBREC sent) and never released, that the store held when the
   * broker answered without the session: no PUBREL will come for them.
   */
  discarded = 0;

  /** The store's STORE_FAILED, once it failed: what the connection ends with. */
  failure?: MqttStreamError;

  /**
   * Installs itself on mqtt.js through `mqtt`; made after the connection's Inbound, if it has one.
   * `onFailure` ends the connection when the store cannot write (a full disk): mqtt.js
   * drops a store's errors (see _log_store.ts), so nothing else would. It is called once
   * the publishes the store did take are acknowledged, or `connectionTimeout` seconds
   * later (0: no bound), or when the stores close first: their writes resolved, so they
   * were promised, and a process that ends after the stream's error (a one-shot job, a
   * serverless handler) would otherwise strand them in the log until some later process
   * opens it. Meanwhile the connection stays up (and reconnects, sending them again), and
   * a write the store could not take waits, to reject with the stream's error.
   */
  constructor(
    readonly stores: FileStores,
    mqtt: OutgoingRegistry,
    connectionTimeout: number,
    onFailure: (error: MqttStreamError) => void,
  ) {
    // `failure` never rejects, and `drained` never does (see there).
    stores.failure.then((error) => {
      this.failure = error;
      // The connection ends on it, which closes the files and releases the folder's lock.
      return drained(stores, connectionTimeout).then(() => onFailure(error));
    });
    // mqtt.js sends the recovered publishes again on CONNACK and calls back whoever
    // registered their packet identifier; no one has in this process, so a refusal would
    // go unseen.
    for (const id of stores.recovery.outgoingIds) {
      mqtt.registerOutgoing(id, (error) => {
        if (error) this.recoveredFailed++;
      });
    }
  }

  /**
   * A CONNACK arrived (called by the Connection after the inbound side, which deletes what
   * it had delivered): without the session, what the store holds received will never be
   * released by the broker.
   */
  connack(resumed: boolean): void {
    if (!resumed) this.discarded += this.stores.discardIncoming();
  }
}

/**
 * Resolves once the outgoing store holds nothing, `seconds` have passed (0: no bound), or
 * the stores closed (the connection ended otherwise); no timer is left running. Never
 * rejects: a store that could not close has closed as far as waiting goes, and the failure
 * that asked is what the connection ends with.
 */
function drained(stores: FileStores, seconds: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const waits = [stores.drained(), stores.closed];
  if (seconds > 0) {
    waits.push(new Promise((resolve) => (timer = setTimeout(resolve, seconds * 1000))));
  }
  const over = () => clearTimeout(timer);
  return Promise.race(waits).then(over, over);
}
