/**
 * What the shared abuse limits keep under one key-value key: one source, one
 * account, one (source, account) pair or one device token. A key holds the
 * failures counted against it, the proofs each node is checking against it,
 * and the budgets of the same key (a source's registrations and logins, an
 * account's logins, whether a pair has logged in), so one read answers every
 * question a login asks of that key.
 *
 * Stored as compact JSON; an empty record is an empty value. A value that does
 * not parse as a record (another program wrote the bucket) reads as empty.
 *
 * @module
 */

import { counterAfterFailure, counterAfterForgiving, liveCounter } from "../auth/failure_gate.ts";
import type { FailureCounter } from "../auth/failure_gate.ts";
import type { BucketState } from "../auth/token_bucket.ts";

/** The proofs one node is checking against a key, and until when that count holds without a word from it. */
export interface NodeProofs {
  /** The node's instance id. */
  node: string;
  /** How many. */
  count: number;
  /** Time (ms) after which the count is ignored: the node died or lost the bus meanwhile. */
  expiresAt: number;
}

/** Everything kept under one key. */
export interface LimitRecord {
  /** Failures counted against the key. */
  failures?: FailureCounter;
  /** Proofs being checked, per node. */
  proofs?: NodeProofs[];
  /** A source's or an account's login budget. */
  logins?: BucketState;
  /** A source's registration budget. */
  registrations?: BucketState;
  /** A pair: when its source last logged in to its account. */
  knownAt?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function finite(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

function pairOf(value: unknown): [number, number] | undefined {
  return Array.isArray(value) && value.length === 2 && finite(value[0]) && finite(value[1])
    ? [value[0], value[1]]
    : undefined;
}

/**
 * Read a stored value.
 *
 * @param bytes The value (empty for an empty record).
 * @returns The record; fields that do not have the expected form are left out.
 */
export function decodeRecord(bytes: Uint8Array): LimitRecord {
  if (bytes.length === 0) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch {
    return {};
  }
  if (typeof raw !== "object" || raw === null) return {};
  const o = raw as Record<string, unknown>;
  const record: LimitRecord = {};
  const f = pairOf(o.f);
  if (f && f[0] > 0) record.failures = { failures: f[0], last: f[1] };
  if (Array.isArray(o.r)) {
    const proofs: NodeProofs[] = [];
    for (const entry of o.r) {
      if (
        Array.isArray(entry) && entry.length === 3 && typeof entry[0] === "string" && finite(entry[1]) &&
        finite(entry[2]) && entry[1] > 0
      ) {
        proofs.push({ node: entry[0], count: entry[1], expiresAt: entry[2] });
      }
    }
    if (proofs.length > 0) record.proofs = proofs;
  }
  const l = pairOf(o.l);
  if (l) record.logins = { tokens: l[0], at: l[1] };
  const g = pairOf(o.g);
  if (g) record.registrations = { tokens: g[0], at: g[1] };
  if (finite(o.k)) record.knownAt = o.k;
  return record;
}

/**
 * The stored value of a record.
 *
 * @param record The record.
 * @returns Its bytes (empty for an empty record).
 */
export function encodeRecord(record: LimitRecord): Uint8Array {
  const o: Record<string, unknown> = {};
  if (record.failures) o.f = [record.failures.failures, record.failures.last];
  if (record.proofs?.length) o.r = record.proofs.map((p) => [p.node, p.count, p.expiresAt]);
  if (record.logins) o.l = [record.logins.tokens, record.logins.at];
  if (record.registrations) o.g = [record.registrations.tokens, record.registrations.at];
  if (record.knownAt !== undefined) o.k = record.knownAt;
  return Object.keys(o).length === 0 ? new Uint8Array(0) : encoder.encode(JSON.stringify(o));
}

/**
 * The proofs other nodes are checking against a key now (their counts that have not expired).
 *
 * @param record The record.
 * @param node This node's instance id (its own count is known locally, not read).
 * @param now Current time in ms.
 * @returns How many.
 */
export function othersChecking(record: LimitRecord, node: string, now: number): number {
  let n = 0;
  for (const p of record.proofs ?? []) if (p.node !== node && p.expiresAt > now) n += p.count;
  return n;
}

/**
 * A record with this node's count of proofs set (and its lease renewed), other nodes' expired counts left
 * out.
 *
 * @param record The record.
 * @param node This node's instance id.
 * @param count How many proofs this node is checking against the key.
 * @param expiresAt Until when the count holds without another write of this node.
 * @param now Current time in ms.
 * @returns The new record.
 */
export function withProofs(
  record: LimitRecord,
  node: string,
  count: number,
  expiresAt: number,
  now: number,
): LimitRecord {
  const proofs = (record.proofs ?? []).filter((p) => p.node !== node && p.expiresAt > now);
  if (count > 0) proofs.push({ node, count, expiresAt });
  const { proofs: _, ...rest } = record;
  return proofs.length > 0 ? { ...rest, proofs } : rest;
}

/** A change of one key's failures: one more, some forgiven, or all cleared (a pair's or token's success). */
export type Change = { kind: "fail" } | { kind: "forgive"; failures: number } | { kind: "clear" };

/**
 * A record with a change of its failures; also how many failures a `clear` took away that were not
 * forgotten at `now`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { changedRecord } from "./_limit_record.ts";
 * const { record } = changedRecord({}, { kind: "fail" }, 5, 1000);
 * assert.deepEqual(record.failures, { failures: 1, last: 5 });
 * assert.equal(changedRecord(record, { kind: "clear" }, 6, 1000).cleared, 1);
 * ```
 *
 * @param record The record.
 * @param change The change.
 * @param now When it happened.
 * @param forgetAfterMs How long failures are kept after the latest (a failure counts from none after that).
 * @returns The new record and what was cleared.
 */
export function changedRecord(
  record: LimitRecord,
  change: Change,
  now: number,
  forgetAfterMs: number,
): { record: LimitRecord; cleared: number } {
  const out = { ...record };
  let cleared = 0;
  if (change.kind === "fail") {
    out.failures = counterAfterFailure(liveCounter(record.failures, now, forgetAfterMs), now);
  } else if (change.kind === "forgive") {
    const left = counterAfterForgiving(record.failures, change.failures);
    if (left) out.failures = left;
    else delete out.failures;
  } else {
    // Only failures not forgotten are still on the source and the account to be forgiven there: a failure
    // on a forgotten counter counts from none, so forgiving a pair's forgotten ones would take off another
    // pair's (and leave a source clean beside a pair with failures).
    cleared = liveCounter(record.failures, now, forgetAfterMs)?.failures ?? 0;
    delete out.failures;
  }
  return { record: out, cleared };
}
