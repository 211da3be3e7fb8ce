/**
 * What a finished UDP handshake hands to the session above it, and the step
 * both sides' handshakes share: from the X25519 exchange and the transcript to
 * the record layer, the FINISH `verify_data` and the channel binding.
 *
 * @module
 */

import type { KeyObject } from "node:crypto";
import { udpSharedSecret } from "./udp_ephemeral.ts";
import { deriveHandshakeSecrets, finishVerifyData, UDP_CHANNEL_BINDING_TYPE } from "./udp_key_schedule.ts";
import { RecordProtection, type RecordProtectionOptions, type SessionRole } from "./udp_record_protection.ts";

/** An established session, from one side's point of view. */
export interface EstablishedSession {
  /** 8 bytes. */
  connectionId: Uint8Array<ArrayBuffer>;
  /** Seals and opens this session's RECORDs. */
  records: RecordProtection;
  /** SCRAM-SHA-256-PLUS channel binding type. */
  channelBindingType: typeof UDP_CHANNEL_BINDING_TYPE;
  /** SCRAM-SHA-256-PLUS channel binding data, 32 bytes, the same on both sides of one handshake. */
  channelBinding: Uint8Array<ArrayBuffer>;
}

/** The outcome of {@linkcode establish}. */
export interface Established {
  /** The session. */
  session: EstablishedSession;
  /** The FINISH `verify_data` of this transcript. */
  verifyData: Uint8Array<ArrayBuffer>;
}

/**
 * Run the X25519 exchange and the key schedule of one side, synchronously.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateUdpEphemeral } from "./udp_ephemeral.ts";
 * import { establish } from "./udp_session_keys.ts";
 * const a = generateUdpEphemeral();
 * const b = generateUdpEphemeral();
 * const th = new Uint8Array(32);
 * const cid = new Uint8Array(8);
 * const client = establish({ privateKey: a.privateKey, peerShare: b.publicKey, transcriptHash: th, connectionId: cid, role: "client" });
 * const server = establish({ privateKey: b.privateKey, peerShare: a.publicKey, transcriptHash: th, connectionId: cid, role: "server" });
 * assert(client!.session.channelBinding.toHex() === server!.session.channelBinding.toHex());
 * ```
 *
 * @param input Our ephemeral private key, the peer's share, the transcript hash, the connection id and our
 *   role; `rekeyInterval` for tests.
 * @returns The session and FINISH `verify_data`, or `null` when the peer's share is a low-order or
 *   otherwise unusable X25519 key.
 */
export function establish(input: {
  privateKey: KeyObject;
  peerShare: Uint8Array<ArrayBuffer>;
  transcriptHash: Uint8Array;
  connectionId: Uint8Array;
  role: SessionRole;
  options?: RecordProtectionOptions;
}): Established | null {
  const shared = udpSharedSecret(input.privateKey, input.peerShare);
  if (shared === null) return null;
  const secrets = deriveHandshakeSecrets(shared, input.transcriptHash);
  shared.fill(0);
  try {
    const records = new RecordProtection(
      { connectionId: input.connectionId, ...secrets },
      input.role,
      input.options,
    );
    return {
      session: {
        connectionId: new Uint8Array(input.connectionId),
        records,
        channelBindingType: UDP_CHANNEL_BINDING_TYPE,
        channelBinding: secrets.channelBinding,
      },
      verifyData: finishVerifyData(secrets.finishKey, input.transcriptHash),
    };
  } finally {
    secrets.clientTraffic.fill(0);
    secrets.serverTraffic.fill(0);
    secrets.finishKey.fill(0);
  }
}
