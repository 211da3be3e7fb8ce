/**
 * What `/healthz` asks: named checks (the server serving, the store, the bus),
 * each given {@linkcode HealthChecksOptions.timeoutMs} to answer. However many
 * requests ask at once, each check runs at most once at a time and a report is
 * reused for {@linkcode HealthChecksOptions.cacheMs}, so a flood of health
 * requests is not a flood of database queries; a check that hangs is not asked
 * again until it settles, and reports "no answer" meanwhile.
 *
 * @module
 */

/** One thing the server depends on. */
export interface HealthCheck {
  /** Its name in the report (`store`, `bus`). */
  name: string;
  /** Resolves when it answers; rejects (or throws) with what is wrong. */
  check(): Promise<unknown> | unknown;
}

/** The outcome of one check. */
export interface CheckResult {
  /** The check's name. */
  name: string;
  /** Whether it answered in time. */
  ok: boolean;
  /** `ok`, or what is wrong, on one line. */
  detail: string;
}

/** What every check said. */
export interface HealthReport {
  /** Whether all answered. */
  ok: boolean;
  /** Each check's outcome, in the order given. */
  checks: CheckResult[];
}

/** Options of {@linkcode HealthChecks}. */
export interface HealthChecksOptions {
  /** Longest wait for one check, ms (default {@linkcode HEALTH_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** How long a report is reused, ms (default {@linkcode HEALTH_CACHE_MS}). */
  cacheMs?: number;
  /** Clock (default `Date.now`). */
  now?: () => number;
}

/** Default longest wait for one check: a database that takes longer is not answering. */
export const HEALTH_TIMEOUT_MS = 2000;

/** Default reuse of a report: health is polled every few seconds; anything faster is a flood. */
export const HEALTH_CACHE_MS = 1000;

/**
 * The text of a report: `ok` or `unhealthy`, then a line per check.
 *
 * @param report The report.
 * @returns The lines, each ending with a line feed.
 */
export function formatHealthReport(report: HealthReport): string {
  return [report.ok ? "ok" : "unhealthy", ...report.checks.map((c) => `${c.name}: ${c.detail}`)].join("\n") +
    "\n";
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, " ").trim().slice(0, 300) || "failed";
}

/**
 * The checks behind `/healthz`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HealthChecks } from "./health_checks.ts";
 * const health = new HealthChecks([
 *   { name: "store", check: () => Promise.resolve() },
 *   { name: "bus", check: () => Promise.reject(new Error("Connection refused")) },
 * ]);
 * const report = await health.report();
 * assert(!report.ok && report.checks[1]!.detail === "failed: Connection refused");
 * ```
 */
export class HealthChecks {
  #checks: HealthCheck[];
  #timeoutMs: number;
  #cacheMs: number;
  #now: () => number;
  /** Checks still running, by name: not started again until they settle. */
  #running = new Map<string, Promise<CheckResult>>();
  #report: Promise<HealthReport> | null = null;
  #reportAt = -Infinity;

  /**
   * Make the checks.
   *
   * @param checks What to ask, in the order to report.
   * @param options Timeout, reuse and clock.
   */
  constructor(checks: HealthCheck[], options: HealthChecksOptions = {}) {
    this.#checks = checks;
    this.#timeoutMs = options.timeoutMs ?? HEALTH_TIMEOUT_MS;
    this.#cacheMs = options.cacheMs ?? HEALTH_CACHE_MS;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Ask every check, or reuse the report of one asked within the reuse time (or under way).
   *
   * @returns The report; never rejects.
   */
  report(): Promise<HealthReport> {
    const now = this.#now();
    if (this.#report && now - this.#reportAt < this.#cacheMs) return this.#report;
    this.#reportAt = now;
    this.#report = Promise.all(this.#checks.map((c) => this.#run(c))).then((checks) => ({
      ok: checks.every((c) => c.ok),
      checks,
    }));
    return this.#report;
  }

  async #run(check: HealthCheck): Promise<CheckResult> {
    const { name } = check;
    if (this.#running.has(name)) {
      return { name, ok: false, detail: `failed: no answer yet to a check started earlier` };
    }
    const settled = (async () => {
      try {
        await check.check();
        return { name, ok: true, detail: "ok" };
      } catch (err) {
        return { name, ok: false, detail: `failed: ${oneLine(err)}` };
      }
    })();
    this.#running.set(name, settled);
    settled.finally(() => this.#running.delete(name));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(
        () => resolve({ name, ok: false, detail: `failed: no answer within ${this.#timeoutMs} ms` }),
        this.#timeoutMs,
      );
    });
    try {
      return await Promise.race([settled, expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}
