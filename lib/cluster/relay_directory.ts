/**
 * What one node knows of the other nodes' relay slots and users, sans I/O:
 * fed with the entries of two key-value buckets as a watch brings them
 * (every slot's hold, and each node's newest proven endpoint per user), it
 * answers which node holds a relay id now and where a user's newest session
 * is. A slot not renewed for `deadAfterMs` is gone, and with it every
 * endpoint under its hold, so a node that died (kill -9) stops being named
 * in `PEER` answers within that time; an endpoint written under an earlier
 * hold of a slot is never named.
 *
 * @module
 */

import type { RoutedEndpoint } from "../server/relay_routing.ts";
import type { EndpointRecord, SlotClaim } from "./_relay_wire.ts";
import { slotOf } from "./relay_slots.ts";

interface SlotState extends SlotClaim {
  /** When its latest write was made, monotonic ms as best known. */
  seenAt: number;
}

/**
 * The other nodes' slots and endpoints, as last seen.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RelayDirectory } from "./relay_directory.ts";
 * import { relayIdIn } from "./relay_slots.ts";
 * const dir = new RelayDirectory({ deadAfterMs: 6000 });
 * dir.slotSeen(4, { node: "n2", claim: "00000000000000aa" }, 0);
 * dir.endpointSeen("YWxpY2U.4", {
 *   user: "alice", relayId: relayIdIn(4, 9), hostname: "192.0.2.1", port: 5000, since: 1, claim: "00000000000000aa",
 * });
 * assert(dir.newest("alice", 1000)?.port === 5000);
 * assert(dir.newest("alice", 6000) === null, "not renewed: that node is gone");
 * ```
 */
export class RelayDirectory {
  #deadAfterMs: number;
  #slots = new Map<number, SlotState>();
  /** Endpoint entries by key, and by user then key. */
  #byKey = new Map<string, EndpointRecord>();
  #byUser = new Map<string, Map<string, EndpointRecord>>();

  /**
   * Make an empty directory.
   *
   * @param options How long a slot stays live after its latest write, ms.
   */
  constructor(options: { deadAfterMs: number }) {
    this.#deadAfterMs = options.deadAfterMs;
  }

  /**
   * A slot's entry was written or removed.
   *
   * @param slot The slot.
   * @param claim Its hold, or `null` when removed (or unreadable).
   * @param at When the write was made (monotonic ms).
   */
  slotSeen(slot: number, claim: SlotClaim | null, at: number): void {
    if (claim) this.#slots.set(slot, { ...claim, seenAt: at });
    else this.#slots.delete(slot);
  }

  /**
   * The live hold of a slot.
   *
   * @param slot The slot.
   * @param now Monotonic ms.
   * @returns Its hold, or `null` when nobody renewed it in time.
   */
  holder(slot: number, now: number): SlotClaim | null {
    const state = this.#slots.get(slot);
    return state && now - state.seenAt < this.#deadAfterMs ? { node: state.node, claim: state.claim } : null;
  }

  /**
   * Slots that look held at `now`.
   *
   * @param now Monotonic ms.
   * @returns Their numbers.
   */
  liveSlots(now: number): number[] {
    return [...this.#slots.keys()].filter((slot) => this.holder(slot, now) !== null);
  }

  /**
   * A user's endpoint entry was written or removed.
   *
   * @param key Its key in the bucket.
   * @param record The endpoint, or `null` when removed (or unreadable).
   */
  endpointSeen(key: string, record: EndpointRecord | null): void {
    const old = this.#byKey.get(key);
    if (old) {
      const mine = this.#byUser.get(old.user);
      mine?.delete(key);
      if (mine?.size === 0) this.#byUser.delete(old.user);
      this.#byKey.delete(key);
    }
    if (!record) return;
    this.#byKey.set(key, record);
    const mine = this.#byUser.get(record.user) ?? new Map<string, EndpointRecord>();
    mine.set(key, record);
    this.#byUser.set(record.user, mine);
  }

  /** How many endpoint entries are known. */
  get size(): number {
    return this.#byKey.size;
  }

  /**
   * The newest endpoint of a user under a live hold.
   *
   * @param user Lower-cased account name.
   * @param now Monotonic ms.
   * @param except Holds to leave out (this node's own, now and before).
   * @returns The endpoint, or `null`.
   */
  newest(user: string, now: number, except?: ReadonlySet<string>): RoutedEndpoint | null {
    let best: EndpointRecord | null = null;
    for (const record of this.#byUser.get(user)?.values() ?? []) {
      if (except?.has(record.claim)) continue;
      const holder = this.holder(slotOf(record.relayId), now);
      if (holder?.claim !== record.claim) continue;
      if (
        !best || record.since > best.since || (record.since === best.since && record.relayId > best.relayId)
      ) {
        best = record;
      }
    }
    return best
      ? { relayId: best.relayId, hostname: best.hostname, port: best.port, since: best.since }
      : null;
  }
}
