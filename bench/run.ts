/**
 * `deno task bench`: measure authchat against its runtime's own floor, side by side in one run.
 *
 * A separate `authchat server` process serves a temporary data directory seeded with accounts; a separate
 * load-generator process drives it. The floors (a bare echo server on the same runtime, same certificate)
 * are measured in the same run, so the ratios mean something on a shared machine. With `--cluster`, two nodes
 * on PostgreSQL and NATS too (_cluster_run.ts). See docs/BENCHMARKS.md.
 *
 * @module
 */

import { Command } from "commander";
import { join } from "node:path";
import { identityPaths, loadServerIdentity } from "../lib/crypto/server_identity.ts";
import { authchat, fileBackedMb, loadGenerator, residentMb, startEcho, startServer } from "./_children.ts";
import type { Child } from "./_children.ts";
import type { Account, Target } from "./_auth_scenarios.ts";
import { jsonFigures, report } from "./_report.ts";
import type { Figures } from "./_report.ts";
import { runCluster } from "./_cluster_run.ts";
import { udpFloodRun } from "./_udp_flood_run.ts";

/** Settings of a run. */
interface Settings {
  quick: boolean;
  cluster: boolean;
  json?: string;
  clients: number;
  sessions: number;
  accounts: number;
  seconds: number;
  window: number;
}

function parse(args: string[]): Settings {
  const program = new Command()
    .name("deno task bench")
    .description(
      "Measure logins, sessions and messages of a real authchat server against the runtime's floor (bare\n" +
        "TCP/TLS connect + echo, UDP ping-pong), in one run, and print a table. No figure is asserted.",
    )
    .option("--quick", "shrink every scenario to about a second (proves the harness works)")
    .option(
      "--cluster",
      "also measure two nodes on PostgreSQL and NATS (AUTHCHAT_TEST_POSTGRES and AUTHCHAT_TEST_NATS, or\n" +
        "throwaway ones started with .ci/services.sh)",
    )
    .option("--json <file>", "also write the figures to this file")
    .option("--clients <n>", "concurrent clients of the load generator", "32")
    .option("--sessions <n>", "sessions held at once in the sessions scenario", "10000")
    .option(
      "--accounts <n>",
      "accounts the sessions are spread over (presence tells every session of each)",
      "100",
    )
    .option("--seconds <n>", "duration of each timed scenario", "4")
    .option("--window <n>", "messages in flight in the throughput scenario", "256")
    .exitOverride()
    .configureOutput({ writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)) });
  program.parse(args, { from: "user" });
  const o = program.opts();
  const int = (name: string, value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`Invalid --${name}: ${value}, expected a positive integer`);
    }
    return n;
  };
  const positive = (name: string, value: string) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) {
      throw new RangeError(`Invalid --${name}: ${value}, expected a positive number`);
    }
    return n;
  };
  const quick = o.quick === true;
  return {
    quick,
    cluster: o.cluster === true,
    ...(typeof o.json === "string" ? { json: o.json } : {}),
    clients: int("clients", o.clients),
    sessions: quick ? 200 : int("sessions", o.sessions),
    accounts: quick ? 8 : int("accounts", o.accounts),
    seconds: quick ? 0.7 : positive("seconds", o.seconds),
    window: int("window", o.window),
  };
}

function password(): string {
  return crypto.getRandomValues(new Uint8Array(12)).toHex();
}

async function prepare(
  dir: string,
  count: number,
): Promise<
  {
    data: string;
    config: string;
    floodConfig: string;
    configLines: string[];
    accounts: Account[];
    chat: Account[];
  }
> {
  const data = join(dir, "data");
  await authchat(data, ["keygen", "--data", data]);
  const accounts = Array.from({ length: count }, (_, i) => ({ user: `bench${i}`, password: password() }));
  const chat = ["sender", "receiver"].map((user) => ({ user, password: password() }));
  const users = join(data, "users.txt");
  await Deno.writeTextFile(users, [...accounts, ...chat].map((a) => `${a.user}:${a.password}\n`).join(""));
  await authchat(data, ["seed", "--data", data, "--from", users, "--iterations", "4096"]);
  await Deno.remove(users);
  const config = join(dir, "authchat.yaml");
  // Every client comes from 127.0.0.1, and logs the same few accounts in over and over: the per-address
  // caps and the login budgets would refuse the load, not measure it. Likewise one user's 1,000 messages a
  // second through the relay (the cluster's scenario), each acknowledged, are more than its relay budget.
  const configLines = [
    `data_dir: ${data}`,
    "host: 127.0.0.1",
    "tcp_port: 0",
    "tls_port: 0",
    "udp_port: 0",
    "scram_iterations: 4096",
    "max_unauthenticated_per_ip: 1000000",
    "max_connections_per_ip: 1000000",
    "logins_per_minute_per_account: 1000000",
    "logins_per_minute_per_source: 1000000",
    "relay_per_second: 1000000",
  ];
  // Likewise the UDP logins loop makes more handshakes a second than the threshold at which proof of work
  // engages (load, which the flood scenario measures on a server with the defaults).
  const udpThresholds = ["udp_handshake_threshold: 1000000", "udp_half_open_threshold: 1000000"];
  await Deno.writeTextFile(config, [...configLines, ...udpThresholds, ""].join("\n"));
  const floodConfig = join(dir, "authchat-flood.yaml");
  await Deno.writeTextFile(floodConfig, [...configLines, ""].join("\n"));
  return { data, config, floodConfig, configLines, accounts, chat };
}

