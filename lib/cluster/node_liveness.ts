/**
 * Which server nodes are alive, and one ordered view of what they share.
 *
 * Design. Every node keeps one JetStream key-value bucket, `live` (under the
 * bus prefix, one value per key), and watches all of it: the watch yields the
 * current values, then every change in the bucket's stream order, so every
 * node sees the same changes in the same order. In it:
 *
 * - `n.<node>`: the node's heartbeat, `{"node":…,"inc":…}`, rewritten every
 *   `heartbeatMs` (1 s) by a compare-and-set on its own last revision. `inc`
 *   is the node's **incarnation**: random, new at every start (and after the
 *   node lost the bus, below), so a restarted node with the same `node_id` is
 *   never taken for its previous run.
 * - anything else (`p.<node>.<user>`: presence, nats_presence.ts) is handed to
 *   the listeners in stream order, between the node changes it falls among.
 *
 * A node is **alive** from its heartbeat's first value with an incarnation
 * until that key is deleted or holds another incarnation. Every node times the
 * heartbeats it receives on its own monotonic clock; one whose revision has
 * not changed for `deadAfterMs` (6 s) is declared dead by whichever node sees
 * it first: a delete of its key on condition that the key is still at that
 * revision (so a slow watcher can never kill a node whose heartbeats reach the
 * bucket, and two detectors do not both act). Everyone sees the delete at the
 * same place in the stream; the declaring node then removes the dead
 * incarnation's other keys (its users), which nobody shows any more anyway.
 * A user of a node killed with `kill -9` is offline for everyone within
 * `deadAfterMs` + `heartbeatMs` + one check (250 ms), about 7.3 s, plus the
 * presence coalescing (0.5 s).
 *
 * **Losing the bus: fail closed.** A node measures the age of its last
 * heartbeat the bucket acknowledged (from when it was sent). Past
 * `fenceAfterMs` (3.5 s) it is **fenced**: it ends every logged-in session
 * (`BYE UNAVAILABLE`) and refuses logins (`UNAVAILABLE`) until it is back,
 * because it can no longer hear another node's PASSWD or DELETE. Since
 * `fenceAfterMs` < `deadAfterMs`, a node the others declare dead has fenced
 * itself before they do, and a PASSWD that stops waiting for a dead node
 * does not leave that node's sessions running (nats_session_directory.ts).
 * When the bus answers again the node takes a new incarnation (its old one may
 * have been declared dead meanwhile, and its sessions are gone anyway).
 *
 * **Start.** A node watches the bucket until it has seen everything in it,
 * then announces its incarnation. When the bucket still holds a heartbeat of
 * another incarnation under its node id (a previous run that did not stop
 * cleanly), it waits until that heartbeat has not moved for `deadAfterMs`
 * since it saw it, as the other nodes wait before they declare a node dead:
 * if it moves, another live process has this node id and the start fails
 * ({@linkcode NodeIdConflictError}); else it takes the key over (the old
 * run's users go offline for everyone then) and removes the old run's keys.
 * So an old run that is still up but lost the bus has fenced itself before its
 * incarnation is over for the others.
 * A node that later finds its key taken by a process it does not know stops
 * too (the newer one keeps it). A clean stop deletes the node's heartbeat (its
 * users are offline for everyone at once), then its other keys.
 *
 * **Deletes are forgotten.** A delete leaves a marker in the bucket, which
 * JetStream would keep for good (every node id and every (node, user) pair
 * there ever was, read by every start). The live node with the lowest token
 * purges the markers once they are `keepDeletesMs` (1 h) old
 * (_marker_purger.ts, _delete_markers.ts). A marker only matters to a watch
 * that resumes from before it; so a node whose watch gave nothing for half
 * that time (it was away from the bus) reads the whole bucket again instead of
 * resuming, and what it knew that the bucket no longer holds is deleted in its
 * view then (_live_watch.ts, which also reopens a stalled watch).
 *
 * The timing assumes a node's event loop is never stalled for longer than
 * `deadAfterMs - fenceAfterMs` (2.5 s): a stalled node cannot fence itself.
 * After a shorter stall, `fenced` is read from the clock, so no request that
 * runs before the next check finds the node unfenced when it should be.
 *
 * @module
 */

