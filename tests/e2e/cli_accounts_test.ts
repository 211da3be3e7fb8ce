import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { installKeys, runCli, seedUsers, ServerProcess, tempDir } from "./_harness.ts";

const PASSWORD = "tulip orbit canyon 7";
const NEW_PASSWORD = "maple rocket sonnet 3";

for (const transport of ["tcp", "tls"] as const) {
  Deno.test(`authchat client runs every account command over ${transport.toUpperCase()}`, async () => {
    await using dir = await tempDir();
    const data = join(dir.path, "data");
    await installKeys(data);
    await using server = await ServerProcess.start(data);
    const pw = join(dir.path, "pw");
    const pw2 = join(dir.path, "pw2");
    await Deno.writeTextFile(pw, PASSWORD + "\r\n");
    await Deno.writeTextFile(pw2, NEW_PASSWORD + "\n");
    const port = String(transport === "tls" ? server.tlsPort : server.tcpPort);
    const client = (user: string, ...commands: string[]) =>
      runCli("client", [
        ...(transport === "tls" ? ["--tls"] : []),
        "--port",
        port,
        "--user",
        user,
        "--password-file",
        pw,
        "--new-password-file",
        pw2,
        "--keep-going",
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
    assert.equal(
      first.stdout.split("\n").slice(1, 4).join("\n"),
      "registered dora\nlogged in as dora\nlogged in as dora",
    );
    assert.match(first.stdout, /^server authchat, protocol 1, mechanisms /);
    assert.match(
      first.stdout,
      transport === "tls" ? /SCRAM-SHA-256-PLUS SCRAM-SHA-256, TLS/ : /SCRAM-SHA-256, plain TCP/,
    );
    assert.match(first.stdout, /user dora\ncreated \d{4}-\d\d-\d\dT[^\n]+\nlast login never/);
    assert.match(first.stdout, /Welcome, dora\. This is the protected resource/);
    assert.match(first.stdout, /logged out\nnot logged in\n$/);

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
    assert.match(
      deleted.stdout,
      /logged in as dora\n[\s\S]*last login \d{4}[\s\S]*account dora deleted\nnot logged in\n$/,
    );
    assert.match(deleted.stderr, /Not logged in: send LOGIN first \(NOT_LOGGED_IN\)/);

    const gone = await client("dora", "login");
    const unknown = await client("nobody", "login");
    assert.equal(gone.code, 1);
    assert.equal(unknown.code, 1);
    assert.equal(gone.stderr, unknown.stderr, "a deleted and an unknown user fail alike");

    const wrong = await client("dora", "access", "logout", "passwd", "delete", "bogus", "login extra words");
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /6 commands failed/);
    assert.match(wrong.stderr, /Unknown command in --exec 5: type help for the list/);
    assert.match(wrong.stderr, /Too many arguments for login/);
    const log = await server.settledLog();
    assert.ok(!log.includes(PASSWORD) && !log.includes(NEW_PASSWORD), "no password in the log");
  });
}

Deno.test("authchat client reads commands from stdin when not on a terminal", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { erin: PASSWORD });
  await using server = await ServerProcess.start(data);
  const pw = join(dir.path, "pw");
  await Deno.writeTextFile(pw, PASSWORD);
  const result = await runCli("client", ["--port", String(server.tcpPort), "--password-file", pw], {
    env: { XDG_CONFIG_HOME: dir.path },
    stdin: "# a comment\nhello\r\nlogin erin\n\nis_logged\nlogout\nclose\nis_logged\n",
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /logged in as erin\nlogged in as erin\nlogged out\nclosed\n$/);
  const failing = await runCli("client", [
    "--port",
    String(server.tcpPort),
    "--password-file",
    pw,
    "--keep-going",
  ], {
    env: { XDG_CONFIG_HOME: dir.path },
    stdin: "login mallory\nis_logged\n",
  });
  assert.equal(failing.code, 1);
  assert.match(failing.stdout, /^not logged in\n$/);
});

