/**
 * The client side of SCRAM-SHA-256(-PLUS), sans I/O: it produces the
 * client-first and client-final messages and verifies the server's signature.
 * It refuses iteration counts outside 4096..10,000,000, refuses to drop
 * channel binding on TLS, and never reports success unless the server proved
 * it holds the verifier.
 *
 * @module
 */

import { encodeBase64 } from "../codec/base64.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import {
  CHANNEL_BINDING_TYPE,
  formatClientFinalWithoutProof,
  formatClientFirst,
  gs2Header,
  parseServerFinal,
  parseServerFirst,
} from "../codec/scram_messages.ts";
import type { CbindFlag, ChannelBindingType } from "../codec/scram_messages.ts";
import { constantTimeEqual } from "../crypto/constant_time.ts";
import { deriveKeys, hmac, saltedPassword, scramSessionKey, xor } from "../crypto/scram_math.ts";
import type { ScramHash, ScramKeys } from "../crypto/scram_math.ts";
import { MAX_ITERATIONS, MIN_ITERATIONS } from "../crypto/scram_verifier.ts";
import { hmacSha256 } from "../crypto/sha256.ts";
import type { ScramVerifier } from "../crypto/scram_verifier.ts";
import { saslPrep } from "./saslprep.ts";
import { SCRAM_SHA_256, SCRAM_SHA_256_PLUS } from "./scram_server.ts";

const encoder = new TextEncoder();

/**
 * Caches the keys derived from SaltedPassword (ClientKey, StoredKey, ServerKey) per password, salt and
 * iteration count, as RFC 5802 §5.1 lets a client do. It is keyed by an HMAC of them under a key of this
 * process, never by the password itself: every password tried (a wrong one, an old one) would otherwise stay
 * in memory as long as the cache, readable by whatever prints or dumps it.
 */
export type SaltedPasswordCache = Map<string, ScramKeys>;

/** Keys the cache's HMAC: random per process, so a cache key shown or dumped alone reveals nothing. */
const CACHE_KEY_SECRET = crypto.getRandomValues(new Uint8Array(32));

/** The cache key of a password, salt, iteration count and hash. */
async function cacheKey(
  password: string,
  salt: Uint8Array,
  iterations: number,
  hash: ScramHash,
): Promise<string> {
  const input = encoder.encode(`${hash}\0${iterations}\0${encodeBase64(salt)}\0${password}`);
  try {
    return encodeBase64(await hmacSha256(CACHE_KEY_SECRET, input));
  } finally {
    input.fill(0);
  }
}

/** Options of {@linkcode ScramClient}. */
export interface ScramClientOptions {
  /** User name as typed. */
  username: string;
  /** Password as typed. */
  password: string;
  /** Mechanisms the server offered in HELLO. */
  serverMechanisms: string[];
  /** Channel binding data this client saw (TLS: the server certificate's; a UDP session: the handshake's). */
  channelBinding?: Uint8Array<ArrayBuffer>;
  /** The type of `channelBinding` (default `tls-server-end-point`). */
  channelBindingType?: ChannelBindingType;
  /** Fixed client nonce (tests only). */
  nonce?: string;
  /** Hash (tests only). */
  hash?: ScramHash;
  /** Optional SaltedPassword cache. */
  cache?: SaltedPasswordCache;
}

function fail(code: "AUTH_FAILED" | "BAD_SCRAM" | "CHANNEL_BINDING", message: string): never {
  throw new ProtocolError(code, message);
}

/**
 * One client-side SCRAM exchange.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ScramClient } from "./scram_client.ts";
 * const client = new ScramClient({ username: "user", password: "pencil", serverMechanisms: ["SCRAM-SHA-256"], nonce: "abc" });
 * assert(client.first === "n,,n=user,r=abc");
 * ```
 */
export class ScramClient {
  #options: ScramClientOptions;
  #flag: CbindFlag;
  #mechanism: string;
  #password: string;
  #bare: string;
  #first: string;
  #nonce: string;
  #serverSignature: Uint8Array<ArrayBuffer> | null = null;
  #sessionKey: Uint8Array<ArrayBuffer> | null = null;
  #verifier: ScramVerifier | null = null;
  #verified = false;

