/**
 * Why the server cannot listen, naming the address and the configuration key
 * to change: a port already in use or needing privileges (`tcp_port`,
 * `tls_port`, `udp_port`, `metrics_port`), an address this machine does not
 * have or a name that does not resolve (`host`, or `metrics_host` for the
 * metrics port).
 *
 * @module
 */

/** The configuration keys a listen error can be about. */
export type ListenKey = "tcp_port" | "tls_port" | "udp_port" | "metrics_port" | "host" | "metrics_host";

/** A listener that could not be opened; the message names the address and the key. */
export class ListenError extends Error {
  /** The configuration key to change. */
  readonly key: ListenKey;

  /**
   * Make the error.
   *
   * @param key The configuration key to change.
   * @param message The whole message.
   * @param options The bind error, as `cause`.
   */
  constructor(key: ListenKey, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ListenError";
    this.key = key;
  }
}

/** Where a listener was to be opened. */
export interface ListenTarget {
  /** The port's configuration key (the metrics port's host is `metrics_host`, the others' `host`). */
  key: "tcp_port" | "tls_port" | "udp_port" | "metrics_port";
  /** Configured host. */
  host: string;
  /** Configured port. */
  port: number;
}

const DNS_CODES = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_NONAME", "EAI_NODATA", "EAI_FAIL"]);
// Deno.listen reports a failed lookup as a plain Error with the resolver's words.
const DNS_TEXT = /failed to lookup address|getaddrinfo|Name or service not known|nodename nor servname/i;

function choose(key: ListenKey): string {
  return `choose another with --${key.replace("_", "-")} or ${key} in the config`;
}

/**
 * Recognise a bind error the configuration can fix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { listenErrorFrom } from "./listen_error.ts";
 * const err = listenErrorFrom(new Deno.errors.AddrInUse("Address already in use (os error 98)"), {
 *   key: "tcp_port",
 *   host: "127.0.0.1",
 *   port: 1991,
 * });
 * assert(err?.message.startsWith("Cannot listen on 127.0.0.1:1991 for tcp_port: address already in use"));
 * ```
 *
 * @param err What `Deno.listen`, `Deno.listenDatagram` or a `node:tls` server's `listen` failed with.
 * @param target The key, host and port.
 * @returns The error to report, or `null` when `err` is none of these.
 */
export function listenErrorFrom(err: unknown, target: ListenTarget): ListenError | null {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const address = target.host.includes(":")
    ? `[${target.host}]:${target.port}`
    : `${target.host}:${target.port}`;
  const start = `Cannot listen on ${address} for`;
  const options = { cause: err };
  const hostKey = target.key === "metrics_port" ? "metrics_host" : "host";
  if (err instanceof Deno.errors.AddrInUse || code === "EADDRINUSE") {
    return new ListenError(
      target.key,
      `${start} ${target.key}: address already in use (another authchat server?): ${choose(target.key)}`,
      options,
    );
  }
  if (err instanceof Deno.errors.PermissionDenied || code === "EACCES") {
    const why = target.port < 1024 ? " (ports below 1024 need privileges)" : "";
    return new ListenError(
      target.key,
      `${start} ${target.key}: permission denied${why}: ${choose(target.key)}`,
      options,
    );
  }
  // node:net says EINVAL where the operating system said "cannot assign requested address".
  if (err instanceof Deno.errors.AddrNotAvailable || code === "EADDRNOTAVAIL" || code === "EINVAL") {
    return new ListenError(
      hostKey,
      `${start} ${hostKey}: ${target.host} is not an address of this machine: ${choose(hostKey)} ` +
        "(127.0.0.1 for this machine only, 0.0.0.0 for every interface)",
      options,
    );
  }
  if ((typeof code === "string" && DNS_CODES.has(code)) || DNS_TEXT.test(message)) {
    return new ListenError(
      hostKey,
      `${start} ${hostKey}: cannot resolve ${target.host}: ${choose(hostKey)}`,
      options,
    );
  }
  return null;
}
