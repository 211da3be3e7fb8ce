/**
 * Presence across nodes: one directory of online users that every node
 * holds whole in memory (so {@linkcode PresenceDirectory} stays synchronous),
 * fed from the bus.
 *
 * Design. A user with sessions on a node is one key of the `live` bucket
 * (node_liveness.ts): `p.<node>.<user>` holding the user's name, identity key
 * and fingerprint, and the node's incarnation. The node writes it when the
 * user's first session there logs in (or registers an identity key: written
 * again) and deletes it when the last one there leaves — after the linger
 * time (1 s) when it left cleanly, as in-process presence does. Every node
 * watches the bucket; a user is online while some key of theirs belongs to a
 * live incarnation of its node, so:
 *
 * - `LIST` and `PEER` on any node answer from its copy, which holds the users
 *   of every node (a node's copy trails the bucket by the time a change takes
 *   to arrive, milliseconds);
 * - every node applies the changes in the bucket's stream order, so the
 *   notices about a user (online, offline, a new key) come in that order on
 *   every node and never show an older state after a newer one, each
 *   coalesced per user as in-process (PresenceCoalescer: at most one notice
 *   per user per 500 ms, always ending with the latest state). The bucket
 *   keeps one value per key, so a node whose watch reads a key after a later
 *   change replaced it skips the earlier one: nodes may differ in which blips
 *   they tell of, never in the state they end in;
 * - a user with sessions on two nodes has two keys, and is online until the
 *   last is gone;
 * - a node that starts reads the bucket before it serves, so it knows who is
 *   online;
 * - a dead node's users go offline everywhere when its heartbeat is deleted
 *   (node_liveness.ts: within about 7.3 s of its death), at the same place in
 *   every node's stream; keys of an incarnation that is not alive are never
 *   shown, so a restarted node leaves no ghosts of its previous run, and a
 *   write that arrives late from a dead incarnation shows nothing.
 *
 * The node that declared another dead, or that restarted or rejoined, deletes
 * the keys left by the incarnation that is gone, each on condition that it is
 * still the revision it saw. Keys are per (node id, user), so the bucket holds
 * at most one key per user per node id, deleted or not.
 *
 * At shutdown, `quiet()` stops the notices to this node's sessions and its
 * writes; the stop that follows deletes the node's heartbeat, which takes its
 * users offline for everyone at once, then its keys (node_liveness.ts).
 *
 * @module
 */

import type { KvEntry } from "@nats-io/kv";
import { decodeBase64, encodeBase64 } from "../codec/base64.ts";
import type { ServerMessageOf } from "../codec/messages.ts";
import { pageOf, presenceNotice } from "../server/presence.ts";
import type { OnlineUser, PresenceDirectory, PresenceMember } from "../server/presence.ts";
import { PresenceCoalescer } from "../server/presence_coalescer.ts";
import type { CoalescerClock } from "../server/presence_coalescer.ts";
import type { Logger } from "../server/logger.ts";
import { busToken } from "./nats_bus.ts";
import type { NodeLiveness, NodeRef } from "./node_liveness.ts";

/** Options of {@linkcode NatsPresence}. */
export interface NatsPresenceOptions {
  /** How long a user whose last session here left cleanly stays online, in ms (default 0). */
  lingerMs?: number;
  /** Least time between two notices about one user, in ms (default 0: every change at once). */
  noticeIntervalMs?: number;
  /** Clock and timers of the coalescing (default: the process's). */
  clock?: CoalescerClock;
  /** Where failed writes are logged. */
  log?: Logger;
}

/** One key of a user: on which node, of which incarnation, with what the node knew of the user. */
interface Held {
  incarnation: string;
  user: OnlineUser;
  rev: number;
}

/** Every key of one user. */
interface UserKeys {
  key: string;
  byNode: Map<string, Held>;
}

/** This node's sessions of one user. */
interface LocalUser {
  user: OnlineUser;
  sessions: Set<PresenceMember>;
  linger?: ReturnType<typeof setTimeout>;
}

/** Keys removed at once when collecting a gone incarnation's keys. */
const COLLECT_BATCH = 100;

function sameUser(a: OnlineUser, b: OnlineUser): boolean {
  return a.name === b.name && a.fingerprint === b.fingerprint &&
    (a.identityKey === null ? b.identityKey === null : b.identityKey !== null &&
      encodeBase64(a.identityKey) === encodeBase64(b.identityKey));
}

/** A presence value read from the bucket; `null` when it is not one (ignored). */
function parseHeld(entry: KvEntry, userToken: string): Held | null {
  let value: Record<string, unknown>;
  try {
    value = entry.json<Record<string, unknown>>();
  } catch {
    return null;
  }
  const { inc, key, name, ik, fp } = value;
  if (typeof inc !== "string" || typeof key !== "string" || typeof name !== "string") return null;
  if (busToken(key) !== userToken) return null;
  if (!(ik === null || typeof ik === "string") || !(fp === null || typeof fp === "string")) return null;
  const identityKey = ik === null ? null : decodeBase64(ik);
  if (ik !== null && identityKey === null) return null;
  return { incarnation: inc, rev: entry.revision, user: { key, name, identityKey, fingerprint: fp } };
}

