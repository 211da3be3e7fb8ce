import assert from "node:assert/strict";
import { join } from "node:path";
import { installKeys, loginOnce, runCli, serverArgs, ServerProcess, tempDir } from "./_harness.ts";
import { ChatClient, registerUsers } from "./_chat_kit.ts";
import { parseExposition, sampleValue } from "../server/_parse_exposition.ts";
import type { ParsedFamily } from "../server/_parse_exposition.ts";

const PASSWORD = "tulip orbit canyon 7";

/** The metrics port from the server's ready line. */
function metricsPort(server: ServerProcess): number {
  const port = /^authchat listening tcp=\S+ tls=\S+ udp=\S+ metrics=127\.0\.0\.1:(\d+)$/.exec(server.line)
    ?.[1];
  assert.ok(port, `the ready line gives the metrics port: ${server.line}`);
  return Number(port);
}

async function scrape(port: number): Promise<Map<string, ParsedFamily>> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return parseExposition(await response.text());
}

async function health(port: number): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: response.status, body: await response.text() };
}

/** Scrape until `ready` holds of the metrics (the server counts what a client did a moment after it). */
async function scrapeUntil(
  port: number,
  ready: (families: Map<string, ParsedFamily>) => boolean,
): Promise<Map<string, ParsedFamily>> {
  for (let i = 0;; i++) {
    const families = await scrape(port);
    if (ready(families) || i === 100) return families;
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("authchat server --metrics-port 0 counts registrations, logins, presence notices and relayed messages", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data, { args: ["--metrics-port", "0"] });
  const port = metricsPort(server);
  assert.match(await server.settledLog(), /INFO metrics_listening address=127\.0\.0\.1:\d+/);

  const before = await scrape(port);
  assert.equal(sampleValue(before, "authchat_registrations_total"), 0);
  assert.equal(sampleValue(before, "authchat_logins_total", { result: "ok" }), 0);
  assert.equal(
    sampleValue(before, "authchat_node_info", {
      node: `authchat@127.0.0.1:${server.tcpPort}`,
      version: "0.1.0",
    }),
    1,
  );
  assert.deepEqual(await health(port), { status: 200, body: "ok\nserver: ok\nstore: ok\n" });

  const passwordFile = await registerUsers(server.tcpPort, dir.path, ["alice", "bob"], PASSWORD);
  const wrong = await loginOnce(server, { user: "alice", password: "not her password 1", home: dir.path });
  assert.equal(wrong.code, 1, wrong.stderr);
  const options = (user: string) => ({
    port: server.tcpPort,
    user,
    passwordFile,
    configDir: join(dir.path, `cfg-${user}`),
    args: ["--relay"],
  });
  await using alice = await ChatClient.login(options("alice"));
  await using bob = await ChatClient.login(options("bob"));
  await alice.waitFor("out", /^presence: bob online$/);
  await alice.expectOk("send bob hello through the relay", /^delivered$/);
  await bob.waitFor("out", /^msg from alice: hello through the relay$/);

  const after = await scrapeUntil(port, (m) => sampleValue(m, "authchat_relay_datagrams_total")! > 0);
  assert.equal(sampleValue(after, "authchat_registrations_total"), 2);
  assert.equal(sampleValue(after, "authchat_logins_total", { result: "ok" }), 2);
  assert.equal(sampleValue(after, "authchat_logins_total", { result: "failed" }), 1);
  assert.equal(sampleValue(after, "authchat_logins_total", { result: "rate_limited" }), 0);
  assert.equal(sampleValue(after, "authchat_request_errors_total", { op: "login", code: "AUTH_FAILED" }), 1);
  assert.equal(
    sampleValue(after, "authchat_presence_notices_total", { state: "online" }),
    1,
    "alice told of bob",
  );
  assert.equal(sampleValue(after, "authchat_sessions", { transport: "tcp", state: "logged_in" }), 2);
  assert.equal(sampleValue(after, "authchat_connections_accepted_total", { transport: "tcp" }), 4);
  assert.ok(sampleValue(after, "authchat_relay_datagrams_total")! > 0, "the message went through the relay");
  assert.ok(sampleValue(after, "authchat_udp_rendezvous_total")! > 0);
  assert.equal(after.get("authchat_database_errors_total")!.samples.length, 0);
  assert.equal(after.get("authchat_bus_errors_total")!.samples.length, 0);

  await bob.expectOk("logout", /^logged out$/);
  await alice.waitFor("out", /^presence: bob offline$/);
  // A scrape within a second of the last one gets the same text: wait for the change.
  const offline = await scrapeUntil(
    port,
    (m) =>
      (sampleValue(m, "authchat_presence_notices_total", { state: "offline" }) ?? 0) > 0 &&
      sampleValue(m, "authchat_sessions", { transport: "tcp", state: "logged_in" }) === 1,
  );
  assert.equal(sampleValue(offline, "authchat_presence_notices_total", { state: "offline" }), 1);
  assert.equal(sampleValue(offline, "authchat_sessions", { transport: "tcp", state: "logged_in" }), 1);
  assert.equal(sampleValue(offline, "authchat_sessions", { transport: "tcp", state: "not_logged_in" }), 1);
  assert.equal((await alice.finish()).code, 0, alice.transcript);
  assert.equal((await bob.finish()).code, 0, bob.transcript);

  // Guesses at a password, past the free ones: the counters say what the client was told.
  const wrongFile = join(dir.path, "wrong");
  await Deno.writeTextFile(wrongFile, "not her password 2");
  const guesses = await runCli("client", [
    "--port",
    String(server.tcpPort),
    "--user",
    "alice",
    "--password-file",
    wrongFile,
    "--keep-going",
    ...Array(8).fill(["--exec", "login"]).flat(),
  ], { env: { AUTHCHAT_CONFIG_DIR: join(dir.path, "cfg-guess") } });
  const told = (code: string) => guesses.stderr.split("\n").filter((l) => l.includes(`(${code})`)).length;
  assert.equal(told("AUTH_FAILED") + told("RATE_LIMITED"), 8, guesses.stderr);
  assert.ok(told("RATE_LIMITED") > 0, guesses.stderr);
  const limited = await scrapeUntil(
    port,
    (m) => sampleValue(m, "authchat_logins_total", { result: "rate_limited" }) === told("RATE_LIMITED"),
  );
  assert.equal(sampleValue(limited, "authchat_logins_total", { result: "failed" }), 1 + told("AUTH_FAILED"));
  assert.equal(
    sampleValue(limited, "authchat_logins_total", { result: "rate_limited" }),
    told("RATE_LIMITED"),
  );
});

