import assert from "node:assert/strict";
import { join } from "node:path";
import { ROOT, tempDir } from "./_harness.ts";

const KEYS = [
  "tcp_connect_echo_per_s",
  "tls_connect_echo_per_s",
  "tcp_login_per_s",
  "tls_login_per_s",
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

Deno.test("deno task bench --quick runs every scenario against real processes and writes every figure", async () => {
  await using dir = await tempDir();
  const json = join(dir.path, "figures.json");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "bench", "--quick", "--json", json],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const figures = JSON.parse(await Deno.readTextFile(json)) as Record<string, number>;
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
});

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
