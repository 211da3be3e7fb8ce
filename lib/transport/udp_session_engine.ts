/**
 * The session over RECORDs (docs/PROTOCOL.md 20.11), without I/O: one established UDP session's
 * records carry the packets of a {@linkcode ReliableChannel}, whose messages carry a byte stream. The
 * caller feeds received datagrams to {@linkcode UdpSessionEngine.receive}, queues bytes with
 * {@linkcode UdpSessionEngine.write}, transmits what {@linkcode UdpSessionEngine.poll} returns, and
 * polls again at {@linkcode UdpSessionEngine.nextWakeup}; every decision uses the caller's clock.
 *
 * A RECORD's plaintext is one packet: the reliable layer's DATA (`0x01`) or ACK (`0x02`), an ACK with a
 * DATA packet behind it (an ACK owed goes with the first DATA of the same poll when both fit), or CLOSE,
 * the single byte `0x03`. Anything else inside an authenticated record is dropped as `bad_packet`. An ACK
 * of in-order DATA waits up to `ackDelayMs` (default {@linkcode DEFAULT_ACK_DELAY_MS}) for DATA to ride
 * with. Bytes
 * written travel as messages of at most `maxMessage` bytes; an empty message is a keepalive and
 * delivers nothing. The engine ends:
 * - `closed`: after {@linkcode UdpSessionEngine.close}, once everything written is acknowledged or
 *   `lingerMs` passed, by sending CLOSE (three copies, each sealed under its own counter, so one lost
 *   datagram does not leave the peer waiting for its dead timeout);
 * - `peer_closed`: an authenticated CLOSE arrived (what arrived in order before it is still delivered);
 * - `dead`: nothing authenticated arrived for `deadAfterMs`;
 * - `failed`: the peer broke the reliable layer (a message over `maxMessage`) or a counter ran out.
 * Once ended it sends nothing, wakes never, and drops every datagram as `closed`. While the owner sets
 * `holding` (its reader is behind), DATA is refused unacknowledged and the peer retransmits it later.
 *
 * @module
 */

import { MAX_RECORD_PAYLOAD } from "../codec/udp_session_datagram.ts";
import type { RecordDropReason, RecordProtection } from "../crypto/udp_record_protection.ts";
import { ACK_BYTES, ACK_PACKET, DATA_HEADER_BYTES, DATA_PACKET, packetKind } from "./_reliable_packets.ts";
import {
  ReliableChannel,
  type ReliableChannelOptions,
  type ReliableChannelStats,
} from "./reliable_channel.ts";

/** The transport's CLOSE packet kind: a one-byte RECORD payload. */
export const CLOSE_PACKET = 0x03;
/** CLOSE is not retransmitted (nothing would acknowledge it), so it goes out this many times. */
export const CLOSE_COPIES = 3;
/**
 * How long an ACK of in-order DATA waits for DATA of this side to share its RECORD (default of the
 * reliable layer's `ackDelayMs` here): an answer written within it saves a datagram each way.
 */
export const DEFAULT_ACK_DELAY_MS = 5;
/**
 * The `untilConfirmed` datagram goes again before a poll's packets only once this long has passed since it
 * last went: below the retransmission timeout's floor (30 ms), so a record lost with it, or dropped for
 * want of it, comes back with it, but not right behind the copy the session's first poll sent.
 */
export const CONFIRMATION_GAP_MS = 20;

/**
 * Bytes each message sent and not yet acknowledged counts against `maxQueuedBytes` beside its own: it costs a
 * few hundred bytes of objects whatever its length, so a peer that never acknowledges while it draws small
 * answers would otherwise have a million one-byte messages queued under the default 1 MiB.
 */
export const QUEUED_MESSAGE_COST = 512;

/** Why a session's stream ended. */
export type UdpStreamEnd = "closed" | "peer_closed" | "dead" | "failed";

/** Why a received datagram was dropped or its packet ignored. */
export type UdpSessionDropReason =
  | RecordDropReason
  /** Authenticated, but its payload is neither DATA, ACK nor CLOSE. */
  | "bad_packet"
  /** Arrived after the stream ended. */
  | "closed";

