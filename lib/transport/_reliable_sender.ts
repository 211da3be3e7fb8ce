/**
 * The sending half of the reliable channel: fragmentation, the send window, ACK processing,
 * retransmission timers (RFC 6298 with Karn's rule) and fast retransmit.
 *
 * @module
 */

import { DATA_HEADER_BYTES, encodeDataPacket } from "./_reliable_packets.ts";
import { SACK_BITS, SEQ_LIMIT } from "./_reliable_receiver.ts";
import type { ReliableChannelStats, UnacknowledgedMessage } from "./reliable_channel_types.ts";

/** ACKs that must show a hole before it is retransmitted early. */
const FAST_RETRANSMIT_HOLES = 3;
/** Dead queue entries tolerated before a queue array is compacted. */
const COMPACT_AFTER = 32;

/** Sender settings, already validated by the channel. */
export interface SenderOptions {
  maxPayload: number;
  window: number;
  maxMessage: number;
  maxQueuedBytes: number;
  minRtoMs: number;
  initialRtoMs: number;
  maxRtoMs: number;
  initialSeq: number;
}

interface OutMessage {
  id: number;
  bytes: number;
  packets: Uint8Array<ArrayBuffer>[];
  unacked: number;
}

interface OutFragment {
  packet: Uint8Array<ArrayBuffer>;
  message: OutMessage;
  acked: boolean;
  retransmitted: boolean;
  /** Queued for fast retransmission. */
  fast: boolean;
  /** ACKs that showed this packet missing since it was last sent. */
  holes: number;
  /** Order of its latest transmission among all transmissions. */
  tx: number;
  sentAt: number;
  expiry: number;
  rto: number;
}

/**
 * Cuts messages into DATA packets, keeps them until acknowledged and says when to send them again.
 * Work per ACK or poll is bounded by the window, never by the queue length.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReliableSender } from "./_reliable_sender.ts";
 * const stats = { sent: 0, retransmitted: 0, received: 0, duplicates: 0, malformed: 0, outOfWindow: 0 };
 * const sender = new ReliableSender({
 *   maxPayload: 1094, window: 64, maxMessage: 65536, maxQueuedBytes: 1 << 20,
 *   minRtoMs: 30, initialRtoMs: 200, maxRtoMs: 2000, initialSeq: 0,
 * }, stats);
 * sender.send(new Uint8Array(2000));
 * const out: Uint8Array[] = [];
 * sender.poll(0, out);
 * assert(out.length === 2 && sender.wakeup(0) === 200);
 * sender.onAck(2, 0, 0, 10);
 * assert(sender.takeAcknowledged()[0] === 0 && sender.wakeup(10) === null);
 * ```
 */
export class ReliableSender {
  #o: SenderOptions;
  #stats: ReliableChannelStats;
  #nextId = 0;
  #messages: OutMessage[] = [];
  #messageHead = 0;
  // Fragments of [#sndUna, #sndEnd) sit in #frags from #fragHead; [#sndUna, #sndNxt) are in flight.
  #frags: OutFragment[] = [];
  #fragHead = 0;
  #sndUna: number;
  #sndNxt: number;
  #sndEnd: number;
  #queuedBytes = 0;
  #acknowledged: number[] = [];
  #fast: OutFragment[] = [];
  #txCount = 0;
  #rto: number;
  #srtt = -1;
  #rttvar = 0;
  /** Earliest retransmission time; only a lower bound while #timerStale. */
  #timerAt = Infinity;
  #timerStale = false;

  /**
   * Make a sender.
   *
   * @param options Validated settings.
   * @param stats Counters shared with the channel; this half updates `sent`, `retransmitted` and
   *   `malformed` (for ACKs of data never sent).
   */
  constructor(options: SenderOptions, stats: ReliableChannelStats) {
    this.#o = options;
    this.#stats = stats;
    this.#rto = options.initialRtoMs;
    this.#sndUna = this.#sndNxt = this.#sndEnd = options.initialSeq;
  }

