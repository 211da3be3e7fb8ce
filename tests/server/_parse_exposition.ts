/**
 * A strict reader of the Prometheus text format 0.0.4, for tests: it parses what the server writes back
 * into families and refuses anything out of place (a sample before its HELP and TYPE, a family split in
 * two, a bad escape, a missing final line feed).
 *
 * @module
 */

/** One family as read back. */
export interface ParsedFamily {
  /** Help text, unescaped. */
  help: string;
  /** `counter`, `gauge`, ... */
  type: string;
  /** Samples in order, labels unescaped. */
  samples: { labels: Record<string, string>; value: number }[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";

function unescapeHelp(text: string): string {
  return text.replace(/\\(.)/g, (_, c: string) => {
    if (c === "n") return "\n";
    if (c === "\\") return "\\";
    throw new SyntaxError(`Bad escape in HELP: \\${c}`);
  });
}

function parseValue(text: string): number {
  if (text === "NaN") return NaN;
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (!/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(text)) throw new SyntaxError(`Bad value: ${text}`);
  return Number(text);
}

/** Labels from just after `{`; returns them and the index after `}`. */
function parseLabels(line: string, start: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = start;
  while (line[i] !== "}") {
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i))?.[0];
    if (!name) throw new SyntaxError(`Bad label name at ${i}: ${line}`);
    i += name.length;
    if (line.slice(i, i + 2) !== '="') throw new SyntaxError(`Expected =" at ${i}: ${line}`);
    i += 2;
    let value = "";
    for (;;) {
      const c = line[i++];
      if (c === undefined) throw new SyntaxError(`Unterminated label value: ${line}`);
      if (c === '"') break;
      if (c === "\\") {
        const e = line[i++];
        if (e === "n") value += "\n";
        else if (e === "\\" || e === '"') value += e;
        else throw new SyntaxError(`Bad escape \\${e} in: ${line}`);
      } else value += c;
    }
    if (Object.hasOwn(labels, name)) throw new SyntaxError(`Label ${name} twice: ${line}`);
    labels[name] = value;
    if (line[i] === ",") i++;
    else if (line[i] !== "}") throw new SyntaxError(`Expected , or } at ${i}: ${line}`);
  }
  return [labels, i + 1];
}

/**
 * Parse a whole exposition.
 *
 * @param text What `/metrics` returned.
 * @returns The families by name.
 * @throws {SyntaxError} At the first thing out of place.
 */
export function parseExposition(text: string): Map<string, ParsedFamily> {
  const families = new Map<string, ParsedFamily>();
  if (text === "") return families;
  if (!text.endsWith("\n")) throw new SyntaxError("The text must end with a line feed");
  let current: string | null = null;
  let pendingHelp: { name: string; help: string } | null = null;
  for (const line of text.slice(0, -1).split("\n")) {
    const help = new RegExp(`^# HELP (${NAME}) ([^\\n]*)$`).exec(line);
    if (help) {
      if (families.has(help[1]!) || pendingHelp) throw new SyntaxError(`Misplaced HELP: ${line}`);
      pendingHelp = { name: help[1]!, help: unescapeHelp(help[2]!) };
      continue;
    }
    const type = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (type) {
      if (!pendingHelp || pendingHelp.name !== type[1]) {
        throw new SyntaxError(`TYPE without its HELP before it: ${line}`);
      }
      families.set(type[1]!, { help: pendingHelp.help, type: type[2]!, samples: [] });
      current = type[1]!;
      pendingHelp = null;
      continue;
    }
    const name = new RegExp(`^${NAME}`).exec(line)?.[0];
    if (!name) throw new SyntaxError(`Not a sample: ${JSON.stringify(line)}`);
    if (name !== current || pendingHelp) throw new SyntaxError(`Sample outside its family: ${line}`);
    let [labels, i]: [Record<string, string>, number] = [{}, name.length];
    if (line[i] === "{") [labels, i] = parseLabels(line, i + 1);
    if (line[i] !== " ") throw new SyntaxError(`Expected a space before the value: ${line}`);
    families.get(name)!.samples.push({ labels, value: parseValue(line.slice(i + 1)) });
  }
  if (pendingHelp) throw new SyntaxError(`HELP without TYPE: ${pendingHelp.name}`);
  return families;
}

/**
 * One sample's value.
 *
 * @param families Parsed families.
 * @param name Metric name.
 * @param labels Its labels, exactly.
 * @returns The value, or `undefined` when there is no such sample.
 */
export function sampleValue(
  families: Map<string, ParsedFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const wanted = JSON.stringify(Object.entries(labels).sort());
  return families.get(name)?.samples.find((s) => JSON.stringify(Object.entries(s.labels).sort()) === wanted)
    ?.value;
}
