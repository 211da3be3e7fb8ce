/**
 * The figures of a benchmark run, their targets, and the table printed at the end.
 *
 * @module
 */

/** The figures, by their JSON key. */
export type Figures = Record<string, number>;

/** One figure: its key, unit, and the target it is held to (if any), given its value and the other figures. */
export interface Target {
  key: string;
  unit: string;
  what: string;
  /** Shown in the table only, not written to the JSON file (whose keys are fixed). */
  info?: boolean;
  /** Measured only by `--cluster` runs: their rows and keys appear only then. */
  cluster?: boolean;
  /** The target as text, and whether the figure (`value`, the row's own) meets it. */
  target?: (value: number, f: Figures) => { text: string; met: boolean };
}

/** At least `ratio` times the floor figure `floorKey`. */
const atLeast = (floorKey: string, ratio: number) => (value: number, f: Figures) => {
  const floor = f[floorKey] ?? NaN;
  return { text: `≥ ${ratio} × ${floorKey} (${(value / floor).toFixed(2)}×)`, met: value >= ratio * floor };
};

/** At least or at most a fixed `limit`. */
const bound = (op: "≥" | "≤", limit: number) => (value: number) => {
  return { text: `${op} ${limit}`, met: op === "≥" ? value >= limit : value <= limit };
};

/** Closer to zero than `limit` either way. */
const magnitudeBelow = (limit: number) => (value: number) => {
  return { text: `|z| < ${limit}`, met: Math.abs(value) < limit };
};

