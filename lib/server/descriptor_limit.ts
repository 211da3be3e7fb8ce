/**
 * How many file descriptors this process can still open, found at start, and the cap on connections
 * that follows from it. Every connection holds one descriptor; a server that runs out cannot accept,
 * open its database's files or even install a signal handler, so the cap stays below the limit with a
 * reserve for everything else.
 *
 * Three ways, best first:
 * 1. `/proc/self/limits` (the soft "Max open files") less the descriptors open in `/proc/self/fd`. Deno
 *    lets a process read these only with `--allow-all`.
 * 2. A probe: open `/dev/null` until the kernel says no (EMFILE), at most {@linkcode PROBE_BOUND} times,
 *    then close them all. Needs only read access to `/dev/null` (the launcher grants it) and takes
 *    about 0.25 s for 16,384. At the bound the count is a lower bound ("at least"). With a configured
 *    cap the probe stops once it has counted enough to tell whether the cap fits
 *    ({@linkcode probeBound}).
 * 3. Neither permitted: assume the common limit, {@linkcode ASSUMED_LIMIT}.
 *
 * Deno raises its soft limit to the hard limit when it starts, so what is found is the hard limit (less
 * what is open); `ulimit -n N` in a shell sets both.
 *
 * @module
 */

/** Most descriptors the probe opens; a process that may open more is reported as having at least this. */
export const PROBE_BOUND = 16_384;

/** The limit assumed when it can be neither read nor probed: the usual default soft limit. */
export const ASSUMED_LIMIT = 1024;

/**
 * Descriptors kept out of the default cap, for what is not a connection: the database and its `-wal`
 * and `-shm` files, the listeners, the UDP socket, stdio, signal handlers, the runtime's own, and the
 * connections being closed or refused (each holds its descriptor a moment longer).
 */
export const DESCRIPTOR_RESERVE = 64;

/** How the free descriptors were found. */
export type DescriptorSource = "proc" | "probe" | "assumed";

/** The descriptors this process can still open, as found at start. */
export interface FreeDescriptors {
  /** How many more it may open. */
  free: number;
  /** Whether `free` is only a lower bound (the probe stopped at its bound). */
  atLeast: boolean;
  /** How it was found: read from /proc, counted by the probe, or assumed. */
  found: DescriptorSource;
  /** The limit itself ("Max open files", soft), when it could be read. */
  limit?: number;
}

/** Effects of {@linkcode countFreeDescriptors}, replaceable in tests. */
export interface DescriptorProbeOptions {
  /** Most descriptors the probe opens (default {@linkcode PROBE_BOUND}). */
  bound?: number;
  /** The text of `/proc/self/limits` and the number of entries of `/proc/self/fd`; throws when not allowed. */
  readProc?: () => { limits: string; open: number };
  /** Open one more descriptor (`/dev/null`); throws when the process may not, or has none left. */
  open?: () => { close(): void };
}

/**
 * The soft limit on open files from the text of `/proc/self/limits`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseOpenFilesLimit } from "./descriptor_limit.ts";
 * const text = "Limit                     Soft Limit           Hard Limit           Units\n" +
 *   "Max open files            1024                 524288               files\n";
 * assert(parseOpenFilesLimit(text) === 1024);
 * ```
 *
 * @param text The file's text.
 * @returns The soft limit, or `null` when the line is missing or says `unlimited`.
 */
export function parseOpenFilesLimit(text: string): number | null {
  const match = /^Max open files\s+(\d+)\s/m.exec(text);
  return match ? Number(match[1]) : null;
}

function readGranted(path: string): boolean {
  try {
    // Asked first so that a process run by hand, without the permission, is not prompted for it.
    return Deno.permissions.querySync({ name: "read", path }).state === "granted";
  } catch {
    return false;
  }
}

function readProcFiles(): { limits: string; open: number } {
  if (!readGranted("/proc/self/limits")) throw new Deno.errors.NotCapable("No read access to /proc");
  const limits = Deno.readTextFileSync("/proc/self/limits");
  let open = 0;
  for (const _ of Deno.readDirSync("/proc/self/fd")) open++;
  // The listing counts the descriptor it was read through, closed by now.
  return { limits, open: Math.max(0, open - 1) };
}

