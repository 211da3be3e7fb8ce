/**
 * The server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677),
 * sans I/O. The caller parses the client-first-message, looks the user up, and
 * begins an exchange with the real verifier or, for an unknown user, with a
 * mock verifier that behaves the same in every observable way.
 *
 * @module
 */

import { ProtocolError } from "../codec/protocol_error.ts";
import {
  CHANNEL_BINDING_TYPE,
  formatServerFirst,
  parseClientFinal,
  parseClientFirst,
} from "../codec/scram_messages.ts";
import type { ChannelBindingType, ClientFirst } from "../codec/scram_messages.ts";
import { encodeBase64 } from "../codec/base64.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { digest, hmac, scramSessionKey, xor } from "../crypto/scram_math.ts";
import type { ScramHash } from "../crypto/scram_math.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
import { SALT_BYTES } from "../crypto/scram_verifier.ts";

/** The plain mechanism. */
export const SCRAM_SHA_256 = "SCRAM-SHA-256";
/** The channel-bound mechanism, offered on TLS. */
export const SCRAM_SHA_256_PLUS = "SCRAM-SHA-256-PLUS";
/** Random bytes in a server nonce. */
export const SERVER_NONCE_BYTES = 24;

const encoder = new TextEncoder();

/** Options of {@linkcode ScramServer}. */
export interface ScramServerOptions {
  /** Channel binding data of this connection; set on TLS and UDP sessions, enables the PLUS mechanism. */
  channelBinding?: Uint8Array<ArrayBuffer>;
  /** The type of `channelBinding` (default `tls-server-end-point`); a client naming another is refused. */
  channelBindingType?: ChannelBindingType;
  /** Hash (tests only: the RFC 5802 example uses SHA-1). */
  hash?: ScramHash;
  /** Fixed server nonce (tests only). */
  serverNonce?: string;
}

function channelError(message: string, scram: string): never {
  throw new ProtocolError("CHANNEL_BINDING", message, { scram });
}

/**
 * Builds SCRAM exchanges for one connection.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScramServer } from "./scram_server.ts";
 * const server = new ScramServer();
 * const first = server.parseFirst("SCRAM-SHA-256", "n,,n=alice,r=abc");
 * assert(first.username === "alice");
 * ```
 */
export class ScramServer {
  #options: ScramServerOptions;

  /**
   * Make a server for one connection.
   *
   * @param options Channel binding data and test hooks.
   */
  constructor(options: ScramServerOptions = {}) {
    this.#options = options;
  }

  /** Mechanisms offered on this connection, best first. */
  get mechanisms(): string[] {
    return this.#options.channelBinding ? [SCRAM_SHA_256_PLUS, SCRAM_SHA_256] : [SCRAM_SHA_256];
  }

  /**
   * Parse a client-first-message and check its channel binding flag against the mechanism.
   *
   * @param mechanism The mechanism the client chose.
   * @param text The client-first-message.
   * @returns The parsed message.
   * @throws {ProtocolError} `UNSUPPORTED_MECHANISM`, `BAD_SCRAM` or `CHANNEL_BINDING`.
   */
  parseFirst(mechanism: string, text: string): ClientFirst {
    if (!this.mechanisms.includes(mechanism)) {
      throw new ProtocolError(
        "UNSUPPORTED_MECHANISM",
        `Unsupported mechanism: ${JSON.stringify(mechanism.slice(0, 32))} (offered: ${
          this.mechanisms.join(", ")
        })`,
      );
    }
    const first = parseClientFirst(text);
    const bindingHere = this.#options.channelBinding !== undefined;
    if (mechanism === SCRAM_SHA_256_PLUS) {
      if (first.cbindFlag !== "p") {
        channelError(`Channel binding required: ${SCRAM_SHA_256_PLUS} needs the p= flag`, "other-error");
      }
      const type = this.#options.channelBindingType ?? CHANNEL_BINDING_TYPE;
      if (first.cbName !== type) {
        channelError(
          `Unsupported channel binding type: only ${type} on this transport`,
          "unsupported-channel-binding-type",
        );
      }
    } else if (first.cbindFlag === "p") {
      channelError(
        bindingHere
          ? `Channel binding needs the ${SCRAM_SHA_256_PLUS} mechanism`
          : "Channel binding not supported: this transport is not TLS or a UDP session",
        "channel-binding-not-supported",
      );
    } else if (first.cbindFlag === "y" && bindingHere) {
      channelError(
        "Channel binding downgrade: the server supports channel binding but the client was told it does not",
        "server-does-support-channel-binding",
      );
    }
    return first;
  }

