// The option table of docs/options.md, made from the schema: the page must contain it verbatim.
import { describeOption, OPTION_NAMES } from "../../src/options/options.ts";

const cell = (text: string) => text.replace(/\|/g, "\\|");
const showDefault = (value: unknown) =>
  value === undefined ? "" : Array.isArray(value) ? "none" : String(value);

/** The Markdown table of every option: name, default, environment variable, meaning, allowed values. */
export function optionsTable(): string {
  const rows = OPTION_NAMES.map((name) => {
    const { doc, meta, default: value } = describeOption(name);
    const env = meta.env ? `\`${meta.env}\`` : "";
    return `| \`${name}\` | ${cell(meta.defaultText ?? showDefault(value))} | ${env} | ${
      cell(doc)
    } | ${cell(meta.allowed)} |`;
  });
  return [
    "| option | default | env | meaning | allowed |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}
