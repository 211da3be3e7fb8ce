import assert from "node:assert/strict";
import { join } from "node:path";
import { fingerprint } from "../../lib/crypto/fingerprint.ts";
import { installKeys, MOD, runCli, seedUsers, ServerProcess, tempDir } from "./_harness.ts";
import type { CliResult } from "./_harness.ts";
import { ChatClient, registerUsers } from "./_chat_kit.ts";

const PASSWORD = "tulip orbit canyon 7";
const NEW_PASSWORD = "maple rocket sonnet 3";

/** A server with erin seeded, and a client runner with its own configuration directory. */
async function setup(dir: string) {
  const data = join(dir, "data");
  await installKeys(data);
  await seedUsers(data, { erin: PASSWORD });
  const server = await ServerProcess.start(data);
  const env = { AUTHCHAT_CONFIG_DIR: join(dir, "cfg") };
  const client = (args: string[], stdin?: string) =>
    runCli("client", ["--port", String(server.tcpPort), ...args], {
      env,
      ...(stdin === undefined ? {} : { stdin }),
    });
  return { server, client, env };
}

function printed(result: CliResult): string {
  return result.stdout + result.stderr;
}

Deno.test("authchat client reads a script's passwords from stdin and never prints them", async () => {
  await using dir = await tempDir();
  const { server, client } = await setup(dir.path);
  await using _server = server;

  // The issue's example: the password is the line after login.
  const login = await client(["--user", "erin"], `login\n${PASSWORD}\nis_logged\n`);
  assert.equal(login.code, 0, login.stderr);
  assert.equal(login.stdout, "logged in as erin\nlogged in as erin\n");

  // A password where a command is expected is reported by its line number, not echoed.
  const stray = await client(["--user", "erin"], `${PASSWORD}\nlogin\n`);
  assert.equal(stray.code, 1);
  assert.match(stray.stderr, /^error: Unknown command on line 1: type help for the list$/m);
  const wrong = await client(["--user", "erin"], "login\nnot the password 9\n");
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /\(AUTH_FAILED\)/);

  // passwd reads the current password, then the new one; register reads it once.
  const changed = await client(
    ["--user", "erin"],
    `login\n${PASSWORD}\npasswd\n${PASSWORD}\n${NEW_PASSWORD}\nlogout\nlogin\n${NEW_PASSWORD}\n`,
  );
  assert.equal(changed.code, 0, changed.stderr);
  assert.match(changed.stdout, /password changed\nlogged out\nlogged in as erin\n$/);
  const registered = await client([], `register newbie\n${PASSWORD}\nlogin newbie\n${PASSWORD}\n`);
  assert.equal(registered.code, 0, registered.stderr);
  // erin's clean exit above keeps her online for 1 s; the notice that she went offline reaches newbie when
  // newbie happens to be logged in by then (a matter of the machine's speed), and says nothing of passwords.
  assert.equal(
    registered.stdout.replace(/^presence: erin offline\n/m, ""),
    "registered newbie\nlogged in as newbie\n",
  );

  // A wrong current password is refused before anything is sent (its new one is passed over, unread).
  const refused = await client(
    ["--user", "erin"],
    `login\n${NEW_PASSWORD}\npasswd\n${PASSWORD}\n${PASSWORD}\n`,
  );
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /Wrong password: it is not the one this session logged in with/);

  // The end of stdin where a password should be is an error, not a hang.
  const missing = await client(["--user", "erin"], "login\n");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /A password is needed: none left on stdin and no --password-file given/);

  for (const result of [login, stray, wrong, changed, registered, refused, missing]) {
    for (const secret of [PASSWORD, NEW_PASSWORD, "not the password 9"]) {
      assert.ok(!printed(result).includes(secret), `printed a password:\n${printed(result)}`);
    }
  }
  assert.equal(
    (await server.settledLog()).match(/ INFO passwd /g)?.length ?? 0,
    1,
    "the refused passwd sent nothing",
  );
});

Deno.test("authchat client --keep-going passes over the password lines of a command that failed first", async () => {
  await using dir = await tempDir();
  const { server, client } = await setup(dir.path);
  await using _server = server;
  // Passwords that read as commands, whose errors would quote them back if they were run as commands.
  const secrets = ["wait forever-and-ever", "trust no-one-at-all", "wait seven-seas"];
  const script = [
    "passwd", // not logged in: fails before its two passwords are read
    secrets[0],
    secrets[1],
    "login erin too-many", // a usage error: fails before its password is read
    secrets[2],
    "is_logged",
    "login erin",
    PASSWORD,
    "is_logged",
  ];
  const result = await client(["--keep-going"], script.join("\n") + "\n");
  assert.equal(result.code, 1);
  assert.equal(result.stdout, "not logged in\nlogged in as erin\nlogged in as erin\n");
  assert.match(result.stderr, /2 commands failed/);
  for (const secret of [...secrets.map((line) => line.split(" ")[1]!), PASSWORD]) {
    assert.ok(!printed(result).includes(secret), printed(result));
  }
});

