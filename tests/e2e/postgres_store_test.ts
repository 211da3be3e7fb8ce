// The real server and seed on a PostgreSQL database: out of reach at start, every import of seed, and a
// database that goes away while the server serves (a relay the test cuts in front of the real database).
import assert from "node:assert/strict";
import { join } from "node:path";
import { createVerifier, formatVerifier } from "../../lib/crypto/scram_verifier.ts";
import { clusterTest, freshPostgresDatabase } from "../_cluster_services.ts";
import { TcpProxy } from "../_tcp_proxy.ts";
import {
  installKeys,
  loginOnce,
  runCli,
  seedUsers,
  ServerProcess,
  tempDir,
  TEST_ITERATIONS,
} from "./_harness.ts";
import { clientVerifier, hello, RawClient, scramAttempt, scramLogin, sealVerifier } from "./_raw_client.ts";
import type { Reply } from "./_raw_client.ts";

const PASSWORD = "violet harbor 4821 lantern";
const SECRET = "Pg-s3cret-never-shown";

/** A port of 127.0.0.1 nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("authchat server and seed exit 2 when their PostgreSQL database is out of reach, showing it without its password", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const port = closedPort();
  const url = `postgres://authchat:${SECRET}@127.0.0.1:${port}/chat`;
  const shown = `postgres://authchat:***@127.0.0.1:${port}/chat`;
  const expected = `error: Cannot reach the database ${shown}: connect ECONNREFUSED 127.0.0.1:${port}\n`;

  const seed = await runCli("seed", ["--data", data, "--demo"], { env: { AUTHCHAT_DATABASE: url } });
  assert.equal(seed.code, 2, seed.stderr);
  assert.equal(seed.stderr, expected);
  assert.equal(seed.stdout, "", "no account was made anywhere");

  // Given on the command line (where it should not be), it is not shown either.
  const server = await runCli("server", [
    "--data",
    data,
    "--database",
    url,
    "--tcp-port",
    "0",
    "--tls-port",
    "0",
  ]);
  assert.equal(server.code, 2, server.stderr);
  assert.ok(server.stderr.endsWith(expected), server.stderr);
  assert.match(
    server.stderr,
    new RegExp(`ERROR start_failed error="Cannot reach the database ${shown.replaceAll("*", "\\*")}`),
  );
  assert.doesNotMatch(server.stdout, /listening/);
  for (const output of [seed.stdout, seed.stderr, server.stdout, server.stderr]) {
    assert.ok(!output.includes(SECRET), output);
  }
  assert.equal(await exists(join(data, "authchat.db")), false, "no SQLite database made instead");
});

/** The `user password` rows `seed --demo` printed. */
function demoPasswords(stdout: string): Map<string, string> {
  return new Map(
    [...stdout.matchAll(/^(\w+) +([a-z0-9]{5}(?:-[a-z0-9]{5}){3})$/gm)].map((m) => [m[1]!, m[2]!]),
  );
}

clusterTest(
  "authchat seed --database postgres:// does every import, and a server on that database logs them in",
  [
    "postgres",
  ],
  async () => {
    await using db = await freshPostgresDatabase();
    await using dir = await tempDir();
    const data = join(dir.path, "data");
    await installKeys(data);
    const seed = (...args: string[]) =>
      runCli("seed", [
        "--data",
        data,
        "--database",
        db.url,
        "--iterations",
        String(TEST_ITERATIONS),
        ...args,
      ]);
    const shown = db.url.replace(/:[^:@/]+@/, ":***@");

    const demo = await seed("--demo");
    assert.equal(demo.code, 0, demo.stderr);
    const demoUsers = demoPasswords(demo.stdout);
    assert.deepEqual([...demoUsers.keys()], ["alice", "bob", "charlie", "eve", "admin"]);
    assert.match(
      demo.stdout,
      new RegExp(`5 accounts in ${shown.replaceAll("*", "\\*")} \\(schema version 4\\)`),
    );

    const passwordFile = join(dir.path, "pw");
    await Deno.writeTextFile(passwordFile, `${PASSWORD}\n`);
    const one = await seed("--user", "Olga", "--password-file", passwordFile);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^created Olga$/m);

    const legacy = join(dir.path, "users.txt");
    await Deno.writeTextFile(
      legacy,
      "# old users\nuser10:password10\ncarol:a-long-and-uncommon-passphrase\n",
    );
    const imported = await seed("--from", legacy);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(
      imported.stdout,
      /users\.txt:2: imported "user10": must change password \(password is too common\)/,
    );

    const verifier = formatVerifier(
      await createVerifier("pencil pusher 77", { iterations: TEST_ITERATIONS }),
    );
    const verifiers = join(dir.path, "pg.txt");
    await Deno.writeTextFile(verifiers, `dave:${verifier}\n`);
    const fromPg = await seed("--import-verifiers", verifiers);
    assert.equal(fromPg.code, 0, fromPg.stderr);
    assert.match(fromPg.stdout, /seed: 1 created, .* 9 accounts in /);

    const again = await seed("--demo");
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /seed: 0 created, 0 created but must change password, 5 kept/);
    for (const result of [demo, one, imported, fromPg, again]) {
      assert.ok(!result.stdout.includes(new URL(db.url).password), "the password is never shown");
    }
    assert.equal(await exists(join(data, "authchat.db")), false, "nothing went to SQLite");

    await using server = await ServerProcess.start(data, { env: { AUTHCHAT_DATABASE: db.url } });
    assert.match(
      await server.settledLog(),
      new RegExp(`listening .* database="${shown.replaceAll("*", "\\*")}"`),
    );
    assert.doesNotMatch(server.stderr, /database_permissions/, "no file of the database to check");
    const logins: [string, string][] = [
      ["alice", demoUsers.get("alice")!],
      ["olga", PASSWORD],
      ["carol", "a-long-and-uncommon-passphrase"],
      ["dave", "pencil pusher 77"],
      ["user10", "password10"],
    ];
    for (const [user, password] of logins) {
      const result = await loginOnce(server, { user, password, home: dir.path });
      assert.equal(result.code, 0, `${user}: ${result.stderr}`);
      assert.match(result.stdout, new RegExp(`^logged in as ${user}$`, "mi"));
      if (user === "user10") assert.match(result.stderr, /must change its password/);
    }
    const wrong = await loginOnce(server, { user: "dave", password: "not the password", home: dir.path });
    assert.notEqual(wrong.code, 0);
  },
);

