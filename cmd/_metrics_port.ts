/**
 * The metrics port of `authchat server`, as the composition root wires it: off
 * unless `metrics_port` is set; then the log's events, the store and presence
 * are counted (lib/server/server_metrics.ts), and `/metrics` and `/healthz`
 * are served on `metrics_host` (lib/server/metrics_listener.ts). Off, every
 * method passes its part through untouched and nothing is served.
 *
 * `/healthz` says 200 when the server is serving (503 while it starts and once
 * it stops), the store answers its `ping`, and the bus, when the composition
 * passes a check of it, answers too.
 *
 * @module
 */

import denoJson from "../deno.json" with { type: "json" };
import type { AuthchatServer } from "../lib/server/authchat_server.ts";
import { countPresenceNotices, countStoreErrors } from "../lib/server/counted_parts.ts";
import { HealthChecks } from "../lib/server/health_checks.ts";
import type { HealthCheck } from "../lib/server/health_checks.ts";
import type { Logger, LogObserver } from "../lib/server/logger.ts";
import { MetricsListener } from "../lib/server/metrics_listener.ts";
import type { ServerConfig } from "../lib/server/server_config.ts";
import { ServerMetrics } from "../lib/server/server_metrics.ts";
import type { SharedParts } from "../lib/server/shared_parts.ts";
import type { UserStore } from "../lib/store/user_store.ts";

/** What else the composition may tell the metrics port. */
export interface MetricsPortOptions {
  /** The node's id for `authchat_node_info` (default: the server name and its first bound address). */
  node?: string;
  /**
   * Asks the bus whether it answers (resolves) or not (rejects), for `/healthz`; none: no bus. Called at
   * each check, never before {@linkcode MetricsPort.open}, so it may reach a bus connected after this.
   */
  bus?: () => Promise<unknown>;
}

function formatAddress(addr: Deno.NetAddr): string {
  return addr.hostname.includes(":") ? `[${addr.hostname}]:${addr.port}` : `${addr.hostname}:${addr.port}`;
}

/** The metrics port of one server process (a pass-through when `metrics_port` is not set). */
export class MetricsPort {
  #config: ServerConfig;
  #options: MetricsPortOptions;
  #metrics: ServerMetrics | null;
  #listener: MetricsListener | null = null;
  #state: "starting" | "serving" | "stopping" = "starting";

  /**
   * Make the metrics port the configuration asks for.
   *
   * @param config The server's configuration (`metrics_port`, `metrics_host`).
   * @param options The node's id and the bus's check, when there is a bus.
   */
  constructor(config: ServerConfig, options: MetricsPortOptions = {}) {
    this.#config = config;
    this.#options = options;
    this.#metrics = config.metrics_port === null ? null : new ServerMetrics();
  }

  /** The Logger's `observe` option: the events the metrics count (undefined when off). */
  get observe(): LogObserver | undefined {
    return this.#metrics?.observe;
  }

  /** The counters a part (a bus) counts its errors into, when on. */
  get metrics(): ServerMetrics | null {
    return this.#metrics;
  }

  /**
   * The store the server gets: counting its database errors, when on.
   *
   * @param store The store.
   * @returns The store to use.
   */
  store(store: UserStore): UserStore {
    return this.#metrics ? countStoreErrors(store, this.#metrics.counters) : store;
  }

  /**
   * The shared parts the server gets: presence counting its notices, when on.
   *
   * @param parts The parts.
   * @returns The parts to use (closing stays with the original's maker).
   */
  parts(parts: SharedParts): SharedParts {
    return this.#metrics
      ? { ...parts, presence: countPresenceNotices(parts.presence, this.#metrics.counters) }
      : parts;
  }

  /**
   * Bind the metrics port (before the server's listeners: until {@linkcode MetricsPort.serving},
   * `/healthz` says it is starting).
   *
   * @param store The store `/healthz` asks (the one from {@linkcode MetricsPort.store}).
   * @param log The server's log.
   * @param options The node's id and the bus's check, when known only now (a bus connected after this was
   *   made); they replace those given at construction.
   * @throws {ListenError} When the port cannot be bound (naming `metrics_port` or `metrics_host`).
   */
  open(store: UserStore, log: Logger, options: MetricsPortOptions = {}): void {
    this.#options = { ...this.#options, ...options };
    const metrics = this.#metrics;
    if (!metrics || this.#listener) return;
    const checks: HealthCheck[] = [
      {
        name: "server",
        check: () => {
          if (this.#state !== "serving") throw new Error(this.#state);
        },
      },
      { name: "store", check: () => store.ping?.() ?? store.countUsers() },
    ];
    const bus = this.#options.bus;
    if (bus) checks.push({ name: "bus", check: bus });
    const health = new HealthChecks(checks);
    this.#listener = MetricsListener.listen({
      hostname: this.#config.metrics_host,
      port: this.#config.metrics_port!,
      metrics: () => metrics.render(),
      health: () => health.report(),
      log,
    });
    log.always("info", "metrics_listening", { address: formatAddress(this.#listener.addr) });
  }

  /**
   * The server is serving: its sessions and UDP counters are read from now on, and `/healthz` may say 200.
   *
   * @param server The running server.
   */
  serving(server: AuthchatServer): void {
    if (!this.#metrics) return;
    const first = Object.values(server.addresses)[0];
    const node = this.#options.node ??
      (first ? `${this.#config.name}@${formatAddress(first)}` : this.#config.name);
    this.#metrics.serving(
      { registry: server.registry, rendezvous: server.rendezvous, udpSessions: server.udpSessions },
      { id: node, version: denoJson.version },
    );
    this.#state = "serving";
  }

  /** What the ready line adds: ` metrics=HOST:PORT` when the port is open, else nothing. */
  get readyField(): string {
    return this.#listener ? ` metrics=${formatAddress(this.#listener.addr)}` : "";
  }

  /** The server is stopping: `/healthz` says so (503) from now on, so a balancer stops sending clients. */
  stopping(): void {
    this.#state = "stopping";
  }

  /** Close the port and its connections. */
  async close(): Promise<void> {
    this.#state = "stopping";
    await this.#listener?.close();
  }
}
