/**
 * The server's shared parts as the configuration asks for them: without a
 * `bus`, the in-process ones of one node alone (lib/server/local_parts.ts);
 * with one, the parts that join the nodes over NATS — presence
 * (nats_presence.ts) and ending sessions (nats_session_directory.ts), on one
 * liveness of this node (node_liveness.ts).
 *
 * The abuse limits stay in-process on a bus for now: each node counts its
 * own failures and budgets. The shared limits come from their own module and
 * take the bus from here (`OpenedSharedParts.bus`), as relay routing will.
 *
 * @module
 */

import { LocalAbuseLimits } from "../server/shared_parts.ts";
import type { SharedParts } from "../server/shared_parts.ts";
import { localLimitParts, localSharedParts, PRESENCE_LINGER_MS } from "../server/local_parts.ts";
import type { LimitSettings } from "../server/local_parts.ts";
import { DEFAULT_NOTICE_INTERVAL_MS } from "../server/presence_coalescer.ts";
import { splitUrls } from "../server/config_file.ts";
import type { ServerConfig } from "../server/server_config.ts";
import type { Logger } from "../server/logger.ts";
import { BusUnavailableError, NatsBus, shownUrl } from "./nats_bus.ts";
import { NatsPresence } from "./nats_presence.ts";
import { NatsSessionDirectory } from "./nats_session_directory.ts";
import { LIVE_BUCKET, NodeIdConflictError, NodeLiveness } from "./node_liveness.ts";
import type { LivenessTiming } from "./node_liveness.ts";

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

/**
 * This node's id: `node_id` when set, else the host name and the TCP port (the TLS port when TCP is off),
 * `host:1991`; when that port is 0 (any free port, not known yet) the process id stands for it,
 * `host:pid4242`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nodeIdOf } from "./open_shared_parts.ts";
 * const config = { node_id: null, tcp: true, tcp_port: 1991, tls_port: 1992 };
 * assert(nodeIdOf(config, "chat1") === "chat1:1991");
 * assert(nodeIdOf({ ...config, node_id: "eu-1" }, "chat1") === "eu-1");
 * ```
 *
 * @param config The settings.
 * @param hostname The machine's name (default `Deno.hostname()`, which needs `--allow-sys=hostname`).
 * @returns The id.
 */
export function nodeIdOf(
  config: Pick<ServerConfig, "node_id" | "tcp" | "tcp_port" | "tls_port">,
  hostname?: string,
): string {
  if (config.node_id !== null) return config.node_id;
  const port = config.tcp ? config.tcp_port : config.tls_port;
  // The id's characters (server_config.ts): a host name outside them is made to fit.
  const host = (hostname ?? Deno.hostname()).replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 100) || "host";
  return `${host}:${port === 0 ? `pid${Deno.pid}` : port}`;
}

/**
 * Open the shared parts the configuration asks for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadServerConfig } from "../server/server_config.ts";
 * import { openSharedParts } from "./open_shared_parts.ts";
 * const opened = await openSharedParts(await loadServerConfig({ file: "/dev/null" }));
 * assert(opened.bus === null, "no bus: the in-process parts");
 * await opened.close();
 * ```
 *
 * @param config The configuration.
 * @param options Log, node id, timing.
 * @returns The parts.
 * @throws {BusUnavailableError} When the bus does not answer, or has no JetStream (the URLs shown without
 *   passwords).
 * @throws {NodeIdConflictError} When another live server has this node's id.
 */
export async function openSharedParts(
  config: SharedPartsSettings,
  options: OpenSharedPartsOptions = {},
): Promise<OpenedSharedParts> {
  if (config.bus === null) {
    return {
      parts: localSharedParts(config),
      bus: null,
      liveness: null,
      failed: new Promise(() => {}),
      close: () => Promise.resolve(),
    };
  }
  const servers = splitUrls(config.bus, ["nats"], "bus");
  const bus = await NatsBus.connect({
    servers,
    nodeId: options.nodeId ?? nodeIdOf(config),
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
  });
  const log = options.log;
  const liveness = new NodeLiveness(bus, {
    ...(options.timing ? { timing: options.timing } : {}),
    ...(log ? { log } : {}),
  });
  const presence = new NatsPresence(liveness, {
    lingerMs: PRESENCE_LINGER_MS,
    noticeIntervalMs: DEFAULT_NOTICE_INTERVAL_MS,
    ...(log ? { log } : {}),
  });
  const sessions = new NatsSessionDirectory(bus, liveness, log ? { log } : {});
  try {
    await liveness.start();
  } catch (err) {
    await liveness.close();
    await bus.close();
    if (err instanceof NodeIdConflictError) throw err;
    throw new BusUnavailableError(
      `cannot open the ${bus.prefix}_${LIVE_BUCKET} key-value bucket on NATS at ` +
        `${servers.map(shownUrl).join(", ")}: ${(err as Error).message} (the server needs JetStream: ` +
        "nats-server -js)",
      { cause: err },
    );
  }
  return {
    // The limits stay in this process until the shared ones exist (see the module doc).
    parts: { presence, sessions, limits: new LocalAbuseLimits(localLimitParts(config)) },
    bus,
    liveness,
    failed: liveness.conflict,
    close: async () => {
      presence.quiet();
      await liveness.depart();
      await presence.close();
      sessions.close();
      await liveness.close();
      await bus.close();
    },
  };
}
