/**
 * How the server reacts to stop signals. A Ctrl-C reaches it more than once: the terminal signals the
 * whole foreground process group (deno task, the launcher and the server), and deno task and the launcher
 * each pass theirs on. So the handlers stay installed until the server has stopped, and:
 *
 * - a signal within {@linkcode DUPLICATE_WINDOW_MS} of the last one counted is the same request
 *   (relayed copies arrive within milliseconds) and is ignored;
 * - the first counted signal starts the clean stop;
 * - a second one does not cut it short: it is logged that the server is already stopping;
 * - a third one forces the exit at once, saying so (log line and stderr, exit status 1).
 *
 * @module
 */

import type { Logger } from "../lib/server/logger.ts";

/** Signals that arrive this close to the last counted one are copies of it. */
export const DUPLICATE_WINDOW_MS = 1000;

/** What one signal means. */
export type SignalVerdict = "stop" | "duplicate" | "already-stopping" | "force";

/**
 * Counting stop signals, copies of one request counted once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SignalTally } from "./_stop_signals.ts";
 * const tally = new SignalTally();
 * assert(tally.receive(0) === "stop");
 * assert(tally.receive(2) === "duplicate");
 * assert(tally.receive(1500) === "already-stopping");
 * assert(tally.receive(3000) === "force");
 * ```
 */
export class SignalTally {
  #counted = 0;
  #last = 0;

  /**
   * Count one signal.
   *
   * @param now When it arrived, in milliseconds (any monotonic clock).
   * @returns What it means.
   */
  receive(now: number): SignalVerdict {
    if (this.#counted > 0 && now - this.#last < DUPLICATE_WINDOW_MS) return "duplicate";
    this.#counted++;
    this.#last = now;
    return this.#counted === 1 ? "stop" : this.#counted === 2 ? "already-stopping" : "force";
  }
}

/** The process around {@linkcode StopSignals}: real by default, replaced in tests. */
export interface SignalHost {
  /** Install a handler for a signal. */
  addSignalListener(signal: Deno.Signal, handler: () => void): void;
  /** Remove it. */
  removeSignalListener(signal: Deno.Signal, handler: () => void): void;
  /** A monotonic clock in milliseconds. */
  now(): number;
  /** Write one line to stderr. */
  stderr(line: string): void;
  /** End the process. */
  exit(code: number): void;
}

const DENO_HOST: SignalHost = {
  addSignalListener: (signal, handler) => Deno.addSignalListener(signal, handler),
  removeSignalListener: (signal, handler) => Deno.removeSignalListener(signal, handler),
  now: () => performance.now(),
  stderr: (line) => console.error(line),
  exit: (code) => Deno.exit(code),
};

/** The signals that stop the server: SIGHUP too (the terminal went away), so log lines are not lost. */
export const STOP_SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** Exit status of a stop forced by a third signal. */
export const FORCED_EXIT_CODE = 1;

/** The server's stop signals, handled from construction until {@linkcode StopSignals.close}. */
export class StopSignals {
  /** Resolves with the first signal: the server should stop cleanly. */
  readonly requested: Promise<Deno.Signal>;
  #host: SignalHost;
  #log: Logger;
  #tally = new SignalTally();
  #handlers: [Deno.Signal, () => void][] = [];

  /**
   * Install the handlers.
   *
   * @param log Where the second and third signals are logged.
   * @param host The process (default: this Deno process).
   */
  constructor(log: Logger, host: SignalHost = DENO_HOST) {
    this.#host = host;
    this.#log = log;
    let resolve!: (signal: Deno.Signal) => void;
    this.requested = new Promise((r) => resolve = r);
    for (const signal of STOP_SIGNALS) {
      const handler = () => this.#on(signal, resolve);
      this.#handlers.push([signal, handler]);
      host.addSignalListener(signal, handler);
    }
  }

  #on(signal: Deno.Signal, stop: (signal: Deno.Signal) => void): void {
    switch (this.#tally.receive(this.#host.now())) {
      case "stop":
        return stop(signal);
      case "duplicate":
        return;
      case "already-stopping":
        return this.#log.always("warn", "already_stopping", {
          signal,
          advice: "a third signal forces the exit",
        });
      case "force":
        this.#log.always("error", "forced_exit", { signal, code: FORCED_EXIT_CODE });
        this.#host.stderr(
          `error: ${signal} again while stopping: exiting at once (sessions may not have been told goodbye)`,
        );
        return this.#host.exit(FORCED_EXIT_CODE);
    }
  }

  /** Remove the handlers (once the server has stopped). */
  close(): void {
    for (const [signal, handler] of this.#handlers) this.#host.removeSignalListener(signal, handler);
    this.#handlers = [];
  }
}
