/**
 * The server's metrics, derived from what exists anyway rather than counted
 * along the way: the log's events (every `login_ok`, `login_failed` with its
 * code, `register`, ... is seen before the log's rate limit, so a line left out
 * is still counted), the session registry and the UDP rendezvous's counters
 * (read at each scrape), the store's errors and the presence notices (counted
 * by the wrappers of counted_parts.ts). Parts arriving later (a bus) count
 * their errors into {@linkcode BUS_ERRORS} through {@linkcode ServerMetrics.counters}.
 *
 * Every metric and label is listed in README.md ("Metrics and health").
 *
 * @module
 */

import type { LogFields, LogLevel } from "./logger.ts";
import { Metrics } from "./metrics.ts";
import type { Labels } from "./metrics.ts";
import type { Sample } from "./prometheus_text.ts";
import { DATABASE_ERRORS, PRESENCE_NOTICES } from "./counted_parts.ts";
import type { SessionRegistry } from "./session_registry.ts";
import type { RendezvousStats } from "./udp_rendezvous.ts";
import { dropEntries, type UdpSessionStats } from "./udp_session_stats.ts";

/** The counter of bus errors, labelled `op` (what the bus was doing: `presence`, `sessions`, `limits`, ...). */
export const BUS_ERRORS = "authchat_bus_errors_total";

/** The counter of logins, labelled `result`: `ok`, `failed` or `rate_limited`. */
export const LOGINS = "authchat_logins_total";

/** The counter of accounts registered. */
export const REGISTRATIONS = "authchat_registrations_total";

/** The counter of failed requests, labelled `op` (lower case: `login`, `register`, ...) and `code`. */
export const REQUEST_ERRORS = "authchat_request_errors_total";

/** What a scrape reads from a running server. */
export interface ServedState {
  /** The live sessions. */
  registry: Pick<SessionRegistry, "census" | "connections" | "maxConnections">;
  /** The UDP side's counters, when UDP is on. */
  rendezvous: { readonly stats: Readonly<RendezvousStats> } | null;
  /** The UDP sessions' counters, when UDP sessions are on. */
  udpSessions?: { readonly stats: UdpSessionStats } | null;
}

/** Where each rendezvous counter goes: a metric of its own, or a reason of `authchat_udp_dropped_total`. */
const RENDEZVOUS_COUNTERS: Record<
  keyof RendezvousStats,
  { metric: "rendezvous" | "relayed" | "forwarded" } | { drop: string }
> = {
  rendezvous: { metric: "rendezvous" },
  relayed: { metric: "relayed" },
  malformed: { drop: "malformed" },
  unknownHandle: { drop: "unknown_handle" },
  badTag: { drop: "bad_tag" },
  replayed: { drop: "replayed" },
  rateLimited: { drop: "rate_limited" },
  noRecipient: { drop: "no_recipient" },
  overloaded: { drop: "overloaded" },
  forwarded: { metric: "forwarded" },
  noRelayId: { drop: "no_relay_id" },
};

/** The log events named `<op>_failed` that are requests failing (the others, such as `accept_failed`, carry no code). */
function failedOp(event: string, fields: LogFields): string | null {
  if (!event.endsWith("_failed") || typeof fields.code !== "string") return null;
  return event.slice(0, -"_failed".length);
}

function label(value: unknown): string {
  return typeof value === "string" ? value : "unknown";
}

/**
 * The server's metrics.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Logger } from "./logger.ts";
 * import { LOGINS, ServerMetrics } from "./server_metrics.ts";
 * const metrics = new ServerMetrics();
 * const log = new Logger({ write: () => {}, observe: metrics.observe });
 * log.info("login_failed", { user: "alice", code: "AUTH_FAILED" });
 * log.info("login_failed", { user: "alice", code: "RATE_LIMITED" });
 * assert(metrics.counters.value(LOGINS, { result: "failed" }) === 1);
 * assert(metrics.counters.value(LOGINS, { result: "rate_limited" }) === 1);
 * ```
 */
export class ServerMetrics {
  /** The registry: parts count into it ({@linkcode BUS_ERRORS}, {@linkcode DATABASE_ERRORS}, ...). */
  readonly counters: Metrics;
  #served: ServedState | null = null;
  #node: Labels | null = null;

