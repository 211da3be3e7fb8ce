/**
 * The ordered watch of the `live` bucket that {@linkcode NodeLiveness} (node_liveness.ts) and presence read:
 * every change, in the bucket's stream order, handed on once, with the revision reached so far.
 *
 * A watch that ends or fails is opened again after the last revision processed. One that stalls (connected
 * but silent while this node's own heartbeats should pass through it) is reopened. After an absence long
 * enough for delete markers to have been purged meanwhile (half of `keepDeletesMs`, _marker_purger.ts),
 * resuming could miss deletes: the whole bucket is read again instead, and what the view held that the
 * bucket no longer does is handed on as a delete after what the bucket holds.
 *
 * @module
 */

import type { KV, KvEntry } from "@nats-io/kv";
import type { Logger } from "../server/logger.ts";

/** What {@linkcode LiveWatch} needs from its owner. */
export interface LiveWatchOptions {
  /** The bucket (read only once {@linkcode LiveWatch.run} is called). */
  kv: () => KV;
  /** Whether the bus connection is up. */
  connected: () => boolean;
  /** Between two heartbeats of this node, ms: a connected watch silent for three of them is stuck. */
  heartbeatMs: number;
  /** How long a delete's marker stays in the bucket, ms. */
  keepDeletesMs: number;
  /** Where watch events are logged. */
  log?: Logger | undefined;
  /** Told of every change first, with whether it is a marker (not for deletes found missing). */
  seen: (key: string, revision: number, marker: boolean, now: number) => void;
  /** A change, in stream order (or a delete found missing after a re-read). */
  deliver: (entry: KvEntry) => void;
  /** After each change, once the revision processed includes it. */
  applied: () => void;
  /** The keys that hold a value in the owner's view (compared with the bucket after a re-read). */
  held: () => Iterable<string>;
}

/** A delete of a key this node no longer finds in the bucket (its marker was purged while it was away). */
function forgotten(key: string, revision: number): KvEntry {
  return {
    bucket: "",
    key,
    rawKey: key,
    value: new Uint8Array(0),
    created: new Date(),
    revision,
    delta: 0,
    operation: "DEL",
    length: 0,
    json: <T>(): T => {
      throw new SyntaxError("A delete has no value");
    },
    string: () => "",
  };
}

/** The bucket's changes in stream order, read again from the start after a long absence. */
export class LiveWatch {
  #options: LiveWatchOptions;
  #closed = false;
  #watch: { stop(): void } | null = null;
  #watchOpenedAt = 0;
  /** Highest revision of the bucket processed. */
  #processed = 0;
  /** When the watch last gave a change (monotonic ms). */
  #appliedAt = 0;

  /**
   * Prepare (nothing is read before {@linkcode LiveWatch.run}).
   *
   * @param options The bucket, timing, and where changes go.
   */
  constructor(options: LiveWatchOptions) {
    this.#options = options;
  }

  /** Highest revision of the bucket processed. */
  get processed(): number {
    return this.#processed;
  }

  /**
   * Read the bucket, from where this node is on, until {@linkcode LiveWatch.stop}: a watch that ends, or
   * that stalls (see {@linkcode LiveWatch.check}), is opened again after the last revision processed — or,
   * after an absence long enough for deletes to have been purged meanwhile, from the start.
   *
   * @returns When stopped.
   */
  async run(): Promise<void> {
    const { log } = this.#options;
    while (!this.#closed) {
      try {
        const resume = this.#processed > 0 && !this.#away(performance.now());
        let seen: Set<string> | null = this.#processed > 0 && !resume ? new Set() : null;
        if (seen) log?.info("bus_watch_reread", { after_revision: this.#processed });
        const watch = await this.#options.kv().watch({
          key: ">",
          ...(resume ? { resumeFromRevision: this.#processed + 1 } : {}),
        });
        this.#watch = watch;
        this.#watchOpenedAt = performance.now();
        if (this.#closed) watch.stop();
        for await (const entry of watch) {
          // A watch that resumes by itself after a reconnect may have missed purged deletes: read it all.
          if (!seen && this.#away(performance.now())) break;
          seen?.add(entry.key);
          this.#apply(entry);
          // The first update (or the last of the current values) ends what the bucket held when read.
          if (seen && entry.isUpdate) {
            this.#forgetUnseen(seen);
            seen = null;
          }
        }
      } catch (err) {
        if (this.#closed) return;
        log?.warn("bus_watch_failed", { error: (err as Error).message });
        await new Promise((r) => setTimeout(r, this.#options.heartbeatMs));
      }
    }
  }

  /**
   * Open the watch again when it has stalled. Its consumer loses what the server pushed while the
   * connection was down, and can wait a minute to notice; this node's own heartbeats pass through the
   * bucket every `heartbeatMs`, so a watch connected and silent for three of them is stuck.
   *
   * @param now The monotonic clock, ms.
   */
  check(now: number): void {
    const silent = 3 * this.#options.heartbeatMs;
    if (
      !this.#options.connected() || now - this.#appliedAt <= silent || now - this.#watchOpenedAt <= silent
    ) {
      return;
    }
    this.#options.log?.info("bus_watch_reopened", { after_revision: this.#processed });
    this.#watchOpenedAt = now;
    this.#watch?.stop();
  }

  /** Stop reading ({@linkcode LiveWatch.run} then returns). */
  stop(): void {
    this.#closed = true;
    this.#watch?.stop();
  }

  /** Whether the watch gave nothing for so long that deletes may have been purged meanwhile. */
  #away(now: number): boolean {
    return this.#processed > 0 && now - this.#appliedAt > this.#options.keepDeletesMs / 2;
  }

  /**
   * After the bucket was read again: what this node knew that the bucket no longer holds was deleted while
   * it was away (the marker purged since). Told now, after what the bucket holds.
   */
  #forgetUnseen(seen: Set<string>): void {
    const gone = [...this.#options.held()].filter((key) => !seen.has(key));
    for (const key of gone) this.#apply(forgotten(key, this.#processed), true);
    if (gone.length > 0) this.#options.log?.info("bus_deletes_missed", { keys: gone.length });
  }

  #apply(entry: KvEntry, late = false): void {
    if (entry.revision <= this.#processed && !late) return;
    const now = performance.now();
    if (!late) this.#options.seen(entry.key, entry.revision, entry.operation !== "PUT", now);
    this.#options.deliver(entry);
    this.#processed = Math.max(this.#processed, entry.revision);
    this.#appliedAt = now;
    this.#options.applied();
  }
}
