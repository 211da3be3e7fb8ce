/**
 * How far issue 11's `udp_login_per_s ≥ 0.8 × tcp_login_per_s` can be met on the machine at hand.
 *
 * A UDP session login does all a TCP login does, and more: the issue requires an ephemeral X25519 exchange
 * of both sides and a server signature of every handshake (docs/PROTOCOL.md §20.5). When the login loops keep
 * the machine busy, logins a second go as the inverse of the CPU time a login costs (server and client
 * together), so even if nothing else of a UDP session cost anything, the ratio could not pass
 * `tcp / (tcp + public-key operations)`. This module times those operations with the code the server and
 * client run, and the CPU time each kind of login costs.
 *
 * @module
 */

import process from "node:process";
import { mintServerCertificate } from "../lib/crypto/certificate.ts";
import { DelegatedSigner, verifyAcceptSignature } from "../lib/crypto/udp_delegated_credential.ts";
import { generateUdpEphemeral, udpSharedSecret } from "../lib/crypto/udp_ephemeral.ts";
import { importUdpSigningKey } from "../lib/crypto/udp_server_signature.ts";
import { cpuSeconds } from "./_children.ts";
import type { LoopResult } from "./_measure.ts";

/**
 * The CPU time of one UDP login's public-key operations, both sides: two X25519 key pairs, two X25519
 * agreements, the server's Ed25519 signature of the transcript and the client's check of it (the client
 * checks a credential once per process, as in the loop: that check is not counted).
 *
 * @param logins How many logins' worth to time in each of five rounds.
 * @returns Milliseconds per login: the median round.
 * @throws {Error} When a signature made does not verify (the timing would be of the wrong work).
 */
export async function udpPublicKeyMs(logins = 200): Promise<number> {
  const cert = await mintServerCertificate({ days: 1 });
  const signer = new DelegatedSigner(await importUdpSigningKey(cert.certPem, cert.keyPem));
  const delegation = await signer.current(Date.now());
  const transcriptHash = crypto.getRandomValues(new Uint8Array(32));
  const login = async (): Promise<void> => {
    const client = generateUdpEphemeral();
    const server = generateUdpEphemeral();
    const shared = [
      udpSharedSecret(server.privateKey, client.publicKey),
      udpSharedSecret(client.privateKey, server.publicKey),
    ];
    if (shared.some((s) => s === null)) throw new Error("X25519 refused a key it made");
    const refusal = await verifyAcceptSignature({
      certificate: signer.key.certificate,
      algorithm: "ed25519-delegated",
      credential: delegation.credential,
      signature: signer.sign(delegation, transcriptHash),
      transcriptHash,
    });
    if (refusal !== null) throw new Error(`The signature timed did not verify: ${refusal}`);
  };
  // Compiled, and the credential checked once, before anything is timed.
  for (let i = 0; i < 50; i++) await login();
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const before = process.cpuUsage();
    for (let i = 0; i < logins; i++) await login();
    const used = process.cpuUsage(before);
    rounds.push((used.user + used.system) / 1000 / logins);
  }
  return rounds.sort((a, b) => a - b)[2]!;
}

/**
 * Run a login loop and measure what each login cost in CPU time, this process's and the server's.
 *
 * @param serverPid The server process.
 * @param loop The loop.
 * @returns The loop's result, and milliseconds of CPU per completed login (`NaN` without `/proc`).
 */
export async function withCpu(
  serverPid: number,
  loop: () => Promise<LoopResult>,
): Promise<{ result: LoopResult; cpuMs: number }> {
  const [before, serverBefore] = [process.cpuUsage(), await cpuSeconds(serverPid)];
  const result = await loop();
  const [used, serverAfter] = [process.cpuUsage(before), await cpuSeconds(serverPid)];
  const clientMs = (used.user + used.system) / 1000;
  return { result, cpuMs: (clientMs + (serverAfter - serverBefore) * 1000) / result.count };
}