Deno.test("authchat client stops a script at its first failed command unless --keep-going", async () => {
  await using dir = await tempDir();
  const { server, client } = await setup(dir.path);
  await using _server = server;

  const exec = await client(["--exec", "access", "--exec", "hello"]);
  assert.equal(exec.code, 1);
  assert.equal(exec.stdout, "");
  assert.match(
    exec.stderr,
    /NOT_LOGGED_IN[\s\S]*stopped at the first failed command \(--keep-going runs the rest\)/,
  );
  const execOn = await client(["--keep-going", "--exec", "access", "--exec", "hello"]);
  assert.equal(execOn.code, 1);
  assert.match(execOn.stdout, /^server authchat, protocol 1/);
  assert.match(execOn.stderr, /1 command failed/);

  const stdin = await client([], "access\nhello\n");
  assert.equal(stdin.code, 1);
  assert.equal(stdin.stdout, "");
  const stdinOn = await client(["--keep-going"], "access\nhello\n");
  assert.equal(stdinOn.code, 1);
  assert.match(stdinOn.stdout, /^server authchat, protocol 1/);
});

Deno.test("authchat client exits 0, 1, 2, 3 or 4 as its help says", async () => {
  await using dir = await tempDir();
  const { server, client, env } = await setup(dir.path);
  await using _server = server;
  assert.equal((await client(["--exec", "hello"])).code, 0);
  assert.equal((await client(["--exec", "access"])).code, 1, "a command failed");
  assert.equal((await client(["--port", "70000", "--exec", "hello"])).code, 2, "usage");
  const badConfig = await client(["--config", join(dir.path, "missing.yaml"), "--exec", "hello"]);
  assert.equal(badConfig.code, 2, "configuration");
  assert.match(badConfig.stderr, /^error: Invalid configuration .*missing\.yaml: cannot read the file/);

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const refused = await runCli("client", ["--port", String(closedPort), "--exec", "hello"], { env });
  assert.equal(refused.code, 3, "cannot connect");
  assert.match(refused.stderr, new RegExp(`^error: Cannot connect to 127\\.0\\.0\\.1:${closedPort}: `, "m"));

  const other = await fingerprint(crypto.getRandomValues(new Uint8Array(64)));
  await Deno.writeTextFile(
    join(env.AUTHCHAT_CONFIG_DIR, "known_hosts"),
    `127.0.0.1:${server.tcpPort} seal ${other}\n`,
  );
  const changed = await client(["--exec", "hello"]);
  assert.equal(changed.code, 4, "the server's key changed");
  assert.match(changed.stderr, /HAS CHANGED/);

  // --help documents the statuses, the environment and the JSON schema. (Run with the environment open:
  // what the help needs of it is another matter, tested with the launcher.)
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-env", "--allow-read", MOD, "client", "--help"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(help.stdout);
  assert.equal(help.code, 0, new TextDecoder().decode(help.stderr));
  for (
    const expected of [
      /1 a command failed,\s+2 usage or configuration error, 3 cannot connect to the server, 4 the server's key/,
      /AUTHCHAT_CONFIG_DIR/,
      /XDG_CONFIG_HOME/,
      /HOME/,
      /TERM/,
      /--config <file>/,
      /--keep-going/,
      /--json/,
      /\{"type":"presence","user":"bob","state":"online"\}/,
    ]
  ) {
    assert.match(text, expected);
  }
});

