import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { installKeys, runCli, ServerProcess, tempDir, TEST_ITERATIONS } from "./_harness.ts";

const MUST_CHANGE = "warning: this account must change its password before anything else: type passwd";
const NEW_PASSWORD = "maple rocket sonnet 3";

/** The users file of the challenge-response server authchat replaces: `userN:passwordN`, a blank, a comment. */
function legacyFile(): string {
  const lines = ["# users of the challenge-response server (port 1991)"];
  for (let i = 1; i <= 10; i++) lines.push(`user${i}:password${i}`);
  lines.push("", "carol:a-long-and-uncommon-passphrase", "");
  return lines.join("\n");
}

Deno.test("authchat seed --from imports old-format users who must change their password, then passwd frees them", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const users = join(dir.path, "users.txt");
  await Deno.writeTextFile(users, legacyFile());
  const seed = () =>
    runCli("seed", ["--data", data, "--from", users, "--iterations", String(TEST_ITERATIONS)]);

  const imported = await seed();
  assert.equal(imported.code, 0, imported.stderr);
  for (let i = 1; i <= 10; i++) {
    assert.match(
      imported.stdout,
      new RegExp(
        `users\\.txt:${
          i + 1
        }: imported "user${i}": must change password \\(password is (too short|too common)`,
      ),
    );
  }
  assert.match(
    imported.stdout,
    /users\.txt:3: imported "user2": must change password \(password is too short: 9 /,
  );
  assert.match(
    imported.stdout,
    /users\.txt:11: imported "user10": must change password \(password is too common\)/,
  );
  assert.match(
    imported.stdout,
    /seed: 1 created, 10 created but must change password, 0 kept \(already existed\), 0 rejected; 11 accounts/,
  );
  assert.equal(imported.stderr, "", "blank lines and comments are no errors");
  assert.doesNotMatch(imported.stdout, /password10\b|uncommon-passphrase/, "no password printed");

  await using server = await ServerProcess.start(data);
  const oldPw = join(dir.path, "old-pw");
  const newPw = join(dir.path, "new-pw");
  await Deno.writeTextFile(oldPw, "password10\n");
  await Deno.writeTextFile(newPw, NEW_PASSWORD + "\n");
  const client = (password: string, ...commands: string[]) =>
    runCli("client", [
      "--port",
      String(server.tcpPort),
      "--user",
      "user10",
      "--password-file",
      password,
      "--new-password-file",
      newPw,
      ...commands.flatMap((c) => ["--exec", c]),
    ], { env: { XDG_CONFIG_HOME: dir.path } });

  const restricted = await client(oldPw, "login", "is_logged", "access");
  assert.equal(restricted.code, 1, "access is refused");
  assert.equal(restricted.stdout, "logged in as user10\nlogged in as user10\n");
  assert.equal(restricted.stderr.split("\n").filter((l) => l === MUST_CHANGE).length, 2, restricted.stderr);
  assert.match(
    restricted.stderr,
    /error: Password change required: ACCESS is refused until this account changes its password with PASSWD \(only PASSWD, IS_LOGGED, LOGOUT and CLOSE are allowed until then\) \(PASSWORD_CHANGE_REQUIRED\)/,
  );

  const changed = await client(oldPw, "login", "passwd", "is_logged", "access");
  assert.equal(changed.code, 0, changed.stderr);
  assert.match(changed.stdout, /^logged in as user10\npassword changed\nlogged in as user10\nuser user10\n/);
  assert.match(changed.stdout, /Welcome, user10\. This is the protected resource/);
  assert.equal(
    changed.stderr,
    MUST_CHANGE + "\n",
    "said once, after login; chat then starts without a warning",
  );

  const db = new DatabaseSync(join(data, "authchat.db"), { readOnly: true });
  try {
    const row = db.prepare("SELECT must_change_password, identity_key FROM users WHERE name_key = 'user10'")
      .get() as { must_change_password: number; identity_key: Uint8Array | null };
    assert.equal(row.must_change_password, 0);
    assert.equal(row.identity_key?.length, 32, "the identity key was made after the change");
  } finally {
    db.close();
  }

  const old = await client(oldPw, "login");
  assert.equal(old.code, 1, "the old password no longer logs in");
  assert.match(old.stderr, /Authentication failed: wrong user name or password \(AUTH_FAILED\)/);
  const fresh = await client(newPw, "login", "access");
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.doesNotMatch(fresh.stderr, /must change/);

  const again = await seed();
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stderr, "");
  assert.match(
    again.stdout,
    /^seed: 0 created, 0 created but must change password, 11 kept \(already existed\), 0 rejected; 11 accounts/,
  );
  const log = await server.settledLog();
  assert.ok(!log.includes("password10") && !log.includes(NEW_PASSWORD), "no password in the log");
});
