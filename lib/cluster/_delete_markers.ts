/**
 * The delete markers of a key-value bucket with one value per key, forgotten once they are old. A delete
 * leaves a marker in the bucket's stream (the key's one message), which JetStream keeps for good: every
 * node id, every (node, user) pair that ever was would stay there, and every start would read them all.
 * A node notes each marker its watch sees (the current ones when it starts, then each new one), and once
 * one is older than the age given here, purges it: only messages of that key up to the marker's
 * revision, so a value written since is never touched.
 *
 * A marker matters only to a watch that resumes from a revision before it; the bucket's watcher reads the
 * whole bucket again instead after an absence of half that age (_live_watch.ts).
 *
 * @module
 */

import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";

/** Purge requests sent at once. */
const BATCH = 64;

/** Longest wait for one purge request, ms. */
const REQUEST_TIMEOUT_MS = 5000;

/** The delete markers one node has seen, oldest first, and their purge. */
export class DeleteMarkers {
  #ageMs: number;
  /** Key → the marker's revision and when this node saw it (monotonic ms), in the order seen. */
  #seen = new Map<string, { rev: number; at: number }>();
  /** Markers whose purge failed, to try again first. */
  #again: { key: string; rev: number }[] = [];

  /**
   * Note markers that are to be purged once `ageMs` old.
   *
   * @param ageMs How long a marker is kept after this node saw it, ms.
   */
  constructor(ageMs: number) {
    this.#ageMs = ageMs;
  }

  /**
   * A key's latest message, as a watch gave it: a marker is noted, a value forgets the key's marker.
   *
   * @param key The key.
   * @param rev The message's revision.
   * @param marker Whether it is a delete or a purge (not a value).
   * @param now When it was seen (monotonic ms).
   */
  seen(key: string, rev: number, marker: boolean, now: number): void {
    this.#seen.delete(key);
    if (marker) this.#seen.set(key, { rev, at: now });
  }

  /** Markers noted and not yet purged or dropped. */
  get size(): number {
    return this.#seen.size + this.#again.length;
  }

  /**
   * Give markers back whose purge failed: the next {@linkcode take} returns them first.
   *
   * @param markers The markers.
   */
  retry(markers: { key: string; rev: number }[]): void {
    this.#again.push(...markers);
  }

  /**
   * Take the markers at least `ageMs` old off the list.
   *
   * @param now Current monotonic time, ms.
   * @param ageMs The age (default: the one given at construction).
   * @returns Their keys and revisions, oldest first.
   */
  take(now: number, ageMs = this.#ageMs): { key: string; rev: number }[] {
    const out = this.#again;
    this.#again = [];
    for (const [key, { rev, at }] of this.#seen) {
      if (now - at < ageMs) break;
      this.#seen.delete(key);
      out.push({ key, rev });
    }
    return out;
  }

  /**
   * Purge markers from the bucket: each key's messages up to its marker's revision.
   *
   * @param nc The connection.
   * @param kv The bucket.
   * @param markers The markers ({@linkcode take}).
   * @returns How many messages were purged.
   * @throws {Error} When the bucket or a purge does not answer (the rest is not tried).
   */
  static async purge(nc: NatsConnection, kv: KV, markers: { key: string; rev: number }[]): Promise<number> {
    if (markers.length === 0) return 0;
    const config = (await kv.status()).streamInfo.config;
    // The bucket's subjects, `$KV.<bucket>.>`: a key's subject is that prefix and the key.
    const prefix = config.subjects?.[0]?.replace(/>$/, "") ?? `$KV.${config.name.replace(/^KV_/, "")}.`;
    let purged = 0;
    for (let i = 0; i < markers.length; i += BATCH) {
      const replies = await Promise.all(
        markers.slice(i, i + BATCH).map(({ key, rev }) =>
          nc.request(
            `$JS.API.STREAM.PURGE.${config.name}`,
            JSON.stringify({ filter: `${prefix}${key}`, seq: rev + 1 }),
            { timeout: REQUEST_TIMEOUT_MS },
          )
        ),
      );
      for (const reply of replies) {
        const answer = reply.json<{ purged?: number; error?: { description?: string } }>();
        if (answer.error) throw new Error(`Purge refused: ${answer.error.description ?? "no reason given"}`);
        purged += answer.purged ?? 0;
      }
    }
    return purged;
  }
}
