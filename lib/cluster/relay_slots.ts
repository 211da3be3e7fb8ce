/**
 * Relay ids across nodes, sans I/O. A relay id is a u32 in datagrams
 * (docs/PROTOCOL.md, section 15): its top {@linkcode SLOT_BITS} bits name a
 * **slot**, the rest a session within it. A node hands out ids only in a
 * slot it holds, and holds a slot only under a **lease**: it claims the slot
 * with create-if-absent in a JetStream key-value bucket whose entries expire
 * {@linkcode SlotLease} `ttlMs` after their last write, renews it with
 * compare-and-swap writes, and counts its hold as lasting from the moment it
 * *sent* its last successful write, less a margin — before the bucket can
 * let the key expire and another node create it. A node whose lease runs out
 * stops using every id of the slot at once (the rendezvous gives its
 * sessions new ones). So two live sessions never share a relay id, whatever
 * the timing, as long as the nodes' clocks run at about the same rate (the
 * margin covers a drift of 20 % over the lease).
 *
 * @module
 */

/** Bits of a relay id that name its slot: 1024 slots, so at most 1024 nodes at once. */
export const SLOT_BITS = 10;
/** Bits that name a session within a slot. */
export const SESSION_BITS = 32 - SLOT_BITS;
/** Slots in all. */
export const SLOTS = 2 ** SLOT_BITS;
/** Relay ids in one slot (0 is never handed out). */
export const IDS_PER_SLOT = 2 ** SESSION_BITS;

/**
 * The slot a relay id belongs to.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { relayIdIn, slotOf } from "./relay_slots.ts";
 * assert(slotOf(relayIdIn(1023, 5)) === 1023);
 * ```
 *
 * @param relayId A u32.
 * @returns Its slot, 0‥1023.
 */
export function slotOf(relayId: number): number {
  return Math.floor(relayId / IDS_PER_SLOT);
}

/**
 * The relay id of a session number within a slot.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { relayIdIn } from "./relay_slots.ts";
 * assert(relayIdIn(1023, 2 ** 22 - 1) === 2 ** 32 - 1);
 * ```
 *
 * @param slot 0‥1023.
 * @param n 0‥2²²−1.
 * @returns The u32.
 * @throws {RangeError} When either is out of range.
 */
export function relayIdIn(slot: number, n: number): number {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS) {
    throw new RangeError(`Slot out of range: ${slot}`);
  }
  if (!Number.isInteger(n) || n < 0 || n >= IDS_PER_SLOT) throw new RangeError(`Id out of range: ${n}`);
  return slot * IDS_PER_SLOT + n;
}

/**
 * The relay ids of one slot while a node holds it: each handed out once until released, starting at a
 * random point so a slot held again does not give the same ids in the same order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RelayIdAllocator, slotOf } from "./relay_slots.ts";
 * const ids = new RelayIdAllocator(3);
 * const a = ids.allocate()!, b = ids.allocate()!;
 * assert(a !== b && slotOf(a) === 3 && ids.holds(b));
 * ids.release(b);
 * assert(!ids.holds(b));
 * ```
 */
export class RelayIdAllocator {
  /** The slot. */
  readonly slot: number;
  #span: number;
  #next: number;
  #live = new Set<number>();

  /**
   * Start handing out ids of a slot.
   *
   * @param slot The slot held.
   * @param options `start`: the first session number tried (default random); `span`: session numbers
   *   1‥span−1 are used (default all of the slot's; tests make it small to go round).
   */
  constructor(slot: number, options: { start?: number; span?: number } = {}) {
    const span = options.span ?? IDS_PER_SLOT;
    if (!Number.isInteger(span) || span < 2 || span > IDS_PER_SLOT) {
      throw new RangeError(`Span out of range: ${span}`);
    }
    const start = options.start ?? 1 + Math.floor(Math.random() * (span - 1));
    if (!Number.isInteger(start) || start < 1 || start >= span) {
      throw new RangeError(`Start out of range: ${start}`);
    }
    relayIdIn(slot, start);
    this.slot = slot;
    this.#span = span;
    this.#next = start;
  }

