/**
 * The server's UDP sessions before and around the session engine (docs/PROTOCOL.md §20), sans I/O: the
 * caller hands in each `INIT`, `FINISH` and `RECORD` with its source and the time, and sends what comes
 * back; established sessions come out as byte streams the server serves like TCP connections.
 *
 * - `INIT` → {@linkcode UdpAdmission} (stateless: a `RETRY`, a drop, or admission) with a
 *   {@linkcode PuzzleDifficulty} fed with the load; admitted → {@linkcode ServerHandshake.respond}, kept as
 *   a half-open session keyed by source address, port and `client_random`. A repeated `INIT` sends the same
 *   `ACCEPT` again, within the session's {@linkcode AmplificationBudget} (what would exceed it waits for
 *   more bytes from the source). Half-open sessions are bounded in number, in all and per source address,
 *   and expire; at a bound a new admission is dropped (`half_open_full`, `half_open_per_address`) rather
 *   than the table growing.
 * - `FINISH` → the half-open session by connection id → established: a stream over its records, whose
 *   datagrams go only to the address and port its `INIT` was validated at (a session never moves).
 * - `RECORD` → the established session by connection id; an unknown id is dropped, never answered.
 *
 * Every drop is counted by stage and reason (udp_session_stats.ts). Nothing is allocated for a datagram
 * that is not admitted, and nothing but a `RETRY` is ever sent to a source that has not proved it receives.
 *
 * @module
 */

import { sourceKey } from "../auth/rate_limiter.ts";
import { INIT_TYPE } from "../codec/udp_init.ts";
import { CONNECTION_ID_BYTES, FINISH_TYPE, RECORD_TYPE } from "../codec/udp_session_datagram.ts";
import type { SourceAddress, UdpCookies } from "../crypto/udp_cookie.ts";
import type { RecordProtection, RecordProtectionOptions } from "../crypto/udp_record_protection.ts";
import { ServerHandshake } from "../crypto/udp_server_handshake.ts";
import type { DelegatedSigner } from "../crypto/udp_delegated_credential.ts";
import type { UdpSigningKey } from "../crypto/udp_server_signature.ts";
import type { ByteStream } from "../transport/byte_stream.ts";
import { HandshakeRate } from "./_handshake_rate.ts";
import { AmplificationBudget } from "./amplification_budget.ts";
import { PuzzleDifficulty, type PuzzleDifficultyOptions } from "./puzzle_difficulty.ts";
import { UdpAdmission } from "./udp_admission.ts";
import type { Outgoing } from "./udp_rendezvous.ts";
import {
  copyUdpSessionStats,
  emptyUdpSessionStats,
  type FinishDrop,
  RECORD_DROP_REASONS,
  type RecordDrop,
  type SessionEnd,
  type UdpSessionStats,
} from "./udp_session_stats.ts";

/** How long a half-open session waits for its `FINISH` (the life of a cookie, §20.2). */
export const DEFAULT_HALF_OPEN_MS = 20_000;

/**
 * Most half-open sessions of one source address by default: `max_unauthenticated_per_ip`'s default, the
 * bound a TLS handshake in progress counts against.
 */
export const DEFAULT_MAX_HALF_OPEN_PER_ADDRESS = 32;

/** What the sessions need of a session's stream (`UdpSessionStream` has it). */
export interface UdpSessionStreamLike extends ByteStream {
  /**
   * Close the stream: CLOSE once what was written is acknowledged or the linger is over.
   *
   * @param options `lingerMs`: longest linger from now (0: CLOSE at once).
   */
  close(options?: { lingerMs?: number }): void;
  /**
   * Take one `RECORD` of this session.
   *
   * @returns `accepted` when it opened, else why it was dropped.
   */
  receive(datagram: Uint8Array): string;
  /** Settles when the stream is over, with why. */
  readonly ended: Promise<SessionEnd>;
  /** The stream's own counters: authenticated packets it ignored (`bad_packet`), read when it ends. */
  readonly stats?: { drops: { bad_packet?: number } };
}

/** What {@linkcode UdpSessionsOptions.openStream} is given. */
export interface OpenStreamInput {
  /** The session's record layer. */
  records: RecordProtection;
  /** Sends one datagram to the session's peer, at the address and port its `INIT` was validated at. */
  send(datagram: Uint8Array<ArrayBuffer>): void;
}

