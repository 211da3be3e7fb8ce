/**
 * Relay routing over NATS: relay ids unique across nodes, `PEER` answers for
 * users on any node, and RELAY datagrams carried to the node that holds their
 * recipient. See lib/server/relay_routing.ts for the contract.
 *
 * Design (the sans-I/O halves are relay_slots.ts and relay_directory.ts):
 * - **Relay ids.** Each node holds one of 1024 slots (the top 10 bits of
 *   every relay id it hands out) under a lease in the JetStream key-value
 *   bucket `<prefix>_relay_slots`: claimed with create-if-absent, renewed
 *   every 2 s with a compare-and-swap write, and given up by the node itself
 *   8 s after the last renewal it sent, 2 s before the bucket (max age 10 s)
 *   can let the entry go and another node create it. A node that loses its
 *   slot (the bus was out of reach too long) voids every id of it at once —
 *   its sessions get ids of the next slot it claims — so no two live
 *   sessions ever share an id. Each hold has a random claim id; whatever was
 *   written or sent under an earlier hold is ignored.
 * - **Where users are.** Each node writes, per user, the endpoint of its
 *   newest proven session to `<prefix>_relay_endpoints` (key: the user as a
 *   bus token, the slot and the hold's claim id), when that changes, and
 *   deletes it when the user has none left there. A key belongs to one hold of
 *   a slot: a node that lost its slot and whose writes land late (held while
 *   it was cut off, or tried again) never touches the entries of the node that
 *   holds the slot after it. Every node watches both buckets and keeps them in
 *   memory, so a `PEER` answer costs no round trip. A slot not renewed for 6 s
 *   is gone with its endpoints: a node killed with -9 stops being named within
 *   that. The endpoints bucket keeps entries 30 minutes after their last write
 *   and each node rewrites its own every 10 minutes, so entries a dead node
 *   left behind go by themselves.
 * - **Forwarding.** A RELAY whose recipient's id is in another node's slot is
 *   published (core NATS, like UDP: no queue, no retry) on
 *   `<prefix>.relay.<slot>` with the claim id the sender saw; the holder
 *   tags it for its recipient and sends it from its own UDP socket. The
 *   sender's node has spent the sender's relay budget before it forwards.
 *
 * The lease is given up by a timer, and every use of an id checks it too
 * (handing one out, taking a forwarded datagram), so a node gives up its slot
 * in time unless its event loop stalls for longer than the margin (2 s); a
 * stall that long can at worst send one datagram, still encrypted end to
 * end, to a session that cannot open it.
 *
 * @module
 */

import { busToken, BusUnavailableError } from "./nats_bus.ts";
import type { KV, NatsBus } from "./nats_bus.ts";
import type { KvWatchEntry } from "@nats-io/kv";
import type { Subscription } from "@nats-io/transport-node";
import type {
  ForwardedDatagram,
  RelayHandlers,
  RelayRouting,
  RoutedEndpoint,
} from "../server/relay_routing.ts";
import { RelayDirectory } from "./relay_directory.ts";
import { LatestWrites } from "./_latest_writes.ts";
import { checkLeaseTiming, LEASE_TIMING, RelayIdAllocator, SlotLease, slotOf, SLOTS } from "./relay_slots.ts";
import type { LeaseTiming } from "./relay_slots.ts";
import {
  decodeEndpoint,
  decodeForward,
  decodeSlotClaim,
  encodeEndpoint,
  encodeForward,
  encodeSlotClaim,
  newClaim,
  parseSlot,
} from "./_relay_wire.ts";

/** How long the endpoints bucket keeps an entry after its last write. */
export const ENDPOINT_TTL_MS = 30 * 60_000;
/** Writes of one node's endpoint entries under way at once. */
const MAX_WRITES = 32;

/** Options of {@linkcode NatsRelayRouting.start}. */
export interface NatsRelayRoutingOptions {
  /** Lease timing (default {@linkcode LEASE_TIMING}); tests shorten it. */
  timing?: LeaseTiming;
  /** How long an endpoint entry lives after its last write (default {@linkcode ENDPOINT_TTL_MS}). */
  endpointTtlMs?: number;
  /** Monotonic clock in ms (default `performance.now`). */
  now?: () => number;
}

