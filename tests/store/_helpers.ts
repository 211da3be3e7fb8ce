/**
 * Shared helpers of the store tests: a temporary directory per test, and a
 * full SCRAM login against a stored verifier string.
 *
 * @module
 */

import { join } from "node:path";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { ScramServer } from "../../lib/auth/scram_server.ts";
import { parseVerifier } from "../../lib/crypto/scram_verifier.ts";

/** Run `fn` with a fresh temporary directory and the path of a database file in it; remove it after. */
export async function withTempDir(fn: (dir: string, dbFile: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "authchat-store-" });
  try {
    await fn(dir, join(dir, "data", "authchat.db"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Log in with ScramClient and ScramServer against a stored verifier.
 *
 * @throws {ProtocolError} `AUTH_FAILED` when the password does not match.
 */
export async function scramLogin(verifier: string, username: string, password: string): Promise<void> {
  const server = new ScramServer();
  const client = new ScramClient({ username, password, serverMechanisms: server.mechanisms });
  const exchange = server.begin(server.parseFirst(client.mechanism, client.first), parseVerifier(verifier));
  const serverFinal = await exchange.finish(await client.final(exchange.serverFirst));
  client.verify(serverFinal);
}

/** Every file of a directory tree, as bytes. */
export async function allFileBytes(dir: string): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await allFileBytes(path));
    else out.push(await Deno.readFile(path));
  }
  return out;
}
