/**
 * Where a client connects, and how that place is named in messages and
 * known-hosts lines.
 *
 * @module
 */

/** Where to connect. */
export interface Endpoint {
  /** Host name or address. */
  host: string;
  /** Port. */
  port: number;
  /** Use TLS. */
  tls: boolean;
  /** Open a session over UDP (docs/PROTOCOL.md section 20) instead of TCP; not with `tls`. */
  udp?: boolean;
  /** Connect timeout in ms (default 10 s). */
  timeoutMs?: number;
}

/** How long connecting (on TLS the handshake; over UDP each wait for an answer) may take when {@linkcode Endpoint.timeoutMs} is not set. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/**
 * `host:port`, with brackets around IPv6 addresses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { endpointName } from "./endpoint.ts";
 * assert(endpointName({ host: "::1", port: 1992 }) === "[::1]:1992");
 * ```
 *
 * @param endpoint Host and port.
 * @returns The text used in known-hosts lines and messages.
 */
export function endpointName(endpoint: { host: string; port: number }): string {
  return endpoint.host.includes(":")
    ? `[${endpoint.host}]:${endpoint.port}`
    : `${endpoint.host}:${endpoint.port}`;
}