import type { KV, KvEntry } from "@nats-io/kv";
import { LiveWatch } from "./_live_watch.ts";
import { MarkerPurger } from "./_marker_purger.ts";
import { NodeIdConflictError } from "./bus_errors.ts";
import { busToken } from "./nats_bus.ts";
import type { NatsBus } from "./nats_bus.ts";
import type { Logger } from "../server/logger.ts";

export { NodeIdConflictError } from "./bus_errors.ts";

/** The bucket of heartbeats and presence (prefixed: `authchat_live`). */
export const LIVE_BUCKET = "live";

/** Longest wait at start for the bucket's current contents, ms. */
const START_READ_MS = 15_000;

/** How long a delete's marker stays in the bucket, ms (an hour). */
export const DEFAULT_KEEP_DELETES_MS = 3_600_000;

/** JetStream's error code for a compare-and-set that found another revision. */
const WRONG_LAST_SEQUENCE = 10071;

/** How often heartbeats go out, and when a silent node is fenced (by itself) and declared dead (by others). */
export interface LivenessTiming {
  /** Between two heartbeats of a node, ms. */
  heartbeatMs: number;
  /** A node whose heartbeats the bus has not acknowledged for this long ends its sessions, ms. */
  fenceAfterMs: number;
  /** A node whose heartbeat has not moved for this long is declared dead, ms (more than `fenceAfterMs`). */
  deadAfterMs: number;
}

/** The timing of a server: 1 s heartbeats, fenced after 3.5 s, dead after 6 s. */
export const DEFAULT_LIVENESS_TIMING: Readonly<LivenessTiming> = Object.freeze({
  heartbeatMs: 1000,
  fenceAfterMs: 3500,
  deadAfterMs: 6000,
});

/** One incarnation of a node. */
export interface NodeRef {
  /** The node's id as a key token ({@linkcode busToken} of `nodeId`). */
  node: string;
  /** The node's id. */
  nodeId: string;
  /** Its incarnation. */
  incarnation: string;
}

/** What a part that shares the bucket is told; every method is optional. */
export interface LivenessListener {
  /**
   * A key that is not a heartbeat changed (in stream order).
   *
   * @param entry The change (`PUT`, `DEL` or `PURGE`).
   */
  entry?(entry: KvEntry): void;
  /**
   * A node's incarnation is alive (in stream order).
   *
   * @param ref The incarnation.
   */
  nodeUp?(ref: NodeRef): void;
  /**
   * A node's incarnation is gone (in stream order): it stopped, was declared dead, or a newer one replaced it.
   *
   * @param ref The incarnation.
   */
  nodeGone?(ref: NodeRef): void;
  /**
   * This node should delete a node's keys that belong to no live incarnation (it declared that node dead,
   * or the node is itself, after a start, a rejoin or a stop).
   *
   * @param node The node's token.
   */
  collect?(node: string): void;
  /** This node lost the bus for longer than `fenceAfterMs`: its logged-in sessions must end. */
  fenced?(): void;
  /**
   * This node is back on the bus, with a new incarnation.
   *
   * @param incarnation The new one.
   */
  rejoined?(incarnation: string): void;
}

/** This node cannot vouch for the other nodes now: it lost the bus. */
export class BusLostError extends Error {
  /**
   * Make the error.
   *
   * @param message What could not be done.
   */
  constructor(message: string) {
    super(message);
    this.name = "BusLostError";
  }
}