  /** Declare every metric. */
  constructor() {
    const metrics = new Metrics();
    this.counters = metrics;
    metrics
      .collected(
        "authchat_node_info",
        "This node: its id and the authchat version; always 1.",
        "gauge",
        () => this.#node ? [{ labels: this.#node, value: 1 }] : [],
      )
      .collected(
        "authchat_sessions",
        "Sessions open now, by transport and whether logged in.",
        "gauge",
        () => this.#sessions(),
      )
      .collected(
        "authchat_connections",
        "Connections open now, TLS handshakes included (what max_connections caps).",
        "gauge",
        () => this.#served ? [{ value: this.#served.registry.connections }] : [],
      )
      .collected(
        "authchat_connections_max",
        "The cap on connections (max_connections, or derived from the free descriptors).",
        "gauge",
        () => this.#served ? [{ value: this.#served.registry.maxConnections }] : [],
      )
      .counter(
        LOGINS,
        "Logins, by result: ok, failed (wrong password and every other error), rate_limited.",
        {
          labels: ["result"],
          known: [{ result: "ok" }, { result: "failed" }, { result: "rate_limited" }],
        },
      )
      .counter(REGISTRATIONS, "Accounts registered.")
      .counter(REQUEST_ERRORS, "Requests answered with an error, by command and error code.", {
        labels: ["op", "code"],
      })
      .counter("authchat_connections_accepted_total", "Connections that got a session, by transport.", {
        labels: ["transport"],
      })
      .counter(
        "authchat_connections_refused_total",
        "Connections refused at a cap where every connection is logged in, by cap: address or server.",
        { labels: ["cap"], known: [{ cap: "address" }, { cap: "server" }] },
      )
      .counter("authchat_connections_ended_total", "Connections the server ended, by BYE code.", {
        labels: ["code"],
      })
      .counter(PRESENCE_NOTICES, "Presence notices sent to sessions (one per session told), by state.", {
        labels: ["state"],
        known: [{ state: "online" }, { state: "offline" }],
      })
      .collected(
        "authchat_udp_rendezvous_total",
        "UDP rendezvous datagrams answered.",
        "counter",
        () => this.#rendezvous("rendezvous"),
      )
      .collected(
        "authchat_relay_datagrams_total",
        "Datagrams relayed between users (still end-to-end encrypted).",
        "counter",
        () => this.#rendezvous("relayed"),
      )
      .collected(
        "authchat_relay_forwarded_total",
        "RELAY datagrams handed over the bus to the node of their recipient's session.",
        "counter",
        () => this.#rendezvous("forwarded"),
      )
      .collected(
        "authchat_udp_dropped_total",
        "UDP datagrams dropped, by reason.",
        "counter",
        () => this.#drops(),
      )
      .counter(DATABASE_ERRORS, "Store calls that failed in the database, by store method.", {
        labels: ["op"],
      })
      .counter(BUS_ERRORS, "Bus operations that failed, by what the bus was doing.", { labels: ["op"] })
      .collected(
        "authchat_metric_series_dropped_total",
        "Counts not kept because their counter had too many label combinations (a bug if not 0).",
        "counter",
        () => [{ value: metrics.droppedSeries }],
      );
  }

  /**
   * What the log tells the metrics: pass it as the Logger's `observe`. It never throws.
   *
   * @param _level The event's level.
   * @param event The event's name.
   * @param fields Its fields.
   */
  readonly observe = (_level: LogLevel, event: string, fields: LogFields): void => {
    switch (event) {
      case "login_ok":
        return this.counters.inc(LOGINS, { result: "ok" });
      case "register":
        return this.counters.inc(REGISTRATIONS);
      case "connect":
        return this.counters.inc("authchat_connections_accepted_total", {
          transport: label(fields.transport),
        });
      case "connection_refused":
        return this.counters.inc("authchat_connections_refused_total", { cap: label(fields.cap) });
      case "ended":
        return this.counters.inc("authchat_connections_ended_total", { code: label(fields.code) });
      case "internal_error":
        return this.#requestFailed(label(fields.op).toLowerCase(), "INTERNAL");
    }
    const op = failedOp(event, fields);
    if (op !== null) this.#requestFailed(op, fields.code as string);
  };

  /**
   * The server is serving: its sessions and UDP counters are read from now on, and the node is named.
   *
   * @param state The registry and rendezvous.
   * @param node The node's id and the authchat version, for `authchat_node_info`.
   */
  serving(state: ServedState, node: { id: string; version: string }): void {
    this.#served = state;
    this.#node = { node: node.id, version: node.version };
  }

  /**
   * Every metric in the text format.
   *
   * @returns The `/metrics` body.
   */
  render(): string {
    return this.counters.render();
  }

  #requestFailed(op: string, code: string): void {
    this.counters.inc(REQUEST_ERRORS, { op, code });
    if (op === "login") {
      this.counters.inc(LOGINS, { result: code === "RATE_LIMITED" ? "rate_limited" : "failed" });
    }
  }

  #sessions(): Sample[] {
    return (this.#served?.registry.census() ?? []).map(({ transport, loggedIn, count }) => ({
      labels: { transport, state: loggedIn ? "logged_in" : "not_logged_in" },
      value: count,
    }));
  }

  #rendezvous(metric: "rendezvous" | "relayed" | "forwarded"): Sample[] {
    const stats = this.#served?.rendezvous?.stats;
    return stats ? [{ value: stats[metric] }] : [];
  }

  #drops(): Sample[] {
    const stats = this.#served?.rendezvous?.stats;
    if (!stats) return [];
    const samples = (Object.entries(RENDEZVOUS_COUNTERS) as [keyof RendezvousStats, { drop?: string }][])
      .filter(([, where]) => where.drop !== undefined)
      .map(([key, where]) => ({ labels: { reason: where.drop! }, value: stats[key] }));
    // A UDP session's drops are named by the datagram they refused: `init_bad_cookie`, `record_forged`, ...
    const sessions = this.#served?.udpSessions?.stats;
    if (sessions) {
      for (const [stage, reason, value] of dropEntries(sessions)) {
        samples.push({ labels: { reason: `${stage}_${reason}` }, value });
      }
    }
    return samples;
  }
}
