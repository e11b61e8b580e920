// What is written about the options outside their schema (src/options/_schema.ts), made from
// it: the MqttOptions interface (src/options/mqtt_options.ts: its fields, their JSDoc and
// @default, which JSR shows) and the option table of docs/options.md. The tests fail when
// either is out of date; after changing the schema, write both again with
//   npx --yes deno@2 run --allow-read --allow-write tests/options/_generate.ts
// Both come out as deno fmt leaves them.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as v from "valibot";
import {
  describeOption,
  OPTION_NAMES,
  type OptionName,
  OPTIONS_SCHEMA,
} from "../../src/options/_schema.ts";
import { DERIVED } from "../../src/options/_rules.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** The generated module, relative to the repository. */
export const MQTT_OPTIONS_MODULE = "src/options/mqtt_options.ts";
/** The page with the option table, relative to the repository. */
export const OPTIONS_PAGE = "docs/options.md";

/** deno fmt's line width, which the generated JSDoc keeps to. */
const WIDTH = 100;
const JSDOC_LINE = "   * ";

/** The default of an option as its docs give it: in words, or the schema's value. */
function defaultOf(name: OptionName): { text?: string; value?: unknown } {
  const { meta, default: value } = describeOption(name);
  return meta.defaultText !== undefined ? { text: meta.defaultText } : { value };
}

/** One field of MqttOptions: its JSDoc and declaration, indented for the interface body. */
function field(
  name: string,
  { doc, type, optional, allowed, env, defaults }: {
    doc: string;
    type: string;
    optional: boolean;
    allowed?: string;
    env?: string;
    defaults?: { text?: string; value?: unknown };
  },
): string {
  const paragraphs = [doc];
  const notes = [
    allowed === undefined ? "" : `Allowed: ${allowed}.`,
    env === undefined ? "" : `Environment variable: \`${env}\`.`,
  ].filter(Boolean).join(" ");
  if (notes) paragraphs.push(notes);
  const lines = paragraphs.flatMap((
    text,
    i,
  ) => [...(i > 0 ? [""] : []), ...wrap(text, WIDTH - JSDOC_LINE.length)]);
  const shown = defaults?.text ??
    (defaults?.value === undefined ? undefined : JSON.stringify(defaults.value));
  if (shown !== undefined) lines.push(`@default {${shown}}`);
  const key = /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
  return [
    "  /**",
    ...lines.map((line) => (line ? JSDOC_LINE + line : JSDOC_LINE.trimEnd())),
    "   */",
    `  ${key}${optional ? "?" : ""}: ${type};`,
  ].join("\n");
}

/** `text` as lines of at most `width` characters, broken between words. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** The source of src/options/mqtt_options.ts. */
export function mqttOptionsModule(): string {
  // A field is optional unless parsing always sets it: seen on the options of a bare URL
  // (tests/options/_types.ts proves the interface and the schema's output type agree).
  const bare: Record<string, unknown> = v.parse(OPTIONS_SCHEMA, { brokerUrl: "mqtt://h" });
  const always = (name: string) => bare[name] !== undefined;
  const fields: string[] = [];
  for (const name of OPTION_NAMES) {
    const { doc, meta, type } = describeOption(name);
    fields.push(field(name, {
      doc,
      type,
      optional: !always(name),
      allowed: meta.allowed,
      env: meta.env,
      defaults: defaultOf(name),
    }));
    for (const [derived, { from, doc, type }] of Object.entries(DERIVED)) {
      if (from === name) fields.push(field(derived, { doc, type, optional: !always(derived) }));
    }
  }
  return `${HEADER}export interface MqttOptions {\n${fields.join("\n")}\n}\n`;
}

const HEADER =
  `// Generated from the options' schema (_schema.ts) by tests/options/_generate.ts: change the
// schema, not this file, and run that script (a test fails while this file is out of date).
import type { Secret } from "../secret.ts";

/**
 * Validated, fully defaulted options.
 *
 * @example Read the defaults
 * \`\`\`ts
 * import { type MqttOptions, parseConnectionString } from "@mqtt-streams/core";
 *
 * const options: MqttOptions = parseConnectionString("mqtt://localhost");
 * console.log(options.qos, options.maxInflight, options.keepAlive); // 1 60 60
 * \`\`\`
 * Names are the Bahir connector's (Apache Bahir
 * \`sql-streaming-mqtt\`); secrets are {@linkcode Secret}s.
 */
`;

const cell = (text: string) => text.replace(/\|/g, "\\|");
const showDefault = (value: unknown) =>
  value === undefined ? "" : Array.isArray(value) ? "none" : String(value);

/** The Markdown table of every option: name, default, environment variable, meaning, allowed values. */
export function optionsTable(): string {
  const rows = OPTION_NAMES.map((name) => {
    const { doc, meta } = describeOption(name);
    const { text, value } = defaultOf(name);
    return [`\`${name}\``, text ?? showDefault(value), meta.env ? `\`${meta.env}\`` : "", doc]
      .concat(meta.allowed).map(cell);
  });
  const header = ["option", "default", "env", "meaning", "allowed"];
  // Padded as deno fmt pads a table, so that the page stays formatted.
  const widths = header.map((_, i) =>
    Math.max(3, ...[header, ...rows].map((r) => [...r[i]].length))
  );
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c + " ".repeat(widths[i] - [...c].length)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** docs/options.md with its option table replaced by `table`. */
export function withTable(page: string, table: string): string {
  const start = page.search(/^\| option +\| default/m);
  if (start < 0) throw new Error(`${OPTIONS_PAGE} has no option table`);
  const end = page.indexOf("\n\n", start);
  return page.slice(0, start) + table + (end < 0 ? "\n" : page.slice(end));
}

if (import.meta.main) {
  writeFileSync(`${root}/${MQTT_OPTIONS_MODULE}`, mqttOptionsModule());
  const page = readFileSync(`${root}/${OPTIONS_PAGE}`, "utf8");
  writeFileSync(`${root}/${OPTIONS_PAGE}`, withTable(page, optionsTable()));
  console.log(`wrote ${MQTT_OPTIONS_MODULE} and the option table of ${OPTIONS_PAGE}`);
}
