/**
 * Measuring helpers of the benchmark: closed loops of concurrent workers, a paced loop, a bounded pool of
 * workers over a list, and percentiles.
 *
 * @module
 */

/** What a loop measured. */
export interface LoopResult {
  /** Operations completed. */
  count: number;
  /** Operations that threw. */
  errors: number;
  /** The first error, for the report. */
  firstError: string | null;
  /** Seconds the loop ran. */
  seconds: number;
}

/**
 * Run `op` in `concurrency` closed loops for `durationMs`: each worker starts its next operation as soon as
 * the last one ends.
 *
 * @param options Duration, workers, and the operation (given the worker's index).
 * @returns Counts and duration.
 */
export async function closedLoop(options: {
  durationMs: number;
  concurrency: number;
  op: (worker: number) => Promise<void>;
}): Promise<LoopResult> {
  const started = performance.now();
  const end = started + options.durationMs;
  const result: LoopResult = { count: 0, errors: 0, firstError: null, seconds: 0 };
  const worker = async (index: number) => {
    while (performance.now() < end) {
      try {
        await options.op(index);
        result.count++;
      } catch (err) {
        result.errors++;
        result.firstError ??= (err as Error).message;
        // A failing operation must not spin: the figure would be nonsense anyway, and it is reported.
        if (result.errors > 100 && result.errors > result.count) return;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => worker(i)));
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

/**
 * Start `op(0)` … `op(count - 1)` one per millisecond, paced against the clock: a late timer is caught up
 * rather than stretching the run. An operation that returns a promise is awaited before the next starts;
 * one that returns nothing is left to run (it times itself).
 *
 * @param count Operations.
 * @param op The operation, given its index.
 */
export async function paced(count: number, op: (i: number) => Promise<unknown> | void): Promise<void> {
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const wait = start + i - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const pending = op(i);
    if (pending) await pending;
  }
}

/**
 * Run `fn` on every item, at most `concurrency` at a time, each worker taking the next item as soon as its
 * last one is done.
 *
 * @param items The items.
 * @param concurrency Workers.
 * @param fn What to do with an item (given its index too).
 * @throws The first error of `fn` (the other workers are not stopped).
 */
export async function forEach<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

/**
 * A percentile of a list of numbers (nearest rank).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { percentile } from "./_measure.ts";
 * assert(percentile([5, 1, 3, 2, 4], 50) === 3);
 * ```
 *
 * @param values The numbers (not changed).
 * @param p The percentile, 0 to 100.
 * @returns The value, or `NaN` for an empty list.
 */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * Welch's statistic for the difference of two means: (mean(a) − mean(b)) / √(var(a)/|a| + var(b)/|b|),
 * with each variance the unbiased sample variance. With a thousand samples on each side it is read as a
 * z score: |z| < 2 means the means do not differ detectably.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { welchZ } from "./_measure.ts";
 * assert(welchZ([1, 2, 3, 4], [1, 2, 3, 4]) === 0);
 * assert(welchZ([11, 12, 13, 14], [1, 2, 3, 4]) > 10);
 * ```
 *
 * @param a The first sample (at least two values).
 * @param b The second sample (at least two values).
 * @returns The statistic; `NaN` when a sample has fewer than two values, ±`Infinity` when both have no
 *   variance and different means.
 */
export function welchZ(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const stats = (values: ArrayLike<number>) => {
    let sum = 0;
    for (let i = 0; i < values.length; i++) sum += values[i]!;
    const mean = sum / values.length;
    let squares = 0;
    for (let i = 0; i < values.length; i++) squares += (values[i]! - mean) ** 2;
    return { mean, variance: squares / (values.length - 1), n: values.length };
  };
  if (a.length < 2 || b.length < 2) return NaN;
  const x = stats(a);
  const y = stats(b);
  const diff = x.mean - y.mean;
  if (diff === 0) return 0;
  return diff / Math.sqrt(x.variance / x.n + y.variance / y.n);
}

/**
 * Operations per second of a loop, refusing to report a figure when none succeeded or the failures are
 * more than 1% of the successes.
 *
 * @param r The loop's result.
 * @param what The scenario, for the error.
 * @returns The rate.
 * @throws {Error} When no operation succeeded, or more than 1% as many failed as succeeded.
 */
export function rate(r: LoopResult, what: string): number {
  if (r.count === 0 || r.errors > r.count / 100) {
    throw new Error(`${what}: ${r.errors} of ${r.count + r.errors} operations failed: ${r.firstError}`);
  }
  return r.count / r.seconds;
}