/**
 * Presence shared by every node on one bus.
 *
 * @example
 * ```ts ignore
 * const liveness = new NodeLiveness(bus);
 * const presence = new NatsPresence(liveness, { lingerMs: 1000, noticeIntervalMs: 500 });
 * await liveness.start();
 * presence.join(session, { key: "alice", name: "Alice", identityKey: null, fingerprint: null });
 * // … on every node: presence.get("alice")?.name === "Alice" once the change has arrived
 * ```
 */
export class NatsPresence implements PresenceDirectory {
  #liveness: NodeLiveness;
  #log: Logger | undefined;
  #lingerMs: number;
  #coalescer: PresenceCoalescer;
  #members = new Map<PresenceMember, string>();
  #local = new Map<string, LocalUser>();
  /** The bucket's presence keys, by user token. */
  #keys = new Map<string, UserKeys>();
  /** User tokens with a key of each node. */
  #byNode = new Map<string, Set<string>>();
  #online = new Map<string, OnlineUser>();
  #sorted: string[] | null = null;
  #quiet = false;
  #writes = new Set<Promise<unknown>>();
  #retries = new Set<ReturnType<typeof setTimeout>>();

  /**
   * Make the directory; it reads the bucket once `liveness` is started.
   *
   * @param liveness This node's liveness (not started yet).
   * @param options Linger time, notice interval, clock, log.
   */
  constructor(liveness: NodeLiveness, options: NatsPresenceOptions = {}) {
    this.#liveness = liveness;
    this.#log = options.log;
    this.#lingerMs = options.lingerMs ?? 0;
    this.#coalescer = new PresenceCoalescer((key, notice) => this.#fanOut(key, notice), {
      intervalMs: options.noticeIntervalMs ?? 0,
      ...(options.clock ? { clock: options.clock } : {}),
    });
    liveness.listen({
      entry: (entry) => this.#applyEntry(entry),
      nodeUp: (ref) => this.#recheckNode(ref),
      nodeGone: (ref) => this.#recheckNode(ref),
      collect: (node) => void this.#track(this.#collect(node)),
      rejoined: () => {
        for (const { user } of this.#local.values()) this.#put(user);
      },
    });
  }

  join(member: PresenceMember, user: OnlineUser): void {
    if (this.#members.has(member)) this.leave(member, this.#members.get(member)!);
    this.#members.set(member, user.key);
    this.#coalescer.observerJoined();
    const local = this.#local.get(user.key);
    if (local) {
      // Back within the linger time: the key was never deleted.
      clearTimeout(local.linger);
      delete local.linger;
      local.user = user;
      local.sessions.add(member);
      return;
    }
    this.#local.set(user.key, { user, sessions: new Set([member]) });
    this.#put(user);
  }

  leave(member: PresenceMember, userKey: string, linger = false): void {
    if (this.#members.get(member) !== userKey) return;
    this.#members.delete(member);
    const local = this.#local.get(userKey);
    if (!local) return;
    local.sessions.delete(member);
    if (local.sessions.size > 0 || local.linger !== undefined) return;
    if (linger && this.#lingerMs > 0 && !this.#quiet) {
      local.linger = setTimeout(() => this.#drop(userKey), this.#lingerMs);
      return;
    }
    this.#drop(userKey);
  }

  update(user: OnlineUser): void {
    const local = this.#local.get(user.key);
    if (!local) return;
    local.user = user;
    this.#put(user);
  }

  list(after: string | undefined, limit: number): { users: OnlineUser[]; next?: string } {
    this.#sorted ??= [...this.#online.keys()].sort();
    const { keys, next } = pageOf(this.#sorted, after, limit);
    const users = keys.map((k) => this.#online.get(k)!);
    return next === undefined ? { users } : { users, next };
  }

  get(userKey: string): OnlineUser | undefined {
    return this.#online.get(userKey);
  }

  quiet(): void {
    this.#quiet = true;
    for (const local of this.#local.values()) clearTimeout(local.linger);
    for (const timer of this.#retries) clearTimeout(timer);
    this.#retries.clear();
    this.#coalescer.close();
  }

  /** Users with a session on this node (for tests and metrics). */
  get localUsers(): number {
    return this.#local.size;
  }

  /**
   * Wait for the writes under way (at most `timeoutMs`), and stop. Call after `quiet()` and the liveness's
   * `depart()`, which asks for this node's keys to be deleted.
   *
   * @param timeoutMs Longest wait (default 2000).
   */
  async close(timeoutMs = 2000): Promise<void> {
    this.quiet();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.#writes]),
      new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
  }

  #keyOf(node: string, userKey: string): string {
    return `p.${node}.${busToken(userKey)}`;
  }

  #track<T>(write: Promise<T>): Promise<T> {
    this.#writes.add(write);
    write.finally(() => this.#writes.delete(write)).catch(() => {});
    return write;
  }

  /** Write this node's key of a user (again, after a failure, while the user is still here). */
  #put(user: OnlineUser): void {
    if (this.#quiet) return;
    const value = JSON.stringify({
      inc: this.#liveness.incarnation,
      key: user.key,
      name: user.name,
      ik: user.identityKey ? encodeBase64(user.identityKey) : null,
      fp: user.fingerprint,
    });
    this.#track(this.#liveness.kv.put(this.#keyOf(this.#liveness.node, user.key), value)).catch((err) => {
      this.#log?.warn("bus_write_failed", { what: "presence", error: (err as Error).message });
      const local = this.#local.get(user.key);
      if (!local || local.user !== user || this.#liveness.fenced) return;
      this.#retry(() => this.#local.get(user.key)?.user === user && this.#put(user));
    });
  }

  /** The user's last session here is gone: delete this node's key (again, after a failure). */
  #drop(userKey: string): void {
    const local = this.#local.get(userKey);
    if (!local || local.sessions.size > 0) return;
    clearTimeout(local.linger);
    this.#local.delete(userKey);
    if (this.#quiet) return;
    this.#remove(userKey);
  }

  #remove(userKey: string): void {
    this.#track(this.#liveness.kv.delete(this.#keyOf(this.#liveness.node, userKey))).catch((err) => {
      this.#log?.warn("bus_write_failed", { what: "presence", error: (err as Error).message });
      if (this.#local.has(userKey) || this.#liveness.fenced) return;
      this.#retry(() => !this.#local.has(userKey) && this.#remove(userKey));
    });
  }

  /** Try a failed write again a heartbeat later, unless the server stops meanwhile. */
  #retry(write: () => void): void {
    if (this.#quiet) return;
    const timer = setTimeout(() => {
      this.#retries.delete(timer);
      if (!this.#quiet) write();
    }, this.#liveness.timing.heartbeatMs);
    this.#retries.add(timer);
  }

  #applyEntry(entry: KvEntry): void {
    const parts = entry.key.split(".");
    if (parts.length !== 3 || parts[0] !== "p") return;
    const [, node, token] = parts as [string, string, string];
    if (entry.operation === "PUT") {
      const held = parseHeld(entry, token);
      if (!held) {
        this.#log?.warn("bus_bad_entry", { key: entry.key });
        return;
      }
      let keys = this.#keys.get(token);
      if (!keys) this.#keys.set(token, keys = { key: held.user.key, byNode: new Map() });
      keys.byNode.set(node, held);
      let tokens = this.#byNode.get(node);
      if (!tokens) this.#byNode.set(node, tokens = new Set());
      tokens.add(token);
    } else {
      const keys = this.#keys.get(token);
      if (!keys?.byNode.delete(node)) return;
      this.#byNode.get(node)?.delete(token);
      if (this.#byNode.get(node)?.size === 0) this.#byNode.delete(node);
    }
    this.#recheck(token);
  }

  #recheckNode(ref: NodeRef): void {
    for (const token of this.#byNode.get(ref.node) ?? []) this.#recheck(token);
  }

  /** Whether a user is online now, with what, and tell everyone when that changed. */
  #recheck(token: string): void {
    const keys = this.#keys.get(token);
    if (!keys) return;
    let shown: Held | undefined;
    for (const [node, held] of keys.byNode) {
      if (!this.#liveness.isLive(node, held.incarnation)) continue;
      if (!shown || held.rev > shown.rev) shown = held;
    }
    if (keys.byNode.size === 0) this.#keys.delete(token);
    const before = this.#online.get(keys.key);
    if (!shown) {
      if (!before) return;
      this.#online.delete(keys.key);
      this.#sorted = null;
      this.#broadcast(before, "offline");
      return;
    }
    this.#online.set(keys.key, shown.user);
    if (!before) {
      this.#sorted = null;
      this.#broadcast(shown.user, "online");
    } else if (!sameUser(before, shown.user)) {
      this.#broadcast(shown.user, "online");
    }
  }

  /** Delete a node's keys that belong to no live incarnation, each on condition it is still what was seen. */
  async #collect(node: string): Promise<void> {
    const stale: [string, number][] = [];
    for (const token of this.#byNode.get(node) ?? []) {
      const held = this.#keys.get(token)?.byNode.get(node);
      if (held && !this.#liveness.isLive(node, held.incarnation)) {
        stale.push([`p.${node}.${token}`, held.rev]);
      }
    }
    const kv = this.#liveness.kv;
    for (let i = 0; i < stale.length; i += COLLECT_BATCH) {
      await Promise.allSettled(
        stale.slice(i, i + COLLECT_BATCH).map(([key, rev]) =>
          this.#track(kv.delete(key, { previousSeq: rev }))
        ),
      );
    }
  }

  #broadcast(user: OnlineUser, state: "online" | "offline"): void {
    if (this.#quiet) return;
    this.#coalescer.publish(user.key, presenceNotice(user, state));
  }

  #fanOut(userKey: string, notice: ServerMessageOf<"PRESENCE">): void {
    if (this.#quiet) return;
    for (const [member, key] of this.#members) if (key !== userKey) member.notify(notice);
  }
}
