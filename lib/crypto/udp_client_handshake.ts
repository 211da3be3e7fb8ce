/**
 * The client's side of a UDP session handshake, sans I/O (docs/PROTOCOL.md
 * 20.5): it makes the INIT's random and X25519 share, reassembles the ACCEPT
 * from its fragments, checks the server's signature against the certificate
 * that came with it, derives the session keys and makes the FINISH. Whether
 * the certificate is trusted (`--ca`, `--fingerprint`, known_hosts) is the
 * caller's decision, made before it sends the FINISH or anything else.
 *
 * @module
 */

import {
  type AcceptFragment,
  decodeAcceptBody,
  decodeAcceptFragment,
  encodeFinish,
  initTranscriptBytes,
  RANDOM_BYTES,
} from "../codec/udp_session_datagram.ts";
import { fingerprint } from "./fingerprint.ts";
import { generateUdpEphemeral, type UdpEphemeral } from "./udp_ephemeral.ts";
import { transcriptHash } from "./udp_key_schedule.ts";
import type { RecordProtectionOptions } from "./udp_record_protection.ts";
import { verifyAcceptSignature } from "./udp_delegated_credential.ts";
import { establish, type EstablishedSession } from "./udp_session_keys.ts";

/** The version byte this client puts in INIT. */
export const INIT_VERSION = 1;
/** How many ACCEPTs (by connection id and fragment count) are reassembled at once; the oldest is forgotten beyond. */
export const MAX_ACCEPT_GROUPS = 4;

/** Why an ACCEPT datagram was dropped. */
export type AcceptDropReason =
  /** Not a well-formed fragment, or a reassembled body that does not decode or names another connection id. */
  | "malformed"
  /** The certificate does not parse or holds a key of a kind not accepted. */
  | "bad-certificate"
  /** The signature algorithm is not the certificate key's. */
  | "algorithm-mismatch"
  /** The signature does not verify: not this server, or not this transcript. */
  | "bad-signature"
  /** A delegated credential that is malformed or not signed by the certificate's key for this certificate. */
  | "bad-credential"
  /** A delegated credential past its time, or valid for longer ahead than seven days. */
  | "expired-credential"
  /** The server's share is a low-order or unusable X25519 key. */
  | "bad-share"
  /** The handshake already accepted an ACCEPT (a retransmission, or another one). */
  | "already-accepted";

/** The server as the ACCEPT showed it: what the caller checks against its trust settings. */
export interface ServerCertificate {
  /** The certificate, DER. */
  certificate: Uint8Array<ArrayBuffer>;
  /** `SHA256:` fingerprint of the DER, as for TLS (PROTOCOL §11). */
  fingerprint: string;
}

/** The outcome of {@linkcode ClientHandshake.receiveAccept}. */
export type AcceptResult =
  /** A fragment was kept; more are needed. */
  | { kind: "pending" }
  | { kind: "dropped"; reason: AcceptDropReason }
  | {
    kind: "accepted";
    /** Check it before sending anything: the handshake proves only that the server holds its key. */
    server: ServerCertificate;
    /** The FINISH datagram to send (and resend until a RECORD from the server arrives). */
    finish: Uint8Array<ArrayBuffer>;
    session: EstablishedSession;
  };

/** Options of {@linkcode ClientHandshake.start}. */
export interface ClientHandshakeOptions {
  /** Record layer options (tests). */
  records?: RecordProtectionOptions;
}

interface Group {
  chunks: (Uint8Array<ArrayBuffer> | undefined)[];
}

/**
 * One client-side handshake.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClientHandshake } from "./udp_client_handshake.ts";
 * const client = await ClientHandshake.start();
 * assert(client.init.clientShare.length === 32 && client.init.version === 1);
 * const dropped = await client.receiveAccept(new Uint8Array([0xac, 1, 0x32]));
 * assert(dropped.kind === "dropped" && dropped.reason === "malformed");
 * ```
 */
export class ClientHandshake {
  #ephemeral: UdpEphemeral;
  #clientRandom: Uint8Array<ArrayBuffer>;
  #options: ClientHandshakeOptions;
  #groups = new Map<string, Group>();
  #accepted = false;

