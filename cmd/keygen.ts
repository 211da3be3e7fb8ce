/**
 * `authchat keygen`: create the server's TLS certificate and key and its
 * sealing key pair, and print their fingerprints.
 *
 * @module
 */

import { generateServerIdentity, identityPaths } from "../lib/crypto/server_identity.ts";
import type { WrittenKey } from "../lib/crypto/server_identity.ts";

/** Flags of `authchat keygen`. */
export interface KeygenFlags {
  data: string;
  hostname?: string[];
  days: number;
  rsa?: boolean;
  force?: boolean;
}

/**
 * Format the table of written keys.
 *
 * @param keys What was written.
 * @returns Lines to print.
 */
export function describeKeys(keys: WrittenKey[]): string[] {
  const width = Math.max(...keys.map((k) => k.path.length));
  return keys.map((k) => `  ${k.path.padEnd(width)}  ${k.fingerprint}  ${k.description}`);
}

/**
 * Run keygen.
 *
 * @param flags Parsed flags.
 * @returns Exit code.
 */
export async function runKeygen(flags: KeygenFlags): Promise<number> {
  let keys: WrittenKey[];
  try {
    keys = await generateServerIdentity(identityPaths(flags.data), {
      hostnames: flags.hostname ?? [],
      days: flags.days,
      rsa: flags.rsa ?? false,
      force: flags.force ?? false,
    });
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    return 1;
  }
  console.log(`Wrote the server identity into ${flags.data}:`);
  for (const line of describeKeys(keys)) console.log(line);
  const cert = keys[0]!.fingerprint;
  const seal = keys[2]!.fingerprint;
  console.log("Clients can pin these instead of trusting on first use:");
  console.log(`  authchat client --tls --fingerprint ${cert}`);
  console.log(`  authchat client --fingerprint ${seal}`);
  return 0;
}
