import assert from "node:assert/strict";
import { join } from "node:path";
import { fingerprint } from "../../lib/crypto/fingerprint.ts";
import { decodePem } from "../../lib/crypto/pem.ts";
import { installKeys, runCli, ServerProcess, tempDir } from "./_harness.ts";
import { ChatClient } from "./_chat_kit.ts";

const PASSWORD = "tulip orbit canyon 7";
const NEW_PASSWORD = "maple rocket sonnet 3";

/** A server with neither TCP nor TLS: every session goes to the UDP port. */
async function udpOnlyServer(data: string): Promise<ServerProcess> {
  await installKeys(data);
  const server = await ServerProcess.start(data, { args: ["--no-tcp", "--no-tls"] });
  assert.equal(server.tlsPort, 0);
  assert.equal(server.tcpPort, 0);
  return server;
}

Deno.test("authchat client --udp runs every account command over a UDP session", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await using server = await udpOnlyServer(data);
  const pw = join(dir.path, "pw");
  const pw2 = join(dir.path, "pw2");
  await Deno.writeTextFile(pw, PASSWORD + "\n");
  await Deno.writeTextFile(pw2, NEW_PASSWORD + "\n");
  const client = (user: string, ...commands: string[]) =>
    runCli("client", [
      "--udp",
      ...["--port", String(server.udpPort), "--user", user],
      ...["--password-file", pw, "--new-password-file", pw2, "--keep-going"],
      ...commands.flatMap((c) => ["--exec", c]),
    ], { env: { XDG_CONFIG_HOME: dir.path } });

  const first = await client(
    "dora",
    "hello",
    "register",
    "login",
    "is_logged",
    "access",
    "logout",
    "is_logged",
  );
  assert.equal(first.code, 0, first.stderr);
  assert.match(
    first.stdout,
    /^server authchat, protocol 1, mechanisms SCRAM-SHA-256-PLUS SCRAM-SHA-256, UDP session\n/,
  );
  assert.equal(
    first.stdout.split("\n").slice(1, 4).join("\n"),
    "registered dora\nlogged in as dora\nlogged in as dora",
  );
  assert.match(first.stdout, /Welcome, dora\. This is the protected resource/);
  assert.match(first.stdout, /logged out\nnot logged in\n$/);
  const expected = await fingerprint(
    decodePem(await Deno.readTextFile(join(data, "server-cert.pem")), "CERTIFICATE"),
  );
  assert.match(first.stderr, /Trusting UDP session certificate of 127\.0\.0\.1:\d+ on first use: SHA256:/);
  assert.equal(
    await Deno.readTextFile(join(dir.path, "authchat", "known_hosts")),
    `127.0.0.1:${server.udpPort} udp ${expected}\n`,
  );

  const again = await client("dora", "register");
  assert.equal(again.code, 1);
  assert.match(again.stderr, /User already exists: dora \(USER_EXISTS\)/);

  const changed = await client("dora", "login", "passwd", "is_logged", "close");
  assert.equal(changed.code, 0, changed.stderr);
  assert.match(changed.stdout, /password changed\nlogged in as dora\nclosed/);

  const old = await client("dora", "login");
  assert.equal(old.code, 1, "the old password stops working");
  assert.match(old.stderr, /Authentication failed: wrong user name or password \(AUTH_FAILED\)/);

  await Deno.writeTextFile(pw, NEW_PASSWORD);
  const deleted = await client("dora", "login", "access", "delete", "is_logged", "access");
  assert.equal(deleted.code, 1, "access after delete fails");
  assert.match(deleted.stdout, /logged in as dora\n[\s\S]*account dora deleted\nnot logged in\n$/);
  assert.match(deleted.stderr, /Not logged in: send LOGIN first \(NOT_LOGGED_IN\)/);

  const gone = await client("dora", "login");
  const unknown = await client("nobody", "login");
  assert.equal(gone.code, 1);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /Authentication failed: wrong user name or password \(AUTH_FAILED\)/);
  assert.equal(gone.stderr, unknown.stderr, "a deleted and an unknown user fail alike");

  const log = await server.settledLog();
  assert.ok(!log.includes(PASSWORD) && !log.includes(NEW_PASSWORD), "no password in the log");
  assert.match(log, /login_ok [^\n]*user=dora transport=udp/);
  assert.doesNotMatch(log, /transport=(tcp|tls)/, "every session came over UDP");
});

