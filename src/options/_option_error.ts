// The MqttOptionsError for an issue of OPTIONS_SCHEMA: it names the option as the caller
// spelled it (or the environment variable that set it), shows its value with secrets
// redacted, and says what is allowed. A value from a part of a connection string that may
// be part of a password is neither named nor shown.
import type * as v from "valibot";
import { MqttOptionsError } from "../errors.ts";
import { describeOption, type OptionName, type OPTIONS_SCHEMA } from "./_schema.ts";
import { hiddenParameterError, type RawOption } from "./_connection_string.ts";
import { NEEDS_CLIENT_ID, NEEDS_TLS } from "./_rules.ts";
import { showPath, showValue } from "../_redact.ts";

/** An issue of the options' schema. */
type OptionsIssue = v.InferIssue<typeof OPTIONS_SCHEMA>;

/** Issues whose message says what is wrong with a value that has the right type. */
const REASONS = new Set(["check", "raw_check", "raw_transform"]);

const FILE_OPTIONS = new Set<OptionName>([
  "ssl.key.store",
  "ssl.trust.store",
  "ssl.ca",
  "ssl.cert",
]);

/** Builds the error for the schema's `issue` about options given as `raw`. */
export function optionsError(
  issue: OptionsIssue,
  raw: ReadonlyMap<OptionName, RawOption>,
): MqttOptionsError {
  // Every issue has a path: an option's own schema, or a rule naming the option at fault.
  const name = String(issue.path?.[0]?.key) as OptionName;
  if (issue.message === NEEDS_TLS) return needsTls(raw.get(name)!, name, raw.get("brokerUrl")!);
  if (issue.message === NEEDS_CLIENT_ID) {
    const persistence = raw.get(name);
    if (persistence?.hidden !== undefined) return hiddenParameterError(persistence.hidden);
    // The value is allowed; what is missing is another option, so the message names that.
    return new MqttOptionsError(
      persistence?.spelled ?? name,
      `Cannot configure MQTT as ${NEEDS_CLIENT_ID}: current value of 'clientId' is missing (add clientId=<name> to the URL, or clientId to the options)`,
    );
  }
  const detail = REASONS.has(issue.type) ? issue.message : undefined;
  // Inside a list (a repeated topic), show the element at fault, not the whole list.
  const value = (issue.path?.length ?? 0) > 1 ? issue.input : raw.get(name)?.value;
  return invalid(raw.get(name), name, detail, value);
}

const HINTS: Partial<Record<OptionName, (value: unknown) => string | undefined>> = {
  "ssl.key.store.type": jksHint,
  "ssl.trust.store.type": jksHint,
  "ssl.protocol": (value) =>
    /^ssl/i.test(String(value))
      ? "SSL is broken and no JavaScript runtime offers it; use TLSv1.2"
      : undefined,
};

function jksHint(value: unknown): string | undefined {
  return /^(jks|jceks)$/i.test(String(value))
    ? "convert it with keytool -importkeystore -srckeystore store.jks -destkeystore store.p12 -deststoretype PKCS12"
    : undefined;
}

/**
 * The error for an ssl.* option given with a broker URL whose scheme has no TLS: it leads
 * with the scheme, and names the option, its value and the schemes that fit.
 */
function needsTls(raw: RawOption, name: OptionName, broker: RawOption): MqttOptionsError {
  if (raw.hidden !== undefined) return hiddenParameterError(raw.hidden);
  const brokerUrl = String(broker.value);
  const scheme = brokerUrl.slice(0, brokerUrl.indexOf(":") + 3);
  return new MqttOptionsError(
    raw.spelled,
    `Cannot configure MQTT as '${raw.spelled}' is a TLS option, and ${NEEDS_TLS}: current brokerUrl is ${
      broker.hidden ?? brokerUrl
    }, with '${raw.spelled}' set to ${
      shownValue(name, raw.value)
    } (connect over TLS with mqtts:// or wss:// in place of ${scheme}, or leave the ssl.* options out)`,
  );
}

/** An option's value as an error shows it. */
function shownValue(name: OptionName, value: unknown): string {
  // A key or trust store, a certificate: a path, or text that is never shown (it may hold a key).
  return FILE_OPTIONS.has(name) && typeof value === "string" && value !== ""
    ? showPath(value) ?? `<${value.length} characters, not shown>`
    : showValue(value, describeOption(name).meta.secret);
}

/** Builds the error for an option whose value is not allowed. */
function invalid(
  raw: RawOption | undefined,
  name: OptionName,
  detail?: string,
  value: unknown = raw?.value,
): MqttOptionsError {
  // From a part of a connection string that may be part of a password: not named, not shown.
  if (raw?.hidden !== undefined) return hiddenParameterError(raw.hidden);
  const { meta } = describeOption(name);
  const spelled = raw?.spelled ?? name;
  const where = raw?.from === "environment" ? `environment variable ${spelled}` : `'${spelled}'`;
  const shown = shownValue(name, value);
  const hint = detail ?? HINTS[name]?.(value);
  return new MqttOptionsError(
    spelled,
    `Cannot configure MQTT as ${where} must be ${meta.allowed}: current value is ${shown}${
      hint ? ` (${hint})` : ""
    }`,
  );
}
