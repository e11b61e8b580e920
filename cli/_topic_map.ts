// The bridge's --map 'FILTER=>TEMPLATE' rules: a topic that matches FILTER becomes
// TEMPLATE with its '+' and '#' replaced, in order, by the levels the filter's matched.
import { UsageError } from "./_args.ts";

/** Compiles the rules into one function: the new topic, or the topic as it was. */
export function topicMap(rules: string[]): (topic: string) => string {
  const compiled = rules.map(compile);
  return (topic) => {
    for (const rewrite of compiled) {
      const rewritten = rewrite(topic);
      if (rewritten !== undefined) return rewritten;
    }
    return topic;
  };
}

function compile(rule: string): (topic: string) => string | undefined {
  const [filter, template, extra] = rule.split("=>");
  const fail = (why: string) => {
    throw new UsageError(`--map '${rule}': ${why}`);
  };
  if (template === undefined || extra !== undefined || !filter || !template) {
    fail("expected FILTER=>TEMPLATE, as in 'a/+/b=>c/+/b'");
  }
  const levels = filter.split("/");
  if (
    levels.some((level, i) =>
      level === "#" ? i !== levels.length - 1 : /[+#]/.test(level) && level !== "+"
    )
  ) {
    fail("the filter's '+' and '#' must be whole levels, '#' the last one");
  }
  const wildcards = levels.filter((level) => level === "+" || level === "#");
  const slots = template.split("/").filter((level) => level === "+" || level === "#");
  if (slots.join() !== wildcards.join()) {
    fail(
      `the template must have the filter's wildcards in the same order (${
        wildcards.join(" ") || "none"
      }): it has ${slots.join(" ") || "none"}`,
    );
  }
  return (topic) => {
    const parts = topic.split("/");
    const matched: string[] = [];
    for (let i = 0; i < levels.length; i++) {
      if (levels[i] === "#") {
        matched.push(parts.slice(i).join("/"));
        break;
      }
      if (i >= parts.length) return undefined;
      if (levels[i] === "+") matched.push(parts[i]);
      else if (levels[i] !== parts[i]) return undefined;
      if (i === levels.length - 1 && parts.length !== levels.length) return undefined;
    }
    let next = 0;
    return template.split("/").map((level) =>
      level === "+" || level === "#" ? matched[next++] : level
    ).filter((level, i, all) => !(level === "" && i === all.length - 1 && all.length > 1))
      .join("/");
  };
}