/** Counters of one session (for `udp_stats`). */
export interface UdpSessionStats {
  /** Authenticated records opened. */
  accepted: number;
  /** Dropped datagrams (and ignored packets), by reason. */
  drops: Record<UdpSessionDropReason, number>;
  /** Datagrams handed to the caller to transmit (records, CLOSEs and resent `untilConfirmed`). */
  datagramsSent: number;
  /** Sends of the `untilConfirmed` datagram. */
  confirmationsSent: number;
  /** Keepalives (empty messages) queued. */
  keepalives: number;
  /** Authenticated DATA packets refused unacknowledged while the reader was behind (see `holding`). */
  held: number;
  /** The reliable layer's counters: DATA packets sent and resent, duplicates, malformed. */
  reliable: ReliableChannelStats;
}

/** Options of a {@linkcode UdpSessionEngine}. */
export interface UdpSessionEngineOptions {
  /** Seals and opens this session's RECORDs (from the handshake); destroyed (its keys zeroed) when the stream ends. */
  records: RecordProtection;
  /**
   * Sent by the first poll, and again before a poll's packets once {@linkcode CONFIRMATION_GAP_MS} passed
   * since it last went, until a record from the peer opens.
   */
  untilConfirmed?: Uint8Array<ArrayBuffer>;
  /** Reliable layer tuning (maxPacket is fixed by the record size: 1165). */
  reliable?: Omit<ReliableChannelOptions, "maxPacket">;
  /** Queue an empty message after this long without sending anything (default 0 = never). */
  keepaliveMs?: number;
  /** End as `dead` when nothing authenticated arrived, or nothing sent was acknowledged, for this long (default 60_000 ms). */
  deadAfterMs?: number;
  /** Longest time after close() spent retransmitting unacknowledged data (default 2_000 ms). */
  lingerMs?: number;
}

const EMPTY = new Uint8Array(0);
const CLOSE = new Uint8Array([CLOSE_PACKET]);

/**
 * One UDP session's reliable byte stream over its RECORDs, driven by the caller's clock.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RecordProtection } from "../crypto/udp_record_protection.ts";
 * import { UdpSessionEngine } from "./udp_session_engine.ts";
 * const secrets = {
 *   connectionId: new Uint8Array(8), clientTraffic: new Uint8Array(32).fill(1),
 *   serverTraffic: new Uint8Array(32).fill(2),
 * };
 * const client = new UdpSessionEngine({ records: new RecordProtection(secrets, "client") }, 0);
 * const server = new UdpSessionEngine({ records: new RecordProtection(secrets, "server") }, 0);
 * assert(client.write(new TextEncoder().encode("hi"), 0) === 2);
 * for (const d of client.poll(0)) assert(server.receive(d, 5) === "accepted");
 * assert(new TextDecoder().decode(server.takeDelivered()[0]) === "hi");
 * client.close(10);
 * for (const d of server.poll(10)) client.receive(d, 15);
 * for (const d of client.poll(15)) server.receive(d, 20);
 * assert(client.ended === "closed" && server.ended === "peer_closed");
 * ```
 */
export class UdpSessionEngine {
  #records: RecordProtection;
  #channel: ReliableChannel;
  #untilConfirmed: Uint8Array<ArrayBuffer> | null;
  #polled = false;
  /** When `untilConfirmed` last went out. */
  #confirmedAt = -Infinity;
  #keepaliveMs: number;
  #deadAfterMs: number;
  #lingerMs: number;
  #maxMessage: number;
  #maxQueued: number;
  /** Messages sent (keepalives included) and not yet acknowledged. */
  #unacked = 0;
  #clock: number;
  #lastHeard: number;
  #lastSent: number;
  /** When a message was last acknowledged, or the queue last went from empty to not. */
  #lastProgress: number;
  /** When close() was called plus lingerMs; -1 while open. */
  #lingerUntil = -1;
  #end: UdpStreamEnd | null = null;
  #accepted = 0;
  #badPackets = 0;
  #closedDrops = 0;
  #datagramsSent = 0;
  #confirmationsSent = 0;
  #keepalives = 0;
  #held = 0;
  /** Whether DATA is refused for now (the reader is behind). */
  holding = false;

