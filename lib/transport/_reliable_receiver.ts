/**
 * The receiving half of the reliable channel: reordering, duplicate suppression, reassembly and ACKs.
 *
 * @module
 */

import { DATA_HEADER_BYTES, encodeAckPacket } from "./_reliable_packets.ts";
import type { ReliableChannelStats } from "./reliable_channel_types.ts";

/** One past the largest usable sequence number, so that a cumulative ACK still fits a u32. */
export const SEQ_LIMIT = 2 ** 32 - 1;
/** Bits in an ACK's SACK bitmap. */
export const SACK_BITS = 64;

/**
 * Reassembles in-order messages from DATA packets and says what to acknowledge. Holds at most
 * `window - 1` buffered payloads plus one message being reassembled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReliableReceiver } from "./_reliable_receiver.ts";
 * import { encodeDataPacket } from "./_reliable_packets.ts";
 * const stats = { sent: 0, retransmitted: 0, received: 0, duplicates: 0, malformed: 0, outOfWindow: 0 };
 * const receiver = new ReliableReceiver({ window: 64, maxMessage: 100, initialSeq: 0 }, stats);
 * receiver.onData(1, true, encodeDataPacket(1, true, new Uint8Array([2])));
 * receiver.onData(0, false, encodeDataPacket(0, false, new Uint8Array([1])));
 * assert(receiver.takeDelivered()[0]?.join() === "1,2");
 * assert(receiver.takeAck()?.join() === "2,0,0,0,2,0,0,0,0,0,0,0,0");
 * ```
 */
export class ReliableReceiver {
  #window: number;
  #maxMessage: number;
  #stats: ReliableChannelStats;
  #failed: string | null = null;
  // Out-of-order payloads of [#rcvNxt + 1, #rcvNxt + window) sit in slot `seq % window`.
  #rcvNxt: number;
  #slots: (Uint8Array<ArrayBuffer> | null)[];
  #slotLast: Uint8Array;
  #buffered = 0;
  #assembly: Uint8Array<ArrayBuffer> | null = null;
  #assembled = 0;
  #assembling = false;
  #delivered: Uint8Array<ArrayBuffer>[] = [];
  #ackOwed = false;
  #ackDelayMs: number;
  /** When the owed ACK must go out at the latest (meaningful while one is owed). */
  #ackDueAt = 0;
  /** Bytes of in-order DATA packets (headers included) taken since the last ACK. */
  #sinceAck = 0;
  #fullPacket: number;

  /**
   * Make a receiver.
   *
   * @param options Window in packets, largest message, first sequence number, how long an ACK may wait
   *   for DATA of this side to ride with (`ackDelayMs`, default 0: due at once), and the size of a
   *   full packet (`fullPacket`: twice its bytes in order unacknowledged make the ACK due at once).
   * @param stats Counters shared with the channel; this half updates `received`, `duplicates` and
   *   `outOfWindow`.
   */
  constructor(
    options: {
      window: number;
      maxMessage: number;
      initialSeq: number;
      ackDelayMs?: number;
      fullPacket?: number;
    },
    stats: ReliableChannelStats,
  ) {
    this.#ackDelayMs = options.ackDelayMs ?? 0;
    this.#fullPacket = options.fullPacket ?? 0;
    this.#window = options.window;
    this.#maxMessage = options.maxMessage;
    this.#rcvNxt = options.initialSeq;
    this.#stats = stats;
    this.#slots = new Array(this.#window).fill(null);
    this.#slotLast = new Uint8Array(this.#window);
  }

  /** Why reception stopped (a message over `maxMessage`), or `null`. */
  get failed(): string | null {
    return this.#failed;
  }

  /** When the owed ACK is due: at the latest `ackDelayMs` after the first DATA it covers; `null` when none is owed. */
  get ackDueAt(): number | null {
    return this.#ackOwed ? this.#ackDueAt : null;
  }

