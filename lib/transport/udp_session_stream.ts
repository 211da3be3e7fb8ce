/**
 * A {@linkcode ByteStream} over one established UDP session (docs/PROTOCOL.md 20.11): the
 * {@linkcode UdpSessionEngine} driven by one timer, so a `FramedStream` (and so `serveConnection` or
 * the client) runs over UDP as over TCP. The owner routes the session's RECORD datagrams to
 * {@linkcode UdpSessionStream.receive} and transmits what the stream hands to its `send` callback.
 *
 * Behaviour, all timed by the injected clock: the stream's bytes travel as reliable messages (at most
 * 64 KiB each) in RECORDs; an empty message is a keepalive, sent after `keepaliveMs` without sending
 * anything; nothing authenticated for `deadAfterMs` ends it as `dead`; an authenticated CLOSE ends it
 * as `peer_closed` once the bytes before it are read; close() lingers up to `lingerMs` until what was
 * written is acknowledged, then sends CLOSE. At most one timer is armed per stream, at the engine's
 * next wakeup, and none once ended; a server holds thousands of these, so the stream keeps no
 * closures of its own beyond the promises of waiting callers.
 *
 * @module
 */

import type { RecordDropReason, RecordProtection } from "../crypto/udp_record_protection.ts";
import type { ByteStream } from "./byte_stream.ts";
import type { ReliableChannelOptions } from "./reliable_channel.ts";
import { UdpSessionEngine, type UdpSessionStats, type UdpStreamEnd } from "./udp_session_engine.ts";

export type { UdpSessionDropReason, UdpSessionStats, UdpStreamEnd } from "./udp_session_engine.ts";

/** Options of a {@linkcode UdpSessionStream}. */
export interface UdpSessionStreamOptions {
  /** Seals and opens this session's RECORDs (from the handshake); destroyed (its keys zeroed) when the stream ends. */
  records: RecordProtection;
  /** Transmit one datagram to the peer (the owner chooses the address; fire and forget). */
  send: (datagram: Uint8Array<ArrayBuffer>) => void;
  /**
   * Sent by the first poll even with nothing else, then before the packets of a poll 20 ms or more after
   * it last went, until an authenticated RECORD from the peer has opened (the client's FINISH: the server
   * may have lost it).
   */
  untilConfirmed?: Uint8Array<ArrayBuffer>;
  /** Reliable layer tuning (maxPacket is fixed by the record size: 1165). */
  reliable?: Omit<ReliableChannelOptions, "maxPacket">;
  /** Send an empty reliable message after this long without sending anything (default 0 = never; clients pass 10_000). */
  keepaliveMs?: number;
  /** End the stream when nothing authenticated arrived, or nothing sent was acknowledged, for this long (default 60_000 ms). */
  deadAfterMs?: number;
  /** Longest time close() keeps retransmitting unacknowledged data before sending CLOSE (default 2_000 ms). */
  lingerMs?: number;
  /**
   * Received bytes not yet read past which new DATA is refused unacknowledged, so a peer that writes
   * faster than this side reads is held back by retransmission instead of growing memory (default 1 MiB).
   * Each unread message also counts {@linkcode UNREAD_MESSAGE_COST} bytes, what holding it costs.
   */
  maxUnreadBytes?: number;
  /** Clock (ms), default performance.now; tests inject one. */
  now?: () => number;
}

/**
 * Bytes each received message not yet read counts against `maxUnreadBytes` beside its own: a chunk in memory
 * costs a few hundred bytes whatever its length, so a peer sending one-byte messages would otherwise pin a
 * million of them (hundreds of MB) under the default 1 MiB.
 */
export const UNREAD_MESSAGE_COST = 512;

/** The client's usual keepalive interval, in milliseconds. */
export const CLIENT_KEEPALIVE_MS = 10_000;

function performanceNow(): number {
  return performance.now();
}

