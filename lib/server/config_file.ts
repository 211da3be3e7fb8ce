/**
 * What the server's and the client's YAML configuration files share: reading a file into a mapping,
 * checking one value against its kind, and the one error type that names the offending key. Each
 * configuration module lists its own keys; this file knows none of them.
 *
 * @module
 */

import { parseDocument, Parser } from "yaml";
import { ConfigError } from "./config_error.ts";

export { ConfigError } from "./config_error.ts";

/** The kind of value a key holds, and its bounds. */
export type ValueKind =
  | { type: "string"; pattern?: RegExp; expected?: string }
  | { type: "path" }
  | { type: "urls"; schemes: string[] }
  | { type: "bool" }
  | { type: "int"; min: number; max: number }
  | { type: "number"; min: number; max: number }
  | { type: "enum"; values: string[] };

/**
 * Check a value against its kind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { coerceValue } from "./config_file.ts";
 * assert(coerceValue({ type: "int", min: 1, max: 65535 }, "AUTHCHAT_PORT", "1991", true) === 1991);
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
      if (kind.type === "string" && kind.pattern && !kind.pattern.test(value)) {
        throw new ConfigError(where, `expected ${kind.expected ?? `text matching ${kind.pattern}`}`);
      }
      return value;
    case "urls":
      if (typeof value !== "string" || value.trim().length === 0) {
        throw new ConfigError(
          where,
          `expected ${kind.schemes[0]}://host:port, or several separated by commas`,
        );
      }
      splitUrls(value, kind.schemes, where);
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

/** A URL shown without its password. */
function withoutPassword(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

/**
 * A comma-separated list of URLs, each checked: one of the schemes, a host, a port if any within 1..65535,
 * nothing after the port. Errors show a URL without its password.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitUrls } from "./config_file.ts";
 * assert.deepEqual(splitUrls("nats://a:4222, nats://b:4222", ["nats"], "bus"), ["nats://a:4222", "nats://b:4222"]);
 * ```
 *
 * @param text The list.
 * @param schemes Accepted schemes, without `://`.
 * @param where The key, flag or variable, for the error.
 * @returns The URLs, trimmed.
 * @throws {ConfigError} Naming the first URL that is not one.
 */
export function splitUrls(text: string, schemes: string[], where: string): string[] {
  const urls = text.split(",").map((part) => part.trim());
  for (const url of urls) {
    const shown = JSON.stringify(withoutPassword(url));
    const expected = `expected ${schemes[0]}://host:port, or several separated by commas`;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(where, `${expected}: ${shown} is not a URL`);
    }
    if (!schemes.includes(parsed.protocol.slice(0, -1))) {
      throw new ConfigError(
        where,
        `${expected}: ${shown} is not ${schemes.map((s) => `${s}://`).join(" or ")}`,
      );
    }
    if (parsed.hostname === "") throw new ConfigError(where, `${expected}: ${shown} names no host`);
    if (
      parsed.port === "0" || !/^\/*[^/]*\/?$/.test(url.slice(parsed.protocol.length)) || parsed.search !== ""
    ) {
      throw new ConfigError(where, `${expected}: ${shown} has a path, query or port 0`);
    }
  }
  return urls;
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

/** Options of {@linkcode readConfigFile}. */
export interface ReadConfigFileOptions {
  /** A file that does not exist (or this process may not read) gives an empty mapping instead of an error. */
  optional?: boolean;
}

/**
 * The first problem of a document that does not parse, as one line: the key it belongs to (when one can be
 * told), where, the line's text, and what.
 */
function yamlError(
  path: string,
  text: string,
  err: Error & { code?: string; pos?: number[]; linePos?: { line: number; col: number }[] },
): ConfigError {
  // The parser's own words, less the source excerpt it appends (several lines).
  const problem = err.code === "MULTIPLE_DOCS"
    ? "a second document starts here: a configuration file holds one"
    : err.message.replace(/ at line \d+, column \d+:[\s\S]*$/, "").trim();
  const at = err.linePos?.[0];
  if (!at || err.pos?.[0] === undefined) return new ConfigError(path, `not valid YAML: ${problem}`);
  const key = keyAt(text, err.pos[0], err.code);
  const lines = text.split(/\r?\n/);
  const source = lines[at.line - 1] ?? "";
  const where = at.line >= lines.length && source.trim() === ""
    ? `at line ${at.line} (the end of the file)`
    : `at line ${at.line}, column ${at.col}`;
  const quoted = source.trim() === "" ? "" : ` (${JSON.stringify(source.slice(0, 80))})`;
  return new ConfigError(
    key ?? path,
    `not valid YAML${key === null ? "" : ` in ${path}`} ${where}${quoted}: ${problem}`,
  );
}

/** The mapping a configuration file's text holds (see {@linkcode readConfigFile}). */
function parseConfigText(path: string, text: string): Record<string, unknown> {
  let doc: unknown;
  try {
    const document = parseDocument(text);
    const first = document.errors[0];
    if (first) throw yamlError(path, text, first);
    doc = document.toJS();
  } catch (err) {
    // The parser reads its debug switches (LOG_TOKENS, LOG_STREAM): a refused permission is no YAML error.
    if (err instanceof ConfigError || err instanceof Deno.errors.NotCapable) throw err;
    // An alias to an anchor that is not there, or too many aliases (a "billion laughs" file).
    throw new ConfigError(path, `not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(path, "expected a mapping of keys to values");
  }
  return doc as Record<string, unknown>;
}

/** The file's text, `null` for a missing optional file; a file that cannot be read is a ConfigError. */
function configText(path: string, options: ReadConfigFileOptions, read: () => string): string | null {
  try {
    return read();
  } catch (err) {
    // An optional file this process may not even read cannot have been meant.
    if (options.optional && (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotCapable)) {
      return null;
    }
    throw new ConfigError(path, `cannot read the file: ${(err as Error).message}`);
  }
}

/**
 * Read a YAML file holding a mapping of keys to values. Values are left as YAML gave them; checking the
 * keys and values is the caller's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readConfigFile } from "./config_file.ts";
 * assert(Object.keys(await readConfigFile("/nonexistent.yaml", { optional: true })).length === 0);
 * ```
 *
 * @param path The file.
 * @param options Whether a missing file is fine (a default file may be missing, a named one may not).
 * @returns The mapping (empty for an empty file, or a missing optional one).
 * @throws {ConfigError} When the file cannot be read, is not valid YAML (the error names the key the first
 *   problem belongs to, or else the file, and gives the line, column and problem), or holds something
 *   other than a mapping.
 */
export async function readConfigFile(
  path: string,
  options: ReadConfigFileOptions = {},
): Promise<Record<string, unknown>> {
  let text: string | null;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    text = configText(path, options, () => {
      throw err;
    });
  }
  return text === null ? {} : parseConfigText(path, text);
}

/**
 * {@linkcode readConfigFile}, synchronously (the client's file, which a launcher reads before it starts the
 * client).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readConfigFileSync } from "./config_file.ts";
 * assert(Object.keys(readConfigFileSync("/nonexistent.yaml", { optional: true })).length === 0);
 * ```
 *
 * @param path The file.
 * @param options Whether a missing file is fine.
 * @returns The mapping (empty for an empty file, or a missing optional one).
 * @throws {ConfigError} As {@linkcode readConfigFile}.
 */
export function readConfigFileSync(
  path: string,
  options: ReadConfigFileOptions = {},
): Record<string, unknown> {
  const text = configText(path, options, () => Deno.readTextFileSync(path));
  return text === null ? {} : parseConfigText(path, text);
}
