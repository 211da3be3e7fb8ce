/**
 * Reading a password from a file given on the command line.
 *
 * @module
 */

/**
 * Read a password file: its contents without one trailing line ending (`\n` or `\r\n`).
 *
 * @param path The file.
 * @param flag The flag that named it, for messages.
 * @returns The password.
 * @throws {Error} When the file cannot be read or is empty.
 */
export async function readPasswordFile(path: string, flag: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`Cannot read ${flag} ${path}: ${(err as Error).message}`);
  }
  const secret = text.replace(/\r?\n$/, "");
  if (secret === "") throw new Error(`Empty password in ${flag} ${path}`);
  return secret;
}
