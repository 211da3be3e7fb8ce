/**
 * The server's side of a UDP session handshake, sans I/O (docs/PROTOCOL.md
 * 20.5): once address validation has admitted an INIT, {@linkcode
 * ServerHandshake.respond} makes the ACCEPT datagrams (ephemeral X25519 share,
 * connection id, certificate, signature over the transcript) and the session
 * keys; {@linkcode ServerHandshake.receiveFinish} checks the client's FINISH
 * and hands out the established session.
 *
 * @module
 */

import {
  acceptSignedBytes,
  CONNECTION_ID_BYTES,
  decodeFinish,
  encodeAccept,
  initTranscriptBytes,
  RANDOM_BYTES,
  SHARE_BYTES,
} from "../codec/udp_session_datagram.ts";
import { constantTimeEqual } from "./constant_time.ts";
import { generateUdpEphemeral } from "./udp_ephemeral.ts";
import { transcriptHash } from "./udp_key_schedule.ts";
import type { RecordProtectionOptions } from "./udp_record_protection.ts";
import { DelegatedSigner } from "./udp_delegated_credential.ts";
import { signTranscript, type UdpSigningKey } from "./udp_server_signature.ts";
import { establish, type EstablishedSession } from "./udp_session_keys.ts";

/** The fields of an admitted INIT that the handshake uses. */
export interface AdmittedInit {
  /** The INIT's version byte (1). */
  version: number;
  /** 32 bytes. */
  clientRandom: Uint8Array;
  /** The client's ephemeral X25519 public key, 32 bytes. */
  clientShare: Uint8Array;
}

/** Why a FINISH was dropped. */
export type FinishDropReason =
  /** Not a well-formed FINISH. */
  | "malformed"
  /** Another connection's id. */
  | "wrong-connection"
  /** `verify_data` is wrong: not from the client that sent the INIT, or another transcript. */
  | "bad-finish"
  /** A FINISH after the handshake finished (a retransmission; harmless). */
  | "duplicate";

/** The outcome of {@linkcode ServerHandshake.receiveFinish}. */
export type FinishResult =
  | { ok: true; session: EstablishedSession }
  | { ok: false; reason: FinishDropReason };

/** The outcome of {@linkcode ServerHandshake.respond}. */
export type RespondResult =
  | { ok: true; handshake: ServerHandshake }
  /** The INIT's share is a low-order or unusable X25519 key, or a field has the wrong size or version. */
  | { ok: false; reason: "bad-init" };

/** Options of {@linkcode ServerHandshake.respond}. */
export interface RespondOptions {
  /** Record layer options (tests). */
  records?: RecordProtectionOptions;
  /** The clock a delegated credential is made and renewed by, Unix ms (tests; default `Date.now()`). */
  now?: number;
}

/**
 * One server-side handshake, from an admitted INIT to FINISH.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mintServerCertificate } from "./certificate.ts";
 * import { ClientHandshake } from "./udp_client_handshake.ts";
 * import { importUdpSigningKey } from "./udp_server_signature.ts";
 * import { ServerHandshake } from "./udp_server_handshake.ts";
 * const cert = await mintServerCertificate({ days: 1 });
 * const key = await importUdpSigningKey(cert.certPem, cert.keyPem);
 * const client = await ClientHandshake.start();
 * const responded = await ServerHandshake.respond(client.init, key);
 * assert(responded.ok);
 * let accepted;
 * for (const d of responded.handshake.acceptDatagrams) accepted = await client.receiveAccept(d);
 * assert(accepted?.kind === "accepted");
 * const finished = responded.handshake.receiveFinish(accepted.finish);
 * assert(finished.ok);
 * ```
 */
export class ServerHandshake {
  #accept: Uint8Array<ArrayBuffer>[];
  #session: EstablishedSession;
  #verifyData: Uint8Array<ArrayBuffer>;
  #finished = false;

  private constructor(
    accept: Uint8Array<ArrayBuffer>[],
    session: EstablishedSession,
    verifyData: Uint8Array<ArrayBuffer>,
  ) {
    this.#accept = accept;
    this.#session = session;
    this.#verifyData = verifyData;
  }

  /**
   * Answer an admitted INIT: a fresh ephemeral key, server random and connection id, the ACCEPT signed
   * with the server's key, and the session keys.
   *
   * @param init The admitted INIT's fields.
   * @param key The server's signing key: a {@linkcode DelegatedSigner} (a server's: Ed25519 under a
   *   delegated credential), or the certificate's key itself.
   * @param options Record layer options (tests).
   * @returns The handshake, or `bad-init` for an unusable INIT. Never throws on the INIT's content.
   */
  static async respond(
    init: AdmittedInit,
    key: UdpSigningKey | DelegatedSigner,
    options: RespondOptions = {},
  ): Promise<RespondResult> {
    if (
      init.version !== 1 || init.clientRandom.length !== RANDOM_BYTES ||
      init.clientShare.length !== SHARE_BYTES
    ) {
      return { ok: false, reason: "bad-init" };
    }
    const delegation = key instanceof DelegatedSigner ? await key.current(options.now ?? Date.now()) : null;
    const certificateKey = key instanceof DelegatedSigner ? key.key : key;
    const ephemeral = generateUdpEphemeral();
    const signedPart = {
      serverRandom: crypto.getRandomValues(new Uint8Array(RANDOM_BYTES)),
      serverShare: ephemeral.publicKey,
      connectionId: crypto.getRandomValues(new Uint8Array(CONNECTION_ID_BYTES)),
      algorithm: delegation ? "ed25519-delegated" as const : certificateKey.algorithm,
      certificate: certificateKey.certificate,
      ...(delegation ? { credential: delegation.credential } : {}),
    };
    const th = transcriptHash(
      initTranscriptBytes(init.version, init.clientRandom, init.clientShare),
      acceptSignedBytes(signedPart),
    );
    const established = establish({
      privateKey: ephemeral.privateKey,
      peerShare: new Uint8Array(init.clientShare),
      transcriptHash: th,
      connectionId: signedPart.connectionId,
      role: "server",
      ...(options.records ? { options: options.records } : {}),
    });
    if (established === null) return { ok: false, reason: "bad-init" };
    const signature = key instanceof DelegatedSigner
      ? key.sign(delegation!, th)
      : await signTranscript(certificateKey, th);
    const accept = encodeAccept({ ...signedPart, signature });
    return { ok: true, handshake: new ServerHandshake(accept, established.session, established.verifyData) };
  }

  /** The ACCEPT datagrams, to send now and again for a repeated INIT (copies). */
  get acceptDatagrams(): Uint8Array<ArrayBuffer>[] {
    return this.#accept.map((d) => d.slice());
  }

  /** A copy of the connection id. */
  get connectionId(): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.#session.connectionId);
  }

  /** Whether a valid FINISH has arrived. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * Check a FINISH.
   *
   * @param bytes One datagram, as received.
   * @returns The established session (once; a later valid FINISH is `duplicate`), or why it was dropped.
   */
  receiveFinish(bytes: Uint8Array): FinishResult {
    let finish;
    try {
      finish = decodeFinish(bytes);
    } catch {
      return { ok: false, reason: "malformed" };
    }
    if (!constantTimeEqual(finish.connectionId, this.#session.connectionId)) {
      return { ok: false, reason: "wrong-connection" };
    }
    if (!constantTimeEqual(finish.verifyData, this.#verifyData)) return { ok: false, reason: "bad-finish" };
    if (this.#finished) return { ok: false, reason: "duplicate" };
    this.#finished = true;
    return { ok: true, session: this.#session };
  }
}
