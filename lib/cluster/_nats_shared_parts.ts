/**
 * The shared parts of a node on a NATS bus: its connection, liveness, presence and session directory, put
 * together as open_shared_parts.ts describes. Loaded only when a bus is configured, so a server alone never
 * loads the NATS client.
 *
 * @module
 */

import { PRESENCE_LINGER_MS } from "../server/local_parts.ts";
import { DEFAULT_NOTICE_INTERVAL_MS } from "../server/presence_coalescer.ts";
import { BusUnavailableError, NodeIdConflictError, shownUrl } from "./bus_errors.ts";
import { NatsAbuseLimits } from "./nats_abuse_limits.ts";
import { NatsBus } from "./nats_bus.ts";
import { NatsRelayRouting } from "./nats_relay_routing.ts";
import { NatsPresence } from "./nats_presence.ts";
import { NatsSessionDirectory } from "./nats_session_directory.ts";
import { LIVE_BUCKET, NodeLiveness } from "./node_liveness.ts";
import type {
  OpenedSharedParts,
  OpenSharedPartsOptions,
  SharedPartsSettings,
} from "./opened_shared_parts.ts";

/**
 * Connect to the bus and start this node's parts on it.
 *
 * @param config The settings.
 * @param servers The bus's URLs.
 * @param nodeId This node's id.
 * @param options Log, timing, prefix, connect timeout.
 * @returns The parts.
 * @throws {BusUnavailableError} When the bus does not answer, or has no JetStream.
 * @throws {NodeIdConflictError} When another live server has this node's id.
 */
export async function openNatsParts(
  config: SharedPartsSettings,
  servers: string[],
  nodeId: string,
  options: OpenSharedPartsOptions,
): Promise<OpenedSharedParts> {
  const bus = await NatsBus.connect({
    servers,
    nodeId,
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
  const limits = new NatsAbuseLimits(bus, config, log ? { log } : {});
  let relay: NatsRelayRouting | null = null;
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
  try {
    // Each says itself what failed (BusUnavailableError), naming its bucket.
    await limits.ready();
    relay = await NatsRelayRouting.start(bus);
  } catch (err) {
    await limits.close();
    await presence.close();
    sessions.close();
    await liveness.close();
    await bus.close();
    throw err;
  }
  return {
    parts: { presence, sessions, limits, relay },
    bus,
    liveness,
    failed: liveness.conflict,
    close: async () => {
      presence.quiet();
      await relay!.close();
      await limits.close();
      await liveness.depart();
      await presence.close();
      sessions.close();
      await liveness.close();
      await bus.close();
    },
  };
}