/** Options of {@linkcode NodeLiveness}. */
export interface NodeLivenessOptions {
  /** Timing (default {@linkcode DEFAULT_LIVENESS_TIMING}). */
  timing?: LivenessTiming;
  /** Where node events are logged. */
  log?: Logger;
  /**
   * How long a delete's marker stays in the bucket before it is purged, ms (default
   * {@linkcode DEFAULT_KEEP_DELETES_MS}); a node away from the bus for half of it reads the whole bucket
   * again when it is back. Every node of a bus needs the same.
   */
  keepDeletesMs?: number;
}

interface Known {
  ref: NodeRef;
  /** Revision of its latest heartbeat. */
  rev: number;
  /** When this node saw that revision (monotonic ms). */
  seenAt: number;
}

interface Waiter {
  ready: () => boolean;
  resolve: () => void;
}

function newIncarnation(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

function errorCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "number" ? code : undefined;
}

/** Parse a heartbeat value; `null` when it is not one (a foreign writer: ignored). */
function parseHeartbeat(entry: KvEntry): { nodeId: string; incarnation: string } | null {
  try {
    const value = entry.json<{ node?: unknown; inc?: unknown }>();
    if (typeof value.node !== "string" || typeof value.inc !== "string" || value.inc === "") return null;
    return { nodeId: value.node, incarnation: value.inc };
  } catch {
    return null;
  }
}

/**
 * This node's heartbeats, the other nodes' liveness, and the ordered watch of the `live` bucket that
 * presence reads too. Made with `new`, given its listeners, then {@linkcode NodeLiveness.start}ed.
 *
 * @example
 * ```ts ignore
 * const liveness = new NodeLiveness(bus);
 * liveness.listen({ nodeGone: (ref) => console.log(`${ref.nodeId} is gone`) });
 * await liveness.start();
 * // …
 * await liveness.close();
 * ```
 */
export class NodeLiveness {
  /** The bus. */
  readonly bus: NatsBus;
  /** This node's id. */
  readonly nodeId: string;
  /** This node's id as a key token. */
  readonly node: string;
  #timing: LivenessTiming;
  #log: Logger | undefined;
  #kv: KV | null = null;
  #incarnation = newIncarnation();
  /** Every incarnation of this process: the current one, those before it, and one being announced. */
  #mine = new Set<string>([this.#incarnation]);
  #nodes = new Map<string, Known>();
  #listeners: LivenessListener[] = [];
  #waiters = new Set<Waiter>();
  /** Revision of this node's latest heartbeat, and when the latest acknowledged one was sent. */
  #myRev = 0;
  #ackedSentAt = 0;
  #lastBeatAt = -Infinity;
  #beating: Promise<void> | null = null;
  #fenced = false;
  #started = false;
  #departing = false;
  #closed = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #watch: LiveWatch;
  #watching: Promise<void> | null = null;
  /** Keys other than heartbeats that hold a value in this node's view. */
  #present = new Set<string>();
  #purger: MarkerPurger;
  /** Nodes this node declared dead (or tried to), with the incarnation and when. */
  #declaring = new Map<string, { incarnation: string; at: number }>();
  #conflict: Promise<NodeIdConflictError>;
  #reportConflict!: (err: NodeIdConflictError) => void;
  #conflicted = false;