/** An ERROR reply with the code UNAVAILABLE. */
function assertUnavailable(reply: Reply, what: string): void {
  assert.equal(reply.op, "ERROR", `${what}: ${JSON.stringify(reply)}`);
  assert.equal(reply.code, "UNAVAILABLE", `${what}: ${JSON.stringify(reply)}`);
  assert.equal(reply.message, "Service unavailable: the database is not answering; try again later");
  assert.equal(reply.fatal, undefined, "the connection stays");
}

clusterTest(
  "authchat server on PostgreSQL answers UNAVAILABLE while the database is away, keeps its sessions, and serves again when it is back",
  [
    "postgres",
  ],
  async () => {
    await using db = await freshPostgresDatabase();
    await using dir = await tempDir();
    const data = join(dir.path, "data");
    await installKeys(data);
    await seedUsers(data, { alice: PASSWORD }, { env: { AUTHCHAT_DATABASE: db.url } });
    await using proxy = new TcpProxy(db.url);
    const server = await ServerProcess.start(data, {
      env: { AUTHCHAT_DATABASE: proxy.url, AUTHCHAT_LOG_LINES_PER_SECOND: "0" },
    });
    let stopped = false;
    try {
      await using alice = await RawClient.connect(server.tcpPort);
      const greeting = await hello(alice);
      const mechanisms = greeting.mechanisms as string[];
      await scramLogin(alice, { user: "alice", password: PASSWORD, mechanisms });
      await using other = await RawClient.connect(server.tcpPort);
      const otherGreeting = await hello(other);

      await proxy.cut();
      // A login, a registration and a logged-in session's request all need the database.
      const login = await scramAttempt(other, { user: "alice", password: PASSWORD, mechanisms, id: 10 });
      assertUnavailable(login.reply, "LOGIN");
      assert.equal(login.reply.id, 10);
      const sealed = await sealVerifier(otherGreeting, {
        op: "REGISTER",
        user: "bob",
        verifier: await clientVerifier(PASSWORD, otherGreeting),
      });
      assertUnavailable(await other.request({ op: "REGISTER", id: 12, user: "bob", sealed }), "REGISTER");
      assertUnavailable(await alice.request({ op: "ACCESS", id: 20 }), "ACCESS");
      // Sessions stay: alice is still logged in, and presence (no database) still answers.
      assert.deepEqual(await alice.request({ op: "IS_LOGGED", id: 21 }), {
        op: "IS_LOGGED",
        id: 21,
        logged_in: true,
        user: "alice",
      });
      assert.equal((await alice.request({ op: "LIST", id: 22 })).op, "LIST");

      proxy.restore();
      // The same connections, the same server process: everything works again.
      const access = await alice.request({ op: "ACCESS", id: 23 });
      assert.equal(access.op, "ACCESS", JSON.stringify(access));
      const retried = await scramLogin(other, { user: "alice", password: PASSWORD, mechanisms });
      assert.equal(retried.reply.user, "alice");
      const registerGreeting = await hello(other, 30);
      const sealedAgain = await sealVerifier(registerGreeting, {
        op: "REGISTER",
        user: "bob",
        verifier: await clientVerifier(PASSWORD, registerGreeting),
      });
      assert.deepEqual(await other.request({ op: "REGISTER", id: 31, user: "bob", sealed: sealedAgain }), {
        op: "REGISTER",
        id: 31,
        user: "bob",
      });

      const status = await server.stop("SIGTERM");
      stopped = true;
      assert.equal(status.code, 0, server.stderr);
      const log = server.stderr;
      assert.match(log, /login_failed .*code=UNAVAILABLE/);
      assert.match(log, /register_failed .*code=UNAVAILABLE/);
      assert.doesNotMatch(log, /internal_error|Uncaught|^\s+at /m, "no crash, no INTERNAL");
    } finally {
      if (!stopped) await server.kill();
    }
  },
);
