/**
 * Reliable, ordered messages over an unreliable packet service, without I/O: the caller feeds
 * received packets to {@linkcode ReliableChannel.receive}, transmits what
 * {@linkcode ReliableChannel.poll} returns, and polls again at {@linkcode ReliableChannel.nextWakeup}.
 * Packets are plaintext; encrypting them is the caller's job.
 *
 * Packets: DATA `0x01 seq:u32 flags:u8 payload` (flags bit 0 = last fragment of a message) and ACK
 * `0x02 cum:u32 sack:u64` (cum = next sequence number expected; bit i of sack = `cum + 1 + i` was
 * received). One ACK per poll covers everything received. Retransmission timeouts follow RFC 6298
 * with Karn's rule (min 30, initial 200, max 2000 ms), doubling per timeout of a packet. A packet is
 * fast-retransmitted once three ACKs show it as a hole, each reporting something sent after it while the
 * packet was older than `srtt + rttvar` (a reordering allowance).
 *
 * @module
 */

import {
  ACK_PACKET,
  DATA_HEADER_BYTES,
  DATA_PACKET,
  LAST_FRAGMENT,
  packetKind,
  readU32,
} from "./_reliable_packets.ts";
import { ReliableReceiver, SEQ_LIMIT } from "./_reliable_receiver.ts";
import { ReliableSender } from "./_reliable_sender.ts";
import type { ReliableChannelStats, UnacknowledgedMessage } from "./reliable_channel_types.ts";

/** Tuning of a {@linkcode ReliableChannel}; both ends should agree on every field. */
export interface ReliableChannelOptions {
  /** Largest packet produced or accepted, in bytes (default 1100; at least 13). */
  maxPacket?: number;
  /** Packets in flight, and the receiver's reordering buffer, in packets (default 64). */
  window?: number;
  /** Largest message, in bytes (default 65536). */
  maxMessage?: number;
  /** Most message bytes sent but not yet acknowledged (default 1 MiB). */
  maxQueuedBytes?: number;
  /** Floor of the retransmission timeout (default 30 ms). */
  minRtoMs?: number;
  /** Retransmission timeout before any round trip is measured (default 200 ms). */
  initialRtoMs?: number;
  /** Ceiling of the retransmission timeout (default 2000 ms). */
  maxRtoMs?: number;
  /** First sequence number of both directions (default 0); tests use it to reach the end of the space. */
  initialSeq?: number;
  /**
   * How long an ACK of in-order DATA may wait for DATA of this side to go with it (default 0: at the
   * next poll). Two `maxPacket`s' worth of packets unacknowledged, a gap or a duplicate makes it due
   * at once.
   */
  ackDelayMs?: number;
}

export type { ReliableChannelStats, UnacknowledgedMessage } from "./reliable_channel_types.ts";

/**
 * Both directions of a reliable, ordered, fragmenting message channel, driven by the caller's clock.
 * Memory held for a peer is bounded by `window × maxPacket + maxMessage`; a peer that exceeds
 * `maxMessage` without ending a message fails the channel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReliableChannel } from "./reliable_channel.ts";
 * const a = new ReliableChannel();
 * const b = new ReliableChannel();
 * const id = a.send(new TextEncoder().encode("hi"));
 * for (const packet of a.poll(0)) b.receive(packet, 5);
 * for (const packet of b.poll(5)) a.receive(packet, 10);
 * assert(new TextDecoder().decode(b.takeDelivered()[0]) === "hi");
 * assert(a.takeAcknowledged()[0] === id && a.nextWakeup() === null);
 * ```
 */