/**
 * The byte stream of one UDP session.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RecordProtection } from "../crypto/udp_record_protection.ts";
 * import { UdpSessionStream } from "./udp_session_stream.ts";
 * const secrets = {
 *   connectionId: new Uint8Array(8), clientTraffic: new Uint8Array(32).fill(1),
 *   serverTraffic: new Uint8Array(32).fill(2),
 * };
 * const server: UdpSessionStream = new UdpSessionStream({
 *   records: new RecordProtection(secrets, "server"),
 *   send: (d) => client.receive(d),
 * });
 * const client: UdpSessionStream = new UdpSessionStream({
 *   records: new RecordProtection(secrets, "client"),
 *   send: (d) => server.receive(d),
 * });
 * await client.write(new TextEncoder().encode("hi"));
 * const buffer = new Uint8Array(16);
 * const n = await server.read(buffer);
 * assert(new TextDecoder().decode(buffer.subarray(0, n ?? 0)) === "hi");
 * client.close();
 * assert(await client.ended === "closed" && await server.ended === "peer_closed");
 * assert(await server.read(buffer) === null);
 * ```
 */
export class UdpSessionStream implements ByteStream {
  #engine: UdpSessionEngine;
  #send: (datagram: Uint8Array<ArrayBuffer>) => void;
  #now: () => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  /** A poll is queued for the end of this turn (a microtask). */
  #flushing = false;
  /** Received bytes not read yet; the first chunk is read from `#readOffset`. */
  #readable: Uint8Array[] | null = null;
  #readOffset = 0;
  /** What the unread messages count against `maxUnread`: their bytes and UNREAD_MESSAGE_COST each. */
  #unread = 0;
  #maxUnread: number;
  #reader: { buffer: Uint8Array; resolve: (n: number | null) => void } | null = null;
  #writers: (() => void)[] | null = null;
  #locallyClosed = false;
  #finished = false;
  #resolveEnded: (end: UdpStreamEnd) => void;

  /** Resolves once with why the stream ended, after its timer is stopped and nothing more will be sent. */
  readonly ended: Promise<UdpStreamEnd>;

  /**
   * Start the stream of an established session; nothing is sent before the first timer tick.
   *
   * @param options The record layer, the transmit callback and tuning.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(options: UdpSessionStreamOptions) {
    this.#now = options.now ?? performanceNow;
    this.#send = options.send;
    this.#maxUnread = options.maxUnreadBytes ?? 1024 * 1024;
    this.#engine = new UdpSessionEngine(options, this.#now());
    const { promise, resolve } = Promise.withResolvers<UdpStreamEnd>();
    this.ended = promise;
    this.#resolveEnded = resolve;
    this.#settle();
  }

  /** A snapshot of the counters (records accepted, drops by reason, packets sent and resent, keepalives). */
  get stats(): UdpSessionStats {
    return this.#engine.stats;
  }

  /**
   * Feed one RECORD datagram addressed to this session. Never throws on content.
   *
   * @param datagram The datagram, as received; not kept.
   * @returns `"accepted"` when it authenticated (it counts as hearing from the peer), else why it
   *   was dropped.
   */
  receive(datagram: Uint8Array): "accepted" | RecordDropReason | "closed" {
    const verdict = this.#engine.receive(datagram, this.#now());
    if (verdict === "accepted") this.#settle();
    return verdict;
  }

