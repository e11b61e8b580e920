// Topic names and filters, as MQTT 3.1.1 §4.7 and MQTT 5 §4.7-4.8 define them.

const MAX_TOPIC_BYTES = 65535;
const encoder = new TextEncoder();
// With the u flag, a surrogate pair is one code point, so only a lone surrogate matches.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Says what is wrong with a subscription filter, or returns undefined when it is valid.
 * Accepts shared subscriptions, `$share/{group}/{filter}` (MQTT 5 §4.8.2).
 */
export function topicFilterProblem(filter: string): string | undefined {
  // The whole filter, so that a shared subscription's group is checked too.
  const common = commonProblem(filter);
  if (common) return common;
  if (filter.startsWith("$share/")) {
    const rest = filter.slice("$share/".length);
    const slash = rest.indexOf("/");
    const group = slash < 0 ? rest : rest.slice(0, slash);
    if (group === "" || /[+#]/.test(group)) {
      return "a shared subscription needs a group name without '+' or '#': $share/{group}/{filter}";
    }
    if (slash < 0 || rest.length === slash + 1) {
      return "a shared subscription needs a filter after the group: $share/{group}/{filter}";
    }
    return topicFilterProblem(rest.slice(slash + 1));
  }
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level.includes("#") && (level !== "#" || i !== levels.length - 1)) {
      return "'#' must be a whole level and the last one";
    }
    if (level.includes("+") && level !== "+") {
      return "'+' must be a whole level, as in a/+/c";
    }
  }
  return undefined;
}

/** Says what is wrong with a topic name to publish to, or returns undefined when it is valid. */
export function topicNameProblem(name: string): string | undefined {
  const common = commonProblem(name);
  if (common) return common;
  if (/[+#]/.test(name)) return "a topic to publish to cannot contain the wildcards '+' or '#'";
  return undefined;
}

function commonProblem(topic: string): string | undefined {
  if (topic === "") return "a topic cannot be empty";
  if (topic.includes("\u0000")) return "a topic cannot contain U+0000";
  // TextEncoder would silently turn a lone surrogate into U+FFFD, publishing to (or
  // subscribing to) another topic; MQTT §1.5.4 requires well-formed UTF-8, so refuse it.
  const lone = LONE_SURROGATE.exec(topic);
  if (lone) {
    return `a topic must be well-formed Unicode (MQTT §1.5.4): it holds a lone surrogate, U+${
      lone[0].charCodeAt(0).toString(16).toUpperCase()
    }, at index ${lone.index}`;
  }
  if (encoder.encode(topic).length > MAX_TOPIC_BYTES) {
    return `a topic cannot be longer than ${MAX_TOPIC_BYTES} bytes of UTF-8`;
  }
  return undefined;
}
