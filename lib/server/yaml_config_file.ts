/**
 * Reading a YAML configuration file into a mapping of keys to values, with
 * one {@linkcode ConfigError} line for every way it can fail: missing,
 * unreadable, not YAML (with the line, column and problem), or not a mapping.
 *
 * @module
 */

import { parseDocument } from "yaml";
import { ConfigError } from "./config_error.ts";

/** Options of {@linkcode readConfigFile}. */
export interface ReadConfigFileOptions {
  /** A file that does not exist (or this process may not read) gives an empty mapping instead of an error. */
  optional?: boolean;
}

/** The first problem of a document that does not parse, as one line: where, what, and the line's text. */
function describeYamlError(
  text: string,
  err: Error & { code?: string; linePos?: { line: number; col: number }[] },
): string {
  // The parser's own words, less the source excerpt it appends (several lines) and advice meant for programmers.
  const problem = err.code === "MULTIPLE_DOCS"
    ? "a second document starts here: a configuration file holds one"
    : err.message.replace(/ at line \d+, column \d+:[\s\S]*$/, "").trim();
  const at = err.linePos?.[0];
  if (!at) return `not valid YAML: ${problem}`;
  const lines = text.split(/\r?\n/);
  const source = lines[at.line - 1] ?? "";
  const where = at.line >= lines.length && source.trim() === ""
    ? `at line ${at.line} (the end of the file)`
    : `at line ${at.line}, column ${at.col}`;
  const quoted = source.trim() === "" ? "" : ` (${JSON.stringify(source.slice(0, 80))})`;
  return `not valid YAML ${where}${quoted}: ${problem}`;
}

/**
 * Read a YAML file holding a mapping of keys to values. Values are left as YAML gave them; checking the
 * keys and values is the caller's.
 *
 * @example
 * ```ts
 * import { readConfigFile } from "./yaml_config_file.ts";
 * console.assert(Object.keys(await readConfigFile("/nonexistent.yaml", { optional: true })).length === 0);
 * ```
 *
 * @param path The file.
 * @param options Whether a missing file is fine.
 * @returns The mapping (empty for an empty file).
 * @throws {ConfigError} Keyed by `path`: the file cannot be read, is not valid YAML (the message gives the
 *   line, column and problem of the first error), or holds something other than a mapping.
 */
export async function readConfigFile(
  path: string,
  options: ReadConfigFileOptions = {},
): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    // An optional file this process may not even read cannot have been meant.
    if (options.optional && (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotCapable)) {
      return {};
    }
    throw new ConfigError(path, `cannot read the file: ${(err as Error).message}`);
  }
  const document = parseDocument(text);
  const first = document.errors[0];
  if (first) throw new ConfigError(path, describeYamlError(text, first));
  let doc: unknown;
  try {
    doc = document.toJS();
  } catch (err) {
    // An alias to an anchor that is not there, or too many aliases (a "billion laughs" file).
    throw new ConfigError(path, `not valid YAML: ${(err as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new ConfigError(path, "expected a mapping of keys to values");
  }
  return doc as Record<string, unknown>;
}
