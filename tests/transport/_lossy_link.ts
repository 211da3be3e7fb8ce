/**
 * A simulated lossy link for driving two reliable channels with a seeded, reproducible schedule.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ReliableChannel, type ReliableChannelOptions } from "../../lib/transport/reliable_channel.ts";
import { assertBytesEqual } from "../_bytes.ts";

/** A small seeded PRNG (mulberry32), so that every lossy schedule is reproducible. */
export function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** `length` bytes drawn from `random`. */
export function randomBytes(random: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (random() * 256) | 0;
  return out;
}

/** Per-packet behaviour of a simulated link direction. */
export interface LinkOptions {
  drop: number;
  duplicate: number;
  maxDelayMs: number;
}

/** One direction of a simulated link that drops, duplicates and delays (hence reorders) packets. */
export class LossyLink {
  #queue: { at: number; packet: Uint8Array }[] = [];
  #random: () => number;
  #options: LinkOptions;

  constructor(random: () => number, options: LinkOptions) {
    this.#random = random;
    this.#options = options;
  }

  push(packet: Uint8Array, now: number): void {
    if (this.#random() < this.#options.drop) return;
    const copies = this.#random() < this.#options.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.#queue.push({ at: now + this.#random() * this.#options.maxDelayMs, packet });
    }
  }

  /** Packets due by `now`, earliest first. */
  due(now: number): Uint8Array[] {
    const due = this.#queue.filter((e) => e.at <= now).sort((x, y) => x.at - y.at);
    if (due.length > 0) this.#queue = this.#queue.filter((e) => e.at > now);
    return due.map((e) => e.packet);
  }

  next(): number {
    let next = Infinity;
    for (const e of this.#queue) if (e.at < next) next = e.at;
    return next;
  }
}

/** One end of a simulation: its channel, what it must send, and what it got. */
export interface Side {
  channel: ReliableChannel;
  outgoing: Uint8Array[];
  sentCount: number;
  delivered: Uint8Array[];
  acknowledged: number[];
}

/** Carry `aToB` and `bToA` across a lossy link in both directions; returns what arrived and the time. */
export function simulate(
  seed: number,
  link: LinkOptions,
  aToB: Uint8Array[],
  bToA: Uint8Array[],
  options: ReliableChannelOptions = {},
): { a: Side; b: Side; timeMs: number } {
  const random = prng(seed);
  const side = (outgoing: Uint8Array[]): Side => ({
    channel: new ReliableChannel(options),
    outgoing,
    sentCount: 0,
    delivered: [],
    acknowledged: [],
  });
  const a = side(aToB);
  const b = side(bToA);
  const toB = new LossyLink(random, link);
  const toA = new LossyLink(random, link);
  const maxQueued = options.maxQueuedBytes ?? 1024 * 1024;
  const done = (s: Side, peer: Side) =>
    s.acknowledged.length >= s.outgoing.length && peer.delivered.length >= s.outgoing.length;
  let now = 0;
  for (let step = 0; step < 200_000; step++) {
    for (const p of toB.due(now)) b.channel.receive(p, now);
    for (const p of toA.due(now)) a.channel.receive(p, now);
    for (const s of [a, b]) {
      s.delivered.push(...s.channel.takeDelivered());
      s.acknowledged.push(...s.channel.takeAcknowledged());
      while (s.sentCount < s.outgoing.length) {
        const message = s.outgoing[s.sentCount]!;
        if (s.channel.queuedBytes + message.length > maxQueued) break;
        assert.equal(s.channel.send(message), s.sentCount++);
      }
    }
    for (const p of a.channel.poll(now)) toB.push(p, now);
    for (const p of b.channel.poll(now)) toA.push(p, now);
    if (done(a, b) && done(b, a)) return { a, b, timeMs: now };
    const next = Math.min(
      toA.next(),
      toB.next(),
      a.channel.nextWakeup() ?? Infinity,
      b.channel.nextWakeup() ?? Infinity,
    );
    assert.ok(next < Infinity, "Simulation stalled with work outstanding");
    // Even stop-and-wait on a bad link finishes within minutes of simulated time; a broken channel spins.
    assert.ok(next < 3_600_000, "Simulation ran past a simulated hour");
    now = Math.max(now, next);
  }
  throw new Error("Simulation did not finish");
}

/** Assert that every message of `from` reached `to` once, in order, intact, and was acknowledged. */
export function assertCarried(from: Side, to: Side): void {
  assert.equal(to.delivered.length, from.outgoing.length);
  for (let i = 0; i < from.outgoing.length; i++) {
    assertBytesEqual(to.delivered[i], from.outgoing[i]!, `message ${i}`);
  }
  assert.deepEqual(from.acknowledged.toSorted((x, y) => x - y), from.outgoing.map((_, i) => i));
  assert.deepEqual(from.channel.unacknowledged(), []);
  assert.equal(from.channel.queuedBytes, 0);
}
