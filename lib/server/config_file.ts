/**
 * What the server's and the client's YAML configuration files share: reading a file into a mapping,
 * checking one value against its kind, and the one error type that names the offending key. Each
 * configuration module lists its own keys; this file knows none of them.
 *
 * @module
 */

import { parse as parseYaml, Parser } from "yaml";

/** A configuration value that cannot be used; `key` names where it came from. */
export class ConfigError extends Error {
  /** The offending key, flag, environment variable or file. */
  readonly key: string;

  /**
   * Make a configuration error.
   *
   * @param key Where the bad value came from.
   * @param message What is wrong.
   */
  constructor(key: string, message: string) {
    super(`Invalid configuration ${key}: ${message}`);
    this.name = "ConfigError";
    this.key = key;
  }
}

/** The kind of value a key holds, and its bounds. */
export type ValueKind =
  | { type: "string" }
  | { type: "path" }
  | { type: "bool" }
  | { type: "int"; min: number; max: number }
  | { type: "number"; min: number; max: number }
  | { type: "enum"; values: string[] };

/**
 * Check a value against its kind.
 *
 * @example
 * ```ts
 * import { coerceValue } from "./config_file.ts";
 * console.assert(coerceValue({ type: "int", min: 1, max: 65535 }, "AUTHCHAT_PORT", "1991", true) === 1991);
 * ```
 *
 * @param kind What the key holds.
 * @param where The key, flag or variable, for the error.
 * @param value The value as found.
 * @param fromText Whether it came as text (an environment variable): `"yes"` and `"42"` are accepted then.
 * @returns The value, converted.
 * @throws {ConfigError} When it does not fit.
 */
export function coerceValue(kind: ValueKind, where: string, value: unknown, fromText: boolean): unknown {
  switch (kind.type) {
    case "string":
    case "path":
      if (typeof value !== "string" || value.length === 0) {
        throw new ConfigError(where, "expected a non-empty string");
      }
      if (value.includes("\0")) throw new ConfigError(where, "contains a NUL character");
      return value;
    case "bool":
      if (typeof value === "boolean") return value;
      if (fromText && /^(true|yes|on|1)$/i.test(String(value))) return true;
      if (fromText && /^(false|no|off|0)$/i.test(String(value))) return false;
      throw new ConfigError(where, "expected true or false");
    case "enum":
      if (typeof value !== "string" || !kind.values.includes(value)) {
        throw new ConfigError(where, `expected one of ${kind.values.join(", ")}`);
      }
      return value;
    case "int":
    case "number": {
      const n = fromText && typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      if (typeof n !== "number" || !Number.isFinite(n) || (kind.type === "int" && !Number.isInteger(n))) {
        throw new ConfigError(where, `expected ${kind.type === "int" ? "an integer" : "a number"}`);
      }
      if (n < kind.min || n > kind.max) {
        throw new ConfigError(where, `${n} is not within ${kind.min}..${kind.max}`);
      }
      return n;
    }
  }
}

/**
 * The top-level key a YAML syntax error belongs to: the last key at or before the error, from the
 * parser's own tokens (so text inside an unclosed quote is not taken for a key). An error found right at
 * a key is the previous entry's (an unclosed bracket runs into the next key), unless that key repeats one.
 */
function keyAt(text: string, offset: number, code: string | undefined): string | null {
  const keys: { offset: number; name: string }[] = [];
  for (const token of new Parser().parse(text)) {
    if (token.type !== "document" || token.value?.type !== "block-map") continue;
    for (const item of token.value.items) {
      const key = item.key as { offset?: number; source?: string } | null;
      if (key?.offset !== undefined && key.source !== undefined && /^[A-Za-z_][\w.-]*$/.test(key.source)) {
        keys.push({ offset: key.offset, name: key.source });
      }
    }
  }
  const before = keys.filter((k) => k.offset <= offset);
  const last = before.at(-1);
  if (last?.offset === offset && code !== "DUPLICATE_KEY" && before.length > 1) return before.at(-2)!.name;
  return last?.name ?? null;
}

/**
 * Read a YAML configuration file into a mapping.
 *
 * @param path The file.
 * @param explicit Whether the user named it: a default file may be missing (or not readable by this
 *   process), a named one may not.
 * @returns Its keys and values (empty for an empty file or a missing default).
 * @throws {ConfigError} When it cannot be read, is not valid YAML (the error names the key the error
 *   belongs to, and the line and column), or is not a mapping.
 */
export async function readConfigFile(path: string, explicit: boolean): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!explicit && (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotCapable)) {
      return {};
    }
    throw new ConfigError(path, `cannot read the file: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    // The parser reads its debug switches (LOG_TOKENS, LOG_STREAM): a refused permission is no YAML error.
    if (err instanceof Deno.errors.NotCapable) throw err;
    const e = err as {
      message?: string;
      code?: string;
      pos?: number[];
      linePos?: { line: number; col: number }[];
    };
    // The parser's message ends "at line L, column C:" and then quotes the text with a caret.
    const what = String(e.message ?? err).split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    const pos = e.linePos?.[0];
    if (!pos || e.pos?.[0] === undefined) throw new ConfigError(path, `not valid YAML: ${what}`);
    const key = keyAt(text, e.pos[0], e.code);
    throw new ConfigError(
      key ?? path,
      `not valid YAML${key === null ? "" : ` in ${path}`} at line ${pos.line}, column ${pos.col}: ${what}`,
    );
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(path, "expected a mapping of keys to values");
  }
  return doc as Record<string, unknown>;
}

/**
 * The known key closest to a misspelt one (at most two edits away), for a "did you mean" hint.
 *
 * @example
 * ```ts
 * import { closestKey } from "./config_file.ts";
 * console.assert(closestKey("prot", ["host", "port"]) === "port" && closestKey("zzz", ["port"]) === null);
 * ```
 *
 * @param key The unknown key.
 * @param known The keys there are.
 * @returns The closest, or `null` when none is near.
 */
export function closestKey(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

/** Damerau-Levenshtein distance (optimal string alignment): swapped letters count as one edit. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