export class ReliableChannel {
  #maxPacket: number;
  #stats: ReliableChannelStats = {
    sent: 0,
    retransmitted: 0,
    received: 0,
    duplicates: 0,
    malformed: 0,
    outOfWindow: 0,
  };
  #sender: ReliableSender;
  #receiver: ReliableReceiver;
  #clock = 0;

  /**
   * Make a channel; a fresh pair of channels must be made for each new session.
   *
   * @param options Tuning; every field has a default.
   * @throws {RangeError} When an option is out of range.
   */
  constructor(options: ReliableChannelOptions = {}) {
    this.#maxPacket = option("maxPacket", options.maxPacket, 1100, 13, 65535);
    const window = option("window", options.window, 64, 1, 65536);
    const maxMessage = option("maxMessage", options.maxMessage, 65536, 0, 2 ** 30);
    const maxQueuedBytes = option("maxQueuedBytes", options.maxQueuedBytes, 1024 * 1024, 0, 2 ** 40);
    const minRtoMs = option("minRtoMs", options.minRtoMs, 30, 1, 2 ** 31);
    const maxRtoMs = option("maxRtoMs", options.maxRtoMs, 2000, minRtoMs, 2 ** 31);
    const initialRtoMs = option("initialRtoMs", options.initialRtoMs, 200, minRtoMs, maxRtoMs);
    const initialSeq = option("initialSeq", options.initialSeq, 0, 0, SEQ_LIMIT);
    const ackDelayMs = option("ackDelayMs", options.ackDelayMs, 0, 0, minRtoMs);
    const maxPayload = this.#maxPacket - DATA_HEADER_BYTES;
    this.#sender = new ReliableSender({
      maxPayload,
      window,
      maxMessage,
      maxQueuedBytes,
      minRtoMs,
      initialRtoMs,
      maxRtoMs,
      initialSeq,
    }, this.#stats);
    this.#receiver = new ReliableReceiver(
      { window, maxMessage, initialSeq, ackDelayMs, fullPacket: this.#maxPacket },
      this.#stats,
    );
  }

  /** Why the channel stopped (the peer sent a message over `maxMessage`), or `null` while it works. */
  get failed(): string | null {
    return this.#receiver.failed;
  }

  /** A snapshot of the counters. */
  get stats(): ReliableChannelStats {
    return { ...this.#stats };
  }

  /** Message bytes sent and not yet wholly acknowledged (what counts against `maxQueuedBytes`). */
  get queuedBytes(): number {
    return this.#sender.queuedBytes;
  }

  /**
   * Queue a message (copied) for transmission by {@linkcode ReliableChannel.poll}.
   *
   * @param message 0 to `maxMessage` bytes.
   * @returns The message number: 0, 1, 2… in call order.
   * @throws {RangeError} When the message is too large, when the unacknowledged bytes would exceed
   *   `maxQueuedBytes`, or when the sequence space is used up (make a new channel).
   * @throws {Error} When the channel has failed.
   */
  send(message: Uint8Array): number {
    const failed = this.#receiver.failed;
    if (failed !== null) throw new Error(`Channel failed: ${failed}`);
    return this.#sender.send(message);
  }

  /**
   * Take in one packet from the peer. Malformed packets are counted in
   * {@linkcode ReliableChannel.stats}, never thrown.
   *
   * @param packet The decrypted packet; not kept after the call.
   * @param now The caller's clock, in milliseconds.
   */
  receive(packet: Uint8Array, now: number): void {
    if (now > this.#clock) this.#clock = now;
    if (this.#receiver.failed !== null) return;
    const kind = packetKind(packet, this.#maxPacket);
    if (kind === DATA_PACKET) {
      this.#receiver.onData(readU32(packet, 1), (packet[5]! & LAST_FRAGMENT) !== 0, packet, this.#clock);
    } else if (kind === ACK_PACKET) {
      this.#sender.onAck(readU32(packet, 1), readU32(packet, 5), readU32(packet, 9), now);
    } else {
      this.#stats.malformed++;
    }
  }

  /**
   * Packets to transmit now: first an ACK, when one is owed and either due (`ackDelayMs`) or DATA goes
   * out in this poll too, then retransmissions due, then new DATA within the window. A DATA packet
   * returned here may be returned again by a later poll: treat packets as read-only.
   *
   * @param now The caller's clock, in milliseconds.
   * @returns Packets, each at most `maxPacket` bytes.
   */
  poll(now: number): Uint8Array<ArrayBuffer>[] {
    if (now > this.#clock) this.#clock = now;
    const out: Uint8Array<ArrayBuffer>[] = [];
    if (this.#receiver.failed !== null) return out;
    const due = this.#receiver.ackDueAt;
    if (due !== null && due <= this.#clock) out.push(this.#receiver.takeAck()!);
    this.#sender.poll(now, out);
    if (due !== null && due > this.#clock && out.length > 0) out.unshift(this.#receiver.takeAck()!);
    return out;
  }

  /**
   * When {@linkcode ReliableChannel.poll} must run next.
   *
   * @returns The earliest of the retransmission time and the owed ACK's due time; the latest `now` seen
   *   when a poll is already due (an ACK due or DATA waiting for the window); `null` when nothing is in
   *   flight and no ACK is owed, or the channel failed.
   */
  nextWakeup(): number | null {
    if (this.#receiver.failed !== null) return null;
    const sender = this.#sender.wakeup(this.#clock);
    const ack = this.#receiver.ackDueAt;
    if (ack === null) return sender;
    const at = Math.max(ack, this.#clock);
    return sender === null ? at : Math.min(sender, at);
  }

  /**
   * Complete messages received since the last call, in order; each is delivered exactly once.
   *
   * @returns The messages.
   */
  takeDelivered(): Uint8Array<ArrayBuffer>[] {
    return this.#receiver.takeDelivered();
  }

  /**
   * Numbers of the messages wholly acknowledged since the last call, in the order they completed (SACKs
   * can complete a later message first); each is reported once.
   *
   * @returns Message numbers.
   */
  takeAcknowledged(): number[] {
    return this.#sender.takeAcknowledged();
  }

  /**
   * Messages not yet wholly acknowledged, in send order, to resend on a new channel after a rekey or a
   * peer restart.
   *
   * @returns Message numbers with copies of the messages.
   */
  unacknowledged(): UnacknowledgedMessage[] {
    return this.#sender.unacknowledged();
  }
}

function option(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Invalid ${name}: ${value} is not an integer in ${min}..${max}`);
  }
  return value;
}