/** Every figure, in the order of the table (and, leaving out `info` ones, of the JSON file). */
export const TARGETS: readonly Target[] = [
  { key: "tcp_connect_echo_per_s", unit: "/s", what: "floor: bare TCP connect + one echo" },
  { key: "tls_connect_echo_per_s", unit: "/s", what: "floor: bare TLS connect + one echo" },
  {
    key: "tcp_connect_3rt_per_s",
    unit: "/s",
    what: "floor: TCP connect + three echoes, a login's exchanges (info)",
    info: true,
  },
  {
    key: "tcp_login_per_s",
    unit: "/s",
    what: "new TCP connection + SCRAM login",
    target: atLeast("tcp_connect_echo_per_s", 0.5),
  },
  {
    key: "tls_login_per_s",
    unit: "/s",
    what: "new TLS connection + SCRAM-PLUS login",
    target: atLeast("tls_connect_echo_per_s", 0.7),
  },
  {
    key: "udp_login_per_s",
    unit: "/s",
    what: "new UDP session + SCRAM-PLUS login",
    target: atLeast("tcp_login_per_s", 0.8),
  },
  {
    key: "tcp_login_cpu_ms",
    unit: " ms",
    what: "CPU time of a TCP login, server and client together (info)",
    info: true,
  },
  {
    key: "udp_login_cpu_ms",
    unit: " ms",
    what: "the same for a UDP session login (info)",
    info: true,
  },
  {
    key: "udp_login_public_key_ms",
    unit: " ms",
    what: "X25519 on both sides, the Ed25519 signature and its check (info)",
    info: true,
  },
  {
    key: "udp_login_required_ms",
    unit: " ms",
    what: "all a UDP login requires beyond TCP, each part at its least (info)",
    info: true,
  },
  {
    key: "udp_login_ceiling_ratio",
    unit: "×",
    what: "the most udp/tcp logins can reach with all else of a UDP session free (info)",
    info: true,
  },
  {
    key: "udp_flood_per_s",
    unit: "/s",
    what: "spoofed first datagrams sent during the flood (info)",
    info: true,
  },
  {
    key: "udp_flood_login_failed",
    unit: "",
    what: "logins during the flood that got no answer in 10 s (info)",
    info: true,
  },
  {
    key: "udp_flood_difficulty_max",
    unit: " bits",
    what: "proof of work asked of a login during the flood",
  },
  {
    key: "udp_flood_pow_p50_ms",
    unit: " ms",
    what: "a login's proof of work during the flood, median",
  },
  {
    key: "udp_flood_login_p99_ms",
    unit: " ms",
    what: "UDP session + login during the flood, p99, proof of work included",
  },
  {
    key: "udp_flood_login_without_pow_p99_ms",
    unit: " ms",
    what: "the same without the time of its proof of work, p99",
    target: bound("≤", 50),
  },
  {
    key: "udp_flood_rss_before_mb",
    unit: " MiB",
    what: "server's resident memory before the flood",
  },
  {
    key: "udp_flood_rss_after_mb",
    unit: " MiB",
    what: "server's resident memory at the flood's end",
  },
  {
    key: "tcp_open_2rt_per_s",
    unit: "/s",
    what: "floor: two echoes on open connections (info)",
    info: true,
  },
  {
    key: "reauth_per_s",
    unit: "/s",
    what: "logins on open connections",
    target: bound("≥", 10_000),
  },
  {
    key: "login_known_unknown_z",
    unit: "",
    what: "LOGIN to CHALLENGE, account vs unknown name: Welch's z",
    target: magnitudeBelow(2),
  },
  {
    key: "login_known_unknown_diff_us",
    unit: "µs",
    what: "the same: mean for accounts minus mean for unknown names (info)",
    info: true,
  },
  { key: "login_p50_ms", unit: "ms", what: "TLS connect + login, one at a time, p50" },
  { key: "login_p99_ms", unit: "ms", what: "TLS connect + login, one at a time, p99" },
  { key: "sessions", unit: "", what: "logged-in sessions held", target: bound("≥", 10_000) },
  {
    key: "sessions_rss_mb",
    unit: "MiB",
    what: "server resident memory with them",
    target: bound("≤", 250),
  },
  {
    key: "sessions_rss_file_mb",
    unit: "MiB",
    what: "of which pages of files, the runtime's binary mostly (info)",
    info: true,
  },
  {
    key: "sessions_p99_ms",
    unit: "ms",
    what: "IS_LOGGED round trip across them, p99",
    target: bound("≤", 50),
  },
  { key: "udp_pingpong_per_s", unit: "/s", what: "floor: raw UDP ping-pong" },
  {
    key: "msgs_per_s",
    unit: "/s",
    what: "256-byte E2E messages, acknowledged",
    target: bound("≥", 20_000),
  },
  {
    key: "udp_paced_p99_ms",
    unit: "ms",
    what: "floor: raw UDP round trip at 1,000/s, p99 (info)",
    info: true,
  },
  { key: "msg_p50_ms", unit: "ms", what: "message send to ack at 1,000/s, p50" },
  {
    key: "msg_p99_ms",
    unit: "ms",
    what: "message send to ack at 1,000/s, p99",
    target: bound("≤", 2),
  },
  {
    key: "cluster_tcp_login_per_s",
    unit: "/s",
    what: "2 nodes, PostgreSQL + NATS: new TCP connection + SCRAM login",
    target: atLeast("tcp_login_per_s", 0.5),
    cluster: true,
  },
  {
    key: "cluster_single_tcp_login_per_s",
    unit: "/s",
    what: "one node on SQLite, the same loop, each round just before the two nodes' (median)",
    cluster: true,
  },
  {
    key: "cluster_login_ratio",
    unit: "×",
    what: "two nodes' logins over the SQLite node's of the same round (median of the rounds)",
    target: bound("≥", 0.5),
    cluster: true,
  },
  {
    key: "cluster_tcp_login_sources_per_s",
    unit: "/s",
    what: "the same, each client from an address of its own (raw clients) (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_login_nats_in",
    unit: "",
    what: "messages NATS received per login (both nodes)",
    cluster: true,
  },
  {
    key: "cluster_login_nats_out",
    unit: "",
    what: "messages NATS delivered per login (both nodes)",
    cluster: true,
  },
  {
    key: "cluster_login_pg_xacts",
    unit: "",
    what: "PostgreSQL transactions per login",
    cluster: true,
  },
  {
    key: "cluster_login_pg_rows_read",
    unit: "",
    what: "PostgreSQL rows read per login (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_login_pg_rows_written",
    unit: "",
    what: "PostgreSQL rows written per login (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_login_node_cpu_ms",
    unit: "ms",
    what: "CPU time of the two nodes per login (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_login_nats_cpu_ms",
    unit: "ms",
    what: "CPU time of the NATS server per login, when the bench started it (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_login_machine_busy_pct",
    unit: "%",
    what: "the machine's CPU busy meanwhile, every process (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_presence_events_per_s",
    unit: "/s",
    what: "presence changes on node 1 (online + offline)",
    cluster: true,
  },
  {
    key: "cluster_presence_p50_ms",
    unit: "ms",
    what: "online on node 1 to the notice on node 2, p50",
    cluster: true,
  },
  {
    key: "cluster_presence_p99_ms",
    unit: "ms",
    what: "online on node 1 to the notice on node 2, p99",
    target: bound("≤", 20),
    cluster: true,
  },
  {
    key: "cluster_presence_from_proof_p99_ms",
    unit: "ms",
    what: "the same from the PROOF sent, the login's own work included (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_bus_paced_p99_ms",
    unit: "ms",
    what: "floor: NATS publish to another process and back at 1,000/s, p99 (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_relay_floor_p99_ms",
    unit: "ms",
    what: "floor: the relay's path, UDP → process → NATS → process → UDP echo and back, 1,000/s, p99 (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_relay_msg_p50_ms",
    unit: "ms",
    what: "relayed node 1 → node 2, send to ack at 1,000/s, p50",
    cluster: true,
  },
  {
    key: "cluster_relay_msg_p99_ms",
    unit: "ms",
    what: "relayed node 1 → node 2, send to ack at 1,000/s, p99",
    target: bound("≤", 20),
    cluster: true,
  },
  {
    key: "cluster_sessions",
    unit: "",
    what: "logged-in sessions held, split over the 2 nodes",
    target: bound("≥", 10_000),
    cluster: true,
  },
  {
    key: "cluster_sessions_rss_mb",
    unit: "MiB",
    what: "resident memory of the larger node with them",
    cluster: true,
  },
  {
    key: "cluster_sessions_rss_mb_node1",
    unit: "MiB",
    what: "the same, node 1 (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_sessions_rss_mb_node2",
    unit: "MiB",
    what: "the same, node 2 (info)",
    info: true,
    cluster: true,
  },
  {
    key: "cluster_sessions_p99_ms",
    unit: "ms",
    what: "IS_LOGGED round trip across them, p99",
    cluster: true,
  },
];