Deno.test("authchat client explains missing password files and unreachable servers", async () => {
  await using dir = await tempDir();
  const env = { XDG_CONFIG_HOME: dir.path };
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const refused = await runCli("client", ["--port", String(port), "--exec", "hello"], { env });
  assert.equal(refused.code, 3, "cannot connect");
  assert.match(refused.stderr, new RegExp(`Cannot connect to 127\\.0\\.0\\.1:${port}`));
  const usage = await runCli("client", ["--ca", "x.pem", "--exec", "hello"], { env });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /Invalid configuration --ca: a CA applies to TLS/);
  const badPin = await runCli("client", ["--fingerprint", "SHA256:nope", "--exec", "hello"], { env });
  assert.equal(badPin.code, 2);
  assert.match(badPin.stderr, /Invalid configuration --fingerprint: expected SHA256:/);
  const badPort = await runCli("client", ["--port", "70000"], { env });
  assert.equal(badPort.code, 2);

  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data);
  const noFile = await runCli(
    "client",
    ["--port", String(server.tcpPort), "--user", "x", "--exec", "login"],
    { env },
  );
  assert.equal(noFile.code, 1);
  assert.match(noFile.stderr, /A password is needed: none left on stdin and no --password-file given/);
});

Deno.test("authchat client applies HELLO's password_min_length and iterations to the verifiers it sends", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  // Neither value is a default: a client ignoring HELLO would pass the policy or be refused by the server.
  await using server = await ServerProcess.start(data, {
    env: { AUTHCHAT_PASSWORD_MIN_LENGTH: "24", AUTHCHAT_SCRAM_ITERATIONS: "4100" },
  });
  const short = join(dir.path, "short");
  const long = join(dir.path, "long");
  const longer = join(dir.path, "longer");
  await Deno.writeTextFile(short, PASSWORD);
  await Deno.writeTextFile(long, `${PASSWORD} lantern`);
  await Deno.writeTextFile(longer, `${NEW_PASSWORD} lantern harbor`);
  const client = (tls: boolean, password: string, newPassword: string, ...commands: string[]) =>
    runCli("client", [
      ...(tls ? ["--tls", "--port", String(server.tlsPort)] : ["--port", String(server.tcpPort)]),
      ...["--user", "gina", "--password-file", password, "--new-password-file", newPassword],
      ...commands.flatMap((c) => ["--exec", c]),
    ], { env: { XDG_CONFIG_HOME: dir.path } });

  const refused = await client(false, short, short, "register");
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /Password refused: 20 characters is shorter than 24 \(PASSWORD_POLICY\)/);
  const registered = await client(false, long, short, "register", "login", "passwd");
  assert.equal(registered.code, 1, "the too-short new password is refused");
  assert.match(registered.stdout, /^registered gina\nlogged in as gina\n$/);
  assert.match(registered.stderr, /Password refused: 20 characters is shorter than 24 \(PASSWORD_POLICY\)/);
  const changed = await client(true, long, longer, "login", "passwd");
  assert.equal(changed.code, 0, changed.stderr);
  assert.match(changed.stdout, /password changed\n$/);
  const relogin = await client(false, longer, longer, "login");
  assert.equal(relogin.code, 0, relogin.stderr);

  const db = new DatabaseSync(join(data, "authchat.db"), { readOnly: true });
  try {
    const rows = db.prepare("SELECT verifier FROM users").all() as { verifier: string }[];
    assert.equal(rows.length, 1);
    assert.match(rows[0]!.verifier, /^SCRAM-SHA-256\$4100:[A-Za-z0-9+/]{22}==\$/);
  } finally {
    db.close();
  }
  const log = await server.settledLog();
  for (const password of [PASSWORD, NEW_PASSWORD]) {
    assert.ok(!log.includes(password), "a password in the server log");
  }
});