  private constructor(
    ephemeral: UdpEphemeral,
    clientRandom: Uint8Array<ArrayBuffer>,
    options: ClientHandshakeOptions,
  ) {
    this.#ephemeral = ephemeral;
    this.#clientRandom = clientRandom;
    this.#options = options;
  }

  /**
   * Begin a handshake: a fresh ephemeral X25519 key and client random.
   *
   * @param options Record layer options (tests).
   * @returns The handshake.
   */
  static start(options: ClientHandshakeOptions = {}): Promise<ClientHandshake> {
    return Promise.resolve(
      new ClientHandshake(
        generateUdpEphemeral(),
        crypto.getRandomValues(new Uint8Array(RANDOM_BYTES)),
        options,
      ),
    );
  }

  /** The INIT fields this handshake contributes (copies). */
  get init(): {
    version: number;
    clientRandom: Uint8Array<ArrayBuffer>;
    clientShare: Uint8Array<ArrayBuffer>;
  } {
    return {
      version: INIT_VERSION,
      clientRandom: this.#clientRandom.slice(),
      clientShare: this.#ephemeral.publicKey.slice(),
    };
  }

  /**
   * Take one ACCEPT datagram. Once a whole ACCEPT has arrived its signature is checked; a bad one is
   * forgotten (a retransmission may still complete the real one).
   *
   * @param bytes One datagram, as received.
   * @returns Pending, dropped with a reason, or accepted. Never throws on the datagram's content.
   */
  async receiveAccept(bytes: Uint8Array): Promise<AcceptResult> {
    if (this.#accepted) return { kind: "dropped", reason: "already-accepted" };
    let fragment: AcceptFragment;
    try {
      fragment = decodeAcceptFragment(bytes);
    } catch {
      return { kind: "dropped", reason: "malformed" };
    }
    const body = this.#collect(fragment);
    if (body === null) return { kind: "pending" };
    let accept;
    try {
      accept = decodeAcceptBody(body);
    } catch {
      return { kind: "dropped", reason: "malformed" };
    }
    if (accept.connectionId.toHex() !== fragment.connectionId.toHex()) {
      return { kind: "dropped", reason: "malformed" };
    }
    const init = this.init;
    const th = transcriptHash(
      initTranscriptBytes(init.version, init.clientRandom, init.clientShare),
      accept.signedBytes,
    );
    const refusal = await verifyAcceptSignature({ ...accept, transcriptHash: th });
    if (refusal !== null) return { kind: "dropped", reason: refusal };
    const established = establish({
      privateKey: this.#ephemeral.privateKey,
      peerShare: accept.serverShare,
      transcriptHash: th,
      connectionId: accept.connectionId,
      role: "client",
      ...(this.#options.records ? { options: this.#options.records } : {}),
    });
    if (established === null) return { kind: "dropped", reason: "bad-share" };
    // Another ACCEPT may have completed while this one was being checked.
    if (this.#accepted) return { kind: "dropped", reason: "already-accepted" };
    this.#accepted = true;
    this.#groups.clear();
    return {
      kind: "accepted",
      server: { certificate: accept.certificate, fingerprint: await fingerprint(accept.certificate) },
      finish: encodeFinish(accept.connectionId, established.verifyData),
      session: established.session,
    };
  }

  /** Keep a fragment; the joined body once every fragment of its ACCEPT is in, else `null`. */
  #collect(fragment: AcceptFragment): Uint8Array<ArrayBuffer> | null {
    // Keyed by count too: a fragment naming another count (forged, or damaged in transit) starts a group
    // of its own instead of spoiling the genuine one.
    const id = `${fragment.connectionId.toHex()}/${fragment.count}`;
    let group = this.#groups.get(id);
    if (group === undefined) {
      if (this.#groups.size >= MAX_ACCEPT_GROUPS) {
        this.#groups.delete(this.#groups.keys().next().value!);
      }
      group = { chunks: new Array(fragment.count).fill(undefined) };
      this.#groups.set(id, group);
    }
    // The first copy of a fragment stays: the signature decides whether the whole is genuine.
    group.chunks[fragment.index] ??= fragment.chunk;
    if (group.chunks.some((c) => c === undefined)) return null;
    this.#groups.delete(id);
    const chunks = group.chunks as Uint8Array<ArrayBuffer>[];
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}
