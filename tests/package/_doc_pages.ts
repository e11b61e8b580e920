// Reading README.md and docs/ as the docs tests do (docs_test.ts, docs_truth_test.ts): the pages,
// their prose and code blocks apart, their tables, headings, named files and quotes. Only files
// are read here: no broker, no child process.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's folder, ending in a separator. */
export const root = fileURLToPath(new URL("../..", import.meta.url));

/** The text of the file at `path`, relative to the repository. */
export const read = (path: string): string => readFileSync(join(root, path), "utf8");

/** README.md and every page of docs/, as paths relative to the repository. */
export const pages: string[] = [
  "README.md",
  ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`),
];

/** A fenced code block of a page: its language (the word after the fence) and its text. */
export interface Block {
  lang: string;
  body: string;
}

/** A page's fenced code blocks (indented ones too) and the prose around them, apart. */
export function split(markdown: string): { prose: string; blocks: Block[] } {
  const blocks: Block[] = [];
  const prose = markdown.replace(/^( *)```(\w*)\n([\s\S]*?)^ *```/gm, (_, _indent, lang, body) => {
    blocks.push({ lang, body });
    return "";
  });
  return { prose, blocks };
}

/** The text of a page outside its code blocks (a `[x](y)` in code is not a link). */
export const prose = (markdown: string): string => split(markdown).prose;

/** A Markdown table's rows as trimmed cells, so column padding (deno fmt) does not matter. */
export function cells(table: string): string[][] {
  return table.trim().split("\n").filter((line) => !/^\|[\s|:-]+\|$/.test(line)).map((line) =>
    line.replace(/^\||\|$/g, "").split(/(?<!\\)\|/).map((cell) => cell.trim())
  );
}

/** GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as '-'. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const [, title] of prose(markdown).matchAll(/^#{1,6} (.+)$/gm)) {
    const base = title.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/ /g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    result.add(n === 0 ? base : `${base}-${n}`);
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Files a page names

/** The folders of the repository a path a page names may start with. */
const TOP = /^(?:\.\.?\/)*(?:src|tests|testing|bench|examples|docs|cli|\.ci)\/[\w./-]*$/;
/** Files at the root a page may name by their bare name. */
const ROOT_FILES = new Set([
  "mod.ts",
  "cli.ts",
  "deno.json",
  "deno.lock",
  "README.md",
  "CHANGELOG.md",
]);

/**
 * The files `page` names: the paths in its inline code, its relative links and the words of
 * its shell blocks that start with a folder of the repository (or are a root file), each
 * resolved from the repository (a link: from the page's folder).
 */
export function namedFiles(page: string): { named: string; path: string }[] {
  const { prose, blocks } = split(read(page));
  const found: { named: string; path: string }[] = [];
  const add = (named: string, base: string) => {
    const clean = named.replace(/[#:].*$/, "").replace(/[.,;)]+$/, "");
    if (!TOP.test(clean) && !ROOT_FILES.has(clean)) return;
    const path = join(clean.startsWith(".") ? base : root, clean);
    found.push({ named, path });
  };
  for (const [, span] of prose.matchAll(/`([^`\n]+)`/g)) {
    add(span.trim(), dirname(join(root, page)));
  }
  for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (/^[a-z]+:/.test(target) || target.startsWith("#")) continue;
    const path = join(dirname(join(root, page)), target.split("#")[0]);
    found.push({ named: target, path });
  }
  for (const { lang, body } of blocks) {
    if (lang !== "sh") continue;
    for (const word of body.split(/\s+/)) add(word, root);
  }
  return found;
}

// ---------------------------------------------------------------------------------------
// Quotes (the convention is told at the top of docs_truth_test.ts)

/** The opening of an error of ours: its class name and a colon, or its first words. */
const OURS = /^(?:Mqtt\w*Error: )?(?:Cannot |Lost the connection |Protocol error )/;

/** `text` with its whitespace collapsed, as a page wraps a quote over lines. */
export const squash = (text: string): string => text.replace(/\s+/g, " ").trim();

/** Every quote on `page`, as docs_truth_test.ts's convention defines them, squashed. */
export function quotesOf(page: string): string[] {
  const { prose, blocks } = split(read(page));
  const quotes: string[] = [];
  for (const { lang, body } of blocks) {
    if (lang === "text" && OURS.test(squash(body))) quotes.push(squash(body));
  }
  for (const [, span] of prose.matchAll(/`([^`]+)`/g)) {
    if (OURS.test(squash(span))) quotes.push(squash(span));
  }
  const outsideCode = prose.replace(/`[^`]*`/g, "");
  for (const [, quoted] of outsideCode.matchAll(/"([^"]+)"/g)) quotes.push(squash(quoted));
  return quotes;
}

/** Whether `produced` holds `quote`, where "…" in the quote stands for any text. */
export function holds(produced: string, quote: string): boolean {
  let at = 0;
  for (const part of quote.split("…").map((p) => p.trim()).filter(Boolean)) {
    const found = produced.indexOf(part, at);
    if (found < 0) return false;
    at = found + part.length;
  }
  return true;
}
