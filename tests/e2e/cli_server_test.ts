import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { FrameDecoder } from "../../lib/codec/frame.ts";
import { decodeServerMessage, encodeMessage } from "../../lib/codec/messages.ts";
import type { ServerMessage } from "../../lib/codec/messages.ts";
import { installKeys, runCli, seedUsers, serverArgs, ServerProcess, tempDir } from "./_harness.ts";

/** Read server messages from a raw connection until it closes or `timeoutMs` passes. */
async function readAll(conn: Deno.Conn, timeoutMs: number): Promise<ServerMessage[]> {
  const decoder = new FrameDecoder();
  const messages: ServerMessage[] = [];
  const buffer = new Uint8Array(65536);
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    while (true) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      for (const payload of decoder.push(buffer.subarray(0, n))) messages.push(decodeServerMessage(payload));
    }
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed by the timer or the peer.
    }
  }
  return messages;
}

function hello(): Uint8Array {
  return encodeMessage({ op: "HELLO", id: 1, version: 1 });
}

Deno.test("authchat server creates its keys on first start, says so, and refuses a half-missing set", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "fresh");
  const first = await ServerProcess.start(data);
  assert.match(first.stderr, /First start: no keys found, so authchat keygen ran into /);
  assert.equal((await first.stop()).code, 0);
  assert.equal((await Deno.stat(join(data, "seal-private.pem"))).mode! & 0o777, 0o600);
  const second = await ServerProcess.start(data);
  assert.doesNotMatch(second.stderr, /First start/);
  await second.stop();
  await Deno.remove(join(data, "seal-public.pem"));
  const broken = await runCli("server", serverArgs(data));
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /Key files missing: .*seal-public\.pem/);
  await assert.rejects(Deno.stat(join(data, "seal-public.pem")), Deno.errors.NotFound, "nothing was guessed");
});

Deno.test("authchat server prints exactly one ready line naming only the transports that are on", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const tlsOnly = await ServerProcess.start(data, { args: ["--no-tcp"] });
  assert.match(tlsOnly.line, /^authchat listening tls=127\.0\.0\.1:\d+ udp=127\.0\.0\.1:\d+$/);
  await tlsOnly.stop();
  assert.equal(tlsOnly.stdout, tlsOnly.line + "\n");
  const tcpOnly = await ServerProcess.start(data, { args: ["--no-tls"] });
  assert.match(tcpOnly.line, /^authchat listening tcp=127\.0\.0\.1:\d+ udp=127\.0\.0\.1:\d+$/);
  await tcpOnly.stop();
  const noUdp = await ServerProcess.start(data, { args: ["--no-udp"] });
  assert.match(noUdp.line, /^authchat listening tcp=127\.0\.0\.1:\d+ tls=127\.0\.0\.1:\d+$/);
  assert.equal(noUdp.udpPort, 0);
  await noUdp.stop();
  // Where only UDP gets through: sessions over UDP alone.
  const udpOnly = await ServerProcess.start(data, { args: ["--no-tcp", "--no-tls"] });
  assert.match(udpOnly.line, /^authchat listening udp=127\.0\.0\.1:\d+$/);
  await udpOnly.stop();
  const none = await runCli("server", ["--data", data, "--no-tcp", "--no-tls", "--no-udp-sessions"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /Invalid configuration tcp: tcp, tls and UDP sessions are all off/);
});

Deno.test("authchat server takes flags over environment over the YAML file, and seed-project aliases", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const config = join(dir.path, "authchat.yaml");
  await Deno.writeTextFile(
    config,
    `# the secured-chat project's keys\nserver_address: 127.0.0.1\nserver_port: 0\ndata_base: ${
      join(data, "other.db")
    }\n` +
      `name: from-file\ntls_port: 0\n`,
  );
  const greet = async (server: ServerProcess) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.tcpPort });
    await conn.write(hello());
    await conn.write(encodeMessage({ op: "CLOSE", id: 2 }));
    return (await readAll(conn, 5000))[0] as { server: string };
  };
  const fromFile = await ServerProcess.start(data, { args: ["--config", config] });
  assert.equal((await greet(fromFile)).server, "from-file");
  await fromFile.stop();
  await Deno.stat(join(data, "other.db"));
  const fromEnv = await ServerProcess.start(data, {
    args: ["--config", config],
    env: { AUTHCHAT_NAME: "from-env" },
  });
  assert.equal((await greet(fromEnv)).server, "from-env");
  await fromEnv.stop();
  const fromFlag = await ServerProcess.start(data, {
    args: ["--config", config, "--name", "from-flag"],
    env: { AUTHCHAT_NAME: "from-env" },
  });
  assert.equal((await greet(fromFlag)).server, "from-flag");
  await fromFlag.stop();
});

Deno.test("authchat server refuses invalid configuration with one error naming the key (exit 2)", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const cases: [string, Record<string, string>, RegExp][] = [
    ["bogus_key: 1\n", {}, /Invalid configuration bogus_key: unknown key in /],
    ["tcp_port: seventy\n", {}, /Invalid configuration tcp_port: expected an integer/],
    [
      "scram_iterations: 1000\n",
      {},
      /Invalid configuration scram_iterations: 1000 is not within 4096\.\.10000000/,
    ],
    ["log_format: xml\n", {}, /Invalid configuration log_format: expected one of text, json/],
    ["- a list\n", {}, /expected a mapping of keys to values/],
    ["name: [unclosed\n", {}, /not valid YAML/],
    [
      "",
      { AUTHCHAT_TLS_PORT: "99999" },
      /Invalid configuration AUTHCHAT_TLS_PORT: 99999 is not within 0\.\.65535/,
    ],
    ["", { AUTHCHAT_TLS: "maybe" }, /Invalid configuration AUTHCHAT_TLS: expected true or false/],
  ];
  for (const [yaml, env, expected] of cases) {
    const file = join(dir.path, "bad.yaml");
    await Deno.writeTextFile(file, yaml);
    const result = await runCli("server", ["--config", file, "--data", data], { env });
    assert.equal(result.code, 2, `${yaml} ${JSON.stringify(env)}: ${result.stderr}`);
    assert.match(result.stderr, expected);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
  const missing = await runCli("server", ["--config", join(dir.path, "nope.yaml"), "--data", data]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.yaml: cannot read the file/);
});

