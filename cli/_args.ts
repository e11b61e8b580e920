// The command line's words: usage texts, and parsing argv into a command. Pure: no I/O.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { redactConnectionString } from "../mod.ts";
import { nearest } from "../src/options/_nearest.ts";

/** Bad arguments: printed as one line, exit code 2. */
export class UsageError extends Error {}

export const USAGE: Record<string, string> = {
  main: `mqtt-streams: MQTT as web streams, on the command line

Usage:
  mqtt-streams sub <url> [options]            print messages as JSON lines
  mqtt-streams pub <url> [options]            publish lines from stdin
  mqtt-streams bridge <from> <to> [options]   copy messages between brokers, at least once
  mqtt-streams <command> --help               options of a command

<url> is a connection string: mqtt://user:pass@host:1883?topic=a/%23&qos=1&clientId=me
(every option of docs/options.md; '#' and '+' are written %23 and %2B). Several brokers of
one cluster, tried in order: mqtt://user:pass@node1:1883,node2:1883?topic=…
Exit codes: 0 done (also after Ctrl-C, once closed cleanly), 1 failed, 2 bad arguments.`,
  sub: `mqtt-streams sub <url> [--count N] [--timeout SECONDS] [--progress]

Subscribes to the URL's topic(s) and prints each message on stdout as one JSON line:
  {"topic":"a/b","qos":1,"retain":false,"payload":"text","timestamp":1764244800000}
A payload that is not UTF-8 is base64, with "encoding":"base64". Each QoS 1/2 message is
acknowledged to the broker once its line is written (ack=read).

  --count N          exit after N messages
  --timeout SECONDS  exit after this long, however many arrived
  --progress         a progress line on stderr (the default when stderr is a terminal)
  --help             this text`,
  pub: `mqtt-streams pub <url> [--json] [--progress]

Publishes each line of stdin as one message to the URL's topic, at its qos, and exits once
the broker acknowledged every one (stdin ended) or after Ctrl-C.

  --json      each line is a JSON record, as 'sub' prints them:
              {"topic":"a/b","payload":"text","qos":1,"retain":false}
              ("encoding":"base64" for binary; topic, qos and retain are optional)
  --progress  a progress line on stderr (the default when stderr is a terminal)
  --help      this text`,
  bridge: `mqtt-streams bridge <from> <to> [--map 'FILTER=>TEMPLATE']... [--progress]

Subscribes on <from> (its topic(s), with ack=manual) and publishes each message on <to>,
acknowledging it to <from> only once <to> confirmed the copy: at least once, end to end.
Give <from> a clientId (and qos=1) so that a restarted bridge resumes its session and
receives what arrived meanwhile. Ctrl-C stops reading, waits for the copies in flight to
be confirmed and acknowledged, then exits.

  --map 'FILTER=>TEMPLATE'  rewrite topics matching FILTER; each '+' and the '#' of the
                            template take what the filter's matched, in order:
                            --map 'plant/+/temp=>site-7/+/temperature' --map 'logs/#=>archive/#'
                            The first map that matches applies; other topics are kept.
  --progress                a progress line on stderr (the default when stderr is a terminal)
  --help                    this text`,
};

export type Command =
  | { name: "help"; text: string }
  /** No command at all: the usage is printed on stderr, and the exit code is 2. */
  | { name: "usage"; text: string }
  | { name: "sub"; url: string; count?: number; timeout?: number; progress: boolean }
  | { name: "pub"; url: string; json: boolean; progress: boolean }
  | { name: "bridge"; from: string; to: string; maps: string[]; progress: boolean };