  /** Message bytes sent and not yet wholly acknowledged. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Queue a message (copied).
   *
   * @param message The message.
   * @returns Its number.
   * @throws {RangeError} When too large, when the queue would overflow, or when sequence numbers run out.
   */
  send(message: Uint8Array): number {
    const { maxPayload, maxMessage, maxQueuedBytes } = this.#o;
    const length = message.length;
    if (length > maxMessage) throw new RangeError(`Message too large: ${length} bytes exceeds ${maxMessage}`);
    if (this.#queuedBytes + length > maxQueuedBytes) {
      throw new RangeError(
        `Send queue full: ${this.#queuedBytes} + ${length} bytes exceeds ${maxQueuedBytes}`,
      );
    }
    const count = length === 0 ? 1 : Math.ceil(length / maxPayload);
    if (this.#sndEnd + count > SEQ_LIMIT) {
      throw new RangeError(`Sequence numbers exhausted: ${count} more pass 2^32 - 1; use a new channel`);
    }
    const out: OutMessage = { id: this.#nextId++, bytes: length, packets: [], unacked: count };
    for (let i = 0, at = 0; i < count; i++, at += maxPayload) {
      const packet = encodeDataPacket(this.#sndEnd++, i === count - 1, message.subarray(at, at + maxPayload));
      out.packets.push(packet);
      this.#frags.push({
        packet,
        message: out,
        acked: false,
        retransmitted: false,
        fast: false,
        holes: 0,
        tx: 0,
        sentAt: 0,
        expiry: 0,
        rto: 0,
      });
    }
    this.#messages.push(out);
    this.#queuedBytes += length;
    return out.id;
  }

