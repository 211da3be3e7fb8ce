/**
 * One line per notable event on stderr, as `key=value` text or JSON. Callers
 * pass only the fields they mean to log; nothing secret is ever handed in.
 *
 * @module
 */

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
}

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
 * import { Logger } from "./logger.ts";
 * const lines: string[] = [];
 * const log = new Logger({ format: "json", write: (l) => lines.push(l), now: () => 0 });
 * log.info("login_ok", { user: "alice" });
 * console.assert(JSON.parse(lines[0]!).event === "login_ok");
 * ```
 */
export class Logger {
  #format: LogFormat;
  #write: (line: string, urgent: boolean) => void;
  #now: () => number;

  /**
   * Make a logger.
   *
   * @param options Format, sink and clock.
   */
  constructor(options: LoggerOptions = {}) {
    this.#format = options.format ?? "text";
    this.#write = options.write ?? writeStderr;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Log one event.
   *
   * @param level Severity.
   * @param event Event name (snake_case).
   * @param fields Extra fields; `undefined` ones are left out.
   */
  log(level: LogLevel, event: string, fields: LogFields = {}): void {
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