async function run(settings: Settings): Promise<Figures> {
  const dir = await Deno.makeTempDir({ prefix: "authchat-bench-" });
  const figures: Figures = {};
  const durationMs = settings.seconds * 1000;
  const log = (line: string) => console.error(`bench: ${line}`);
  try {
    log(`preparing ${settings.accounts} accounts in ${dir}`);
    const { data, config, floodConfig, configLines, accounts, chat } = await prepare(dir, settings.accounts);
    // The keys do not change between server starts: their fingerprints are read once.
    const paths = identityPaths(data);
    const { sealFingerprint, certFingerprint } = await loadServerIdentity(paths, { tls: true });
    if (certFingerprint === undefined) throw new Error(`No certificate in ${paths.certFile}`);
    const target = (ports: { tcp: number; tls: number; udp?: number }): Target => ({
      tcpPort: ports.tcp,
      tlsPort: ports.tls,
      ...(ports.udp ? { udpPort: ports.udp } : {}),
      sealFingerprint,
      certFingerprint,
    });
    const base = { clients: settings.clients, durationMs, dir };

    log("floors: bare TCP and TLS connect + echo, UDP ping-pong");
    const echo = await startEcho(paths.certFile, paths.keyFile);
    try {
      Object.assign(figures, await loadGenerator("floors", { ...base, echo }).json(10 * durationMs + 60_000));
    } finally {
      await echo.child.stop("SIGKILL");
    }

    log(
      "LOGIN timing of accounts vs unknown names, logins over TCP and TLS, login latency, repeated logins; then messages",
    );
    const server = await startServer(data, config);
    try {
      const t = target(server);
      const timingSamples = settings.quick ? 100 : 1000;
      const logins = loadGenerator(
        "logins",
        { ...base, target: t, accounts, timingSamples, serverPid: server.child.pid },
        true,
      );
      Object.assign(figures, await logins.json(10 * durationMs + 120_000));
      await logins.wait();
      const receiver = loadGenerator("receiver", { ...base, target: t, accounts: [chat[1]] });
      await receiver.json(60_000);
      const sender = loadGenerator(
        "sender",
        { ...base, target: t, accounts: [chat[0]], peer: chat[1]!.user, window: settings.window },
      );
      Object.assign(figures, await sender.json(10 * durationMs + 60_000));
      await sender.wait();
      await receiver.wait();
    } finally {
      await server.child.stop("SIGTERM");
    }

    Object.assign(
      figures,
      await udpFloodRun({ ...base, data, floodConfig, target, accounts, quick: settings.quick, log }),
    );

    log(`${settings.sessions} sessions on a fresh server`);
    const fresh = await startServer(data, config);
    let sessions: Child | undefined;
    try {
      sessions = loadGenerator(
        "sessions",
        { ...base, target: target(fresh), accounts, sessions: settings.sessions },
      );
      await sessions.json(300_000, "phase");
      const held = await residentMb(fresh.child.pid);
      await sessions.send("go");
      Object.assign(figures, await sessions.json(300_000, "sessions"));
      const after = await residentMb(fresh.child.pid);
      figures.sessions_rss_mb = Math.max(held, after);
      figures.sessions_rss_file_mb = await fileBackedMb(fresh.child.pid);
    } finally {
      // Stopped while the sessions are still open: closing 10,000 of them one by one would make the
      // server tell every remaining session about each user going offline.
      await fresh.child.stop("SIGKILL");
      await sessions?.wait();
    }
    if (settings.cluster) {
      Object.assign(
        figures,
        await runCluster({
          quick: settings.quick,
          dir,
          data,
          configLines,
          accounts,
          chat,
          sessions: settings.sessions,
          clients: settings.clients,
          durationMs,
          target,
          log,
        }),
      );
    }
    return figures;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  let settings: Settings;
  try {
    settings = parse(Deno.args);
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message: string };
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version") Deno.exit(0);
    if (!e.code?.startsWith("commander.")) console.error(`error: ${e.message}`);
    Deno.exit(2);
  }
  const started = Date.now();
  const figures = await run(settings);
  const cluster = settings.cluster;
  console.log(report(figures, { quick: settings.quick, seconds: (Date.now() - started) / 1000, cluster }));
  if (settings.json) {
    await Deno.writeTextFile(
      settings.json,
      JSON.stringify(jsonFigures(figures, { cluster }), null, 2) + "\n",
    );
  }
}