  /**
   * Start the stream of an established session.
   *
   * @param options The record layer and tuning.
   * @param now The caller's clock, in milliseconds: the dead timeout and keepalive count from here.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(options: UdpSessionEngineOptions, now: number) {
    const reliable = options.reliable ?? {};
    this.#channel = new ReliableChannel({
      // Never past the floor of the peer's retransmission timeout (tests lower it).
      ackDelayMs: Math.min(DEFAULT_ACK_DELAY_MS, reliable.minRtoMs ?? DEFAULT_ACK_DELAY_MS),
      ...reliable,
      maxPacket: MAX_RECORD_PAYLOAD,
    });
    this.#records = options.records;
    this.#untilConfirmed = options.untilConfirmed ?? null;
    this.#keepaliveMs = duration("keepaliveMs", options.keepaliveMs, 0);
    this.#deadAfterMs = duration("deadAfterMs", options.deadAfterMs, 60_000);
    this.#lingerMs = duration("lingerMs", options.lingerMs, 2_000);
    this.#maxMessage = reliable.maxMessage ?? 65536;
    this.#maxQueued = reliable.maxQueuedBytes ?? 1024 * 1024;
    if (this.#maxMessage < 1 || this.#maxQueued < 1) {
      throw new RangeError("Invalid reliable options: maxMessage and maxQueuedBytes must be at least 1");
    }
    this.#clock = now;
    this.#lastHeard = now;
    this.#lastSent = now;
    this.#lastProgress = now;
  }

  /** Why the stream ended, or `null` while it runs (closing included). */
  get ended(): UdpStreamEnd | null {
    return this.#end;
  }

  /** Whether close() was called (writes are refused from then on). */
  get closing(): boolean {
    return this.#lingerUntil >= 0;
  }