  /** How many ids are out. */
  get size(): number {
    return this.#live.size;
  }

  /**
   * Hand out an id no live session of this slot has.
   *
   * @returns The id, or `null` when every one (2²²−1) is out.
   */
  allocate(): number | null {
    if (this.#live.size >= this.#span - 1) return null;
    for (;;) {
      const n = this.#next;
      this.#next = n + 1 >= this.#span ? 1 : n + 1;
      const id = relayIdIn(this.slot, n);
      if (this.#live.has(id)) continue;
      this.#live.add(id);
      return id;
    }
  }

  /**
   * Take an id back.
   *
   * @param relayId The id.
   */
  release(relayId: number): void {
    this.#live.delete(relayId);
  }

  /**
   * Whether an id is out.
   *
   * @param relayId The id.
   * @returns Whether a live session has it.
   */
  holds(relayId: number): boolean {
    return this.#live.has(relayId);
  }
}

/** Timing of a slot's lease. */
export interface LeaseTiming {
  /** How long the bucket keeps an entry after its last write (its max age), ms. */
  ttlMs: number;
  /** How often the holder renews, ms (well under `ttlMs`). */
  renewMs: number;
  /** Held until this long before the bucket could let the entry go, ms (clock drift, a late timer). */
  marginMs: number;
  /** Readers count a slot as gone when it was not renewed for this long, ms. */
  deadAfterMs: number;
}

/** The timing nodes use: renewed every 2 s, given up by its holder 8 s after the last renewal sent. */
export const LEASE_TIMING: Readonly<LeaseTiming> = Object.freeze({
  ttlMs: 10_000,
  renewMs: 2_000,
  marginMs: 2_000,
  deadAfterMs: 6_000,
});

/**
 * Check that lease timing holds together: renewals fit several times in what readers wait, the holder gives
 * up before the bucket can drop the entry.
 *
 * @param timing The timing.
 * @throws {RangeError} When it does not.
 */
export function checkLeaseTiming(timing: LeaseTiming): void {
  const { ttlMs, renewMs, marginMs, deadAfterMs } = timing;
  if (!(renewMs > 0 && marginMs > 0 && ttlMs > renewMs + marginMs)) {
    throw new RangeError(`Lease timing: need ttlMs > renewMs + marginMs > 0: got ${JSON.stringify(timing)}`);
  }
  if (!(deadAfterMs >= 2 * renewMs && deadAfterMs <= ttlMs)) {
    throw new RangeError(
      `Lease timing: need 2 renewMs <= deadAfterMs <= ttlMs: got ${JSON.stringify(timing)}`,
    );
  }
}

/**
 * How long a node may go on using a slot: until `ttlMs − marginMs` after it sent the last write the bucket
 * accepted (the bucket's clock starts when it stores the write, which is later).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SlotLease } from "./relay_slots.ts";
 * const lease = new SlotLease({ ttlMs: 10_000, renewMs: 2_000, marginMs: 2_000, deadAfterMs: 6_000 });
 * assert(!lease.valid(0));
 * lease.renewed(1_000);
 * assert(lease.valid(8_999) && !lease.valid(9_000));
 * ```
 */
export class SlotLease {
  #holdMs: number;
  #until = -Infinity;

  /**
   * Make a lease not held yet.
   *
   * @param timing Its timing.
   */
  constructor(timing: LeaseTiming) {
    checkLeaseTiming(timing);
    this.#holdMs = timing.ttlMs - timing.marginMs;
  }

  /**
   * A write the bucket accepted.
   *
   * @param sentAt When it was sent (monotonic ms), not when the answer came.
   */
  renewed(sentAt: number): void {
    this.#until = Math.max(this.#until, sentAt + this.#holdMs);
  }

  /** Until when it is held (monotonic ms; `-Infinity` before the first write). */
  get until(): number {
    return this.#until;
  }

  /**
   * Whether the slot may still be used.
   *
   * @param now Monotonic ms.
   * @returns Whether held.
   */
  valid(now: number): boolean {
    return now < this.#until;
  }
}
