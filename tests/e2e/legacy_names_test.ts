import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { prepareUsername } from "../../lib/auth/username.ts";
import { createVerifier, formatVerifier } from "../../lib/crypto/scram_verifier.ts";
import { MIGRATIONS } from "../../lib/store/migrations.ts";
import { installKeys, loginOnce, runCli, ServerProcess, tempDir, TEST_ITERATIONS } from "./_harness.ts";
import { hello, RawClient, scramLogin } from "./_raw_client.ts";

/** Accounts the code before the PRECIS and look-alike rules let in: look-alikes, and a name with a symbol. */
const OLD_ACCOUNTS: Record<string, string> = {
  alice: "tulip orbit canyon 7",
  "\u0430lice": "harbor violet lantern 2",
  "I\u2665NY": "maple rocket sonnet 3",
};

/** A database file as schema version 3 (before look-alike keys) left it, with these accounts. */
async function oldDatabase(file: string, accounts: Record<string, string> = OLD_ACCOUNTS): Promise<void> {
  const db = new DatabaseSync(file);
  try {
    db.exec("BEGIN");
    for (const m of MIGRATIONS.filter((m) => m.version <= 3)) m.apply(db);
    const insert = db.prepare("INSERT INTO users (name, name_key, verifier, created_at) VALUES (?, ?, ?, ?)");
    for (const [name, password] of Object.entries(accounts)) {
      const verifier = formatVerifier(await createVerifier(password, { iterations: TEST_ITERATIONS }));
      insert.run(name, prepareUsername(name).key, verifier, Date.now());
    }
    db.exec("PRAGMA user_version = 3; COMMIT");
  } finally {
    db.close();
  }
}

Deno.test("Accounts whose names fail the new name rules keep logging in and being found; new look-alikes are refused", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await oldDatabase(join(data, "authchat.db"));
  await using server = await ServerProcess.start(data);

  // Each logs in with the real client (which also registers its identity key), in any case.
  const logins: [string, string][] = [...Object.keys(OLD_ACCOUNTS).map((n): [string, string] => [n, n]), [
    "\u0410LICE",
    "\u0430lice",
  ], ["i\u2665ny", "I\u2665NY"]];
  for (const [typed, shown] of logins) {
    const result = await loginOnce(server, { user: typed, password: OLD_ACCOUNTS[shown]!, home: dir.path });
    assert.equal(result.code, 0, `${typed}: ${result.stderr}`);
    assert.match(result.stdout, new RegExp(`^logged in as ${shown}$`, "m"));
  }

  // Online at once, they see and find each other by LIST and PEER.
  const sessions = await Promise.all(Object.keys(OLD_ACCOUNTS).map(() => RawClient.connect(server.tcpPort)));
  try {
    for (const [i, [user, password]] of Object.entries(OLD_ACCOUNTS).entries()) {
      const greeting = await hello(sessions[i]!);
      await scramLogin(sessions[i]!, { user, password, mechanisms: greeting.mechanisms as string[] });
    }
    const list = await sessions[2]!.request({ op: "LIST", id: 7 });
    assert.deepEqual(
      (list.users as { user: string }[]).map((u) => u.user).sort(),
      Object.keys(OLD_ACCOUNTS).sort(),
      JSON.stringify(list),
    );
    for (const user of ["alice", "\u0430lice", "I\u2665NY"]) {
      const peer = await sessions[user === "alice" ? 1 : 0]!.request({ op: "PEER", id: 8, user });
      assert.notEqual(peer.code, "UNKNOWN_USER", JSON.stringify(peer));
      assert.notEqual(peer.code, "INVALID_USERNAME", JSON.stringify(peer));
    }
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
  }

  // A new look-alike is refused, by the real client's register and by seed.
  const pw = join(dir.path, "new.pw");
  await Deno.writeTextFile(pw, "quiet river stones 9\n");
  const register = await runCli("client", [
    "--port",
    String(server.tcpPort),
    "--user",
    "a\u0142ice",
    "--password-file",
    pw,
    "--exec",
    "register",
  ], { env: { XDG_CONFIG_HOME: dir.path } });
  assert.equal(register.code, 1, register.stdout);
  assert.match(register.stderr, /User name looks like an existing account's: a\u0142ice \(USER_EXISTS\)/);
  assert.doesNotMatch(register.stderr, /\balice\b/, "the account it resembles is not named");

  const seed = await runCli("seed", [
    "--data",
    data,
    "--user",
    "l\u2665NY",
    "--password-file",
    pw,
    "--iterations",
    String(TEST_ITERATIONS),
  ]);
  assert.equal(seed.code, 1, seed.stdout);
  assert.match(
    seed.stderr,
    /rejected "l\u2665NY": Invalid username: U\+2665 is not allowed in a new user name/,
  );
});

Deno.test("authchat seed --from reports look-alike names like any other rejected line", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const users = join(dir.path, "users.txt");
  await Deno.writeTextFile(
    users,
    [
      "alice:tulip-orbit-canyon-7",
      "AL\u0130CE:harbor-violet-lantern-2",
      "bob:maple-rocket-sonnet-3",
      "b\u043Eb:quiet-river-stones-9",
      "carol:winter-garden-falcon-4",
    ].join("\n") + "\n",
  );
  const seed = () =>
    runCli("seed", ["--data", data, "--from", users, "--iterations", String(TEST_ITERATIONS)]);
  const first = await seed();
  assert.equal(first.code, 1, first.stderr);
  assert.equal(
    first.stderr,
    [
      `${users}:1: rejected "alice": names that look alike on lines 1, 2: none imported`,
      `${users}:2: rejected "AL\u0130CE": names that look alike on lines 1, 2: none imported`,
      `${users}:3: rejected "bob": names that look alike on lines 3, 4: none imported`,
      `${users}:4: rejected "b\u043Eb": names that look alike on lines 3, 4: none imported`,
      "",
    ].join("\n"),
  );
  assert.match(
    first.stdout,
    /seed: 1 created, 0 created but must change password, 0 kept \(already existed\), 4 rejected/,
  );

  // alice alone in the file now; her look-alikes against the account.
  await Deno.writeTextFile(users, "alice:tulip-orbit-canyon-7\n");
  assert.equal((await seed()).code, 0);
  await Deno.writeTextFile(
    users,
    "# again\nAL\u0130CE:harbor-violet-lantern-2\ndave:maple-rocket-sonnet-3\n",
  );
  const again = await seed();
  assert.equal(again.code, 1);
  assert.match(
    again.stdout,
    /seed: 1 created, 0 created but must change password, 0 kept \(already existed\), 1 rejected/,
  );
  assert.equal(
    again.stderr,
    `${users}:2: rejected "AL\u0130CE": User name looks like an existing account's: AL\u0130CE (USER_EXISTS)\n`,
  );
});

Deno.test("authchat seed --demo rejects a demo user whose name looks like an existing account's", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await Deno.mkdir(data, { recursive: true });
  await oldDatabase(join(data, "authchat.db"), { "\u0430lice": "harbor violet lantern 2" });
  const demo = await runCli("seed", ["--data", data, "--demo", "--iterations", String(TEST_ITERATIONS)]);
  assert.equal(demo.code, 1, demo.stderr);
  assert.equal(
    demo.stderr,
    "rejected demo user alice: User name looks like an existing account's: alice (USER_EXISTS)\n",
  );
  assert.match(demo.stdout, /^bob {6}\S+$/m);
  assert.doesNotMatch(demo.stdout, /^alice /m, "no password shown for an account not made");
  assert.match(demo.stdout, /seed: 4 created, .*1 rejected; 5 accounts/);
});
