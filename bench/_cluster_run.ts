/**
 * The cluster part of `deno task bench --cluster`: two `authchat server` nodes on one PostgreSQL database and
 * one NATS server, on this machine, with the load generator spreading its clients over both. In turn, each
 * time on freshly started nodes:
 *
 * 1. every account logs in once (making its identity key); logins from many addresses; the bus's floor; then
 *    presence across the nodes (users come online on node 1, a session on node 2 times the notices) and
 *    messages through the relay from node 1 to node 2;
 * 2. new-connection logins spread over both nodes, with the database's transactions and rows and the NATS
 *    server's messages counted around them (the database's counters are read with no node connected: a
 *    PostgreSQL backend publishes what it counted when it exits, or at most once a second when idle);
 * 3. the sessions scenario split over both nodes, and each node's resident memory.
 *
 * @module
 */

import { join } from "node:path";
import type { Account, Target } from "./_auth_scenarios.ts";
import { cpuSeconds, loadGenerator, machineTicks, residentMb, startServer } from "./_children.ts";
import type { Child } from "./_children.ts";
import { authchat } from "./_children.ts";
import {
  cleanBuckets,
  clusterServices,
  createBenchDatabase,
  databaseCounters,
  usersFile,
} from "./_cluster_services.ts";
import type { BenchDatabase, ClusterServices } from "./_cluster_services.ts";
import { comersNeeded } from "./_presence_scenario.ts";
import type { Figures } from "./_report.ts";

/** What the cluster part is given by the run. */
export interface ClusterRun {
  quick: boolean;
  /** A directory of the run, and the data directory with the server's keys in it. */
  dir: string;
  data: string;
  /** The lines of the single node's configuration (limits, ports), without `data_dir`'s database. */
  configLines: string[];
  /** The accounts of the login and sessions scenarios, and the two of the message scenario. */
  accounts: Account[];
  chat: Account[];
  sessions: number;
  clients: number;
  durationMs: number;
  /** The target of a server's ports. */
  target: (ports: { tcp: number; tls: number; udp?: number }) => Target;
  log: (line: string) => void;
}

/**
 * Rounds of the login loop: each on one node on SQLite, then on the two nodes, so each pair is measured
 * within seconds (the machine's speed drifts over minutes: docs/BENCHMARKS.md).
 */
const LOGIN_ROUNDS = (run: ClusterRun): number => run.quick ? 1 : 3;

/** The median of some numbers (the mean of the middle two of an even count). */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Presence changes a second the presence scenario makes on node 1 (half of them logins). */
const PRESENCE_EVENTS_PER_S = 1000;

type Node = Awaited<ReturnType<typeof startServer>>;

function password(): string {
  return crypto.getRandomValues(new Uint8Array(12)).toHex();
}

/**
 * Run the cluster scenarios.
 *
 * @param run The run's settings and accounts.
 * @returns The cluster's figures.
 */
export async function runCluster(run: ClusterRun): Promise<Figures> {
  const services = await clusterServices(run.log);
  let db: BenchDatabase | undefined;
  // Interrupted, the run still stops the services it started (they run detached) and drops its database.
  const interrupted = async () => {
    run.log("cluster: interrupted, cleaning up");
    await db?.drop().catch(() => {});
    await services.stop().catch(() => {});
    Deno.exit(130);
  };
  const signals = ["SIGINT", "SIGTERM"] as const;
  for (const signal of signals) Deno.addSignalListener(signal, interrupted);
  try {
    if (services.sharedNats) {
      const removed = await cleanBuckets(services.nats);
      if (removed.length > 0) run.log(`cluster: removed the NATS buckets ${removed.join(", ")}`);
    }
    db = await createBenchDatabase(services.postgres);
    try {
      return await scenarios(run, services, db);
    } finally {
      await db.drop();
      if (services.sharedNats) await cleanBuckets(services.nats);
    }
  } finally {
    await services.stop();
    for (const signal of signals) Deno.removeSignalListener(signal, interrupted);
  }
}

/**
 * The relay's floor, measured just before it: its path (UDP, a process, NATS, a process, UDP to an echo, and
 * back) with bare processes in place of the sender, the nodes and the receiver.
 */
async function relayFloor(
  base: { clients: number; durationMs: number; dir: string },
  bus: string,
): Promise<Figures> {
  const busSubject = `bench.relay_floor.${crypto.randomUUID().slice(0, 8)}`;
  const started: Child[] = [];
  try {
    const echo = loadGenerator("udp_echo", base);
    started.push(echo);
    const second = loadGenerator("relay_hop", {
      ...base,
      bus,
      busSubject,
      hop: "second",
      echoPort: (await echo.json(60_000, "udpPort")).udpPort,
    });
    started.push(second);
    await second.json(60_000, "udpPort");
    const first = loadGenerator("relay_hop", { ...base, bus, busSubject, hop: "first" });
    started.push(first);
    const hopPort = (await first.json(60_000, "udpPort")).udpPort;
    const floor = loadGenerator("relay_floor", { ...base, hopPort });
    started.push(floor);
    return await floor.json(10 * base.durationMs + 60_000);
  } finally {
    for (const child of started.reverse()) await child.wait();
  }
}

