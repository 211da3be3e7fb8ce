/**
 * Several NatsAbuseLimits on one NATS server, as several nodes would hold them, each on a connection of
 * its own, under a prefix of their own (so tests do not see each other's counters).
 *
 * @module
 */

import { NatsAbuseLimits } from "../../lib/cluster/nats_abuse_limits.ts";
import type { NatsAbuseLimitsOptions } from "../../lib/cluster/nats_abuse_limits.ts";
import { NatsBus } from "../../lib/cluster/nats_bus.ts";
import { natsUrlOrSkip } from "../_cluster_services.ts";
import type { LimitSettings } from "../../lib/server/local_parts.ts";

/**
 * The NATS server the tests may use (tests/_cluster_services.ts: skipped without it, failing when required).
 *
 * @returns `nats://host:port`, or `undefined`.
 */
export function natsUrl(): string | undefined {
  return natsUrlOrSkip();
}

/** Settings small enough to reach every limit in a test. */
export const SETTINGS: LimitSettings = {
  failures_before_backoff: 3,
  backoff_base: 1,
  backoff_max: 60,
  max_unauthenticated_per_ip: 32,
  registrations_per_minute: 4,
  logins_per_minute_per_account: 3,
  logins_per_minute_per_source: 5,
};

/** Nodes sharing one bucket. */
export interface LimitNodes {
  /** Each node's limits. */
  limits: NatsAbuseLimits[];
  /** Each node's bus. */
  buses: NatsBus[];
  /** Close every node and remove their bucket. */
  close(): Promise<void>;
}

let made = 0;

/**
 * Start `count` nodes on one server.
 *
 * @param count How many.
 * @param options Settings, NatsAbuseLimits options, and per node the URL to reach NATS by (a proxy).
 * @returns The nodes.
 */
export async function limitNodes(
  count: number,
  options: { settings?: LimitSettings; limits?: NatsAbuseLimitsOptions; urls?: (string | undefined)[] } = {},
): Promise<LimitNodes> {
  const prefix = `t${Date.now().toString(36)}${(made++).toString(36)}`;
  const buses: NatsBus[] = [];
  const limits: NatsAbuseLimits[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const url = options.urls?.[i] ?? natsUrl()!;
      const bus = await NatsBus.connect({ servers: [url], nodeId: `node-${i}`, prefix });
      buses.push(bus);
      limits.push(new NatsAbuseLimits(bus, options.settings ?? SETTINGS, options.limits));
    }
  } catch (err) {
    for (const bus of buses) await bus.close();
    throw err;
  }
  return {
    limits,
    buses,
    async close() {
      for (const l of limits) await l.close();
      try {
        const bus = buses.find((b) => b.connected) ?? buses[0]!;
        await (await bus.kv(options.limits?.bucket ?? "limits")).destroy();
      } finally {
        for (const bus of buses) await bus.close();
      }
    },
  };
}
