/**
 * Checks that the Deno runtime offers what authchat is about to use, so that a missing feature is reported
 * with what to do about it rather than as `Deno.listenDatagram is not a function`.
 *
 * @module
 */

/**
 * Whether this runtime can open UDP sockets: `Deno.listenDatagram` exists only with Deno's unstable
 * network API (`--unstable-net`, or `"unstable": ["net"]` in a deno.json that applies).
 *
 * @returns `true` when UDP sockets can be opened.
 */
export function hasDatagramSockets(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
}

/**
 * Make sure UDP sockets can be opened before opening one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requireDatagramSockets } from "./runtime_features.ts";
 * try {
 *   requireDatagramSockets("pass --no-udp");
 * } catch (err) {
 *   assert((err as Error).message.includes("--unstable-net"));
 * }
 * ```
 *
 * @param alternative What else the user can do, when there is something (the server: `pass --no-udp`).
 * @throws {Error} Saying which flag is missing (and the alternative) when they cannot.
 */
export function requireDatagramSockets(alternative?: string): void {
  if (hasDatagramSockets()) return;
  throw new Error(
    "UDP is unavailable: this Deno runs without its unstable network API (Deno.listenDatagram): " +
      "run with --unstable-net (the authchat launcher and deno tasks do)" +
      (alternative === undefined ? "" : `, or ${alternative}`),
  );
}