  /**
   * Prepare (nothing is sent before {@linkcode NodeLiveness.start}).
   *
   * @param bus The node's bus connection (its node id is this node's).
   * @param options Timing, log, and how long deletes are kept.
   * @throws {RangeError} When `deadAfterMs` is not more than `fenceAfterMs`, or that not more than a heartbeat,
   *   or `keepDeletesMs` is not positive.
   */
  constructor(bus: NatsBus, options: NodeLivenessOptions = {}) {
    this.bus = bus;
    this.nodeId = bus.nodeId;
    this.node = busToken(bus.nodeId);
    this.#timing = options.timing ?? DEFAULT_LIVENESS_TIMING;
    this.#log = options.log;
    const { heartbeatMs, fenceAfterMs, deadAfterMs } = this.#timing;
    if (!(heartbeatMs > 0 && fenceAfterMs > heartbeatMs && deadAfterMs > fenceAfterMs)) {
      throw new RangeError(
        `Invalid liveness timing: need 0 < heartbeat ${heartbeatMs} < fence ${fenceAfterMs} < dead ${deadAfterMs}`,
      );
    }
    const keepDeletesMs = options.keepDeletesMs ?? DEFAULT_KEEP_DELETES_MS;
    if (!(keepDeletesMs > 0)) {
      throw new RangeError(`Invalid keepDeletesMs: ${keepDeletesMs} is not a positive number of ms`);
    }
    this.#purger = new MarkerPurger(keepDeletesMs, this.#log);
    this.#watch = new LiveWatch({
      kv: () => this.kv,
      connected: () => this.bus.connected,
      heartbeatMs,
      keepDeletesMs,
      log: this.#log,
      seen: (key, rev, marker, now) => this.#purger.seen(key, rev, marker, now),
      deliver: (entry) => this.#deliver(entry),
      applied: () => this.#wake(),
      held: () => [...this.#nodes.keys()].map((node) => this.#key(node)).concat([...this.#present]),
    });
    this.#conflict = new Promise((resolve) => this.#reportConflict = resolve);
  }

  /** The timing in use. */
  get timing(): LivenessTiming {
    return this.#timing;
  }

  /** This node's current incarnation. */
  get incarnation(): string {
    return this.#incarnation;
  }

  /**
   * Whether this node has lost the bus for longer than `fenceAfterMs` (and not taken a new incarnation yet).
   * Read from the clock, not only from the flag the periodic check sets: after the event loop stalled, a
   * request may run before that check does, and must find the node fenced all the same.
   */
  get fenced(): boolean {
    return this.#fenced || this.#conflicted || this.#silent(performance.now());
  }

  /** Whether the bus has acknowledged no heartbeat sent in the last `fenceAfterMs` (once started). */
  #silent(now: number): boolean {
    return this.#started && now - this.#ackedSentAt > this.#timing.fenceAfterMs;
  }

  /** The bucket (after {@linkcode NodeLiveness.start}). */
  get kv(): KV {
    if (!this.#kv) throw new Error("NodeLiveness is not started");
    return this.#kv;
  }

  /** Settles when another process has taken this node's id while it ran (the server must stop). */
  get conflict(): Promise<NodeIdConflictError> {
    return this.#conflict;
  }

  /**
   * Be told of the bucket's changes and this node's state. Listeners added before the start see the bucket
   * from its beginning.
   *
   * @param listener What to call.
   */
  listen(listener: LivenessListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Whether an incarnation is alive in this node's view.
   *
   * @param node A node's token.
   * @param incarnation Its incarnation.
   * @returns Whether it is alive.
   */
  isLive(node: string, incarnation: string): boolean {
    return this.#nodes.get(node)?.ref.incarnation === incarnation;
  }

  /**
   * The live incarnation of a node.
   *
   * @param node A node's token.
   * @returns It, or `undefined` when the node is not alive.
   */
  liveRef(node: string): NodeRef | undefined {
    return this.#nodes.get(node)?.ref;
  }

  /**
   * The other nodes alive now, in this node's view.
   *
   * @returns Their incarnations.
   */
  others(): NodeRef[] {
    return [...this.#nodes.values()].filter((k) => k.ref.node !== this.node).map((k) => k.ref);
  }

  /**
   * Open the bucket, read it to its end, announce this node, and start the heartbeats.
   *
   * @throws {NodeIdConflictError} When another live process has this node's id.
   * @throws {Error} When the bucket cannot be reached.
   */
  async start(): Promise<void> {
    this.#kv = await this.bus.kv(LIVE_BUCKET, { history: 1 });
    this.#watching = this.#watch.run();
    const last = (await this.#kv.status()).streamInfo.state.last_seq;
    await this.#until(() => this.#watch.processed >= last, START_READ_MS);
    if (this.#watch.processed < last) throw new Error(`could not read the bucket within ${START_READ_MS} ms`);
    const key = this.#key(this.node);
    let mine = this.#nodes.get(this.node);
    if (mine) {
      // A heartbeat of a run that did not stop cleanly, or of a live process with the same id. It may have
      // moved just before this node saw it: only `deadAfterMs` later is that run sure to have fenced itself.
      const { rev, seenAt } = mine;
      const waitMs = Math.max(0, seenAt + this.#timing.deadAfterMs - performance.now());
      await this.#until(() => this.#nodes.get(this.node)?.rev !== rev, waitMs);
      mine = this.#nodes.get(this.node);
      if (mine && mine.rev !== rev) {
        throw new NodeIdConflictError(this.nodeId, "its heartbeat is still moving");
      }
    }
    const sentAt = performance.now();
    try {
      this.#myRev = mine
        ? await this.#kv.update(key, this.#value(), mine.rev)
        : await this.#kv.create(key, this.#value());
    } catch (err) {
      if (errorCode(err) === WRONG_LAST_SEQUENCE) {
        throw new NodeIdConflictError(this.nodeId, "another process wrote its heartbeat meanwhile");
      }
      throw err;
    }
    this.#ackedSentAt = this.#lastBeatAt = sentAt;
    const rev = this.#myRev;
    await this.#until(() => this.#watch.processed >= rev, START_READ_MS);
    if (this.#watch.processed < rev) throw new Error(`could not read the bucket within ${START_READ_MS} ms`);
    this.#started = true;
    this.#log?.always("info", "node_up", { node: this.nodeId, incarnation: this.#incarnation });
    this.#emit((l) => l.collect?.(this.node));
    this.#purger.started(performance.now());
    this.#timer = setInterval(() => this.#tick(), Math.min(250, this.#timing.heartbeatMs / 2));
  }

  /**
   * Wait until this node has seen everything written to the bucket before the call (so its view of the
   * live nodes includes every node that announced itself before).
   *
   * @throws {BusLostError} When this node is fenced, or becomes so while it waits.
   */
  async sync(): Promise<void> {
    for (;;) {
      if (this.fenced) throw new BusLostError("This node has lost the bus");
      let last: number | undefined;
      try {
        last = (await this.kv.status()).streamInfo.state.last_seq;
      } catch {
        // The bus does not answer now: try again a heartbeat later, until it does or this node is fenced.
        await this.#until(() => this.fenced, this.#timing.heartbeatMs);
        continue;
      }
      await this.#until(() => this.#watch.processed >= last || this.fenced);
      if (this.fenced) throw new BusLostError("This node has lost the bus");
      return;
    }
  }

  #until(ready: () => boolean, timeoutMs?: number): Promise<void> {
    if (ready() || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waiter: Waiter = {
        ready,
        resolve: () => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve();
        },
      };
      if (timeoutMs !== undefined) timer = setTimeout(waiter.resolve, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  #wake(): void {
    for (const waiter of [...this.#waiters]) if (this.#closed || waiter.ready()) waiter.resolve();
  }

  #key(node: string): string {
    return `n.${node}`;
  }

  #value(): string {
    return JSON.stringify({ node: this.nodeId, inc: this.#incarnation });
  }

  #emit(call: (listener: LivenessListener) => void): void {
    for (const listener of this.#listeners) {
      try {
        call(listener);
      } catch (err) {
        this.#log?.error("bus_listener_failed", { error: (err as Error).message });
      }
    }
  }

  /** One change of the bucket, in stream order (from {@linkcode LiveWatch}). */
  #deliver(entry: KvEntry): void {
    if (entry.key.startsWith("n.")) this.#applyHeartbeat(entry);
    else {
      if (entry.operation === "PUT") this.#present.add(entry.key);
      else this.#present.delete(entry.key);
      this.#emit((l) => l.entry?.(entry));
    }
  }

  #applyHeartbeat(entry: KvEntry): void {
    const node = entry.key.slice(2);
    const known = this.#nodes.get(node);
    if (entry.operation !== "PUT") {
      if (!known) return;
      this.#nodes.delete(node);
      this.#gone(known.ref);
      if (this.#declaring.get(node)?.incarnation === known.ref.incarnation) {
        this.#emit((l) => l.collect?.(node));
      }
      // Declared dead by another node: this incarnation is over (the next heartbeat would find out too).
      if (
        node === this.node && known.ref.incarnation === this.#incarnation && this.#started && !this.#fenced &&
        !this.#departing
      ) {
        this.#fence();
      }
      return;
    }
    const beat = parseHeartbeat(entry);
    if (!beat || busToken(beat.nodeId) !== node) return;
    if (known?.ref.incarnation === beat.incarnation) {
      known.rev = entry.revision;
      known.seenAt = performance.now();
      return;
    }
    if (known) {
      this.#nodes.delete(node);
      this.#gone(known.ref);
    }
    const ref = { node, nodeId: beat.nodeId, incarnation: beat.incarnation };
    this.#nodes.set(node, { ref, rev: entry.revision, seenAt: performance.now() });
    this.#emit((l) => l.nodeUp?.(ref));
    if (
      node === this.node && this.#started && !this.#mine.has(beat.incarnation)
    ) {
      this.#lostId(beat.incarnation);
    }
  }

  #gone(ref: NodeRef): void {
    if (ref.node !== this.node) {
      this.#log?.info("node_gone", { node: ref.nodeId, incarnation: ref.incarnation });
    }
    this.#emit((l) => l.nodeGone?.(ref));
  }

  /** Another process wrote this node's heartbeat: it keeps the id, this one stops. */
  #lostId(theirs: string): void {
    if (this.#conflicted) return;
    this.#conflicted = true;
    clearInterval(this.#timer);
    const err = new NodeIdConflictError(this.nodeId, `a process with incarnation ${theirs} took it over`);
    this.#log?.always("error", "node_id_conflict", { node: this.nodeId, error: err.message });
    this.#emit((l) => l.fenced?.());
    this.#wake();
    this.#reportConflict(err);
  }

  #tick(): void {
    if (this.#closed || this.#conflicted) return;
    const now = performance.now();
    if (!this.#fenced && this.#silent(now)) this.#fence();
    // A fenced node tries again once connected: a request sent meanwhile would only wait for its timeout.
    const due = now - this.#lastBeatAt >= this.#timing.heartbeatMs && (!this.#fenced || this.bus.connected);
    if (!this.#beating && due) {
      this.#lastBeatAt = now;
      this.#beating = (this.#fenced ? this.#rejoin(now) : this.#beat(now)).finally(() =>
        this.#beating = null
      );
    }
    for (const [node, { at }] of this.#declaring) {
      if (now - at > this.#timing.deadAfterMs) this.#declaring.delete(node);
    }
    if (!this.#fenced && this.bus.connected) this.#detect(now);
    this.#watch.check(now);
    this.#purger.tick(now, {
      ready: () => !this.fenced && this.bus.connected,
      first: () => [...this.#nodes.keys()].sort()[0] === this.node,
      nc: () => this.bus.nc,
      kv: () => this.kv,
    });
    this.#wake();
  }

  #fence(): void {
    this.#fenced = true;
    this.#log?.always("warn", "bus_lost", {
      node: this.nodeId,
      incarnation: this.#incarnation,
      advice: "logged-in sessions end, logins are refused until the bus answers",
    });
    this.#emit((l) => l.fenced?.());
  }

  async #beat(sentAt: number): Promise<void> {
    try {
      this.#myRev = await this.kv.update(
        this.#key(this.node),
        this.#value(),
        this.#myRev,
        this.#putTimeout(),
      );
      this.#ackedSentAt = Math.max(this.#ackedSentAt, sentAt);
    } catch (err) {
      if (errorCode(err) !== WRONG_LAST_SEQUENCE || this.#closed) return;
      // Someone declared this node dead (or took its id): whatever the view says, this incarnation is over.
      const current = await this.kv.get(this.#key(this.node)).catch(() => null);
      const beat = current?.operation === "PUT" ? parseHeartbeat(current) : null;
      if (beat && !this.#mine.has(beat.incarnation)) return this.#lostId(beat.incarnation);
      if (!this.#fenced) this.#fence();
    }
  }

  /** Back on the bus after a fence: a new incarnation replaces the old one (declared dead or not). */
  async #rejoin(sentAt: number): Promise<void> {
    const key = this.#key(this.node);
    const next = newIncarnation();
    try {
      const current = await this.kv.get(key);
      const beat = current?.operation === "PUT" ? parseHeartbeat(current) : null;
      if (beat && !this.#mine.has(beat.incarnation)) return this.#lostId(beat.incarnation);
      const value = JSON.stringify({ node: this.nodeId, inc: next });
      // Before the write: the watch may show it before the write's acknowledgement arrives.
      this.#mine.add(next);
      const rev = current
        ? await this.kv.update(key, value, current.revision)
        : await this.kv.create(key, value);
      this.#incarnation = next;
      this.#myRev = rev;
      this.#ackedSentAt = Math.max(this.#ackedSentAt, sentAt);
      await this.#until(() => this.#watch.processed >= rev);
      if (this.#closed || this.#conflicted) return;
      this.#fenced = false;
      this.#log?.always("info", "bus_back", { node: this.nodeId, incarnation: next });
      this.#emit((l) => l.rejoined?.(next));
      this.#emit((l) => l.collect?.(this.node));
    } catch {
      // Not yet: the next heartbeat tries again.
    }
  }

  #putTimeout(): number {
    return Math.max(500, this.#timing.fenceAfterMs - this.#timing.heartbeatMs);
  }

  /** Declare dead every other node whose heartbeat has not moved for `deadAfterMs`. */
  #detect(now: number): void {
    for (const [node, known] of this.#nodes) {
      if (node === this.node || this.#declaring.has(node)) continue;
      if (now - known.seenAt <= this.#timing.deadAfterMs) continue;
      const { ref, rev } = known;
      this.#declaring.set(node, { incarnation: ref.incarnation, at: now });
      this.kv.delete(this.#key(node), { previousSeq: rev })
        .then(() => {
          this.#log?.always("warn", "node_dead", {
            node: ref.nodeId,
            incarnation: ref.incarnation,
            silent_ms: Math.round(performance.now() - known.seenAt),
          });
        })
        .catch(() => {
          // It beat meanwhile, or another node was first.
        });
    }
  }

  /**
   * Stop cleanly: the heartbeat is deleted (this node's users go offline for everyone at once), and the
   * listeners are asked to collect this node's keys; then the watch stops. Waits at most `fenceAfterMs`
   * for the bus.
   */
  async depart(): Promise<void> {
    if (this.#closed || !this.#kv || this.#departing) return;
    this.#departing = true;
    clearInterval(this.#timer);
    await this.#beating;
    if (!this.#conflicted && !this.#fenced) {
      const incarnation = this.#incarnation;
      try {
        await this.#kv.delete(this.#key(this.node), { previousSeq: this.#myRev });
        await this.#until(() => !this.isLive(this.node, incarnation), this.#timing.fenceAfterMs);
        this.#emit((l) => l.collect?.(this.node));
      } catch {
        // The others declare this node dead instead.
      }
    }
  }

  /** Stop the heartbeats and the watch (after {@linkcode NodeLiveness.depart}, for a clean stop). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#wake();
    this.#watch.stop();
    await this.#beating;
    await this.#watching;
    await this.#purger.close();
  }
}
