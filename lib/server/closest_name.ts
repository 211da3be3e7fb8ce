/**
 * "Did you mean …?" for misspelt names: configuration keys, environment
 * variables.
 *
 * @module
 */

/**
 * Edit distance counting an insertion, a deletion, a substitution or a swap of two neighbours as one
 * (optimal string alignment): `PROT` is one edit from `PORT`.
 */
function distance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

/**
 * The candidate a misspelt name was most likely meant to be: the one fewest edits away (case aside), when
 * that is close enough to be a typo — at most a third of the name's length, and at least one edit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { closestName } from "./closest_name.ts";
 * assert(closestName("AUTHCHAT_TCP_PROT", ["AUTHCHAT_TCP_PORT", "AUTHCHAT_TLS_PORT"]) === "AUTHCHAT_TCP_PORT");
 * assert(closestName("colour", ["tcp_port", "tls_port"]) === undefined);
 * ```
 *
 * @param name The name given.
 * @param candidates The valid names.
 * @returns The closest valid name, or `undefined` when none is close (or two are equally close).
 */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.floor(name.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  let tie = false;
  for (const candidate of candidates) {
    const d = distance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      [best, bestDistance, tie] = [candidate, d, false];
    } else if (d === bestDistance && candidate !== best) {
      tie = true;
    }
  }
  return bestDistance <= limit && !tie ? best : undefined;
}