/** What the routing did, for logs, metrics and tests. */
export interface NatsRelayStats {
  /** Datagrams published toward another node. */
  forwarded: number;
  /** Datagrams that arrived for this node's sessions. */
  arrived: number;
  /** Arrivals dropped: malformed, or sent under another hold of this node's slot. */
  arrivedDropped: number;
  /** Slots claimed (1 unless this node lost one). */
  claims: number;
  /** Slots lost. */
  losses: number;
  /** Writes of endpoint entries that failed (each is tried again at the next renewal). */
  writeFailures: number;
}

interface Hold {
  slot: number;
  claim: string;
  revision: number;
  lease: SlotLease;
  ids: RelayIdAllocator;
  subscription: Subscription;
}

/** Whether a JetStream error says the key's last revision was not the one expected. */
function wrongRevision(err: unknown): boolean {
  const e = err as { name?: string; code?: number };
  return e?.name === "JetStreamApiError" && (e.code === 10071 || e.code === 10164);
}

function shuffled(n: number): number[] {
  const out = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * One node's relay routing over a {@linkcode NatsBus}.
 *
 * @example
 * ```ts ignore
 * const bus = await NatsBus.connect({ servers: ["nats://127.0.0.1:4222"], nodeId: "node-1" });
 * const relay = await NatsRelayRouting.start(bus);
 * const server = await AuthchatServer.start({ config, identity, store, log, parts: { ...parts, relay } });
 * // …
 * await server.shutdown();
 * await relay.close();
 * await bus.close();
 * ```
 */
export class NatsRelayRouting implements RelayRouting {
  #bus: NatsBus;
  #slots: KV;
  #endpoints: KV;
  #timing: LeaseTiming;
  #endpointTtlMs: number;
  #now: () => number;
  #directory: RelayDirectory;
  #hold: Hold | null = null;
  /** Every hold this node has had: its own endpoints are never "elsewhere", even under a lost hold. */
  #ownClaims = new Set<string>();
  /** The slot last held and its last revision: claimed again first, by compare-and-swap. */
  #lastHeld: { slot: number; revision: number } | null = null;
  #handlers: RelayHandlers | null = null;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lapseTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshAt: number;
  #watches: { stop(): void }[] = [];
  #watching: Promise<void>[] = [];
  /** Endpoint entries as they should be (`null`: deleted), the key each user's is under, writes due. */
  #writes: LatestWrites;
  #keyOf = new Map<string, string>();
  #ticking: Promise<void> = Promise.resolve();
  #stats: Omit<NatsRelayStats, "writeFailures"> = {
    forwarded: 0,
    arrived: 0,
    arrivedDropped: 0,
    claims: 0,
    losses: 0,
  };

  private constructor(bus: NatsBus, slots: KV, endpoints: KV, options: NatsRelayRoutingOptions) {
    this.#bus = bus;
    this.#slots = slots;
    this.#endpoints = endpoints;
    this.#writes = new LatestWrites(endpoints, { maxInFlight: MAX_WRITES });
    this.#timing = options.timing ?? LEASE_TIMING;
    this.#endpointTtlMs = options.endpointTtlMs ?? ENDPOINT_TTL_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#directory = new RelayDirectory({ deadAfterMs: this.#timing.deadAfterMs });
    this.#refreshAt = this.#now() + this.#endpointTtlMs / 3;
  }

  /**
   * Join the other nodes: open the buckets, watch them, claim a slot.
   *
   * @param bus This node's bus.
   * @param options Timing (tests).
   * @returns The routing, holding a slot.
   * @throws {BusUnavailableError} When the buckets cannot be opened or no slot can be claimed.
   * @throws {RangeError} For timing that does not hold together.
   */
  static async start(bus: NatsBus, options: NatsRelayRoutingOptions = {}): Promise<NatsRelayRouting> {
    const timing = options.timing ?? LEASE_TIMING;
    checkLeaseTiming(timing);
    let routing: NatsRelayRouting | undefined;
    try {
      const slots = await bus.kv("relay_slots", { ttlMs: timing.ttlMs, history: 1 });
      const endpoints = await bus.kv("relay_endpoints", {
        ttlMs: options.endpointTtlMs ?? ENDPOINT_TTL_MS,
        history: 1,
      });
      routing = new NatsRelayRouting(bus, slots, endpoints, options);
      await routing.#watch();
      if (!await routing.#claim()) throw new Error(`all ${SLOTS} relay slots are held by other nodes`);
    } catch (err) {
      await routing?.close();
      if (err instanceof RangeError) throw err;
      throw new BusUnavailableError(`cannot join the relay: ${(err as Error).message}`, { cause: err });
    }
    routing.#schedule();
    return routing;
  }

  /** Counters. */
  get stats(): Readonly<NatsRelayStats> {
    return { ...this.#stats, writeFailures: this.#writes.failures };
  }

  /** The slot held now, or `null` (for logs and tests). */
  get slot(): number | null {
    return this.#hold?.slot ?? null;
  }

  /** Whether every endpoint write asked for so far has been made. */
  get settled(): boolean {
    return this.#writes.settled;
  }

  allocate(_sessionId: number): number | null {
    const hold = this.#hold;
    if (!hold || !hold.lease.valid(this.#now())) return null;
    return hold.ids.allocate();
  }

  release(relayId: number): void {
    const hold = this.#hold;
    if (hold && slotOf(relayId) === hold.slot) hold.ids.release(relayId);
  }

  announce(user: string, endpoint: RoutedEndpoint | null): void {
    const hold = this.#hold;
    if (!hold || this.#closed) return;
    // Under this hold only: another hold of the slot, this node's or another's, has keys of its own.
    const key = `${busToken(user)}.${hold.slot}.${hold.claim}`;
    const previous = this.#keyOf.get(user);
    if (previous !== undefined && previous !== key) this.#writes.set(previous, null);
    if (endpoint) {
      this.#keyOf.set(user, key);
      this.#writes.set(key, encodeEndpoint({ ...endpoint, user, claim: hold.claim }));
    } else {
      this.#keyOf.delete(user);
      this.#writes.set(key, null);
    }
  }

  endpointElsewhere(user: string): RoutedEndpoint | null {
    return this.#directory.newest(user, this.#now(), this.#ownClaims);
  }

  forward(datagram: ForwardedDatagram): boolean {
    const slot = slotOf(datagram.to);
    if (this.#closed || slot === this.#hold?.slot) return false;
    const holder = this.#directory.holder(slot, this.#now());
    if (!holder) return false;
    try {
      this.#bus.nc.publish(
        this.#bus.subject("relay", String(slot)),
        encodeForward({ ...datagram, claim: holder.claim }),
      );
    } catch {
      return false;
    }
    this.#stats.forwarded++;
    return true;
  }

  serve(handlers: RelayHandlers): void {
    this.#handlers = handlers;
  }

  /**
   * Leave: stop forwarding to this node, delete its endpoint entries (waiting for the writes at most
   * `graceMs`) and give its slot up. Call after the server has stopped.
   *
   * @param graceMs Longest wait for the writes.
   */
  async close(graceMs = 2000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#lapseTimer);
    for (const watch of this.#watches) watch.stop();
    await this.#ticking;
    const hold = this.#hold;
    this.#hold = null;
    if (hold) {
      hold.subscription.unsubscribe();
      this.#writes.deleteAll();
      await this.#writes.whenSettled(graceMs);
      try {
        await this.#slots.delete(String(hold.slot), { previousSeq: hold.revision });
      } catch {
        // Someone else's now, or the bus is gone: the entry expires by itself.
      }
    }
    await Promise.allSettled(this.#watching);
  }

  async #watch(): Promise<void> {
    const slotWatch = await this.#slots.watch();
    const endpointWatch = await this.#endpoints.watch();
    this.#watches.push(slotWatch, endpointWatch);
    this.#watching.push(
      this.#follow(slotWatch, (e) => {
        const slot = parseSlot(e.key);
        if (slot === null) return;
        const claim = e.operation === "PUT" ? decodeSlotClaim(e.value) : null;
        // An entry from before this node started is as old as its write, as far as the clocks agree.
        const age = e.isUpdate
          ? 0
          : Math.min(Math.max(Date.now() - e.created.getTime(), 0), this.#timing.deadAfterMs);
        this.#directory.slotSeen(slot, claim, this.#now() - age);
      }),
      this.#follow(endpointWatch, (e) => {
        this.#directory.endpointSeen(e.key, e.operation === "PUT" ? decodeEndpoint(e.value) : null);
      }),
    );
  }

  async #follow(watch: AsyncIterable<KvWatchEntry>, seen: (e: KvWatchEntry) => void): Promise<void> {
    try {
      for await (const e of watch) seen(e);
    } catch {
      // A watch that fails ends; the entries it knew are judged by their age from now on.
    }
  }

  /** Claim a slot: the one held last (compare-and-swap from its last revision), else a free one. */
  async #claim(): Promise<boolean> {
    const claim = newClaim();
    const value = encodeSlotClaim({ node: this.#bus.nodeId, claim });
    const sentAt = this.#now();
    const last = this.#lastHeld;
    if (last) {
      try {
        const revision = await this.#slots.update(String(last.slot), value, last.revision);
        this.#held(last.slot, claim, revision, sentAt);
        return true;
      } catch (err) {
        if (!wrongRevision(err)) throw err;
        this.#lastHeld = null;
      }
    }
    const live = new Set(this.#directory.liveSlots(this.#now()));
    const order = shuffled(SLOTS).sort((a, b) => Number(live.has(a)) - Number(live.has(b)));
    for (const slot of order) {
      try {
        const attemptAt = this.#now();
        const revision = await this.#slots.create(String(slot), value);
        this.#held(slot, claim, revision, attemptAt);
        return true;
      } catch (err) {
        if (!wrongRevision(err)) throw err;
      }
    }
    return false;
  }

  #held(slot: number, claim: string, revision: number, sentAt: number): void {
    const lease = new SlotLease(this.#timing);
    lease.renewed(sentAt);
    const subscription = this.#bus.nc.subscribe(this.#bus.subject("relay", String(slot)), {
      callback: (err, msg) => {
        if (!err) this.#arrived(msg.data, subscription);
      },
    });
    this.#hold = { slot, claim, revision, lease, ids: new RelayIdAllocator(slot), subscription };
    this.#ownClaims.add(claim);
    this.#stats.claims++;
    this.#armLapse();
  }

  #arrived(bytes: Uint8Array, subscription: Subscription): void {
    const hold = this.#hold;
    const m = decodeForward(bytes);
    if (
      !m || !hold || hold.subscription !== subscription || m.claim !== hold.claim ||
      !hold.lease.valid(this.#now()) || slotOf(m.to) !== hold.slot
    ) {
      this.#stats.arrivedDropped++;
      return;
    }
    this.#stats.arrived++;
    this.#handlers?.deliver({ to: m.to, from: m.from, inner: m.inner });
  }

  /** Give the slot up when its lease runs out without a renewal. */
  #armLapse(): void {
    clearTimeout(this.#lapseTimer);
    const hold = this.#hold;
    if (!hold || this.#closed) return;
    this.#lapseTimer = setTimeout(() => {
      if (this.#hold === hold && !hold.lease.valid(this.#now())) this.#lose();
      else this.#armLapse();
    }, Math.max(0, hold.lease.until - this.#now()));
  }

  /** This node's ids are void: stop taking datagrams for them, withdraw its endpoints, reassign. */
  #lose(): void {
    const hold = this.#hold;
    if (!hold) return;
    this.#hold = null;
    this.#lastHeld = { slot: hold.slot, revision: hold.revision };
    this.#stats.losses++;
    clearTimeout(this.#lapseTimer);
    hold.subscription.unsubscribe();
    this.#writes.deleteAll();
    this.#keyOf.clear();
    this.#handlers?.reassign();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#ticking = this.#tick().finally(() => this.#schedule());
    }, this.#timing.renewMs);
  }

  async #tick(): Promise<void> {
    try {
      if (this.#hold) await this.#renew(this.#hold);
      else if (await this.#claim()) this.#handlers?.reassign();
    } catch {
      // The bus is out of reach: tried again at the next tick; the lease runs out by itself meanwhile.
    }
    this.#writes.retryFailed();
    if (this.#now() >= this.#refreshAt) {
      this.#refreshAt = this.#now() + this.#endpointTtlMs / 3;
      this.#writes.rewriteAll();
    }
  }

  async #renew(hold: Hold): Promise<void> {
    const sentAt = this.#now();
    const value = encodeSlotClaim({ node: this.#bus.nodeId, claim: hold.claim });
    try {
      const revision = await this.#slots.update(
        String(hold.slot),
        value,
        hold.revision,
        this.#timing.renewMs,
      );
      if (this.#hold !== hold) return;
      hold.revision = revision;
      hold.lease.renewed(sentAt);
      this.#armLapse();
    } catch (err) {
      if (!wrongRevision(err) || this.#hold !== hold) throw err;
      // A renewal whose answer was lost, or another node's entry, or none at all.
      const entry = await this.#slots.get(String(hold.slot));
      const found = entry?.operation === "PUT" ? decodeSlotClaim(entry.value) : null;
      if (this.#hold !== hold) return;
      if (entry && found?.claim === hold.claim) hold.revision = entry.revision;
      else this.#lose();
    }
  }
}
