/**
 * The benchmark's load generator, a process of its own: `deno run … bench/load_generator.ts ROLE JSON`.
 * It prints one JSON line of figures on stdout when done; roles that hold connections open (`sessions`,
 * `receiver`) then wait for stdin to close, so the harness can stop the server first.
 *
 * @module
 */

import type { AuthchatClient, ClientCache } from "../lib/client/authchat_client.ts";
import type { ChatNode } from "../lib/client/chat_node.ts";
import type { Account, AuthScenarioOptions, Target } from "./_auth_scenarios.ts";
import {
  connectAndLogin,
  loginLatency,
  newConnectionLogins,
  newConnectionLoop,
  reauth,
  sessions,
  warmUp,
} from "./_auth_scenarios.ts";
import { messages, startNode } from "./_chat_scenario.ts";
import { busCounters } from "./_bus_counters.ts";
import { rate } from "./_measure.ts";
import { presenceLatency } from "./_presence_scenario.ts";
import type { PresenceOptions } from "./_presence_scenario.ts";
import { knownUnknownLogins } from "./_timing_scenario.ts";
import { udpFlood } from "./_udp_flood.ts";
import { floodLogins } from "./_udp_flood_scenario.ts";
import { udpRequiredMs, withCpu } from "./_udp_ceiling.ts";
import {
  tcpConnectEcho,
  tcpOpenRoundTrips,
  tlsConnectEcho,
  udpPacedP99,
  udpPingPong,
} from "./_floor_scenarios.ts";

/** Options of every role, as the harness passes them. */
interface LoadOptions {
  clients: number;
  durationMs: number;
  echo?: { tcp: number; tls: number; udp: number };
  target?: Target;
  /** The nodes of a cluster, the clients spread over them. */
  spread?: Target[];
  /** The NATS server, and the subjects' prefix of the bus floor. */
  bus?: string;
  busSubject?: string;
  /** The relay floor: which hop, the echo's port (second hop), the first hop's port (the sender). */
  hop?: "first" | "second";
  echoPort?: number;
  hopPort?: number;
  /** NATS's monitoring endpoint, for its message counts (cluster logins). */
  natsMonitor?: string | null;
  /** Messages through the server's relay only. */
  relayOnly?: boolean;
  /** The presence scenario's settings. */
  presence?: Omit<PresenceOptions, "durationMs">;
  accounts?: Account[];
  sessions?: number;
  peer?: string;
  window?: number;
  dir?: string;
  /** Samples of each kind in the known-vs-unknown LOGIN timing. */
  timingSamples?: number;
  /** The server's process (the login loops' CPU time per login). */
  serverPid?: number;
  /** The UDP flood: first datagrams a second, and from how many source addresses. */
  floodPerSecond?: number;
  floodSources?: number;
}

function say(figures: Record<string, unknown>): void {
  console.log(JSON.stringify(figures));
}

const stdin = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();

/** Wait for a line on stdin (the harness's go-ahead), or its end. */
async function stdinLine(): Promise<void> {
  for (;;) {
    const { value, done } = await stdin.read();
    if (done || value.includes("\n")) return;
  }
}

async function stdinClosed(): Promise<void> {
  while (!(await stdin.read()).done) {
    // Nothing is expected, only the end.
  }
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`Missing option ${name}`);
  return value;
}

/** Log in as the first account over TCP and start its chat node (the `receiver` and `sender` roles). */
async function loggedInNode(
  o: LoadOptions,
  auth: AuthScenarioOptions,
): Promise<{ client: AuthchatClient; node: ChatNode }> {
  const [account] = required(o.accounts, "accounts");
  const client = await connectAndLogin(auth, "tcp", required(account, "accounts"));
  const relayOnly = o.relayOnly === true;
  return { client, node: await startNode(client, required(o.dir, "dir"), { relayOnly }) };
}