/** An established session, handed to {@linkcode UdpSessionsOptions.onEstablished}. */
export interface UdpEstablished {
  /** The session's byte stream. */
  stream: UdpSessionStreamLike;
  /** The address its `FINISH` came from. */
  peerAddress: string;
  /** The port its `FINISH` came from. */
  peerPort: number;
  /** SCRAM channel binding type. */
  channelBindingType: "authchat-udp-exporter";
  /** SCRAM channel binding data (§20.9). */
  channelBinding: Uint8Array<ArrayBuffer>;
}

/** What {@linkcode UdpSessions} is built from. */
export interface UdpSessionsOptions {
  /** Cookie minter and verifier. */
  cookies: UdpCookies;
  /**
   * What signs handshakes: a {@linkcode DelegatedSigner} (Ed25519 under a credential of the certificate's
   * key, as a server runs), or the certificate's key itself.
   */
  signingKey: UdpSigningKey | DelegatedSigner;
  /** Thresholds of the proof-of-work curve (`udp_handshake_threshold`, `udp_half_open_threshold`). */
  difficulty?: PuzzleDifficultyOptions;
  /** Most half-open sessions at once (default 4 × the half-open threshold). */
  maxHalfOpen?: number;
  /**
   * Most half-open sessions of one source address (default {@linkcode DEFAULT_MAX_HALF_OPEN_PER_ADDRESS}), so
   * that one address that receives cannot take the whole table.
   */
  maxHalfOpenPerAddress?: number;
  /** How long a half-open session waits for its `FINISH`, ms (default {@linkcode DEFAULT_HALF_OPEN_MS}). */
  halfOpenMs?: number;
  /** Makes the stream of an established session. */
  openStream(input: OpenStreamInput): UdpSessionStreamLike;
  /** Sends a datagram of an established session (its stream's sends). */
  transmit(out: Outgoing): void;
  /** A session is established: serve it. */
  onEstablished(session: UdpEstablished): void;
  /** Record layer options (tests). */
  records?: RecordProtectionOptions;
}

interface HalfOpen {
  key: string;
  hostname: string;
  port: number;
  expiresAt: number;
  budget: AmplificationBudget;
  /** `null` while the key exchange runs. */
  handshake: ServerHandshake | null;
  cid: string | null;
  /** `ACCEPT` datagrams the amplification bound holds back. */
  unsent: Uint8Array<ArrayBuffer>[];
}

interface Established {
  hostname: string;
  port: number;
  stream: UdpSessionStreamLike;
  /** Kept to tell a retransmitted `FINISH` (`duplicate`) from a forged one. */
  handshake: ServerHandshake;
}

/**
 * Whether a datagram is one of the UDP session's types the server receives (`INIT`, `FINISH`, `RECORD`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSessionDatagram } from "./udp_sessions.ts";
 * assert(isSessionDatagram(new Uint8Array([0xac, 0x01, 0x34])));
 * assert(!isSessionDatagram(new Uint8Array([0xac, 0x01, 0x31])));
 * ```
 *
 * @param bytes The datagram.
 * @returns True for `AC 01` followed by `0x30`, `0x33` or `0x34`.
 */
