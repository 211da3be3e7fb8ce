/**
 * The flood part of `deno task bench`: a fresh server with the default UDP thresholds, its resident memory
 * read, then a flood of spoofed first datagrams (`udp_flood_per_s` a second from `FLOOD_SOURCES` addresses)
 * and, during it, real logins over UDP sessions one at a time (`udp_flood_login_p99_ms`, the proof of work
 * asked and what it took); the server's memory read again at the flood's end.
 *
 * @module
 */

import type { Account, Target } from "./_auth_scenarios.ts";
import { type Child, loadGenerator, residentMb, startServer } from "./_children.ts";
import type { Figures } from "./_report.ts";

/** First datagrams a second (the figure). */
export const FLOOD_PER_SECOND = 20_000;
/** Source addresses of the flood, in 127.10.0.0/16. */
export const FLOOD_SOURCES = 1_000;
/** Longest the logins run during the flood, ms: at the highest difficulty each takes about 2 s of work. */
const FLOOD_LOGINS_MS = 20_000;

/** What the flood part is given. */
export interface FloodRun {
  dir: string;
  data: string;
  /** The configuration with the default UDP thresholds. */
  floodConfig: string;
  clients: number;
  durationMs: number;
  quick: boolean;
  target: (ports: { tcp: number; tls: number; udp?: number }) => Target;
  accounts: Account[];
  log: (line: string) => void;
}

/**
 * Run the flood scenario.
 *
 * @param run Settings, accounts, the configuration.
 * @returns Its figures.
 */
export async function udpFloodRun(run: FloodRun): Promise<Figures> {
  run.log(`UDP logins during a flood of ${FLOOD_PER_SECOND} spoofed first datagrams a second`);
  const figures: Figures = {};
  const server = await startServer(run.data, run.floodConfig);
  let flood: Child | undefined;
  let logins: Child | undefined;
  try {
    const target = run.target(server);
    const base = { dir: run.dir, clients: run.clients, target, accounts: run.accounts };
    logins = loadGenerator("udp_flood_logins", {
      ...base,
      durationMs: run.quick ? run.durationMs : Math.max(run.durationMs, FLOOD_LOGINS_MS),
    });
    await logins.json(300_000, "phase");
    figures.udp_flood_rss_before_mb = await residentMb(server.child.pid);
    flood = loadGenerator("udp_flood", {
      ...base,
      durationMs: run.durationMs,
      floodPerSecond: FLOOD_PER_SECOND,
      floodSources: FLOOD_SOURCES,
    });
    await flood.json(60_000, "phase");
    // A second of flood first: the difficulty follows the load of the last second.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await logins.send("go");
    Object.assign(figures, await logins.json(10 * FLOOD_LOGINS_MS + 120_000, "udp_flood_logins"));
    figures.udp_flood_rss_after_mb = await residentMb(server.child.pid);
    await flood.send("stop");
    Object.assign(figures, await flood.json(60_000, "udp_flood_per_s"));
  } finally {
    await flood?.wait();
    await logins?.wait();
    await server.child.stop("SIGTERM");
  }
  return figures;
}