async function run(role: string, o: LoadOptions): Promise<void> {
  const cache: ClientCache = { saltedPasswords: new Map(), identities: new Map() };
  const auth = (): AuthScenarioOptions => ({
    target: required(o.target ?? o.spread?.[0], "target"),
    ...(o.spread ? { spread: o.spread } : {}),
    accounts: required(o.accounts, "accounts"),
    clients: o.clients,
    durationMs: o.durationMs,
    cache,
  });
  switch (role) {
    case "floors": {
      const echo = required(o.echo, "echo");
      const base = { clients: o.clients, durationMs: o.durationMs };
      return say({
        tcp_connect_echo_per_s: await tcpConnectEcho({ ...base, port: echo.tcp }),
        tls_connect_echo_per_s: await tlsConnectEcho({ ...base, port: echo.tls }),
        udp_pingpong_per_s: await udpPingPong({ ...base, port: echo.udp }),
        // What the runtime can do for the message patterns of a login and a message (the table shows them).
        tcp_connect_3rt_per_s: await tcpConnectEcho({ ...base, port: echo.tcp, roundTrips: 3 }),
        tcp_open_2rt_per_s: await tcpOpenRoundTrips({ ...base, port: echo.tcp }),
        udp_paced_p99_ms: await udpPacedP99({ port: echo.udp, durationMs: o.durationMs }),
      });
    }
    case "logins": {
      const a = auth();
      await warmUp(a);
      // First, on a server that has done nothing else yet: the load that follows leaves garbage behind.
      const samples = required(o.timingSamples, "timingSamples");
      const timing = await knownUnknownLogins(a, samples, Math.ceil(samples / 5));
      const serverPid = required(o.serverPid, "serverPid");
      const tcp = await withCpu(serverPid, () => newConnectionLoop(a, "tcp"));
      const tls = await newConnectionLogins(a, "tls");
      // The same loop over UDP sessions: the same accounts, clients and caches (issue 11's ratio).
      const udp = await withCpu(serverPid, () => newConnectionLoop(a, "udp"));
      const udpRequired = await udpRequiredMs();
      const latency = await loginLatency(a);
      return say({
        tcp_login_per_s: rate(tcp.result, "tcp_login"),
        tls_login_per_s: tls,
        udp_login_per_s: rate(udp.result, "udp_login"),
        tcp_login_cpu_ms: tcp.cpuMs,
        udp_login_cpu_ms: udp.cpuMs,
        udp_login_public_key_ms: udpRequired.publicKey,
        udp_login_required_ms: udpRequired.total,
        udp_login_ceiling_ratio: tcp.cpuMs / (tcp.cpuMs + udpRequired.total),
        reauth_per_s: await reauth(a),
        login_known_unknown_z: timing.z,
        login_known_unknown_diff_us: timing.knownMeanUs - timing.unknownMeanUs,
        login_p50_ms: latency.p50,
        login_p99_ms: latency.p99,
      });
    }
    case "warmup": {
      await warmUp(auth());
      return say({ warmed: required(o.accounts, "accounts").length });
    }
    case "cluster_logins": {
      const a = auth();
      // Opens each account's identity key here (an Argon2id each): not in the timed loop. Then the same
      // loop for a second, untimed: the single node's loop runs on a server its timing scenario has already
      // sent some thousand LOGINs, and fresh nodes would be measured while their code is still compiling.
      // The harness reads the processes' CPU time between the two lines.
      await warmUp(a);
      const warmLoop = await newConnectionLoop({ ...a, durationMs: 1000 }, "tcp");
      say({ phase: "warm" });
      await stdinLine();
      const monitor = o.natsMonitor ?? null;
      const before = monitor === null ? null : await busCounters(monitor);
      const r = await newConnectionLoop(a, "tcp");
      const after = monitor === null ? null : await busCounters(monitor);
      const logins = r.count;
      return say({
        cluster_tcp_login_per_s: rate(r, "cluster tcp_login"),
        // The timed ones, and every login the servers saw, the warm-up's too (the database's counters
        // cover them all).
        timed: logins,
        logins: logins + a.accounts.length + warmLoop.count,
        cluster_login_nats_in: before && after ? (after.inMsgs - before.inMsgs) / logins : NaN,
        cluster_login_nats_out: before && after ? (after.outMsgs - before.outMsgs) / logins : NaN,
      });
    }
    case "bus_echo": {
      const { busEcho } = await import("./_bus_floor.ts");
      return await busEcho(required(o.bus, "bus"), required(o.busSubject, "busSubject"), () => {
        say({ ready: true });
      }, stdinClosed());
    }
    case "bus_floor": {
      const { busPacedP99 } = await import("./_bus_floor.ts");
      const p99 = await busPacedP99(
        required(o.bus, "bus"),
        required(o.busSubject, "busSubject"),
        o.durationMs,
      );
      return say({ cluster_bus_paced_p99_ms: p99 });
    }
    case "relay_hop": {
      const { relayHop } = await import("./_bus_floor.ts");
      return await relayHop(
        required(o.bus, "bus"),
        required(o.busSubject, "busSubject"),
        required(o.hop, "hop"),
        o.echoPort,
        (udpPort) => say({ ready: true, udpPort }),
        stdinClosed(),
      );
    }
    case "udp_echo": {
      const { udpEcho } = await import("./_bus_floor.ts");
      return await udpEcho((udpPort) => say({ ready: true, udpPort }), stdinClosed());
    }
    case "relay_floor": {
      const { relayFloorP99 } = await import("./_bus_floor.ts");
      const p99 = await relayFloorP99(required(o.hopPort, "hopPort"), o.durationMs);
      return say({ cluster_relay_floor_p99_ms: p99 });
    }
    case "spread_logins": {
      const { spreadSourceLogins } = await import("./_raw_login.ts");
      const r = await spreadSourceLogins({
        ports: required(o.spread, "spread").map((t) => t.tcpPort),
        accounts: required(o.accounts, "accounts"),
        clients: o.clients,
        durationMs: o.durationMs,
      });
      return say({ cluster_tcp_login_sources_per_s: rate(r, "logins from several addresses") });
    }
    case "presence": {
      const result = await presenceLatency({ ...required(o.presence, "presence"), durationMs: o.durationMs });
      return say({
        cluster_presence_events_per_s: result.eventsPerSecond,
        cluster_presence_p50_ms: result.p50,
        cluster_presence_p99_ms: result.p99,
        cluster_presence_from_proof_p99_ms: result.fromProofP99,
        presence_samples: result.samples,
        presence_late: result.late,
      });
    }
    case "sessions": {
      const a = auth();
      await warmUp(a);
      // The harness reads the server's memory while every session is up, then lets the round trips go.
      const result = await sessions(a, required(o.sessions, "sessions"), async () => {
        say({ phase: "ready" });
        await stdinLine();
      });
      say({ sessions: result.sessions, sessions_p99_ms: result.p99 });
      return await stdinClosed();
    }
    case "udp_flood": {
      // Floods until the harness says stop (a line on stdin).
      const controller = new AbortController();
      const flooding = udpFlood({
        port: required(required(o.target, "target").udpPort, "target.udpPort"),
        perSecond: required(o.floodPerSecond, "floodPerSecond"),
        sources: required(o.floodSources, "floodSources"),
        signal: controller.signal,
      });
      say({ phase: "flooding" });
      await stdinLine();
      controller.abort();
      const r = await flooding;
      return say({ udp_flood_per_s: r.sent / r.seconds, udp_flood_send_failed: r.failed });
    }
    case "udp_flood_logins": {
      const a = auth();
      // The accounts' identity keys opened before the flood (an Argon2id each), then the go-ahead.
      await warmUp(a);
      say({ phase: "warm" });
      await stdinLine();
      const r = await floodLogins(a);
      return say({
        udp_flood_logins: r.count,
        udp_flood_login_failed: r.failed,
        udp_flood_login_p50_ms: r.p50,
        udp_flood_login_p99_ms: r.p99,
        udp_flood_login_without_pow_p50_ms: r.withoutPowP50,
        udp_flood_login_without_pow_p99_ms: r.withoutPowP99,
        udp_flood_pow_p50_ms: r.powP50,
        udp_flood_difficulty_max: r.difficultyMax,
        udp_flood_difficulty_min: r.difficultyMin,
      });
    }
    case "receiver": {
      await loggedInNode(o, auth());
      say({ ready: true });
      return await stdinClosed();
    }
    case "sender": {
      const { client, node } = await loggedInNode(o, auth());
      const result = await messages(node, required(o.peer, "peer"), {
        window: required(o.window, "window"),
        durationMs: o.durationMs,
        throughput: o.relayOnly !== true,
      });
      await node.close();
      await client.close();
      if (o.relayOnly) {
        return say({ cluster_relay_msg_p50_ms: result.p50, cluster_relay_msg_p99_ms: result.p99 });
      }
      return say({ msgs_per_s: result.perSecond, msg_p50_ms: result.p50, msg_p99_ms: result.p99 });
    }
    default:
      throw new Error(`Unknown role ${role}`);
  }
}

if (import.meta.main) {
  const [role, json] = Deno.args;
  try {
    await run(role ?? "", JSON.parse(json ?? "{}") as LoadOptions);
    Deno.exit(0);
  } catch (err) {
    console.error(`load generator ${role}: ${(err as Error).stack ?? err}`);
    Deno.exit(1);
  }
}