  /**
   * Take in one well-formed DATA packet.
   *
   * @param seq Its sequence number.
   * @param last Its last-fragment flag.
   * @param packet The whole packet; the payload is copied if kept.
   * @param now The caller's clock, in milliseconds (when the ACK it calls for is due).
   */
  onData(seq: number, last: boolean, packet: Uint8Array, now = 0): void {
    if (this.#failed !== null) return;
    if (seq >= Math.min(this.#rcvNxt + this.#window, SEQ_LIMIT)) {
      this.#stats.outOfWindow++;
      return;
    }
    if (seq < this.#rcvNxt) {
      // A copy of what was acknowledged already: that ACK was probably lost, so this one goes at once.
      this.#owe(now, true);
      this.#stats.duplicates++;
      return;
    }
    const payload = packet.subarray(DATA_HEADER_BYTES);
    if (seq > this.#rcvNxt) {
      // A gap: the sender learns of it from this ACK's SACK bits, so it goes at once (RFC 9002 13.2.1).
      this.#owe(now, true);
      const slot = seq % this.#window;
      if (this.#slots[slot] !== null) {
        this.#stats.duplicates++;
        return;
      }
      this.#stats.received++;
      this.#slots[slot] = payload.slice();
      this.#slotLast[slot] = last ? 1 : 0;
      this.#buffered++;
      return;
    }
    // In order: may wait for this side's DATA, unless two full-size packets' worth is unacknowledged (as
    // TCP, RFC 1122 4.2.3.2, counted in bytes as Linux does: a bulk sender's window keeps moving whatever
    // its message sizes) or it fills a gap.
    this.#sinceAck += packet.length;
    this.#owe(now, this.#sinceAck >= 2 * this.#fullPacket || this.#buffered > 0);
    this.#stats.received++;
    this.#accept(payload, last, false);
    this.#rcvNxt++;
    while (this.#buffered > 0 && this.#failed === null) {
      const slot = this.#rcvNxt % this.#window;
      const next = this.#slots[slot] ?? null;
      if (next === null) break;
      this.#slots[slot] = null;
      this.#buffered--;
      this.#accept(next, this.#slotLast[slot] === 1, true);
      this.#rcvNxt++;
    }
  }

  /**
   * The ACK owed, covering everything received so far, or `null` when none is owed.
   *
   * @returns An ACK packet.
   */
  takeAck(): Uint8Array<ArrayBuffer> | null {
    if (!this.#ackOwed) return null;
    this.#ackOwed = false;
    this.#sinceAck = 0;
    let low = 0;
    let high = 0;
    if (this.#buffered > 0) {
      const span = Math.min(SACK_BITS, this.#window - 1);
      for (let i = 0; i < span; i++) {
        if (this.#slots[(this.#rcvNxt + 1 + i) % this.#window] === null) continue;
        if (i < 32) low |= 1 << i;
        else high |= 1 << (i - 32);
      }
    }
    return encodeAckPacket(this.#rcvNxt, high, low);
  }

  /**
   * Messages completed since the last call, in order.
   *
   * @returns The messages.
   */
  takeDelivered(): Uint8Array<ArrayBuffer>[] {
    const delivered = this.#delivered;
    this.#delivered = [];
    return delivered;
  }

  /** Owe an ACK: due at once, or at the latest `ackDelayMs` after the first DATA it covers. */
  #owe(now: number, immediately: boolean): void {
    const due = immediately ? now : now + this.#ackDelayMs;
    this.#ackDueAt = this.#ackOwed ? Math.min(this.#ackDueAt, due) : due;
    this.#ackOwed = true;
  }

  /** Append the next in-order fragment; `owned` payloads may be delivered without a copy. */
  #accept(payload: Uint8Array, last: boolean, owned: boolean): void {
    if (this.#assembled + payload.length > this.#maxMessage) {
      this.#fail(`Message too large: over ${this.#maxMessage} bytes without a last fragment`);
      return;
    }
    if (last && !this.#assembling) {
      // Owned payloads are this receiver's own slices, so their buffer is an ArrayBuffer.
      this.#delivered.push(owned ? payload as Uint8Array<ArrayBuffer> : payload.slice());
      return;
    }
    this.#assembly ??= new Uint8Array(this.#maxMessage);
    this.#assembly.set(payload, this.#assembled);
    this.#assembled += payload.length;
    this.#assembling = !last;
    if (last) {
      this.#delivered.push(this.#assembly.slice(0, this.#assembled));
      this.#assembled = 0;
    }
  }

  #fail(reason: string): void {
    this.#failed = reason;
    this.#slots.fill(null);
    this.#buffered = 0;
    this.#assembly = null;
    this.#ackOwed = false;
  }
}
