/**
 * When the `live` bucket's delete markers are purged (node_liveness.ts): every quarter of `keepDeletesMs`,
 * the live node with the lowest token purges the markers older than that (_delete_markers.ts does the
 * purge); the others drop the markers that node had time for, at twice the age, so that if it went away
 * first the next one still has them.
 *
 * @module
 */

import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { DeleteMarkers } from "./_delete_markers.ts";
import type { Logger } from "../server/logger.ts";

/** The delete markers one node has seen, and when it purges them. */
export class MarkerPurger {
  #markers: DeleteMarkers;
  #keepDeletesMs: number;
  #log: Logger | undefined;
  #lastPurgeAt = 0;
  #purging: Promise<void> | null = null;

  /**
   * Prepare.
   *
   * @param keepDeletesMs How long a delete's marker stays in the bucket, ms.
   * @param log Where purges are logged.
   */
  constructor(keepDeletesMs: number, log: Logger | undefined) {
    this.#keepDeletesMs = keepDeletesMs;
    this.#log = log;
    this.#markers = new DeleteMarkers(keepDeletesMs);
  }

  /**
   * Note a change of the bucket (see {@linkcode DeleteMarkers.seen}).
   *
   * @param key Its key.
   * @param rev Its revision.
   * @param marker Whether it is a delete marker.
   * @param now The monotonic clock, ms.
   */
  seen(key: string, rev: number, marker: boolean, now: number): void {
    this.#markers.seen(key, rev, marker, now);
  }

  /**
   * The node has started: the first purge is a quarter of `keepDeletesMs` from now.
   *
   * @param now The monotonic clock, ms.
   */
  started(now: number): void {
    this.#lastPurgeAt = now;
  }

  /**
   * Purge or drop the markers that are due, when a quarter of `keepDeletesMs` has passed since the last time.
   *
   * @param now The monotonic clock, ms.
   * @param options `ready`: whether this node is on the bus and not fenced; `first`: whether it is the live
   *   node with the lowest token; the connection and bucket to purge with.
   */
  tick(
    now: number,
    options: { ready: () => boolean; first: () => boolean; nc: () => NatsConnection; kv: () => KV },
  ): void {
    if (this.#purging || now - this.#lastPurgeAt < this.#keepDeletesMs / 4) return;
    if (!options.ready()) return;
    this.#lastPurgeAt = now;
    if (!options.first()) {
      this.#markers.take(now, 2 * this.#keepDeletesMs);
      return;
    }
    const due = this.#markers.take(now);
    if (due.length === 0) return;
    this.#purging = DeleteMarkers.purge(options.nc(), options.kv(), due)
      .then((purged) => this.#log?.info("bus_deletes_purged", { markers: due.length, purged }))
      .catch((err) => {
        this.#markers.retry(due);
        this.#log?.warn("bus_purge_failed", { markers: due.length, error: (err as Error).message });
      })
      .finally(() => this.#purging = null);
  }

  /**
   * Wait for a purge under way.
   *
   * @returns When none is.
   */
  async close(): Promise<void> {
    await this.#purging;
  }
}