Deno.test("authchat server says goodbye to every session and exits 0 within 2 s on SIGTERM, SIGINT and SIGHUP", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    const server = await ServerProcess.start(data);
    const conns = await Promise.all(
      [server.tcpPort, server.tlsPort, server.tcpPort].map((port, i) =>
        i === 1
          ? Deno.connectTls({
            hostname: "127.0.0.1",
            port,
            caCerts: [Deno.readTextFileSync(join(data, "server-cert.pem"))],
          })
          : Deno.connect({ hostname: "127.0.0.1", port })
      ),
    );
    for (const conn of conns) await conn.write(hello());
    await new Promise((r) => setTimeout(r, 200));
    const reading = conns.map((conn) => readAll(conn, 5000));
    const started = performance.now();
    const status = await server.stop(signal);
    const elapsed = performance.now() - started;
    assert.equal(status.code, 0, server.stderr);
    assert.ok(elapsed < 2000, `${signal} took ${elapsed} ms`);
    for (const messages of await Promise.all(reading)) {
      assert.deepEqual(messages.at(-1), { op: "BYE", code: "SHUTDOWN", reason: "Server shutting down" });
    }
    assert.match(server.stderr, new RegExp(`stopping signal=${signal}`));
  }
  const db = new DatabaseSync(join(data, "authchat.db"));
  try {
    assert.deepEqual({ ...db.prepare("PRAGMA integrity_check").get() }, { integrity_check: "ok" });
  } finally {
    db.close();
  }
});

Deno.test("authchat server writes JSON log lines for every notable event and never a password", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const secret = "juniper comet harbor 11";
  await seedUsers(data, { olga: secret });
  const server = await ServerProcess.start(data, { args: ["--log-format", "json"] });
  await Deno.writeTextFile(join(dir.path, "pw"), secret);
  await Deno.writeTextFile(join(dir.path, "bad"), "not the right one 1");
  const run = (file: string, ...commands: string[]) =>
    runCli("client", [
      "--port",
      String(server.tcpPort),
      "--user",
      "olga",
      "--password-file",
      join(dir.path, file),
      "--new-password-file",
      join(dir.path, "pw"),
      ...commands.flatMap((c) => ["--exec", c]),
    ], { env: { XDG_CONFIG_HOME: dir.path } });
  await run("bad", "login");
  await run("pw", "login", "passwd", "logout", "register newbie", "close");
  await server.stop();
  const events = server.stderr.trim().split("\n").map((line) => JSON.parse(line));
  const names = events.map((e) => e.event);
  for (
    const name of [
      "listening",
      "connect",
      "login_failed",
      "login_ok",
      "passwd",
      "logout",
      "register",
      "close",
      "disconnect",
      "udp_stats",
      "shutdown",
    ]
  ) {
    assert.ok(names.includes(name), `missing ${name} in ${names.join(",")}`);
  }
  const udp = events.find((e) => e.event === "udp_stats");
  assert.equal(udp.relayed, 0);
  assert.equal(typeof udp.overloaded, "number");
  const failed = events.find((e) => e.event === "login_failed");
  assert.equal(failed.code, "AUTH_FAILED");
  assert.equal(failed.ip, "127.0.0.1");
  for (const e of events) assert.match(e.ts, /^\d{4}-\d\d-\d\dT/);
  assert.ok(!server.stderr.includes(secret) && !server.stderr.includes("not the right one"));
});

Deno.test("authchat server closes connections that do not log in in time, and at the per-address cap sheds the oldest", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data, {
    env: { AUTHCHAT_AUTH_TIMEOUT: "0.5", AUTHCHAT_MAX_UNAUTHENTICATED_PER_IP: "2" },
  });
  const a = await Deno.connect({ hostname: "127.0.0.1", port: server.tcpPort });
  const b = await Deno.connect({ hostname: "127.0.0.1", port: server.tlsPort });
  await new Promise((r) => setTimeout(r, 100));
  const c = await Deno.connect({ hostname: "127.0.0.1", port: server.tcpPort });
  const [third, first] = await Promise.all([readAll(c, 5000), readAll(a, 5000)]);
  b.close();
  // The newcomer is served (until its own login deadline); the oldest connection made room for it.
  assert.deepEqual(third, [{
    op: "BYE",
    code: "AUTH_TIMEOUT",
    reason: "Not logged in within 0.5 s: connection closed",
  }]);
  assert.deepEqual(first, [{
    op: "BYE",
    code: "TOO_MANY_CONNECTIONS",
    reason:
      "Too many connections from your address that are not logged in: this one, the oldest, made room " +
      "for a new one (at most 2, or 256 in all)",
  }]);
  assert.match(await server.settledLog(), /ended session=\d+ ip=127\.0\.0\.1 code=TOO_MANY_CONNECTIONS/);
});
