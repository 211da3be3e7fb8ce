/**
 * Taking back a step of the shared limits that was refused after some of its writes (see
 * `LimitStore.writeAll`): exactly what it changed where nobody changed the key since, else the nearest
 * that counts more failures, never fewer; and a pair's mark of a refused login.
 *
 * @module
 */

import type { FailureCounter } from "../auth/failure_gate.ts";
import type { LimitRecord } from "./_limit_record.ts";

/**
 * The failures each key held before a step's write and after it, so that a step refused after some of its
 * writes takes back exactly what it changed: a key's failures nobody changed since are put back as they
 * were (their latest failure's time too).
 */
export class FailureUndo {
  #counters = new Map<string, { before: FailureCounter | undefined; after: FailureCounter | undefined }>();

  /** Note a key's change; returns the record after it. */
  note(key: string, before: LimitRecord, after: LimitRecord): LimitRecord {
    this.#counters.set(key, { before: before.failures, after: after.failures });
    return after;
  }

  /** A key's record with its noted change taken back, or `otherwise` when its failures changed since. */
  undo(key: string, record: LimitRecord, otherwise: (record: LimitRecord) => LimitRecord): LimitRecord {
    const noted = this.#counters.get(key);
    if (!noted) return record;
    const now = record.failures;
    const same = now === undefined
      ? noted.after === undefined
      : now.failures === noted.after?.failures && now.last === noted.after.last;
    if (!same) return otherwise(record);
    const { failures: _, ...rest } = record;
    return noted.before ? { ...rest, failures: noted.before } : rest;
  }
}

/** A record with failures taken from it given back (a step refused after its write): more, never fewer. */
export function restored(record: LimitRecord, counter: FailureCounter | undefined): LimitRecord {
  if (!counter || counter.failures <= 0) return record;
  const last = Math.max(record.failures?.last ?? counter.last, counter.last);
  return { ...record, failures: { failures: (record.failures?.failures ?? 0) + counter.failures, last } };
}

/**
 * A pair's record with the mark a step made at `now` taken back to what it was before (a later mark, a
 * login counted since, is kept).
 */
export function unmarked(record: LimitRecord, now: number, before: number | undefined): LimitRecord {
  if (record.knownAt !== now) return record;
  const { knownAt: _, ...rest } = record;
  return before === undefined ? rest : { ...rest, knownAt: before };
}