/** Opens `/dev/null` once per call; the permission is asked once, not at each of thousands of opens. */
function devNullOpener(): () => { close(): void } {
  if (!readGranted("/dev/null")) throw new Deno.errors.NotCapable("No read access to /dev/null");
  return () => Deno.openSync("/dev/null");
}

function outOfDescriptors(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "EMFILE" || code === "ENFILE";
}

/**
 * Find how many descriptors this process can still open: from /proc, else by the probe, else assumed
 * (see the module documentation).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { countFreeDescriptors } from "./descriptor_limit.ts";
 * const found = countFreeDescriptors({ bound: 100 });
 * assert(found.free > 0);
 * ```
 *
 * @param options Bound of the probe, and the effects (for tests).
 * @returns What was found.
 */
export function countFreeDescriptors(options: DescriptorProbeOptions = {}): FreeDescriptors {
  const bound = options.bound ?? PROBE_BOUND;
  try {
    const { limits, open } = (options.readProc ?? readProcFiles)();
    const limit = parseOpenFilesLimit(limits);
    if (limit !== null) return { free: Math.max(0, limit - open), atLeast: false, found: "proc", limit };
  } catch {
    // Not permitted (Deno needs --allow-all for /proc/self), or not Linux: probe instead.
  }
  const opened: { close(): void }[] = [];
  try {
    const open = options.open ?? devNullOpener();
    while (opened.length < bound) opened.push(open());
    return { free: bound, atLeast: true, found: "probe" };
  } catch (err) {
    if (outOfDescriptors(err)) return { free: opened.length, atLeast: false, found: "probe" };
    return { free: ASSUMED_LIMIT, atLeast: false, found: "assumed" };
  } finally {
    for (const file of opened) file.close();
  }
}

/**
 * How many descriptors the probe need count for a configured cap: a cap of `max_connections` fits when
 * that many plus {@linkcode DESCRIPTOR_RESERVE} are free, so counting further tells nothing more (and costs
 * about 15 µs a descriptor at every start). Never more than {@linkcode PROBE_BOUND}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { probeBound, PROBE_BOUND } from "./descriptor_limit.ts";
 * assert(probeBound(0) === PROBE_BOUND && probeBound(1000) === 1064);
 * ```
 *
 * @param configured `max_connections` (0: not set, the cap is derived from all that are free).
 * @returns The bound to probe to.
 */
export function probeBound(configured: number): number {
  return configured === 0 ? PROBE_BOUND : Math.min(PROBE_BOUND, configured + DESCRIPTOR_RESERVE);
}

/** The cap on connections a server runs with, and whether a configured one leaves too little. */
export interface ConnectionCap {
  /** Most connections at once. */
  cap: number;
  /** Whether it came from the configuration (else from the free descriptors). */
  configured: boolean;
  /**
   * Whether the configured cap is above what the free descriptors allow (the default cap): accepts
   * may then fail for lack of descriptors before the cap is reached. Never said of a lower bound.
   */
  exceedsDescriptors: boolean;
}

/**
 * The default cap for so many free descriptors: all but {@linkcode DESCRIPTOR_RESERVE}, and never less
 * than half of them (a tiny limit still serves some connections), nor less than 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultConnectionCap } from "./descriptor_limit.ts";
 * assert(defaultConnectionCap(1000) === 936 && defaultConnectionCap(100) === 50);
 * ```
 *
 * @param free Descriptors the process can still open.
 * @returns The cap.
 */
export function defaultConnectionCap(free: number): number {
  return Math.max(1, free - DESCRIPTOR_RESERVE, Math.floor(free / 2));
}

/**
 * The cap on connections: `max_connections` when set (non-zero), else the default for the free
 * descriptors.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectionCap } from "./descriptor_limit.ts";
 * const found = { free: 1000, atLeast: false, found: "probe" as const };
 * assert(connectionCap(0, found).cap === 936);
 * assert(connectionCap(5000, found).exceedsDescriptors);
 * ```
 *
 * @param configured `max_connections` (0: not set).
 * @param found The free descriptors.
 * @returns The cap and how it relates to the descriptors.
 */
export function connectionCap(configured: number, found: FreeDescriptors): ConnectionCap {
  const fallback = defaultConnectionCap(found.free);
  if (configured === 0) return { cap: fallback, configured: false, exceedsDescriptors: false };
  return { cap: configured, configured: true, exceedsDescriptors: !found.atLeast && configured > fallback };
}
