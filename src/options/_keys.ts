// Option keys as callers spell them: any case (`QoS` is `qos`), the Bahir connector's
// `spark.mqtt.*` names for five options, and a did-you-mean for a key that is none.
import { MqttOptionsError } from "../errors.ts";
import { redactText } from "../_redact.ts";
import type { OptionName } from "./_schema.ts";
import { nearest } from "./_nearest.ts";

/**
 * The Bahir connector's keys for its connection and publish retries and its connection
 * cache (the "Environment variables" of its README, Spark configuration keys there), as
 * aliases of ours: accepted in a URL's query, an options object and the environment.
 */
export const BAHIR_ALIASES = {
  "spark.mqtt.client.connect.attempts": "connectAttempts",
  "spark.mqtt.client.connect.backoff": "connectBackoff",
  "spark.mqtt.connection.cache.timeout": "connectionCacheTimeout",
  "spark.mqtt.client.publish.attempts": "publishAttempts",
  "spark.mqtt.client.publish.backoff": "publishBackoff",
} as const satisfies Record<string, OptionName>;

/** How keys are resolved to options, and shown in errors. */
export interface OptionKeys {
  /**
   * The option `key` names, in any case, or through an alias.
   * @throws {MqttOptionsError} When it names none, suggesting the nearest key.
   */
  canonical(key: string): OptionName;
  /**
   * `key` as an error may show it: redacted and, when it is neither a typo of a key nor
   * made of plain characters, only as far as it matches one.
   */
  show(key: string, typo?: boolean): string;
}

/** The keys of the options `names`, and of their aliases. */
export function optionKeys(names: readonly OptionName[]): OptionKeys {
  // Lower-cased key → the option, and the key as documented (for a did-you-mean).
  const keys = new Map<string, { name: OptionName; spelled: string }>();
  for (const name of names) keys.set(name.toLowerCase(), { name, spelled: name });
  for (const [alias, name] of Object.entries(BAHIR_ALIASES)) {
    if (names.includes(name)) keys.set(alias.toLowerCase(), { name, spelled: alias });
  }
  const candidates = [...keys.keys()];
  // A name that is not an option's may be a password parameter that lost its '='
  // (`passwordhunter2`): redacted like any value and, unless it is a typo of a key or of
  // plain characters, shown only as far as it matches one.
  const show = (key: string, typo = false) =>
    typo || /^[\w.-]*$/.test(key)
      ? redactText(key)
      : `${redactText(key.slice(0, commonPrefix(key.toLowerCase(), candidates)))}…`;
  return {
    show,
    canonical(key) {
      const known = keys.get(key.toLowerCase());
      if (known) return known.name;
      const near = nearest(key.toLowerCase(), candidates);
      // A typo has about the length of the key it misspells; more may be a glued value.
      const shown = show(key, near !== undefined && key.length <= near.length + 2);
      const suggestion = near === undefined ? undefined : keys.get(near)!;
      throw new MqttOptionsError(
        shown,
        `Cannot configure MQTT as '${shown}' is not an option${
          suggestion ? ` (did you mean '${suggestion.spelled}'${aliasOf(suggestion)}?)` : ""
        }`,
      );
    },
  };
}

/** ", the Bahir connector's name of 'name'" for an alias, else nothing. */
function aliasOf({ name, spelled }: { name: OptionName; spelled: string }): string {
  return name === spelled ? "" : `, the Bahir connector's name of '${name}'`;
}

/** The length of the longest start `word` shares with a candidate. */
function commonPrefix(word: string, candidates: string[]): number {
  let longest = 0;
  for (const candidate of candidates) {
    let n = 0;
    while (n < word.length && word[n] === candidate[n]) n++;
    longest = Math.max(longest, n);
  }
  return longest;
}
