/**
 * The server's shared parts as the configuration asks for them: without a
 * `bus`, the in-process ones of one node alone (lib/server/local_parts.ts);
 * with one, the parts that join the nodes over NATS — presence
 * (nats_presence.ts), ending sessions (nats_session_directory.ts), the abuse
 * limits (nats_abuse_limits.ts) and the routing of the UDP relay
 * (nats_relay_routing.ts), on one liveness of this node (node_liveness.ts).
 * The NATS client is loaded only when there is a bus (_nats_shared_parts.ts).
 *
 * @module
 */

import { localSharedParts } from "../server/local_parts.ts";
import { splitUrls } from "../server/config_file.ts";
import type { ServerConfig } from "../server/server_config.ts";
import type {
  OpenedSharedParts,
  OpenSharedPartsOptions,
  SharedPartsSettings,
} from "./opened_shared_parts.ts";

export type {
  OpenedSharedParts,
  OpenSharedPartsOptions,
  SharedPartsSettings,
} from "./opened_shared_parts.ts";
export { BusUnavailableError, NodeIdConflictError, shownUrl } from "./bus_errors.ts";

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
  const { openNatsParts } = await import("./_nats_shared_parts.ts");
  return await openNatsParts(config, servers, options.nodeId ?? nodeIdOf(config), options);
}
