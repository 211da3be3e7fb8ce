import assert from "node:assert/strict";
import { join } from "node:path";
import postgres from "postgres";
import { ROOT, tempDir } from "./_harness.ts";
import { clusterTest, postgresUrl } from "../_cluster_services.ts";

const KEYS = [
  "tcp_connect_echo_per_s",
  "tls_connect_echo_per_s",
  "tcp_login_per_s",
  "tls_login_per_s",
  "udp_login_per_s",
  "udp_flood_difficulty_max",
  "udp_flood_pow_p50_ms",
  "udp_flood_login_p99_ms",
  "udp_flood_login_without_pow_p99_ms",
  "udp_flood_rss_before_mb",
  "udp_flood_rss_after_mb",
  "reauth_per_s",
  "login_known_unknown_z",
  "login_p50_ms",
  "login_p99_ms",
  "sessions",
  "sessions_rss_mb",
  "sessions_p99_ms",
  "udp_pingpong_per_s",
  "msgs_per_s",
  "msg_p50_ms",
  "msg_p99_ms",
];

/** The figures `--cluster` adds, in the order of the JSON file. */
const CLUSTER_KEYS = [
  "cluster_tcp_login_per_s",
  "cluster_single_tcp_login_per_s",
  "cluster_login_ratio",
  "cluster_login_nats_in",
  "cluster_login_nats_out",
  "cluster_login_pg_xacts",
  "cluster_presence_events_per_s",
  "cluster_presence_p50_ms",
  "cluster_presence_p99_ms",
  "cluster_relay_msg_p50_ms",
  "cluster_relay_msg_p99_ms",
  "cluster_sessions",
  "cluster_sessions_rss_mb",
  "cluster_sessions_p99_ms",
];

/** Run `deno task bench` with these arguments and a JSON file; its exit, output and figures. */
async function bench(dir: string, args: string[]) {
  const json = join(dir, "figures.json");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "bench", ...args, "--json", json],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  return { stdout, stderr, figures: JSON.parse(await Deno.readTextFile(json)) as Record<string, number> };
}

Deno.test("deno task bench --quick runs every scenario against real processes and writes every figure", async () => {
  await using dir = await tempDir();
  const { stdout, figures } = await bench(dir.path, ["--quick"]);
  assert.deepEqual(Object.keys(figures), KEYS, "exactly these keys, in this order");
  for (const key of KEYS) {
    // A z score has a sign; every other figure is a count, a rate or a time.
    const value = figures[key]!;
    assert.ok(Number.isFinite(value) && (key.endsWith("_z") || value > 0), `${key} = ${value}`);
  }
  assert.equal(figures.sessions, 200, "every quick session was held and timed");
  assert.ok(figures.login_p50_ms! <= figures.login_p99_ms! && figures.msg_p50_ms! <= figures.msg_p99_ms!);
  assert.match(stdout, /^authchat benchmark \(quick: figures are not meaningful, \d+ s\)$/m);
  for (const key of KEYS) assert.match(stdout, new RegExp(`^${key} `, "m"), `table row ${key}`);
  assert.doesNotMatch(stdout, /MISSED|met$/m, "a quick run judges no target");
  assert.doesNotMatch(stdout, /^cluster_/m, "no cluster rows without --cluster");
  // Info rows the harness reads from /proc and the load generator times: a number each, not "n/a".
  const measured = [
    "tcp_login_cpu_ms",
    "udp_login_cpu_ms",
    "udp_login_required_ms",
    "udp_login_ceiling_ratio",
  ];
  for (const key of [...measured, "sessions_rss_file_mb"]) {
    assert.match(stdout, new RegExp(`^${key} +\\d`, "m"), `info row ${key} holds a number`);
  }
});