/** The command `args` ask for. @throws {UsageError} When they do not make one. */
export function parseCommand(args: string[], isTTY: boolean): Command {
  const [name, ...rest] = args;
  if (name === undefined) return { name: "usage", text: USAGE.main };
  if (name === "--help" || name === "-h" || name === "help") {
    return { name: "help", text: USAGE.main };
  }
  if (!(name in USAGE) || name === "main") {
    throw new UsageError(
      `unknown command '${redactConnectionString(name)}': expected sub, pub or bridge`,
    );
  }
  const options = {
    help: { type: "boolean", short: "h" },
    progress: { type: "boolean" },
    ...(name === "sub" ? { count: { type: "string" }, timeout: { type: "string" } } : {}),
    ...(name === "pub" ? { json: { type: "boolean" } } : {}),
    ...(name === "bridge" ? { map: { type: "string", multiple: true } } : {}),
  } satisfies ParseArgsConfig["options"];
  let parsed;
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, options });
  } catch (error) {
    // node:util's messages go on with advice about '--' that does not apply here.
    // They quote the argument at fault, which may be a connection string that starts with
    // a '-' by mistake, newlines and all: redacted before the first line is taken.
    const message = (error as Error).message
      .replace(/'([^']*)'/g, (_, quoted) => `'${showArgument(quoted, rest)}'`)
      .split("\n")[0].replace(/\. To specify .*$/, "");
    throw new UsageError(`${name}: ${message}${didYouMean(message, Object.keys(options))}`);
  }
  const { values, positionals } = parsed;
  if (values.help) return { name: "help", text: USAGE[name] };
  const progress = Boolean(values.progress) || isTTY;
  const wanted = name === "bridge" ? ["<from>", "<to>"] : ["<url>"];
  if (positionals.length !== wanted.length) {
    throw new UsageError(
      `${name}: expected ${wanted.join(" and ")}, got ${
        // Each may be a connection string: shown as an error about it would show it.
        positionals.length === 0
          ? "nothing"
          : positionals.map((p) => `'${redactConnectionString(p)}'`).join(" ")}`,
    );
  }
  if (name === "sub") {
    return {
      name,
      url: positionals[0],
      count: positive("--count", values.count as string | undefined, Number.isInteger),
      timeout: positive("--timeout", values.timeout as string | undefined, Number.isFinite),
      progress,
    };
  }
  if (name === "pub") return { name, url: positionals[0], json: Boolean(values.json), progress };
  return {
    name: "bridge",
    from: positionals[0],
    to: positionals[1],
    maps: (values.map as string[] | undefined) ?? [],
    progress,
  };
}

/**
 * ": did you mean '--count'?" when `message` is node:util's about an unknown `--flag` near
 * one of `flags` (the command's), else nothing: the options' rule (src/options/_nearest.ts).
 */
function didYouMean(message: string, flags: readonly string[]): string {
  const flag = /^Unknown option '--([\w-]+)'/.exec(message)?.[1]?.toLowerCase();
  const best = flag === undefined ? undefined : nearest(flag, flags);
  return best === undefined ? "" : `: did you mean '--${best}'?`;
}

/**
 * What node:util quoted of an argument, as it may be shown. An option's name (`--count`,
 * `--count <value>`, `-m`) as it is; anything else may be part of a connection string
 * (`--mqtt://user:pa@ss=x@host` is quoted up to its first '='), so the whole argument it
 * comes from is redacted: its user info is hidden up to the argument's last '@', not the
 * quoted part's.
 */
function showArgument(quoted: string, args: readonly string[]): string {
  if (/^(?:-{1,2}[\w-]+(?: <value>)?|\w)$/.test(quoted)) return quoted;
  const arg = args.find((a) => a.includes(quoted));
  if (arg === undefined) return "…";
  const dashes = /^-*/.exec(arg)![0];
  return dashes + redactConnectionString(arg.slice(dashes.length));
}

function positive(
  option: string,
  text: string | undefined,
  kind: (n: number) => boolean,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !kind(n) || n <= 0) {
    // Any text may land here (a connection string pasted in the wrong place): redacted as one.
    throw new UsageError(
      `${option} must be a positive number: got '${redactConnectionString(text)}'`,
    );
  }
  return n;
}
