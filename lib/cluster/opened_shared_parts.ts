/**
 * What opening the server's shared parts takes and gives (open_shared_parts.ts), in a file of its own so
 * the NATS side (_nats_shared_parts.ts) and the opener share it without importing each other.
 *
 * @module
 */

import type { LimitSettings } from "../server/local_parts.ts";
import type { ServerConfig } from "../server/server_config.ts";
import type { SharedParts } from "../server/shared_parts.ts";
import type { Logger } from "../server/logger.ts";
import type { NatsBus } from "./nats_bus.ts";
import type { LivenessTiming, NodeLiveness } from "./node_liveness.ts";

/** The settings the shared parts take from the configuration. */
export type SharedPartsSettings =
  & LimitSettings
  & Pick<ServerConfig, "bus" | "node_id" | "tcp" | "tcp_port" | "tls_port">;

/** Options of {@linkcode openSharedParts}. */
export interface OpenSharedPartsOptions {
  /** The server's log (node events, bus failures). */
  log?: Logger;
  /** This node's id (default {@linkcode nodeIdOf} the configuration). */
  nodeId?: string;
  /** Liveness timing (default: the server's, `DEFAULT_LIVENESS_TIMING`). */
  timing?: LivenessTiming;
  /** Subject and bucket prefix (default `authchat`): tests keep their nodes apart with it. */
  prefix?: string;
  /** Longest wait for the bus at start, ms (default 5000). */
  connectTimeoutMs?: number;
}

/** The shared parts, and how to stop them. */
export interface OpenedSharedParts {
  /** What the server is given. */
  parts: SharedParts;
  /** The bus the parts use, `null` without one (the shared limits and relay routing build on it). */
  bus: NatsBus | null;
  /** This node's liveness, `null` without a bus. */
  liveness: NodeLiveness | null;
  /**
   * Settles when the parts can no longer serve while the server runs: another process has taken this
   * node's id (the server must stop; its sessions are ended already). Never settles without a bus.
   */
  failed: Promise<Error>;
  /**
   * Stop the parts, then the bus: call after the server has stopped. A node on a bus deletes its heartbeat
   * and keys, so its users are offline for everyone at once.
   */
  close(): Promise<void>;
}