/** The rows of a run: the cluster's only when it measured them. */
function rowsOf(cluster: boolean): readonly Target[] {
  return TARGETS.filter((t) => cluster || !t.cluster);
}

function format(value: number | null | undefined): string {
  // A NaN figure comes back from a load generator's JSON as null.
  if (value === undefined || value === null || Number.isNaN(value)) return "n/a";
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  return value.toFixed(2);
}

/**
 * The table of a run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { report } from "./_report.ts";
 * const text = report({ reauth_per_s: 12000 }, { quick: false, seconds: 60 });
 * assert(text.includes("12,000") && text.includes("met") && !text.includes("cluster_"));
 * ```
 *
 * @param figures The figures.
 * @param run Whether it was a quick run, whether it measured the cluster, and how long it took.
 * @returns The text.
 */
export function report(
  figures: Figures,
  run: { quick: boolean; seconds: number; cluster?: boolean },
): string {
  const rows = rowsOf(run.cluster ?? false).map((t) => {
    const value = figures[t.key];
    const target = t.target && value !== undefined ? t.target(value, figures) : null;
    return [
      t.key,
      `${format(value)} ${t.unit}`.trim(),
      t.what,
      target ? `${target.text} ${run.quick ? "(quick run)" : target.met ? "met" : "MISSED"}` : "",
    ];
  });
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => i < 3 ? c.padEnd(widths[i]!) : c).join("  ").trimEnd());
  return [
    `authchat benchmark (${run.quick ? "quick: figures are not meaningful" : "full"}, ${
      run.seconds.toFixed(0)
    } s)`,
    ...lines,
  ].join("\n");
}

/**
 * The figures as the JSON file holds them: every key of {@linkcode TARGETS} but the `info` ones (and the
 * cluster's, unless the run measured them), in that order, `null` for a figure the run did not produce.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonFigures } from "./_report.ts";
 * const json = jsonFigures({ reauth_per_s: 12000, tcp_open_2rt_per_s: 1 });
 * assert(json.reauth_per_s === 12000 && json.sessions === null && !("tcp_open_2rt_per_s" in json));
 * assert(!("cluster_sessions" in json) && jsonFigures({}, { cluster: true }).cluster_sessions === null);
 * ```
 *
 * @param figures The figures.
 * @param run Whether the run measured the cluster.
 * @returns The object to write.
 */
export function jsonFigures(
  figures: Figures,
  run: { cluster?: boolean } = {},
): Record<string, number | null> {
  return Object.fromEntries(
    rowsOf(run.cluster ?? false).filter((t) => !t.info).map((t) => [t.key, figures[t.key] ?? null]),
  );
}
