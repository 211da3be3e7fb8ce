/**
 * One line per notable event on stderr, as `key=value` text or JSON. Callers
 * pass only the fields they mean to log; nothing secret is ever handed in.
 *
 * A repeated event can be rate-limited: each event name has a token bucket
 * (a burst, then so many lines per second), and the lines it drops are counted
 * and reported in one `suppressed` line per event per second, so an attack that
 * makes one event happen a million times a minute cannot fill the disk or take
 * the CPU. An event's lines with a `code` field have a bucket per code (codes
 * are the server's, from fixed sets), so that a flood of one failure (malformed
 * requests cost nothing) cannot hide another (the guesses at a password): each
 * stays countable in its own `suppressed` line. The ready line and the stop
 * lines are logged with {@linkcode Logger.always} and never dropped.
 *
 * @module
 */

import { TokenBucket } from "../auth/token_bucket.ts";

/** Line format. */
export type LogFormat = "text" | "json";
/** Severity. */
export type LogLevel = "info" | "warn" | "error";
/** Values a log field may hold. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

/** Options of {@linkcode Logger}. */
export interface LoggerOptions {
  /** Line format (default text). */
  format?: LogFormat;
  /** Where lines go (default: stderr, info lines batched up to {@linkcode LOG_FLUSH_MS}). */
  write?: (line: string) => void;
  /** Clock (default `Date.now`). */
  now?: () => number;
  /** Rate limit of each event name (default: none). */
  limit?: LogRateLimit;
  /**
   * Run `task` once after `ms` (default: an unreferenced `setTimeout`, which does not keep the process
   * alive); returns a function that cancels it. Tests pass their own to drive time.
   */
  schedule?: (task: () => void, ms: number) => () => void;
  /**
   * Told of every event logged, before the rate limit (so a line left out is still seen): what the
   * server's metrics count (server_metrics.ts). It must not throw.
   */
  observe?: LogObserver;
}

/** Sees every event logged: its level, name and fields. */
export type LogObserver = (level: LogLevel, event: string, fields: LogFields) => void;

/** How many lines one event name may log. */
export interface LogRateLimit {
  /** Lines per second, once the burst is spent (0: no limit). */
  linesPerSecond: number;
  /** Lines at once (at least 1). */
  burst: number;
}

/** How often the count of suppressed lines is reported, per event (ms). */
export const SUPPRESSED_REPORT_MS = 1000;

const encoder = new TextEncoder();

/** Longest a line waits in the stderr buffer; a busy server writes many lines with each system call. */
export const LOG_FLUSH_MS = 20;

let buffered: string[] = [];
let flushTimer: ReturnType<typeof setTimeout> | undefined;

/** Write whatever the default stderr sink holds (also run at exit). */
export function flushStderr(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  if (buffered.length === 0) return;
  const bytes = encoder.encode(buffered.join(""));
  buffered = [];
  let written = 0;
  while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
}

// At exit, and before an uncaught error ends the process, whatever is buffered is written.
for (const event of ["unload", "error", "unhandledrejection"]) {
  globalThis.addEventListener(event, flushStderr);
}

function writeStderr(line: string, urgent: boolean): void {
  buffered.push(line + "\n");
  // Warnings and errors go out at once (with what came before them): they are rare, and they are what a
  // crash or an operator reading the log must not miss.
  if (urgent || buffered.length >= 256) return flushStderr();
  if (flushTimer === undefined) {
    flushTimer = setTimeout(flushStderr, LOG_FLUSH_MS);
    // The buffer must not keep a finished process alive; "unload" writes what is left.
    Deno.unrefTimer(flushTimer as unknown as number);
  }
}

function scheduleUnref(task: () => void, ms: number): () => void {
  const timer = setTimeout(task, ms);
  // A report due must not keep a finished process alive.
  Deno.unrefTimer(timer as unknown as number);
  return () => clearTimeout(timer);
}

function textValue(value: string | number | boolean | null): string {
  const text = String(value);
  // Quote anything that could split or forge a line (spaces, '=', quotes, control characters).
  return /^[\w.:/@+-]+$/.test(text) ? text : JSON.stringify(text);
}

/**
 * A structured event logger.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Logger } from "./logger.ts";
 * const lines: string[] = [];
 * const log = new Logger({ format: "json", write: (l) => lines.push(l), now: () => 0 });
 * log.info("login_ok", { user: "alice" });
 * assert(JSON.parse(lines[0]!).event === "login_ok");
 * ```
 */
export class Logger {
  #format: LogFormat;
  #write: (line: string, urgent: boolean) => void;
  #now: () => number;
  #buckets: TokenBucket | null = null;
  #schedule: (task: () => void, ms: number) => () => void;
  /** Lines dropped per event (and code) since its last report, and when the first of them was dropped. */
  #suppressed = new Map<string, { event: string; code: string | undefined; count: number; since: number }>();
  #cancelReport: (() => void) | null = null;
  #observe: LogObserver | undefined;

