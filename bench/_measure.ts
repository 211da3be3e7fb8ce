/**
 * Measuring helpers of the benchmark: closed loops of concurrent workers, and percentiles.
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
  /** Latency of each completed operation, in ms. */
  latencies: number[];
}

/**
 * Run `op` in `concurrency` closed loops for `durationMs`: each worker starts its next operation as soon as
 * the last one ends.
 *
 * @param options Duration, workers, and the operation (given the worker's index).
 * @returns Counts and latencies.
 */
export async function closedLoop(options: {
  durationMs: number;
  concurrency: number;
  op: (worker: number) => Promise<void>;
  /** Keep each operation's latency (default true); a throughput figure does not need them. */
  latencies?: boolean;
}): Promise<LoopResult> {
  const keep = options.latencies ?? true;
  const started = performance.now();
  const end = started + options.durationMs;
  const result: LoopResult = { count: 0, errors: 0, firstError: null, seconds: 0, latencies: [] };
  const worker = async (index: number) => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await options.op(index);
        if (keep) result.latencies.push(performance.now() - t0);
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
 * A percentile of a list of numbers (nearest rank).
 *
 * @example
 * ```ts
 * import { percentile } from "./_measure.ts";
 * console.assert(percentile([5, 1, 3, 2, 4], 50) === 3);
 * ```
 *
 * @param values The numbers (not changed).
 * @param p The percentile, 0 to 100.
 * @returns The value, or `NaN` for an empty list.
 */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * Operations per second of a loop, refusing to report a figure when most operations failed.
 *
 * @param r The loop's result.
 * @param what The scenario, for the error.
 * @returns The rate.
 * @throws {Error} When more operations failed than succeeded.
 */
export function rate(r: LoopResult, what: string): number {
  if (r.count === 0 || r.errors > r.count / 100) {
    throw new Error(`${what}: ${r.errors} of ${r.count + r.errors} operations failed: ${r.firstError}`);
  }
  return r.count / r.seconds;
}
