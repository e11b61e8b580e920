// The rules between options, and the defaults that follow from other options: the steps of
// OPTIONS_SCHEMA (_schema.ts) around the options' own schemas, so that what parsing accepts
// and returns is the schema's. A rule's issue names the option at fault (its path) and says
// what is wrong; _option_error.ts words it for the caller, with the key as they spelled it.
import * as v from "valibot";
import { brokerList } from "./_brokers.ts";

/** Options as given, before their values are checked: a key is given when its value is. */
type Given = { readonly [name: string]: unknown };

/** The reason of the issue about an ssl.* option with a broker URL that has no TLS. */
export const NEEDS_TLS = "ssl.* options need an mqtts://, ssl:// or wss:// broker URL";

/** The reason of the issue about persistence=file without a clientId. */
export const NEEDS_CLIENT_ID =
  "persistence=file needs a fixed clientId, since a session under a random one could never be resumed";

/** Schemes of a validated brokerUrl (tcp and ssl are normalized to mqtt and mqtts) with TLS. */
const TLS_SCHEMES = new Set(["mqtts", "wss"]);

/** An issue's path: option `name` of `options`. */
function at(options: Given, name: string): [v.UnknownPathItem] {
  return [{ type: "unknown", origin: "value", input: options, key: name, value: options[name] }];
}

/**
 * The ssl.* options need a broker URL with TLS. Checked before the values: with a plain scheme,
 * the scheme is what is wrong, not the value of whichever ssl.* option
 * (ssl.key.store.provider=SunJSSE is a fine value). The first of `names` given is named.
 */
export function sslNeedsTls(names: readonly string[]) {
  const ssl = names.filter((name) => name.startsWith("ssl."));
  return v.rawCheck<Given>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const given = dataset.value;
    const name = ssl.find((n) => given[n] !== undefined);
    const brokerUrl = String(given.brokerUrl);
    if (name !== undefined && !TLS_SCHEMES.has(brokerUrl.slice(0, brokerUrl.indexOf(":")))) {
      addIssue({ message: NEEDS_TLS, path: at(given, name) });
    }
  });
}

/** ssl.cert and ssl.key are given together or not at all; the one given is named. */
export function certWithKey() {
  return v.rawCheck<Given>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const given = dataset.value;
    const cert = given["ssl.cert"] !== undefined;
    if (cert !== (given["ssl.key"] !== undefined)) {
      addIssue({
        message: "ssl.cert and ssl.key go together",
        path: at(given, cert ? "ssl.cert" : "ssl.key"),
      });
    }
  });
}

/**
 * A will.* option needs will.topic: the first of `names` given is named. Checked on what is
 * given, since will.qos and will.retain have defaults.
 */
export function willNeedsTopic(names: readonly string[]) {
  const will = names.filter((name) => name.startsWith("will.") && name !== "will.topic");
  return v.rawCheck<Given>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const given = dataset.value;
    const name = will.find((n) => given[n] !== undefined);
    if (name !== undefined && given["will.topic"] === undefined) {
      addIssue({ message: "will.* options need will.topic", path: at(given, name) });
    }
  });
}

/** persistence=file needs a fixed clientId (the options' values, checked and defaulted). */
export function fileStoreNeedsClientId<T extends { persistence: string; clientId?: string }>() {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const options = dataset.value;
    if (options.persistence === "file" && options.clientId === undefined) {
      addIssue({ message: NEEDS_CLIENT_ID, path: at(options, "persistence") });
    }
  });
}

/**
 * authenticationMethod needs MQTT 5 (3.1.1 has no AUTH packet), and reauthenticateInterval
 * needs authenticationMethod (the options' values, checked).
 */
export function enhancedAuthNeedsMqtt5<
  T extends { mqttVersion: number; authenticationMethod?: string; reauthenticateInterval: number },
>() {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const options = dataset.value;
    if (options.authenticationMethod !== undefined && options.mqttVersion !== 5) {
      addIssue({
        message: "enhanced authentication needs mqttVersion=5 (MQTT 3.1.1 has no AUTH packet)",
        path: at(options, "authenticationMethod"),
      });
    } else if (options.reauthenticateInterval > 0 && options.authenticationMethod === undefined) {
      addIssue({
        message: "re-authentication needs an authenticationMethod",
        path: at(options, "reauthenticateInterval"),
      });
    }
  });
}

/**
 * ssl.alpn needs mqtts://: a WebSocket's TLS negotiates HTTP (http/1.1), which carries the
 * WebSocket that carries MQTT.
 */
export function alpnNeedsMqtts<T extends { brokerUrl: string; "ssl.alpn"?: string[] }>() {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const options = dataset.value;
    if (options["ssl.alpn"] !== undefined && !options.brokerUrl.startsWith("mqtts:")) {
      addIssue({
        message: "ssl.alpn needs an mqtts:// broker URL (over wss:// TLS negotiates HTTP)",
        path: at(options, "ssl.alpn"),
      });
    }
  });
}

/** What completeOptions reads of the validated options. */
interface Completable {
  brokerUrl: string;
  clientId?: string;
  cleanSession?: boolean;
  sessionExpiryInterval?: number;
  persistence: "memory" | "file";
  localStorage?: string;
  "ssl.key.store"?: string | Uint8Array;
  "ssl.key.store.type"?: "PKCS12" | "PEM";
  "ssl.trust.store"?: string | Uint8Array;
  "ssl.trust.store.type"?: "PKCS12" | "PEM";
}

const PEM_EXTENSION = /\.(pem|crt|cer|key)$/i;

/** The type of a key or trust store whose type is not given: from a file's extension. */
const storeType = (store: string | Uint8Array) =>
  typeof store === "string" && PEM_EXTENSION.test(store) ? "PEM" : "PKCS12";

/**
 * What parsing adds to the options, documented here for MqttOptions (each field follows the
 * option it is made from); completeOptions makes it.
 */
export const DERIVED = {
  brokers: {
    from: "brokerUrl",
    type: "string[]",
    doc:
      "Each broker of brokerUrl as a URL of its own (mqtt://node1:1883), in the order they are tried: one, unless brokerUrl names several.",
  },
} as const;

/**
 * The validated options, completed with the defaults that follow from other options (see the
 * defaultText of cleanSession, sessionExpiryInterval, localStorage and the store types) and
 * with {@linkcode DERIVED}.
 */
export function completeOptions<T extends Completable>(options: T) {
  const cleanSession = options.cleanSession ?? options.clientId === undefined;
  const keyStore = options["ssl.key.store"];
  const trustStore = options["ssl.trust.store"];
  return {
    ...options,
    brokers: brokerList(options.brokerUrl),
    cleanSession,
    // MQTT 3.1.1 keeps a persistent session for ever: so does MQTT 5 unless told otherwise.
    sessionExpiryInterval: options.sessionExpiryInterval ?? (cleanSession ? 0 : 0xffffffff),
    ...(options.persistence === "file" && {
      localStorage: options.localStorage ?? `./.mqtt-streams/${options.clientId}`,
    }),
    ...(keyStore !== undefined && {
      "ssl.key.store.type": options["ssl.key.store.type"] ?? storeType(keyStore),
    }),
    ...(trustStore !== undefined && {
      "ssl.trust.store.type": options["ssl.trust.store.type"] ?? storeType(trustStore),
    }),
  };
}