  /**
   * Begin an exchange for a parsed client-first-message.
   *
   * @param first From {@linkcode ScramServer.parseFirst}.
   * @param verifier The account's verifier, or a mock one for an unknown user.
   * @param options `mock: true` makes the exchange fail whatever the proof.
   * @returns The exchange; send its `serverFirst`.
   */
  begin(first: ClientFirst, verifier: ScramVerifier, options: { mock?: boolean } = {}): ScramServerExchange {
    const serverNonce = this.#options.serverNonce ??
      encodeBase64(crypto.getRandomValues(new Uint8Array(SERVER_NONCE_BYTES)));
    const nonce = first.nonce + serverNonce;
    const serverFirst = formatServerFirst(nonce, { salt: verifier.salt, iterations: verifier.iterations });
    const expectedBinding = new Uint8Array([
      ...encoder.encode(first.gs2Header),
      ...(first.cbindFlag === "p" ? this.#options.channelBinding ?? new Uint8Array() : []),
    ]);
    return new ScramServerExchange({
      first,
      serverFirst,
      nonce,
      verifier,
      expectedBinding,
      mock: options.mock ?? false,
      hash: this.#options.hash ?? "SHA-256",
    });
  }
}

interface ExchangeState {
  first: ClientFirst;
  serverFirst: string;
  nonce: string;
  verifier: ScramVerifier;
  expectedBinding: Uint8Array<ArrayBuffer>;
  mock: boolean;
  hash: ScramHash;
}

/** One SCRAM exchange after the server-first-message; finishes exactly once. */
export class ScramServerExchange {
  #state: ExchangeState;
  #finished = false;
  #sessionKey: Uint8Array<ArrayBuffer> | null = null;

  /**
   * Use {@linkcode ScramServer.begin} instead.
   *
   * @param state The exchange's state.
   */
  constructor(state: ExchangeState) {
    this.#state = state;
  }

  /** The server-first-message to send. */
  get serverFirst(): string {
    return this.#state.serverFirst;
  }

  /** The user name from the client-first-message (not yet prepared). */
  get username(): string {
    return this.#state.first.username;
  }

  /**
   * Check a client-final-message.
   *
   * @param text The client-final-message.
   * @returns The server-final-message (`v=…`) on success.
   * @throws {ProtocolError} `BAD_SCRAM` (malformed), `CHANNEL_BINDING` (binding mismatch) or
   *   `AUTH_FAILED` (wrong nonce, wrong proof, unknown user, or the exchange already finished).
   */
  async finish(text: string): Promise<string> {
    if (this.#finished) {
      throw new ProtocolError("AUTH_FAILED", "Authentication failed: this exchange is already finished", {
        scram: "other-error",
      });
    }
    this.#finished = true;
    const s = this.#state;
    const final = parseClientFinal(text);
    if (!constantTimeEqual(final.channelBinding, s.expectedBinding)) {
      channelError(
        "Channel bindings do not match: the TLS channel differs from the one the client sees",
        "channel-bindings-dont-match",
      );
    }
    if (final.nonce !== s.nonce) {
      throw new ProtocolError("AUTH_FAILED", "Authentication failed: nonce does not match this exchange", {
        scram: "other-error",
      });
    }
    const authMessage = `${s.first.bare},${s.serverFirst},${final.withoutProof}`;
    const clientSignature = await hmac(s.verifier.storedKey, authMessage, s.hash);
    const proof = final.proof.length === clientSignature.length
      ? final.proof
      : new Uint8Array(clientSignature.length);
    const storedKey = await digest(xor(proof, clientSignature), s.hash);
    const match = constantTimeEqual(storedKey, s.verifier.storedKey);
    if (!match || s.mock || final.proof.length !== clientSignature.length) {
      throw new ProtocolError("AUTH_FAILED", "Authentication failed: wrong user name or password", {
        scram: "invalid-proof",
      });
    }
    const serverSignature = await hmac(s.verifier.serverKey, authMessage, s.hash);
    this.#sessionKey = await scramSessionKey(xor(proof, clientSignature), authMessage);
    return `v=${encodeBase64(serverSignature)}`;
  }

  /** After a successful {@linkcode finish}: the key both ends now share (see `scramSessionKey`). */
  get sessionKey(): Uint8Array<ArrayBuffer> | null {
    return this.#sessionKey;
  }
}

/**
 * The verifier shown for a user that does not exist: salt and keys derived
 * from a server secret and the name, so the same name always gets the same
 * salt, with the iteration count real accounts get. One HMAC: its first 16
 * bytes are the salt, and the whole of it the StoredKey no proof matches (the
 * exchange fails anyway); the ServerKey is never used.
 *
 * @param secret The server's mock secret.
 * @param nameKey The lower-cased user name.
 * @param iterations The configured iteration count.
 * @returns A verifier no password matches.
 */
export async function mockVerifier(
  secret: Uint8Array<ArrayBuffer>,
  nameKey: string,
  iterations: number,
): Promise<ScramVerifier> {
  const mac = await hmac(secret, `authchat-mock/2\0${nameKey}`);
  return { iterations, salt: mac.slice(0, SALT_BYTES), storedKey: mac, serverKey: new Uint8Array(32) };
}