export function isSessionDatagram(bytes: Uint8Array): boolean {
  if (bytes.length < 3 || bytes[0] !== 0xac || bytes[1] !== 0x01) return false;
  return bytes[2] === INIT_TYPE || bytes[2] === FINISH_TYPE || bytes[2] === RECORD_TYPE;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** The connection id of a `FINISH` or `RECORD` as hex, or `null` when the datagram is too short to hold one. */
function connectionIdOf(bytes: Uint8Array): string | null {
  if (bytes.length < 3 + CONNECTION_ID_BYTES) return null;
  let hex = "";
  for (let i = 3; i < 3 + CONNECTION_ID_BYTES; i++) hex += HEX[bytes[i]!];
  return hex;
}

function recordDrop(reason: string): RecordDrop {
  const normalized = reason.replaceAll("-", "_") as RecordDrop;
  return (RECORD_DROP_REASONS as readonly string[]).includes(normalized) ? normalized : "malformed";
}

/**
 * The server's UDP sessions.
 *
 * @example
 * ```ts ignore
 * const sessions = new UdpSessions({ cookies, signingKey, openStream, transmit, onEstablished });
 * for (const out of await sessions.receive(datagram, source, Date.now())) send(out);
 * ```
 */
export class UdpSessions {
  #admission: UdpAdmission;
  #difficulty: PuzzleDifficulty;
  #rate = new HandshakeRate();
  #key: UdpSigningKey | DelegatedSigner;
  #maxHalfOpen: number;
  #maxPerAddress: number;
  #halfOpenMs: number;
  #options: UdpSessionsOptions;
  /** Half-open sessions by source and `client_random`, oldest first. */
  #byKey = new Map<string, HalfOpen>();
  /** The same, by connection id once the key exchange is done. */
  #byCid = new Map<string, HalfOpen>();
  /** How many half-open sessions each source address has (an address is here only while it has some). */
  #perAddress = new Map<string, number>();
  #established = new Map<string, Established>();
  #stats = emptyUdpSessionStats();
  #stopping = false;

  /**
   * Make the sessions.
   *
   * @param options Cookies, signing key, limits and the callbacks to the server.
   * @throws {RangeError} For a bound that is not a positive integer or a curve option out of range.
   */
  constructor(options: UdpSessionsOptions) {
    this.#options = options;
    this.#key = options.signingKey;
    this.#difficulty = new PuzzleDifficulty(options.difficulty);
    this.#admission = new UdpAdmission({ cookies: options.cookies, difficulty: this.#difficulty });
    this.#maxHalfOpen = options.maxHalfOpen ?? 4 * (options.difficulty?.halfOpen ?? 1000);
    this.#maxPerAddress = options.maxHalfOpenPerAddress ?? DEFAULT_MAX_HALF_OPEN_PER_ADDRESS;
    this.#halfOpenMs = options.halfOpenMs ?? DEFAULT_HALF_OPEN_MS;
    if (!Number.isSafeInteger(this.#maxHalfOpen) || this.#maxHalfOpen < 1) {
      throw new RangeError(`Invalid maxHalfOpen: ${this.#maxHalfOpen}`);
    }
    if (!Number.isSafeInteger(this.#maxPerAddress) || this.#maxPerAddress < 1) {
      throw new RangeError(`Invalid maxHalfOpenPerAddress: ${this.#maxPerAddress}`);
    }
    if (!(this.#halfOpenMs > 0)) throw new RangeError(`Invalid halfOpenMs: ${this.#halfOpenMs}`);
  }

  /** The counters (a copy). */
  get stats(): UdpSessionStats {
    const stats = copyUdpSessionStats(this.#stats);
    stats.halfOpen = this.#byKey.size;
    stats.established = this.#established.size;
    stats.difficulty = this.#difficulty.current();
    return stats;
  }

  /**
   * Take one datagram of type `INIT`, `FINISH` or `RECORD` (see {@linkcode isSessionDatagram}).
   *
   * @param datagram The bytes; read before the first await, so the caller may reuse its buffer after
   *   this returns its promise.
   * @param source Where it came from.
   * @param now Milliseconds (the caller's clock).
   * @returns The datagrams to send now (a `RETRY`, `ACCEPT`s). Never rejects.
   */
  async receive(datagram: Uint8Array, source: SourceAddress, now: number): Promise<Outgoing[]> {
    try {
      switch (datagram[2]) {
        case INIT_TYPE:
          return await this.#init(datagram, source, now);
        case FINISH_TYPE:
          return this.#finish(datagram, source, now);
        case RECORD_TYPE:
          return this.#record(datagram, source);
      }
    } catch {
      this.#stats.init.internal++;
    }
    return [];
  }

  /**
   * Forget half-open sessions whose `FINISH` did not come in time (also done at each `INIT` and `FINISH`).
   *
   * @param now Milliseconds.
   */
  expire(now: number): void {
    // Every half-open session lives as long, so the oldest come first in the map.
    for (const entry of this.#byKey.values()) {
      if (entry.expiresAt > now) break;
      this.#forgetHalfOpen(entry);
      this.#stats.halfOpenExpired++;
    }
  }

  /**
   * Stop: no new session from now on, and the half-open ones are forgotten. Established sessions end as
   * their server sessions do (BYE, then the stream closes).
   */
  stop(): void {
    this.#stopping = true;
    this.#byKey.clear();
    this.#byCid.clear();
    this.#perAddress.clear();
  }

  /**
   * Settles once every established session's stream has ended (its last bytes acknowledged, or given up).
   *
   * @returns A promise that never rejects.
   */
  async drained(): Promise<void> {
    await Promise.allSettled([...this.#established.values()].map((e) => e.stream.ended));
  }

  /**
   * End every stream still open at once (after the shutdown's grace): each sends its CLOSE now rather than
   * lingering on for a peer that does not acknowledge, so no session, timer or send outlives the server.
   *
   * @returns Settles once every stream has ended; never rejects.
   */
  async closeAll(): Promise<void> {
    for (const entry of this.#established.values()) {
      try {
        entry.stream.close({ lingerMs: 0 });
      } catch {
        // Already closed.
      }
    }
    await this.drained();
  }

  async #init(datagram: Uint8Array, source: SourceAddress, now: number): Promise<Outgoing[]> {
    const size = datagram.length;
    if (this.#stopping) {
      this.#stats.init.stopping++;
      return [];
    }
    this.expire(now);
    this.#difficulty.observe({ handshakesPerSecond: this.#rate.perSecond(now), halfOpen: this.#byKey.size });
    const decision = await this.#admission.decide(datagram, source);
    if (decision.kind === "drop") {
      this.#stats.init[decision.reason]++;
      return [];
    }
    this.#rate.add(now);
    if (decision.kind === "retry") {
      this.#stats.retries[decision.cause]++;
      return [{ ...peer(source), bytes: decision.bytes }];
    }
    const { init } = decision;
    const key = `${source.hostname}|${source.port}|${init.clientRandom.toHex()}`;
    const existing = this.#byKey.get(key);
    if (existing !== undefined) {
      existing.budget.received(size);
      if (existing.handshake !== null) existing.unsent = existing.handshake.acceptDatagrams;
      return this.#flush(existing, true);
    }
    if (this.#stopping || this.#byKey.size >= this.#maxHalfOpen) {
      this.#stats.init[this.#stopping ? "stopping" : "half_open_full"]++;
      return [];
    }
    // As a TLS handshake in progress counts against its address's cap: without it, one address that
    // receives could hold every place in the table (new ports, new client_randoms) and keep others out.
    // By the registry's key: an IPv6 /64 counts as one address, as for its caps.
    const address = sourceKey(source.hostname);
    const ofAddress = this.#perAddress.get(address) ?? 0;
    if (ofAddress >= this.#maxPerAddress) {
      this.#stats.init.half_open_per_address++;
      return [];
    }
    const entry: HalfOpen = {
      key,
      ...peer(source),
      expiresAt: now + this.#halfOpenMs,
      budget: new AmplificationBudget(),
      handshake: null,
      cid: null,
      unsent: [],
    };
    entry.budget.received(size);
    this.#byKey.set(key, entry);
    this.#perAddress.set(address, ofAddress + 1);
    this.#stats.admitted++;
    const responded = await ServerHandshake.respond(
      init,
      this.#key,
      this.#options.records ? { records: this.#options.records } : {},
    );
    // Expired, or the server stopped, while the key exchange ran.
    if (this.#byKey.get(key) !== entry) return [];
    if (!responded.ok) {
      this.#forgetHalfOpen(entry);
      this.#stats.init.bad_init++;
      return [];
    }
    entry.handshake = responded.handshake;
    entry.cid = responded.handshake.connectionId.toHex();
    this.#byCid.set(entry.cid, entry);
    entry.unsent = responded.handshake.acceptDatagrams;
    return this.#flush(entry, true);
  }

  /** Send what the amplification bound allows of a half-open session's waiting `ACCEPT`s. */
  #flush(entry: HalfOpen, counted: boolean): Outgoing[] {
    const out: Outgoing[] = [];
    while (entry.unsent.length > 0 && entry.budget.canSend(entry.unsent[0]!.length)) {
      const bytes = entry.unsent.shift()!;
      entry.budget.sent(bytes.length);
      out.push({ hostname: entry.hostname, port: entry.port, bytes });
      this.#stats.acceptsSent++;
    }
    if (counted) this.#stats.acceptsDeferred += entry.unsent.length;
    return out;
  }

  #finish(datagram: Uint8Array, source: SourceAddress, now: number): Outgoing[] {
    const cid = connectionIdOf(datagram);
    if (cid === null) return this.#dropFinish("malformed");
    this.expire(now);
    const entry = this.#byCid.get(cid);
    if (entry === undefined || entry.handshake === null) {
      const established = this.#established.get(cid);
      if (established === undefined) return this.#dropFinish("unknown_connection");
      const again = established.handshake.receiveFinish(datagram);
      return this.#dropFinish(again.ok ? "duplicate" : finishDrop(again.reason));
    }
    // Only from the address the cookie validated: a FINISH from elsewhere (even a genuine one, copied by
    // someone on the path or sent by the client itself from a spoofed source) would point the session's
    // output at an address nobody proved it receives at.
    if (entry.hostname !== source.hostname || entry.port !== source.port) return this.#dropFinish("moved");
    entry.budget.received(datagram.length);
    const result = entry.handshake.receiveFinish(datagram);
    if (!result.ok) {
      this.#dropFinish(finishDrop(result.reason));
      return this.#flush(entry, false);
    }
    this.#forgetHalfOpen(entry);
    this.#open(cid, entry.handshake, result.session, source);
    return [];
  }

  #dropFinish(reason: FinishDrop): Outgoing[] {
    this.#stats.finish[reason]++;
    return [];
  }

  #open(
    cid: string,
    handshake: ServerHandshake,
    session: { records: RecordProtection; channelBinding: Uint8Array<ArrayBuffer> },
    source: SourceAddress,
  ): void {
    const entry: Established = {
      ...peer(source),
      handshake,
      stream: null as unknown as UdpSessionStreamLike,
    };
    entry.stream = this.#options.openStream({
      records: session.records,
      send: (bytes) => this.#options.transmit({ hostname: entry.hostname, port: entry.port, bytes }),
    });
    this.#established.set(cid, entry);
    this.#stats.opened++;
    entry.stream.ended.then((reason) => {
      if (this.#established.get(cid) === entry) this.#established.delete(cid);
      this.#stats.ended[reason]++;
      this.#stats.record.bad_packet += entry.stream.stats?.drops.bad_packet ?? 0;
    }, () => {
      if (this.#established.get(cid) === entry) this.#established.delete(cid);
      this.#stats.ended.failed++;
    });
    this.#options.onEstablished({
      stream: entry.stream,
      peerAddress: source.hostname,
      peerPort: source.port,
      channelBindingType: "authchat-udp-exporter",
      channelBinding: session.channelBinding,
    });
  }

  #record(datagram: Uint8Array, source: SourceAddress): Outgoing[] {
    const cid = connectionIdOf(datagram);
    if (cid === null) {
      this.#stats.record.truncated++;
      return [];
    }
    const entry = this.#established.get(cid);
    if (entry === undefined) {
      this.#stats.record[this.#byCid.has(cid) ? "not_established" : "unknown_connection"]++;
      return [];
    }
    // A session stays at the address its INIT was validated at. Following an authenticated record to a new
    // one (a NAT rebinding) would let the client, who holds the keys, or anyone racing a copy of its record
    // from a forged source, aim the server's datagrams at a victim without the new address ever proving it
    // receives (QUIC needs a path challenge for that). A client whose address changed opens a new session.
    if (entry.hostname !== source.hostname || entry.port !== source.port) {
      this.#stats.record.moved++;
      return [];
    }
    const result = entry.stream.receive(datagram);
    if (result !== "accepted") this.#stats.record[recordDrop(result)]++;
    return [];
  }

  #forgetHalfOpen(entry: HalfOpen): void {
    this.#byKey.delete(entry.key);
    if (entry.cid !== null) this.#byCid.delete(entry.cid);
    const address = sourceKey(entry.hostname);
    const left = (this.#perAddress.get(address) ?? 1) - 1;
    if (left > 0) this.#perAddress.set(address, left);
    else this.#perAddress.delete(address);
  }
}

function peer(source: SourceAddress): { hostname: string; port: number } {
  return { hostname: source.hostname, port: source.port };
}

function finishDrop(reason: string): FinishDrop {
  return reason.replaceAll("-", "_") as FinishDrop;
}