  /**
   * Prepare an exchange; nothing is sent yet.
   *
   * @param options Credentials, the server's mechanisms and channel binding.
   * @throws {RangeError} When SASLprep refuses the name or password.
   */
  constructor(options: ScramClientOptions) {
    this.#options = options;
    const offered = options.serverMechanisms;
    if (options.channelBinding) {
      // Over TLS an authchat server always offers PLUS; a list without it was stripped by someone
      // in the middle, so the client refuses rather than fall back to an unbound exchange.
      if (!offered.includes(SCRAM_SHA_256_PLUS)) {
        fail(
          "CHANNEL_BINDING",
          "Server did not offer SCRAM-SHA-256-PLUS over a channel that binds: refusing a possible channel " +
            "binding downgrade",
        );
      }
      this.#flag = "p";
      this.#mechanism = SCRAM_SHA_256_PLUS;
    } else {
      this.#flag = "n";
      this.#mechanism = SCRAM_SHA_256;
      if (!offered.includes(SCRAM_SHA_256)) {
        fail("AUTH_FAILED", `Server offers no usable mechanism: ${offered.join(", ")}`);
      }
    }
    this.#password = saslPrep(options.password, { allowUnassigned: true });
    this.#nonce = options.nonce ?? encodeBase64(crypto.getRandomValues(new Uint8Array(24)));
    const bindingType = options.channelBindingType ?? CHANNEL_BINDING_TYPE;
    this.#first = formatClientFirst(saslPrep(options.username), {
      nonce: this.#nonce,
      flag: this.#flag,
      bindingType,
    });
    this.#bare = this.#first.slice(gs2Header(this.#flag, bindingType).length);
  }

  /** The mechanism chosen. */
  get mechanism(): string {
    return this.#mechanism;
  }

  /** Whether channel binding is in use. */
  get bound(): boolean {
    return this.#flag === "p";
  }

  /** The client-first-message. */
  get first(): string {
    return this.#first;
  }

  /**
   * Answer the server-first-message.
   *
   * @param serverFirstText The server-first-message.
   * @returns The client-final-message.
   * @throws {ProtocolError} `BAD_SCRAM` or `AUTH_FAILED` for a nonce that does not extend ours or a
   *   refused iteration count.
   */
  async final(serverFirstText: string): Promise<string> {
    const sf = parseServerFirst(serverFirstText);
    if (!sf.nonce.startsWith(this.#nonce) || sf.nonce.length <= this.#nonce.length) {
      fail("BAD_SCRAM", "Server nonce does not extend the client nonce");
    }
    if (sf.iterations < MIN_ITERATIONS || sf.iterations > MAX_ITERATIONS) {
      fail(
        "BAD_SCRAM",
        `Refusing iteration count: ${sf.iterations} is not within ${MIN_ITERATIONS}..${MAX_ITERATIONS}`,
      );
    }
    const hash = this.#options.hash ?? "SHA-256";
    const cache = this.#options.cache;
    const key = cache && await cacheKey(this.#password, sf.salt, sf.iterations, hash);
    let keys = key === undefined ? undefined : cache?.get(key);
    if (!keys) {
      const salted = await saltedPassword(this.#password, { salt: sf.salt, iterations: sf.iterations, hash });
      keys = await deriveKeys(salted, hash);
      salted.fill(0);
      if (key !== undefined) cache?.set(key, keys);
    }
    const binding = new Uint8Array([
      ...encoder.encode(gs2Header(this.#flag, this.#options.channelBindingType)),
      ...(this.#flag === "p" ? this.#options.channelBinding ?? [] : []),
    ]);
    const withoutProof = formatClientFinalWithoutProof(binding, sf.nonce);
    const authMessage = `${this.#bare},${serverFirstText},${withoutProof}`;
    const proof = xor(keys.clientKey, await hmac(keys.storedKey, authMessage, hash));
    this.#serverSignature = await hmac(keys.serverKey, authMessage, hash);
    this.#verifier = {
      iterations: sf.iterations,
      salt: sf.salt,
      storedKey: keys.storedKey,
      serverKey: keys.serverKey,
    };
    this.#sessionKey = await scramSessionKey(keys.clientKey, authMessage);
    return `${withoutProof},p=${encodeBase64(proof)}`;
  }

  /**
   * Check the server-final-message.
   *
   * @param serverFinalText The server-final-message.
   * @throws {ProtocolError} `AUTH_FAILED` when the server reports an error or its signature does
   *   not verify (it does not hold this account's verifier).
   */
  verify(serverFinalText: string): void {
    if (!this.#serverSignature) fail("BAD_SCRAM", "Server-final-message before client-final-message");
    const sf = parseServerFinal(serverFinalText);
    if (sf.error !== undefined) fail("AUTH_FAILED", `Server refused the proof: ${sf.error}`);
    if (!constantTimeEqual(sf.verifier, this.#serverSignature)) {
      fail(
        "AUTH_FAILED",
        "Server signature did not verify: this server does not know the account's verifier",
      );
    }
    this.#verified = true;
  }

  /**
   * After {@linkcode verify} succeeded: the account's verifier, as this exchange proved it (the server's
   * signature matched). It lets a client check the password again locally without keeping it.
   */
  get verifier(): ScramVerifier | null {
    return this.#verified ? this.#verifier : null;
  }

  /** After {@linkcode verify} succeeded: the key both ends now share (see `scramSessionKey`). */
  get sessionKey(): Uint8Array<ArrayBuffer> | null {
    return this.#verified ? this.#sessionKey : null;
  }
}