  /**
   * Append the DATA packets due: fast retransmissions, timeouts, then new packets within the window.
   *
   * @param now The clock.
   * @param out Where packets go.
   */
  poll(now: number, out: Uint8Array[]): void {
    for (const f of this.#fast) {
      f.fast = false;
      if (f.acked) continue;
      f.retransmitted = true;
      this.#stats.retransmitted++;
      out.push(this.#transmit(f, now, f.rto));
    }
    this.#fast.length = 0;
    if (now >= this.#timerAt) this.#scanTimers(now, out);
    const stop = Math.min(this.#sndEnd, this.#sndUna + this.#o.window);
    for (; this.#sndNxt < stop; this.#sndNxt++) {
      this.#stats.sent++;
      out.push(this.#transmit(this.#frags[this.#fragHead + this.#sndNxt - this.#sndUna]!, now, this.#rto));
    }
  }

  /**
   * When {@linkcode ReliableSender.poll} must run next.
   *
   * @param clock Returned when a poll is due already.
   * @returns A time, or `null` when nothing is in flight or queued.
   */
  wakeup(clock: number): number | null {
    if (this.#fast.length > 0) return clock;
    if (this.#sndNxt < this.#sndEnd && this.#sndNxt < this.#sndUna + this.#o.window) return clock;
    if (this.#timerStale) this.#scanTimers(-Infinity, null);
    return this.#timerAt === Infinity ? null : this.#timerAt;
  }

  /**
   * Numbers of messages wholly acknowledged since the last call.
   *
   * @returns Message numbers in completion order.
   */
  takeAcknowledged(): number[] {
    const acknowledged = this.#acknowledged;
    this.#acknowledged = [];
    return acknowledged;
  }

  /**
   * Messages not yet wholly acknowledged.
   *
   * @returns Numbers and copies, in send order.
   */
  unacknowledged(): UnacknowledgedMessage[] {
    const list: UnacknowledgedMessage[] = [];
    for (let i = this.#messageHead; i < this.#messages.length; i++) {
      const m = this.#messages[i]!;
      if (m.unacked === 0) continue;
      const message = new Uint8Array(m.bytes);
      let at = 0;
      for (const packet of m.packets) {
        message.set(packet.subarray(DATA_HEADER_BYTES), at);
        at += packet.length - DATA_HEADER_BYTES;
      }
      list.push({ id: m.id, message });
    }
    return list;
  }

  /**
   * Take in one ACK.
   *
   * @param cum Next sequence number the peer expects.
   * @param high SACK bits 32..63.
   * @param low SACK bits 0..31.
   * @param now The clock.
   */
  onAck(cum: number, high: number, low: number, now: number): void {
    if (cum > this.#sndNxt) {
      this.#stats.malformed++;
      return;
    }
    // An ACK overtaken by a later one says nothing new enough to act on.
    if (cum < this.#sndUna) return;
    let sampleAt = -Infinity;
    let acked = false;
    while (this.#sndUna < cum) {
      const f = this.#frags[this.#fragHead++]!;
      this.#sndUna++;
      if (f.acked) continue;
      acked = true;
      if (!f.retransmitted && f.sentAt > sampleAt) sampleAt = f.sentAt;
      this.#complete(f);
    }
    let newestTx = -1;
    let holesEnd = 0;
    if ((low | high) !== 0) {
      const span = Math.min(SACK_BITS, this.#sndNxt - cum - 1);
      for (let i = 0; i < span; i++) {
        if (((i < 32 ? low >>> i : high >>> (i - 32)) & 1) === 0) continue;
        const f = this.#frags[this.#fragHead + 1 + i]!;
        if (f.tx > newestTx) newestTx = f.tx;
        holesEnd = i + 1;
        if (f.acked) continue;
        acked = true;
        if (!f.retransmitted && f.sentAt > sampleAt) sampleAt = f.sentAt;
        this.#complete(f);
      }
    }
    // A hole counts only when the ACK reports something sent after the hole's latest transmission, and
    // only once the hole is older than a typical round trip: a reordering allowance in the spirit of
    // RACK (RFC 8985), without which jittery paths trigger a spurious retransmission per reordering.
    const reorderAllowance = this.#srtt + this.#rttvar;
    for (let i = 0; i < holesEnd; i++) {
      const f = this.#frags[this.#fragHead + i]!;
      if (f.acked || f.fast || f.tx > newestTx || now - f.sentAt < reorderAllowance) continue;
      if (++f.holes >= FAST_RETRANSMIT_HOLES) {
        f.fast = true;
        this.#fast.push(f);
      }
    }
    if (sampleAt > -Infinity) this.#measure(now - sampleAt);
    if (acked) this.#timerStale = true;
    this.#fragHead = compact(this.#frags, this.#fragHead);
    while (this.#messageHead < this.#messages.length && this.#messages[this.#messageHead]!.unacked === 0) {
      this.#messageHead++;
    }
    this.#messageHead = compact(this.#messages, this.#messageHead);
  }

  #transmit(f: OutFragment, now: number, rto: number): Uint8Array<ArrayBuffer> {
    f.tx = this.#txCount++;
    f.holes = 0;
    f.sentAt = now;
    f.rto = rto;
    f.expiry = now + rto;
    if (f.expiry < this.#timerAt) this.#timerAt = f.expiry;
    return f.packet;
  }

  /** Retransmit what expired by `now` (when `out` is given) and make #timerAt exact. */
  #scanTimers(now: number, out: Uint8Array[] | null): void {
    let earliest = Infinity;
    const end = this.#fragHead + this.#sndNxt - this.#sndUna;
    for (let i = this.#fragHead; i < end; i++) {
      const f = this.#frags[i]!;
      if (f.acked) continue;
      if (out !== null && f.expiry <= now) {
        f.retransmitted = true;
        this.#stats.retransmitted++;
        const rto = Math.min(f.rto * 2, this.#o.maxRtoMs);
        // RFC 6298 5.5: the backed-off timeout holds for new packets until a clean RTT sample.
        if (rto > this.#rto) this.#rto = rto;
        out.push(this.#transmit(f, now, rto));
      }
      if (f.expiry < earliest) earliest = f.expiry;
    }
    this.#timerAt = earliest;
    this.#timerStale = false;
  }

  #complete(f: OutFragment): void {
    f.acked = true;
    const m = f.message;
    if (--m.unacked > 0) return;
    this.#acknowledged.push(m.id);
    this.#queuedBytes -= m.bytes;
  }

  /** RFC 6298 section 2, with a 1 ms clock granularity. */
  #measure(rtt: number): void {
    if (this.#srtt < 0) {
      this.#srtt = rtt;
      this.#rttvar = rtt / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - rtt);
      this.#srtt = 0.875 * this.#srtt + 0.125 * rtt;
    }
    const rto = this.#srtt + Math.max(1, 4 * this.#rttvar);
    this.#rto = Math.min(Math.max(rto, this.#o.minRtoMs), this.#o.maxRtoMs);
  }
}

/** Drop the dead head of a queue once it is large enough to matter; returns the new head. */
function compact<T>(items: T[], head: number): number {
  if (head < COMPACT_AFTER || head * 2 < items.length) return head;
  items.splice(0, head);
  return 0;
}
