/**
 * A temporary directory for one test, removed afterwards whatever the test did.
 *
 * @module
 */

/**
 * Run `body` with a fresh temporary directory; remove it (and all in it) after.
 *
 * @param body The test.
 * @param prefix Prefix of the directory's name, to tell whose it is.
 */
export async function withTempDir(body: (dir: string) => Promise<void>, prefix?: string): Promise<void> {
  const dir = await Deno.makeTempDir(prefix === undefined ? {} : { prefix });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
