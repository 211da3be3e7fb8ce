/**
 * How far issue 11's `udp_login_per_s ≥ 0.8 × tcp_login_per_s` can be met on the machine at hand.
 *
 * A UDP session login does all a TCP login does, and more, which the issue requires (docs/PROTOCOL.md §20):
 * an ephemeral X25519 exchange of both sides and a server signature of every handshake; a cookie round trip
 * and a key-exchange round trip before the first message (`INIT`, `RETRY`, `INIT` again, `ACCEPT`: four
 * datagrams a TCP login does not send); keys from HKDF-SHA-256; and AES-256-GCM on every message. When the
 * login loops keep the machine busy, logins a second go as the inverse of the CPU time a login costs (server
 * and client together), so even if nothing else of a UDP session cost anything, the ratio could not pass
 * `tcp / (tcp + required)`. This module times that required work, each part at its least, with the code and
 * runtime the server and client use, and the CPU time each kind of login costs.
 *
 * @module
 */

import process from "node:process";
import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv, hkdfSync } from "node:crypto";
import { mintServerCertificate } from "../lib/crypto/certificate.ts";
import { DelegatedSigner, verifyAcceptSignature } from "../lib/crypto/udp_delegated_credential.ts";
import { generateUdpEphemeral, udpSharedSecret } from "../lib/crypto/udp_ephemeral.ts";
import { importUdpSigningKey } from "../lib/crypto/udp_server_signature.ts";
import { cpuSeconds } from "./_children.ts";
import type { LoopResult } from "./_measure.ts";

/** What issue 11 requires of a UDP session login beyond a TCP login, each part at its least, ms of CPU. */
export interface RequiredWork {
  /** Two X25519 key pairs and agreements, the server's Ed25519 signature and the client's check of it. */
  publicKey: number;
  /** One HKDF-SHA-256 per side: both directions' keys and IVs and the channel binding, 120 bytes. */
  keySchedule: number;
  /** The login's six messages (`HELLO`+`LOGIN`, `CHALLENGE`, `PROOF`, its answer, `CLOSE`, `BYE`) each
   * sealed and opened with AES-256-GCM. */
  records: number;
  /** The four datagrams of the cookie and key-exchange round trips, each sent and received. */
  datagrams: number;
  /** The sum. */
  total: number;
}

/**
 * Time the work a UDP session login requires beyond a TCP login: the median of five rounds, after a
 * warm-up. The client checks a credential once per process, as in the loop: that check is not counted.
 *
 * @param logins How many logins' worth each round times.
 * @returns Milliseconds per login, by part.
 * @throws {Error} When a signature made does not verify, or a record does not open (the timing would be of
 *   the wrong work).
 */
export async function udpRequiredMs(logins = 200): Promise<RequiredWork> {
  const cert = await mintServerCertificate({ days: 1 });
  const signer = new DelegatedSigner(await importUdpSigningKey(cert.certPem, cert.keyPem));
  const delegation = await signer.current(Date.now());
  const transcriptHash = crypto.getRandomValues(new Uint8Array(32));
  const publicKey = async (): Promise<void> => {
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
  const shared = crypto.getRandomValues(new Uint8Array(32));
  const keySchedule = (): void => {
    for (let side = 0; side < 2; side++) hkdfSync("sha256", shared, transcriptHash, "authchat bench", 120);
  };
  const key = crypto.getRandomValues(new Uint8Array(32));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const message = new Uint8Array(120).fill(0x7b);
  const records = (): void => {
    // AES-256-GCM through node:crypto's cipher objects, one each way per message: the least this runtime
    // offers (WebCrypto's is asynchronous and slower; the sessions' RecordProtection does this and more).
    for (let i = 0; i < 6; i++) {
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      const sealed = Buffer.concat([cipher.update(message), cipher.final()]);
      const decipher = createDecipheriv("aes-256-gcm", key, iv);
      decipher.setAuthTag(cipher.getAuthTag());
      const opened = Buffer.concat([decipher.update(sealed), decipher.final()]);
      if (opened.length !== message.length) throw new Error("A record sealed did not open");
    }
  };
  const datagrams = datagramTimer();
  try {
    const parts = {
      publicKey: await medianMs(logins, publicKey),
      keySchedule: await medianMs(logins, keySchedule),
      records: await medianMs(logins, records),
      datagrams: await medianMs(logins, () => datagrams.exchange(2)),
    };
    return { ...parts, total: parts.publicKey + parts.keySchedule + parts.records + parts.datagrams };
  } finally {
    datagrams.close();
  }
}

/** CPU milliseconds per call of `work`: the median of five rounds of `calls`, after a warm-up. */
async function medianMs(calls: number, work: () => unknown): Promise<number> {
  for (let i = 0; i < 50; i++) await work();
  const rounds: number[] = [];
  for (let round = 0; round < 5; round++) {
    const before = process.cpuUsage();
    for (let i = 0; i < calls; i++) await work();
    const used = process.cpuUsage(before);
    rounds.push((used.user + used.system) / 1000 / calls);
  }
  return rounds.sort((a, b) => a - b)[2]!;
}

/**
 * Two UDP sockets of this process on loopback, one echoing the other, each reading into a buffer of its own:
 * `exchange(n)` sends and receives `n` round trips, `2n` datagrams of the size of an `INIT` (1,200 bytes),
 * each one send and one receive.
 */
function datagramTimer(): { exchange(roundTrips: number): Promise<void>; close(): void } {
  const listen = () => Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const [a, b] = [listen(), listen()];
  const to = (s: Deno.DatagramConn) => ({
    transport: "udp" as const,
    hostname: "127.0.0.1",
    port: (s.addr as Deno.NetAddr).port,
  });
  const [toA, toB] = [to(a), to(b)];
  const [bufferA, bufferB] = [new Uint8Array(2048), new Uint8Array(2048)];
  const datagram = new Uint8Array(1200);
  const echo = (async () => {
    try {
      for (;;) {
        const [bytes] = await b.receive(bufferB);
        await b.send(bytes, toA);
      }
    } catch {
      // Closed.
    }
  })();
  return {
    async exchange(roundTrips: number): Promise<void> {
      for (let i = 0; i < roundTrips; i++) {
        await a.send(datagram, toB);
        await a.receive(bufferA);
      }
    },
    close(): void {
      a.close();
      b.close();
      void echo;
    },
  };
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
