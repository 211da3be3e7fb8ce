/**
 * Files the client keeps for itself (known_peers, device_tokens): rewritten whole, through a temporary
 * file and a rename, with mode 0600, so a crash leaves the old file or the new one and nobody else can
 * read either.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";

/**
 * Where a private file is rewritten before it replaces the file: a private directory beside it, so the
 * client needs write access to the file and this directory only, never to the directory the file is in
 * (which may be a home directory, or `/`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { privateFileWorkDir } from "./private_file.ts";
 * assert(privateFileWorkDir("/home/a/trust/known_peers") === "/home/a/trust/.known_peers.tmp");
 * ```
 *
 * @param path The file.
 * @returns The directory.
 */
export function privateFileWorkDir(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp`);
}

/**
 * Read a private file's lines (none when it does not exist yet).
 *
 * @param path The file.
 * @returns Its lines, without the last empty one.
 * @throws {Deno.errors.PermissionDenied} And other read errors but a missing file.
 */
export async function readLines(path: string): Promise<string[]> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/**
 * Replace a private file's content: written to a temporary file in {@linkcode privateFileWorkDir}, flushed,
 * and renamed over the file, with mode 0600; the file's directory and the work directory are created with
 * mode 0700 when missing.
 *
 * @param path The file.
 * @param text The new content.
 * @throws {Deno.errors.PermissionDenied} And other write errors (the file is then unchanged).
 */
export async function rewritePrivateFile(path: string, text: string): Promise<void> {
  const work = privateFileWorkDir(path);
  const temp = join(work, crypto.randomUUID());
  try {
    // Creates the file's directory too when it is missing (mode 0700 both).
    await Deno.mkdir(work, { recursive: true, mode: 0o700 });
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      const bytes = new TextEncoder().encode(text);
      for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
      // Flushed before the rename, so a crash leaves the old file or the new one, never an empty one.
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  } finally {
    // Only when empty: another client's rewrite may be under way in it.
    await Deno.remove(work).catch(() => {});
  }
}