  /**
   * Read received bytes, in order.
   *
   * @param buffer Where to put them.
   * @returns Bytes read, or `null` once the stream ended (after the bytes that arrived before a CLOSE).
   * @throws {Error} When another read is pending.
   */
  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#readable !== null) return Promise.resolve(this.#copyOut(buffer));
    if (this.#finished || this.#locallyClosed) return Promise.resolve(null);
    if (this.#reader !== null) return Promise.reject(new Error("Read failed: another read is pending"));
    const { promise, resolve } = Promise.withResolvers<number | null>();
    this.#reader = { buffer, resolve };
    return promise;
  }

  /**
   * Queue all of `data` for the peer, waiting while the unacknowledged bytes are at their cap.
   *
   * @param data The bytes (copied).
   * @returns `data.length`, once all of it is queued.
   * @throws {Error} Once the stream is closing or ended.
   */
  async write(data: Uint8Array): Promise<number> {
    let done = 0;
    for (;;) {
      if (this.#finished || this.#locallyClosed) {
        throw new Error(`Stream closed: ${this.#engine.ended ?? "closing"}`);
      }
      try {
        done += this.#engine.write(data.subarray(done), this.#now());
      } finally {
        // Also when the write failed the stream: its timer must stop and `ended` resolve.
        this.#settle();
      }
      if (done === data.length) return done;
      const { promise, resolve } = Promise.withResolvers<void>();
      (this.#writers ??= []).push(resolve);
      await promise;
    }
  }

  /**
   * Stop reading and writing, linger until what was written is acknowledged (at most `lingerMs`), then
   * send CLOSE; {@linkcode UdpSessionStream.ended} resolves `"closed"` then. Idempotent; a later call may
   * shorten the linger (a server giving up on its shutdown's grace).
   *
   * @param options `lingerMs`: longest linger from now (default the stream's; 0: CLOSE at once).
   */
  close(options: { lingerMs?: number } = {}): void {
    if (this.#locallyClosed && options.lingerMs === undefined) return;
    this.#locallyClosed = true;
    this.#readable = null;
    this.#unread = 0;
    this.#engine.close(this.#now(), options.lingerMs);
    this.#settle();
  }

  static #fire(stream: UdpSessionStream): void {
    stream.#timer = undefined;
    stream.#timerAt = Infinity;
    stream.#poll();
    stream.#settle();
  }

  static #flush(stream: UdpSessionStream): void {
    stream.#flushing = false;
    // A poll that sends nothing while one is still due would queue itself again at once, for ever: the
    // timer takes over then.
    stream.#settle(stream.#poll() === 0);
  }

  /** Poll the engine and send what it gives; how many datagrams that was. */
  #poll(): number {
    const datagrams = this.#engine.poll(this.#now());
    for (const datagram of datagrams) {
      try {
        this.#send(datagram);
      } catch {
        // Fire and forget: a failed send is a lost datagram, which the reliable layer repairs.
      }
    }
    return datagrams.length;
  }

  /**
   * After any change to the engine: hand over delivered bytes, wake waiters, then poll at the end of this
   * turn when a poll is due now (written bytes, an acknowledgement owed), else re-arm or stop the timer.
   *
   * @param idle The last poll sent nothing: a poll due now waits for the timer.
   */
  #settle(idle = false): void {
    const engine = this.#engine;
    for (const message of engine.takeDelivered()) {
      if (this.#locallyClosed) continue;
      (this.#readable ??= []).push(message);
      this.#unread += message.length + UNREAD_MESSAGE_COST;
    }
    engine.holding = this.#unread >= this.#maxUnread;
    const reader = this.#reader;
    if (reader !== null && (this.#readable !== null || this.#locallyClosed || engine.ended !== null)) {
      this.#reader = null;
      reader.resolve(this.#readable !== null ? this.#copyOut(reader.buffer) : null);
    }
    const ended = engine.ended !== null;
    if (this.#writers !== null && (ended || this.#locallyClosed || engine.room >= engine.writeThreshold)) {
      const writers = this.#writers;
      this.#writers = null;
      for (const wake of writers) wake();
    }
    const at = engine.nextWakeup();
    if (at === null) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
      if (ended && !this.#finished) {
        this.#finished = true;
        this.#resolveEnded(engine.ended!);
      }
      return;
    }
    const delay = at - this.#now();
    if (delay <= 0 && !idle) {
      // Not on a timer of 0 ms: it fires a millisecond or more later, and one exchange of a session takes
      // several such hops (request, acknowledgement, reply) on each side. Writes made in this turn still go
      // out together.
      if (!this.#flushing) {
        this.#flushing = true;
        queueMicrotask(() => UdpSessionStream.#flush(this));
      }
      return;
    }
    if (at >= this.#timerAt) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(UdpSessionStream.#fire, Math.max(0, delay), this);
  }

  #copyOut(buffer: Uint8Array): number {
    const chunks = this.#readable!;
    let n = 0;
    while (n < buffer.length && chunks.length > 0) {
      const chunk = chunks[0]!;
      const take = Math.min(buffer.length - n, chunk.length - this.#readOffset);
      buffer.set(chunk.subarray(this.#readOffset, this.#readOffset + take), n);
      n += take;
      this.#readOffset += take;
      if (this.#readOffset === chunk.length) {
        chunks.shift();
        this.#readOffset = 0;
        this.#unread -= UNREAD_MESSAGE_COST;
      }
    }
    if (chunks.length === 0) this.#readable = null;
    this.#unread -= n;
    this.#engine.holding = this.#unread >= this.#maxUnread;
    return n;
  }
}