async function scenarios(
  run: ClusterRun,
  services: ClusterServices,
  db: { name: string; url: string },
): Promise<Figures> {
  const figures: Figures = {};
  // A directory of its own: the chat clients' pins of the single node's run would not match the new keys.
  const dir = join(run.dir, "cluster");
  await Deno.mkdir(dir);
  // A login whose account already has more proofs under way from the same address than its free failures
  // waits (the failure gate counts each as a failure until it turns out correct), and a node on NATS takes
  // one account's proofs in turn: more workers than accounts (a quick run's 8) would be refused, not
  // measured. The full run's 32 workers on 100 accounts are not limited by it.
  const clients = Math.min(run.clients, run.accounts.length);
  const base = { clients, durationMs: run.durationMs, dir };
  const presence = {
    perSecond: (run.quick ? 200 : PRESENCE_EVENTS_PER_S) / 2,
    rampMs: run.quick ? 200 : 1100,
    connections: 32,
  };
  const comers = Array.from(
    { length: comersNeeded(presence.perSecond, presence.rampMs, run.durationMs) },
    (_, i) => ({ user: `comer${i}`, password: password() }),
  );
  const watcher = { user: "watcher", password: password() };
  run.log(
    `cluster: seeding ${run.accounts.length + comers.length + 3} accounts into PostgreSQL (${db.name})`,
  );
  const users = await usersFile(run.data, [...run.accounts, ...run.chat, ...comers, watcher]);
  try {
    await authchat(
      run.data,
      ["seed", "--data", run.data, "--database", db.url, "--from", users, "--iterations", "4096"],
      { net: true },
    );
  } finally {
    await Deno.remove(users);
  }
  const config = join(dir, "cluster.yaml");
  await Deno.writeTextFile(
    config,
    [
      ...run.configLines,
      `database: ${db.url}`,
      `bus: ${services.nats}`,
      "",
    ].join("\n"),
  );
  const start = () =>
    Promise.all(["bench1", "bench2"].map((id) => startServer(run.data, config, ["--node-id", id])));
  const stop = (nodes: Node[], signal: Deno.Signal) => Promise.all(nodes.map((n) => n.child.stop(signal)));

  run.log(
    `cluster: identity keys, then presence at ${presence.perSecond * 2} changes/s and relayed messages`,
  );
  let nodes = await start();
  try {
    const spread = nodes.map(run.target);
    const warm = loadGenerator("warmup", { ...base, spread, accounts: run.accounts });
    await warm.json(300_000);
    await warm.wait();
    // The same logins as below, but each worker from an address of its own (the limits count per address).
    const sources = loadGenerator("spread_logins", { ...base, spread, accounts: run.accounts });
    Object.assign(figures, await sources.json(10 * run.durationMs + 120_000));
    await sources.wait();
    // The floor of the relay's latency: NATS alone, between two processes, while the nodes idle.
    const busSubject = `bench.floor.${crypto.randomUUID().slice(0, 8)}`;
    const echo = loadGenerator("bus_echo", { ...base, bus: services.nats, busSubject });
    try {
      await echo.json(60_000);
      const floor = loadGenerator("bus_floor", { ...base, bus: services.nats, busSubject });
      Object.assign(figures, await floor.json(10 * run.durationMs + 60_000));
      await floor.wait();
    } finally {
      await echo.wait();
    }
    const watch = loadGenerator("presence", {
      ...base,
      presence: { ...presence, comers, watcher, comePort: nodes[0]!.tcp, watchPort: nodes[1]!.tcp },
    });
    Object.assign(figures, await watch.json(10 * run.durationMs + 120_000));
    await watch.wait();
    Object.assign(figures, await relayFloor(base, services.nats));
    const receiver = loadGenerator(
      "receiver",
      { ...base, target: spread[1], accounts: [run.chat[1]], relayOnly: true },
    );
    await receiver.json(60_000);
    const sender = loadGenerator("sender", {
      ...base,
      target: spread[0],
      accounts: [run.chat[0]],
      peer: run.chat[1]!.user,
      window: 1,
      relayOnly: true,
    });
    Object.assign(figures, await sender.json(10 * run.durationMs + 60_000));
    await sender.wait();
    await receiver.wait();
  } finally {
    await stop(nodes, "SIGTERM");
  }

  run.log(
    `cluster: logins over new TCP connections, spread over the two nodes, in ${LOGIN_ROUNDS(run)} rounds ` +
      "each after the same loop on one node on SQLite",
  );
  // The SQLite node of the rounds: the single node's configuration, its database in the data directory.
  const singleConfig = join(dir, "single.yaml");
  await Deno.writeTextFile(singleConfig, [...run.configLines, ""].join("\n"));
  const counted = await databaseCounters(services.postgres, db.name);
  const rates = { single: [] as number[], cluster: [] as number[] };
  const total = { timed: 0, logins: 0, nodeCpu: 0, natsCpu: 0, natsIn: 0, natsOut: 0, busy: 0, ticks: 0 };
  for (let round = 0; round < LOGIN_ROUNDS(run); round++) {
    const single = await startServer(run.data, singleConfig);
    try {
      const loop = loadGenerator("cluster_logins", {
        ...base,
        spread: [run.target(single)],
        accounts: run.accounts,
      });
      await loop.json(300_000, "phase");
      await loop.send("go");
      rates.single.push(
        (await loop.json(10 * run.durationMs + 300_000, "cluster_tcp_login_per_s")).cluster_tcp_login_per_s!,
      );
      await loop.wait();
    } finally {
      await single.child.stop("SIGTERM");
    }
    nodes = await start();
    try {
      const spread = nodes.map(run.target);
      const loop = loadGenerator(
        "cluster_logins",
        { ...base, spread, accounts: run.accounts, natsMonitor: services.natsMonitor },
      );
      await loop.json(300_000, "phase");
      const pids = nodes.map((n) => n.child.pid);
      const cpu = () => Promise.all([...pids, services.natsPid ?? -1].map((pid) => cpuSeconds(pid)));
      const [before, machine] = [await cpu(), await machineTicks()];
      await loop.send("go");
      const logins = await loop.json(10 * run.durationMs + 300_000, "cluster_tcp_login_per_s");
      const [after, machineAfter] = [await cpu(), await machineTicks()];
      await loop.wait();
      const used = after.map((t, i) => t - before[i]!);
      rates.cluster.push(logins.cluster_tcp_login_per_s!);
      total.timed += logins.timed!;
      total.logins += logins.logins!;
      total.nodeCpu += used[0]! + used[1]!;
      total.natsCpu += used[2]!;
      total.natsIn += logins.cluster_login_nats_in! * logins.timed!;
      total.natsOut += logins.cluster_login_nats_out! * logins.timed!;
      total.busy += machineAfter.busy - machine.busy;
      total.ticks += machineAfter.total - machine.total;
    } finally {
      await stop(nodes, "SIGTERM");
    }
  }
  const after = await databaseCounters(services.postgres, db.name);
  // The round's own pair (measured a few seconds apart) says how the two compare; the medians say how fast.
  figures.cluster_tcp_login_per_s = median(rates.cluster);
  figures.cluster_single_tcp_login_per_s = median(rates.single);
  figures.cluster_login_ratio = median(rates.cluster.map((rate, i) => rate / rates.single[i]!));
  figures.cluster_login_nats_in = total.natsIn / total.timed;
  figures.cluster_login_nats_out = total.natsOut / total.timed;
  figures.cluster_login_pg_xacts = (after.xacts - counted.xacts) / total.logins;
  figures.cluster_login_pg_rows_read = (after.rowsRead - counted.rowsRead) / total.logins;
  figures.cluster_login_pg_rows_written = (after.rowsWritten - counted.rowsWritten) / total.logins;
  figures.cluster_login_node_cpu_ms = 1000 * total.nodeCpu / total.timed;
  figures.cluster_login_nats_cpu_ms = 1000 * total.natsCpu / total.timed;
  figures.cluster_login_machine_busy_pct = 100 * total.busy / total.ticks;
  if (services.natsMonitor === null) {
    run.log(
      "cluster: no AUTHCHAT_TEST_NATS_MONITOR for the given NATS: its messages per login are not counted",
    );
  }

  run.log(`cluster: ${run.sessions} sessions split over two fresh nodes`);
  nodes = await start();
  let sessions: Child | undefined;
  try {
    sessions = loadGenerator(
      "sessions",
      { ...base, spread: nodes.map(run.target), accounts: run.accounts, sessions: run.sessions },
    );
    await sessions.json(600_000, "phase");
    const held = await Promise.all(nodes.map((n) => residentMb(n.child.pid)));
    await sessions.send("go");
    const { sessions: count, sessions_p99_ms } = await sessions.json(600_000, "sessions");
    const rss = await Promise.all(
      nodes.map(async (n, i) => Math.max(held[i]!, await residentMb(n.child.pid))),
    );
    figures.cluster_sessions = count!;
    figures.cluster_sessions_p99_ms = sessions_p99_ms!;
    figures.cluster_sessions_rss_mb_node1 = rss[0]!;
    figures.cluster_sessions_rss_mb_node2 = rss[1]!;
    figures.cluster_sessions_rss_mb = Math.max(...rss);
  } finally {
    // As on one node: stopped while the sessions are open, or each would tell the rest about every user.
    await stop(nodes, "SIGKILL");
    await sessions?.wait();
  }
  return figures;
}