Deno.test("authchat server /healthz says 503 naming the store once its database file is removed under it", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data, { args: ["--metrics-port", "0"] });
  const port = metricsPort(server);
  assert.equal((await health(port)).status, 200);
  await Deno.rename(join(data, "authchat.db"), join(dir.path, "moved.db"));
  let answer = await health(port);
  // A report is reused for a second: poll past it.
  for (let i = 0; i < 40 && answer.status === 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    answer = await health(port);
  }
  assert.equal(answer.status, 503);
  assert.match(
    answer.body,
    /^unhealthy\nserver: ok\nstore: failed: Database file removed while open: \S*authchat\.db/,
  );
  const stopped = await server.stop();
  assert.equal(stopped.code, 0);
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }), Deno.errors.ConnectionRefused);
});

Deno.test("authchat server keeps serving logins while its metrics port is flooded with idle connections", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data, { args: ["--metrics-port", "0"] });
  const port = metricsPort(server);
  await registerUsers(server.tcpPort, dir.path, ["carol"], PASSWORD);
  const idle: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 300; i++) idle.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    const login = await loginOnce(server, { user: "carol", password: PASSWORD, home: dir.path });
    assert.equal(login.code, 0, login.stderr);
    const metrics = await scrape(port);
    assert.equal(sampleValue(metrics, "authchat_logins_total", { result: "ok" }), 1);
    assert.equal((await health(port)).status, 200);
  } finally {
    for (const conn of idle) conn.close();
  }
});

Deno.test("authchat server exits 2 naming metrics_port when the metrics port is taken", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const result = await runCli("server", serverArgs(data, ["--metrics-port", String(taken.addr.port)]));
  assert.equal(result.code, 2, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(
      `error: Cannot listen on 127\\.0\\.0\\.1:${taken.addr.port} for metrics_port: address already in use`,
    ),
  );
  assert.equal(result.stdout, "", "no ready line");
});