clusterTest(
  "deno task bench --quick --cluster measures two nodes on the given PostgreSQL and NATS, and drops its database",
  ["postgres", "nats"],
  async () => {
    await using dir = await tempDir();
    const { stdout, stderr, figures } = await bench(dir.path, ["--quick", "--cluster"]);
    assert.deepEqual(Object.keys(figures), [...KEYS, ...CLUSTER_KEYS], "exactly these keys, in this order");
    assert.match(stderr, /PostgreSQL and NATS from AUTHCHAT_TEST_POSTGRES and AUTHCHAT_TEST_NATS/);
    const counted = Deno.env.get("AUTHCHAT_TEST_NATS_MONITOR")
      ? []
      : ["cluster_login_nats_in", "cluster_login_nats_out"];
    for (const key of CLUSTER_KEYS) {
      const value = figures[key];
      if (counted.includes(key)) {
        assert.equal(value, null, `${key}: no monitoring endpoint, nothing counted`);
        continue;
      }
      // A presence notice often arrives before the user's own LOGIN reply, and counts as 0 then
      // (docs/BENCHMARKS.md): the p50 may be 0; every other figure is a count, a rate or a time.
      const least = key === "cluster_presence_p50_ms" ? 0 : Number.MIN_VALUE;
      assert.ok(typeof value === "number" && Number.isFinite(value) && value >= least, `${key} = ${value}`);
    }
    assert.ok(figures.cluster_presence_p50_ms! <= figures.cluster_presence_p99_ms!);
    assert.ok(figures.cluster_relay_msg_p50_ms! <= figures.cluster_relay_msg_p99_ms!);
    assert.equal(figures.cluster_sessions, 200, "every quick session was held and timed, on the two nodes");
    // A password login reads the account (findCredentials) and checks the proof's verifier (recordLogin):
    // two statements, fewer when the reads of logins under way at once go together; the login times
    // follow, many in one statement.
    assert.ok(
      figures.cluster_login_pg_xacts! > 0 && figures.cluster_login_pg_xacts! <= 2.1,
      `${figures.cluster_login_pg_xacts} transactions per login`,
    );
    assert.ok(figures.cluster_single_tcp_login_per_s! > 0);
    assert.equal(
      figures.cluster_login_ratio,
      figures.cluster_tcp_login_per_s! / figures.cluster_single_tcp_login_per_s!,
      "a quick run's one round: its two rates' ratio",
    );
    if (counted.length === 0) {
      assert.ok(figures.cluster_login_nats_in! >= 1, "the shared limits ask NATS at every login");
    }
    for (const key of CLUSTER_KEYS) assert.match(stdout, new RegExp(`^${key} `, "m"), `table row ${key}`);
    // The floors the cluster's latencies are read against: measured, not "n/a".
    for (const key of ["cluster_bus_paced_p99_ms", "cluster_relay_floor_p99_ms"]) {
      assert.match(stdout, new RegExp(`^${key} +\\d`, "m"), `info row ${key} holds a number`);
    }
    assert.doesNotMatch(stdout, /MISSED|met$/m, "a quick run judges no target");
    const database = /into PostgreSQL \((authchat_bench_\w+)\)/.exec(stderr)?.[1];
    assert.ok(database, stderr);
    const sql = postgres(postgresUrl()!, { max: 1, onnotice: () => {} });
    try {
      const left = await sql`SELECT datname FROM pg_database WHERE datname = ${database}`;
      assert.equal(left.length, 0, `the run's database ${database} is dropped`);
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
);

Deno.test("deno task bench refuses a bad option with a usage error", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "bench", "--clients", "zero"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /Invalid --clients: zero/);
});

Deno.test("the bench starts its servers with the V8 flags deno task start's launcher gives the server", async () => {
  const { authchat, startServer } = await import("../../bench/_children.ts");
  const { SERVER_V8_FLAGS } = await import("../../cmd/_launch_permissions.ts");
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await authchat(data, ["keygen", "--data", data]);
  const config = join(dir.path, "authchat.yaml");
  await Deno.writeTextFile(
    config,
    [`data_dir: ${data}`, "host: 127.0.0.1", "tcp_port: 0", "tls_port: 0", "udp_port: 0", ""].join("\n"),
  );
  const server = await startServer(data, config);
  try {
    const cmdline = (await Deno.readTextFile(`/proc/${server.child.pid}/cmdline`)).split("\0");
    assert.ok(cmdline.includes(SERVER_V8_FLAGS), cmdline.join(" "));
  } finally {
    await server.child.stop("SIGTERM");
  }
});