Deno.test("authchat client --json prints one JSON object per event and nothing else on stdout", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data);
  const passwordFile = await registerUsers(server.tcpPort, dir.path, ["alice", "bob"], PASSWORD);
  const options = (user: string, args: string[] = []) => ({
    port: server.tcpPort,
    user,
    passwordFile,
    configDir: join(dir.path, `cfg-${user}`),
    args,
  });
  await using alice = ChatClient.start(options("alice", ["--json"]));
  await alice.command("access", /"command":"access"/);
  await alice.command("login", /"command":"login","user":"alice"/);
  await alice.command("list", /"command":"list"/);
  await using bob = await ChatClient.login(options("bob"));
  await bob.expectOk("send alice hi from bob", /^delivered$/);
  await alice.waitFor("out", /"type":"message"/);
  assert.equal((await bob.finish()).code, 0, bob.transcript);
  await alice.waitFor("out", /"state":"offline"/);
  await alice.write("bogus words");
  await alice.write("close");
  assert.equal((await alice.finish()).code, 1, "access and bogus failed");

  const events = alice.out.map((line) => JSON.parse(line));
  assert.deepEqual(events.find((e) => e.command === "access"), {
    type: "reply",
    ok: false,
    command: "access",
    error: { code: "NOT_LOGGED_IN", message: "Not logged in: send LOGIN first" },
  });
  assert.equal(events.filter((e) => e.type === "notice").length, 1, "trust on first use");
  assert.deepEqual(events.find((e) => e.command === "login"), {
    type: "reply",
    ok: true,
    command: "login",
    must_change_password: false,
    user: "alice",
  });
  const list = events.find((e) => e.command === "list");
  assert.deepEqual(list.users.map((u: { user: string; you: boolean }) => [u.user, u.you]), [["alice", true]]);
  assert.match(list.users[0].fingerprint, /^SHA256:/);
  assert.deepEqual(events.filter((e) => e.type === "presence"), [
    { type: "presence", user: "bob", state: "online" },
    { type: "presence", user: "bob", state: "offline" },
  ]);
  assert.deepEqual(events.find((e) => e.type === "message"), {
    type: "message",
    from: "bob",
    text: "hi from bob",
  });
  assert.deepEqual(events.at(-2), {
    type: "reply",
    ok: false,
    command: null,
    error: { code: null, message: "Unknown command on line 4: type help for the list" },
  });
  assert.deepEqual(events.at(-1), { type: "reply", ok: true, command: "close" });
  assert.deepEqual(alice.err, [], "nothing but prompts and usage errors go to stderr in JSON mode");
});

Deno.test("authchat client reads --config and client.yaml, flags winning, and names a bad key once", async () => {
  await using dir = await tempDir();
  const { server, env } = await setup(dir.path);
  await using _server = server;
  const cfg = env.AUTHCHAT_CONFIG_DIR;
  await Deno.mkdir(cfg, { recursive: true });
  await Deno.writeTextFile(join(cfg, "erin.pw"), PASSWORD);
  // The default file, with a password file named relative to it.
  await Deno.writeTextFile(
    join(cfg, "client.yaml"),
    `port: ${server.tcpPort}\nuser: erin\npassword_file: erin.pw\njson: true\n`,
  );
  const byDefault = await runCli("client", ["--exec", "login"], { env, cwd: dir.path });
  assert.equal(byDefault.code, 0, byDefault.stderr);
  assert.deepEqual(JSON.parse(byDefault.stdout.trim().split("\n").at(-1)!), {
    type: "reply",
    ok: true,
    command: "login",
    must_change_password: false,
    user: "erin",
  });
  const flagsWin = await runCli("client", ["--no-json", "--exec", "login"], { env });
  assert.equal(flagsWin.stdout, "logged in as erin\n");

  const named = join(dir.path, "other.yaml");
  await Deno.writeTextFile(named, `port: ${server.tcpPort}\nuser: nobody\n`);
  const fromNamed = await runCli("client", ["--config", named, "--exec", "hello"], { env });
  assert.match(fromNamed.stdout, /^server authchat/, "--config replaces client.yaml (json is off again)");

  for (
    const [yaml, expected] of [
      [
        "prot: 1991\n",
        /^error: Invalid configuration prot: unknown key in .*bad\.yaml: did you mean port\?$/,
      ],
      ["port: 99999\n", /^error: Invalid configuration port in .*bad\.yaml: 99999 is not within 1\.\.65535$/],
      [
        "port: [1\nuser: x\n",
        /^error: Invalid configuration port: not valid YAML in .*bad\.yaml at line 2, /,
      ],
    ] as const
  ) {
    const bad = join(dir.path, "bad.yaml");
    await Deno.writeTextFile(bad, yaml);
    const result = await runCli("client", ["--config", bad, "--exec", "hello"], { env });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    assert.match(result.stderr.trim(), expected);
  }
});

Deno.test("authchat client in a script replaces a connection the login deadline closed, silently", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data, { env: { AUTHCHAT_AUTH_TIMEOUT: "1" } });
  const passwordFile = await registerUsers(server.tcpPort, dir.path, ["gail"], PASSWORD);
  await using gail = ChatClient.start({
    port: server.tcpPort,
    user: "gail",
    passwordFile,
    configDir: join(dir.path, "cfg-gail"),
  });
  await gail.expectOk("hello", /^server authchat/);
  // The connection hello opened sits idle, not logged in, until the server closes it.
  const deadline = Date.now() + 15_000;
  while (!/timeout .*code=AUTH_TIMEOUT/.test(server.stderr) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.match(server.stderr, /timeout .*code=AUTH_TIMEOUT/);
  await gail.expectOk("login", /^logged in as gail$/);
  await gail.write("close");
  assert.equal((await gail.finish()).code, 0, gail.transcript);
  assert.ok(!gail.err.some((l) => /server: |error: /.test(l)), gail.transcript);
});
