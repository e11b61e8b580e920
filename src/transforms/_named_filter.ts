// Topic filters with named wildcards ("sensors/+site/temperature", "logs/#rest"): the plain
// filter to subscribe with, and a matcher that returns the named levels of a topic.
// Matching follows MQTT 5 §4.7: '+' is one level (maybe empty), '#' the rest (maybe none,
// and then the parent level too: "a/#" matches "a"), and a wildcard first level does not
// match a topic that starts with '$'.
import { topicFilterProblem } from "../options/_topic.ts";

/** A compiled named filter. */
export interface NamedFilter {
  /** The filter as written. */
  readonly name: string;
  /** The MQTT filter: names removed ("sensors/+/temperature"). */
  readonly filter: string;
  /**
   * The named levels of `topic`, or undefined when the filter does not match it; `parts`
   * is the topic split at '/', for a caller that tries several filters on one topic.
   */
  match(topic: string, parts?: string[]): Record<string, string> | undefined;
}

/** Compiles `name`; a TypeError names `stage` and says what is wrong. */
export function namedFilter(stage: string, name: string): NamedFilter {
  const levels = name.split("/");
  const names: (string | undefined)[] = [];
  const plain = levels.map((level) => {
    const wildcard = level[0] === "+" || level[0] === "#" ? level[0] : undefined;
    names.push(wildcard && level.length > 1 ? level.slice(1) : undefined);
    return wildcard ?? level;
  });
  const filter = plain.join("/");
  const problem = topicFilterProblem(filter) ??
    (names.some((n) => n !== undefined && !/^[A-Za-z_$][\w$]*$/.test(n))
      ? "a wildcard's name must be an identifier, as in +site or #rest"
      : undefined) ??
    (new Set(names.filter(Boolean)).size < names.filter(Boolean).length
      ? "each wildcard needs a name of its own"
      : undefined) ??
    (filter.startsWith("$share/") ? "route by the topic, without $share/{group}/" : undefined);
  if (problem) {
    throw new TypeError(
      `Cannot create ${stage}() as the filter '${name}' is not a topic filter with named wildcards: ${problem}`,
    );
  }
  const last = plain.length - 1;
  const literal = plain.map((level) => level !== "+" && level !== "#");
  const rest = plain[last] === "#";
  return {
    name,
    filter,
    // Every level is checked before a result is made: a router tries each filter in turn,
    // and most of them do not match.
    match(topic, parts = topic.split("/")) {
      if (rest ? parts.length < last : parts.length !== plain.length) return undefined;
      if (!literal[0] && topic[0] === "$") return undefined;
      for (let i = 0; i <= last; i++) {
        if (literal[i] && plain[i] !== parts[i]) return undefined;
      }
      const params: Record<string, string> = {};
      for (let i = 0; i <= last; i++) {
        const named = names[i];
        if (named !== undefined) {
          params[named] = plain[i] === "#" ? parts.slice(i).join("/") : parts[i];
        }
      }
      return params;
    },
  };
}