  /**
   * Make a logger.
   *
   * @param options Format, sink, clock and rate limit.
   * @throws {RangeError} When the limit's burst is below 1 or its rate is negative.
   */
  constructor(options: LoggerOptions = {}) {
    this.#format = options.format ?? "text";
    this.#write = options.write ?? writeStderr;
    this.#now = options.now ?? Date.now;
    this.#schedule = options.schedule ?? scheduleUnref;
    this.#observe = options.observe;
    const limit = options.limit;
    if (limit && limit.linesPerSecond !== 0) {
      if (!(limit.burst >= 1) || !(limit.linesPerSecond > 0)) {
        throw new RangeError(
          `Invalid log rate limit: burst ${limit.burst} and ${limit.linesPerSecond} lines per second`,
        );
      }
      this.#buckets = new TokenBucket({
        perMinute: limit.linesPerSecond * 60,
        burst: limit.burst,
        // Event names and codes come from the code, so the buckets are few; the bound is only a backstop.
        maxEntries: 10_000,
        key: (event) => event,
      });
    }
  }

  /**
   * Log one event, unless its name (with its `code`, if it has one) has spent its rate limit (then it is
   * counted, and reported in a `suppressed` line within {@linkcode SUPPRESSED_REPORT_MS}).
   *
   * @param level Severity.
   * @param event Event name (snake_case).
   * @param fields Extra fields; `undefined` ones are left out. A `code` must come from a fixed set (an
   *   error or BYE code), never from a client: each has a rate limit of its own.
   */
  log(level: LogLevel, event: string, fields: LogFields = {}): void {
    this.#observe?.(level, event, fields);
    if (this.#buckets) {
      const now = this.#now();
      const code = typeof fields.code === "string" ? fields.code : undefined;
      const key = code === undefined ? event : `${event} ${code}`;
      if (this.#buckets.take(key, now) !== 0) return this.#suppress(key, event, code, now);
    }
    this.#emit(level, event, fields);
  }

  /**
   * Log one event whatever the rate limit: for the lines an operator must always see (the ready line,
   * the stop lines).
   *
   * @param level Severity.
   * @param event Event name (snake_case).
   * @param fields Extra fields; `undefined` ones are left out.
   */
  always(level: LogLevel, event: string, fields: LogFields = {}): void {
    this.#observe?.(level, event, fields);
    this.#emit(level, event, fields);
  }

  /**
   * Report the lines suppressed so far at once (one `suppressed` line per event), instead of when the
   * report falls due; a server calls it when it stops, so no count is lost and no timer is left.
   */
  flushSuppressed(): void {
    this.#cancelReport?.();
    this.#cancelReport = null;
    const now = this.#now();
    const counts = [...this.#suppressed];
    this.#suppressed.clear();
    for (const [, { event, code, count, since }] of counts) {
      this.#emit("warn", "suppressed", {
        of: event,
        code,
        count,
        seconds: Math.round((now - since) / 100) / 10,
      });
    }
  }

  #suppress(key: string, event: string, code: string | undefined, now: number): void {
    const entry = this.#suppressed.get(key);
    if (entry) entry.count++;
    else this.#suppressed.set(key, { event, code, count: 1, since: now });
    this.#cancelReport ??= this.#schedule(() => {
      this.#cancelReport = null;
      this.flushSuppressed();
    }, SUPPRESSED_REPORT_MS);
  }

  #emit(level: LogLevel, event: string, fields: LogFields): void {
    const ts = new Date(this.#now()).toISOString();
    const entries = Object.entries(fields).filter((e): e is [string, string | number | boolean | null] =>
      e[1] !== undefined
    );
    if (this.#format === "json") {
      this.#write(JSON.stringify({ ts, level, event, ...Object.fromEntries(entries) }), level !== "info");
    } else {
      const rest = entries.map(([k, v]) => `${k}=${textValue(v)}`).join(" ");
      this.#write(
        `${ts} ${level.toUpperCase()} ${textValue(event)}${rest ? " " + rest : ""}`,
        level !== "info",
      );
    }
  }

  /** Log at info level. @param event Event name. @param fields Fields. */
  info(event: string, fields?: LogFields): void {
    this.log("info", event, fields);
  }

  /** Log at warn level. @param event Event name. @param fields Fields. */
  warn(event: string, fields?: LogFields): void {
    this.log("warn", event, fields);
  }

  /** Log at error level. @param event Event name. @param fields Fields. */
  error(event: string, fields?: LogFields): void {
    this.log("error", event, fields);
  }
}