Deno.test("authchat client --udp refuses a changed server certificate and a wrong --fingerprint", async () => {
  await using dir = await tempDir();
  await using server = await udpOnlyServer(join(dir.path, "data"));
  const env = { XDG_CONFIG_HOME: dir.path };
  const hello = (...extra: string[]) =>
    runCli("client", ["--udp", "--port", String(server.udpPort), ...extra, "--exec", "hello"], { env });
  const knownHosts = join(dir.path, "authchat", "known_hosts");
  const first = await hello();
  assert.equal(first.code, 0, first.stderr);

  const other = await fingerprint(crypto.getRandomValues(new Uint8Array(64)));
  await Deno.writeTextFile(knownHosts, `127.0.0.1:${server.udpPort} udp ${other}\n`);
  const changed = await hello();
  assert.equal(changed.code, 4, changed.stderr);
  assert.match(
    changed.stderr,
    /WARNING: THE SERVER UDP SESSION CERTIFICATE OF 127\.0\.0\.1:\d+ HAS CHANGED!/,
  );
  assert.equal(changed.stdout, "");

  const withCa = await hello("--ca", join(dir.path, "data", "server-cert.pem"));
  assert.equal(withCa.code, 0, withCa.stderr);
  assert.match(withCa.stdout, /UDP session\n$/);

  const pinned = await hello("--fingerprint", other);
  assert.equal(pinned.code, 4, pinned.stderr);
  assert.match(pinned.stderr, /Server certificate of 127\.0\.0\.1:\d+ does not match --fingerprint/);
});

Deno.test("authchat client --udp with --tls is a usage error, and silence is a clear connect error", async () => {
  await using dir = await tempDir();
  const env = { XDG_CONFIG_HOME: dir.path };
  const both = await runCli("client", ["--udp", "--tls", "--exec", "hello"], { env });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /Invalid configuration --udp and --tls: a UDP session is encrypted/);
  // A bound socket that never answers.
  const silent = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const port = (silent.addr as Deno.NetAddr).port;
    const config = join(dir.path, "client.yaml");
    await Deno.writeTextFile(config, "udp: true\n");
    const result = await runCli("client", ["--config", config, "--port", String(port), "--exec", "hello"], {
      env,
    });
    assert.equal(result.code, 3);
    assert.match(
      result.stderr,
      new RegExp(`Cannot connect to 127\\.0\\.0\\.1:${port}: no answer over UDP within`),
    );
  } finally {
    silent.close();
  }
});

Deno.test("authchat client --udp chats with a TCP client and with another UDP-session client", async () => {
  await using dir = await tempDir();
  // TCP too here, for bob.
  await installKeys(join(dir.path, "data"));
  await using server = await ServerProcess.start(join(dir.path, "data"), { args: ["--no-tls"] });
  const passwordFile = join(dir.path, "pw");
  await Deno.writeTextFile(passwordFile, PASSWORD);
  const registered = await runCli("client", [
    ...["--udp", "--port", String(server.udpPort), "--password-file", passwordFile],
    ...["alice", "bob", "carol"].flatMap((u) => ["--exec", `register ${u}`]),
  ], { env: { AUTHCHAT_CONFIG_DIR: join(dir.path, "cfg-register") } });
  assert.equal(registered.code, 0, registered.stderr);
  const options = (user: string, udp: boolean) => ({
    port: udp ? server.udpPort : server.tcpPort,
    user,
    passwordFile,
    configDir: join(dir.path, `cfg-${user}`),
    args: udp ? ["--udp"] : [],
  });

  await using alice = await ChatClient.login(options("alice", true));
  await using bob = await ChatClient.login(options("bob", false));
  await alice.waitFor("out", /^presence: bob online$/);
  await using carol = await ChatClient.login(options("carol", true));
  await alice.waitFor("out", /^presence: carol online$/);
  await bob.waitFor("out", /^presence: carol online$/);

  const messages = [
    { from: alice, to: bob, text: "from a UDP session to TCP" },
    { from: bob, to: alice, text: "and back from TCP to a UDP session" },
    { from: alice, to: carol, text: "between two UDP sessions" },
    { from: carol, to: alice, text: "between two UDP sessions, back" },
  ];
  for (const m of messages) {
    await m.from.expectOk(`send ${m.to.user} ${m.text}`, /^delivered$/);
    await m.to.waitFor("out", new RegExp(`^msg from ${m.from.user}: ${m.text}$`));
  }
  await carol.expectOk("logout", /^logged out$/);
  await alice.waitFor("out", /^presence: carol offline$/);
  for (const m of messages) {
    const line = `msg from ${m.from.user}: ${m.text}`;
    assert.equal(m.to.out.filter((l) => l === line).length, 1, m.to.transcript);
  }
  for (const client of [alice, bob, carol]) {
    assert.equal((await client.finish()).code, 0, client.transcript);
  }
  const log = await server.settledLog();
  assert.equal(log.match(/login_ok [^\n]*transport=udp/g)?.length, 2, "alice and carol over UDP");
  assert.equal(log.match(/login_ok [^\n]*transport=tcp/g)?.length, 1, "bob over TCP");
});