  /** Bytes {@linkcode UdpSessionEngine.write} can queue now: `maxQueuedBytes` less the unacknowledged messages, each {@linkcode QUEUED_MESSAGE_COST} more than its bytes. */
  get room(): number {
    return Math.max(0, this.#maxQueued - this.#channel.queuedBytes - this.#unacked * QUEUED_MESSAGE_COST);
  }

  /** Smallest room worth writing into when more than that is waiting (one full packet, or the cap). */
  get writeThreshold(): number {
    return Math.min(MAX_RECORD_PAYLOAD - DATA_HEADER_BYTES, this.#maxQueued);
  }

  /** A snapshot of the counters. */
  get stats(): UdpSessionStats {
    return {
      accepted: this.#accepted,
      drops: { ...this.#records.drops, bad_packet: this.#badPackets, closed: this.#closedDrops },
      datagramsSent: this.#datagramsSent,
      confirmationsSent: this.#confirmationsSent,
      keepalives: this.#keepalives,
      held: this.#held,
      reliable: this.#channel.stats,
    };
  }

  /**
   * Take in one datagram routed to this session. Nothing here throws on content.
   *
   * @param datagram A RECORD, as received; not kept after the call.
   * @param now The caller's clock, in milliseconds.
   * @returns `"accepted"` when the record authenticated (it counts as hearing from the peer),
   *   else why it was dropped.
   */
  receive(datagram: Uint8Array, now: number): "accepted" | RecordDropReason | "closed" {
    if (this.#end !== null) {
      this.#closedDrops++;
      return "closed";
    }
    this.#tick(now);
    const opened = this.#records.open(datagram);
    if (!opened.ok) return opened.reason;
    this.#accepted++;
    this.#lastHeard = this.#clock;
    this.#untilConfirmed = null;
    const packet = opened.payload;
    if (packet.length === 1 && packet[0] === CLOSE_PACKET) {
      this.#endAs(this.closing ? "closed" : "peer_closed");
    } else if (packet.length > ACK_BYTES && packet[0] === ACK_PACKET) {
      // An ACK with a DATA packet riding behind it: both or neither.
      const data = packet.subarray(ACK_BYTES);
      if (packetKind(data, MAX_RECORD_PAYLOAD - ACK_BYTES) !== DATA_PACKET) {
        this.#badPackets++;
        return "accepted";
      }
      this.#take(packet.subarray(0, ACK_BYTES), ACK_PACKET);
      if (this.#end === null) this.#take(data, DATA_PACKET);
    } else {
      const kind = packetKind(packet, MAX_RECORD_PAYLOAD);
      if (kind === 0) {
        this.#badPackets++;
        return "accepted";
      }
      this.#take(packet, kind);
    }
    return "accepted";
  }

  /** Take in one well-formed packet of the reliable layer. */
  #take(packet: Uint8Array, kind: number): void {
    // Neither taken nor acknowledged: the sender retransmits it later, with backoff, which is all the
    // flow control a peer writing faster than this side reads needs.
    if (kind === DATA_PACKET && this.holding) {
      this.#held++;
      return;
    }
    this.#channel.receive(packet, this.#clock);
    // Only their number matters here; untaken, the ids would pile up (one per message) for the whole session.
    const acknowledged = this.#channel.takeAcknowledged().length;
    this.#unacked -= acknowledged;
    if (acknowledged > 0) this.#lastProgress = this.#clock;
    if (this.#channel.failed !== null) this.#endAs("failed");
  }

  /**
   * Queue as much of `data` as fits under `maxQueuedBytes`, as messages of at most `maxMessage` bytes.
   *
   * @param data The bytes (copied).
   * @param now The caller's clock, in milliseconds.
   * @returns How many bytes were queued; fewer than `data.length` when the queue is full.
   * @throws {Error} Once the stream is closing or ended.
   */
  write(data: Uint8Array, now: number): number {
    if (this.#end !== null || this.closing) throw new Error(`Stream closed: ${this.#end ?? "closing"}`);
    this.#tick(now);
    const threshold = this.writeThreshold;
    let taken = 0;
    while (taken < data.length) {
      const left = data.length - taken;
      const chunk = Math.min(left, this.#maxMessage, this.room);
      // Waiting for a whole packet's room beats sending a run of tiny messages into a nearly full queue.
      if (chunk <= 0 || (chunk < left && chunk < threshold)) break;
      try {
        this.#channel.send(data.subarray(taken, taken + chunk));
        if (this.#unacked++ === 0) this.#lastProgress = this.#clock;
      } catch (error) {
        this.#endAs("failed");
        throw new Error(`Stream failed: ${(error as Error).message}`);
      }
      taken += chunk;
    }
    return taken;
  }

  /**
   * Stop taking writes and start lingering: the next polls retransmit what is unacknowledged until it
   * is all acknowledged or `lingerMs` passed, then send CLOSE and end as `closed`. Idempotent; a second
   * call may only shorten the linger.
   *
   * @param now The caller's clock, in milliseconds.
   * @param lingerMs Longest linger from now (default the engine's `lingerMs`; 0: CLOSE at the next poll).
   */
  close(now: number, lingerMs: number = this.#lingerMs): void {
    if (this.#end !== null) return;
    this.#tick(now);
    const until = this.#clock + Math.max(0, lingerMs);
    this.#lingerUntil = this.closing ? Math.min(this.#lingerUntil, until) : until;
  }

  /**
   * Datagrams to transmit now, in order: the `untilConfirmed` datagram (by the first poll, then before
   * the packets of a poll {@linkcode CONFIRMATION_GAP_MS} after it last went, until the peer is heard;
   * before the CLOSEs always), then RECORDs of the reliable layer's ACK and DATA packets (with a keepalive queued
   * when nothing was sent for `keepaliveMs`), or the closing CLOSEs. Also ends a dead stream.
   *
   * @param now The caller's clock, in milliseconds.
   * @returns Datagrams, possibly none.
   */
  poll(now: number): Uint8Array<ArrayBuffer>[] {
    const out: Uint8Array<ArrayBuffer>[] = [];
    if (this.#end !== null) return out;
    this.#tick(now);
    // A peer that is heard but acknowledges nothing (keepalives alone) is as dead as a silent one: without
    // this it could have the window retransmitted every 2 s for as long as it likes.
    const stalled = this.#unacked > 0 && this.#clock - this.#lastProgress >= this.#deadAfterMs;
    if (stalled || this.#clock - this.#lastHeard >= this.#deadAfterMs) {
      this.#endAs("dead");
      return out;
    }
    if (this.closing && (this.#channel.queuedBytes === 0 || this.#clock >= this.#lingerUntil)) {
      // A peer that never got the FINISH could open none of the CLOSEs and would wait for its dead timeout.
      if (this.#untilConfirmed !== null) {
        out.push(this.#untilConfirmed);
        this.#confirmationsSent++;
      }
      try {
        for (let i = 0; i < CLOSE_COPIES; i++) out.push(this.#records.seal(CLOSE));
      } catch {
        // The counter ran out: nothing more can be sealed, so the peer learns of the end by its timeout.
      }
      this.#endAs("closed");
      return this.#sent(out);
    }
    if (!this.closing && this.#keepaliveMs > 0 && this.#clock - this.#lastSent >= this.#keepaliveMs) {
      this.#channel.send(EMPTY);
      if (this.#unacked++ === 0) this.#lastProgress = this.#clock;
      this.#keepalives++;
    }
    const packets = this.#channel.poll(this.#clock);
    if (
      this.#untilConfirmed !== null &&
      (!this.#polled || (packets.length > 0 && this.#clock - this.#confirmedAt >= CONFIRMATION_GAP_MS))
    ) {
      out.push(this.#untilConfirmed);
      this.#confirmationsSent++;
      this.#confirmedAt = this.#clock;
    }
    this.#polled = true;
    try {
      let i = 0;
      const [first, second] = packets;
      if (
        first !== undefined && second !== undefined && first[0] === ACK_PACKET && second[0] === DATA_PACKET &&
        first.length + second.length <= MAX_RECORD_PAYLOAD
      ) {
        const both = new Uint8Array(first.length + second.length);
        both.set(first);
        both.set(second, first.length);
        out.push(this.#records.seal(both));
        i = 2;
      }
      for (; i < packets.length; i++) out.push(this.#records.seal(packets[i]!));
    } catch {
      this.#endAs("failed");
    }
    return this.#sent(out);
  }

  /**
   * When {@linkcode UdpSessionEngine.poll} must run next.
   *
   * @returns The earliest of the reliable layer's wakeup, the keepalive, the dead deadline and the
   *   linger deadline (the latest `now` seen when a poll is due already); `null` once ended.
   */
  nextWakeup(): number | null {
    if (this.#end !== null) return null;
    let at = this.#lastHeard + this.#deadAfterMs;
    if (this.#unacked > 0) at = Math.min(at, this.#lastProgress + this.#deadAfterMs);
    if (this.closing) {
      at = Math.min(at, this.#channel.queuedBytes === 0 ? this.#clock : this.#lingerUntil);
    } else if (this.#keepaliveMs > 0) {
      at = Math.min(at, this.#lastSent + this.#keepaliveMs);
    }
    if (this.#untilConfirmed !== null && !this.#polled) at = this.#clock;
    const reliable = this.#channel.nextWakeup();
    return reliable === null ? at : Math.min(at, reliable);
  }

  /**
   * Messages received in order since the last call, keepalives left out; each is delivered once, and
   * those that arrived before a CLOSE are still delivered after it.
   *
   * @returns The messages, none empty.
   */
  takeDelivered(): Uint8Array<ArrayBuffer>[] {
    const delivered = this.#channel.takeDelivered();
    return delivered.some((m) => m.length === 0) ? delivered.filter((m) => m.length > 0) : delivered;
  }

  /** End the stream and zero its keys: nothing is sealed or opened for it any more. */
  #endAs(end: UdpStreamEnd): void {
    this.#end = end;
    this.#records.destroy();
  }

  #tick(now: number): void {
    if (now > this.#clock) this.#clock = now;
  }

  #sent(out: Uint8Array<ArrayBuffer>[]): Uint8Array<ArrayBuffer>[] {
    if (out.length > 0) {
      this.#lastSent = this.#clock;
      this.#datagramsSent += out.length;
    }
    return out;
  }
}

function duration(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`Invalid ${name}: ${value} is not a duration`);
  }
  return value;
}
