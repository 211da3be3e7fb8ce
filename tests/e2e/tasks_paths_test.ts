import assert from "node:assert/strict";
import { join, relative } from "node:path";
import type { CliResult } from "./_harness.ts";
import {
  clientArgs,
  denoTask as task,
  groupProcesses,
  installKeys,
  MOD,
  ROOT,
  runProgram,
  ServerProcess,
  tempDir,
  TEST_ITERATIONS,
} from "./_harness.ts";
import { createVerifier, formatVerifier } from "../../lib/crypto/scram_verifier.ts";

const PASSWORD = "a long passphrase from outside";
const NEW_PASSWORD = "another long passphrase, new";

/** `deno task seed` adding one user whose password is in a file (more flags, such as --config, first). */
function seedUser(
  data: string,
  user: string,
  passwordFile: string,
  flags: string[] = [],
): Promise<CliResult> {
  return task("seed", [
    ...flags,
    ...["--data", data, "--user", user, "--password-file", passwordFile],
    ...["--iterations", String(TEST_ITERATIONS)],
  ]);
}

/** The paths of one `--allow-*=` flag of a command line. */
function granted(args: string[], name: string): string[] {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3).split(",") ?? [];
}

Deno.test("deno task keygen and seed take every path flag outside the repository", async () => {
  await using out = await tempDir();
  assert.ok(relative(ROOT, out.path).startsWith(".."), "the temporary directory is outside the repository");
  const keygen = await task("keygen", ["--data", join(out.path, "keys")]);
  assert.equal(keygen.code, 0, keygen.stderr);
  await Deno.stat(join(out.path, "keys", "seal-private.pem"));

  const data = join(out.path, "data");
  const iterations = ["--iterations", String(TEST_ITERATIONS)];
  await Deno.writeTextFile(join(out.path, "users.txt"), `erin:${PASSWORD}\n`);
  const from = await task("seed", ["--data", data, "--from", join(out.path, "users.txt"), ...iterations]);
  assert.equal(from.code, 0, from.stderr);
  assert.match(from.stdout, /seed: 1 created/);

  const verifier = formatVerifier(await createVerifier(PASSWORD, { iterations: TEST_ITERATIONS }));
  await Deno.writeTextFile(join(out.path, "pg.txt"), `frank:${verifier}\n`);
  const pg = await task("seed", ["--data", data, "--import-verifiers", join(out.path, "pg.txt")]);
  assert.equal(pg.code, 0, pg.stderr);
  assert.match(pg.stdout, /seed: 1 created/);

  // A relative path is relative to the repository root (deno task runs there): ../ climbs out of it.
  await Deno.writeTextFile(join(out.path, "gina.pw"), PASSWORD);
  const climbing = relative(ROOT, join(out.path, "gina.pw"));
  assert.match(climbing, /^\.\.\//);
  const user = await seedUser(data, "gina", climbing);
  assert.equal(user.code, 0, user.stderr);
  assert.match(user.stdout, /created gina/);
  assert.match(user.stdout, /3 accounts in /);
});

Deno.test("deno task start takes --config and --data outside the repository, and grants nothing more", async () => {
  await using out = await tempDir();
  const data = join(out.path, "data");
  await installKeys(data);
  const config = join(out.path, "authchat.yaml");
  const database = join(out.path, "elsewhere", "users.db");
  await Deno.writeTextFile(config, `name: from-outside\ndatabase: ${database}\n`);
  await Deno.writeTextFile(join(out.path, "pw"), PASSWORD);
  const seeded = await seedUser(data, "alice", join(out.path, "pw"), ["--config", config]);
  assert.equal(seeded.code, 0, seeded.stderr);
  assert.match(seeded.stdout, new RegExp(`1 accounts in ${database}`));

  await using server = await ServerProcess.start(data, { via: "task", args: ["--config", config] });
  assert.match(await server.settledLog(), new RegExp(`INFO listening .* database=${database}`));

  // What the task gave the server: the paths its configuration names and /dev/null (to count its free
  // descriptors), read; its data and database directories, written (the keys exist, so their directory
  // needs no more); nothing else.
  const child = (await groupProcesses(server.pid)).find((p) => p.args.includes(MOD));
  assert.ok(child, "the server runs as a child of the launcher");
  assert.deepEqual(
    granted(child.args, "allow-read").sort(),
    [
      config,
      data,
      join(data, "seal-private.pem"),
      join(data, "seal-public.pem"),
      join(data, "server-cert.pem"),
      join(data, "server-key.pem"),
      join(out.path, "elsewhere"),
      database,
      "/dev/null",
    ].sort(),
  );
  assert.deepEqual(granted(child.args, "allow-write"), [data, join(out.path, "elsewhere")]);
  assert.deepEqual(granted(child.args, "allow-env"), ["AUTHCHAT_*", "LOG_TOKENS", "LOG_STREAM"]);
  // And Deno holds it to them: with the same flags, a file beside the granted ones cannot be read.
  await Deno.writeTextFile(join(out.path, "secret.txt"), "not for the server");
  const probe = join(out.path, "probe.ts");
  await Deno.writeTextFile(
    probe,
    "for (const p of Deno.args) { try { Deno.readTextFileSync(p); console.log('read', p); }" +
      " catch (e) { console.log((e as Error).name, p); } }",
  );
  const flags = child.args.filter((a) => /^--allow-(read|write|env)=/.test(a));
  const probed = await runProgram(Deno.execPath(), [
    ...["run", "--quiet", "--no-prompt", ...flags, probe],
    ...[join(data, "server-cert.pem"), join(out.path, "secret.txt")],
  ]);
  assert.deepEqual(probed.stdout.trim().split("\n"), [
    `read ${join(data, "server-cert.pem")}`,
    `NotCapable ${join(out.path, "secret.txt")}`,
  ]);
});

Deno.test("deno task client reads --password-file, --new-password-file, --ca, --known-hosts, --device-tokens and --config outside the repository", async () => {
  await using out = await tempDir();
  const data = join(out.path, "data");
  await installKeys(data);
  await Deno.writeTextFile(join(out.path, "pw"), PASSWORD);
  const seeded = await seedUser(data, "alice", join(out.path, "pw"));
  assert.equal(seeded.code, 0, seeded.stderr);
  await Deno.writeTextFile(join(out.path, "new.pw"), NEW_PASSWORD);
  await using server = await ServerProcess.start(data);
  // Every file the client uses is named on its command line: its default directory stays untouched.
  const env = { AUTHCHAT_CONFIG_DIR: join(out.path, "config") };
  const knownHosts = join(out.path, "trust", "known_hosts");
  const deviceTokens = join(out.path, "trust", "device_tokens");
  /** Alice with a password file, and trust files outside the default directory. */
  const alice = (passwordFile: string) => [
    ...["--user", "alice", "--password-file", passwordFile],
    ...["--known-hosts", knownHosts, "--known-peers", join(out.path, "trust", "known_peers")],
    ...["--device-tokens", deviceTokens],
  ];
  const tls = await task("client", [
    ...["--tls", "--ca", join(data, "server-cert.pem"), "--port", String(server.tlsPort)],
    ...alice(join(out.path, "pw")),
    ...["--new-password-file", join(out.path, "new.pw"), "--exec", "login", "--exec", "passwd"],
  ], env);
  assert.equal(tls.code, 0, tls.stderr);
  assert.match(tls.stdout, /logged in as alice/);
  assert.match(tls.stdout, /password changed/i);

  const tcp = await task("client", [
    ...["--port", String(server.tcpPort)],
    ...alice(join(out.path, "new.pw")),
    ...["--exec", "login"],
  ], env);
  assert.equal(tcp.code, 0, tcp.stderr);
  assert.match(tcp.stdout, /logged in as alice/);
  assert.match(
    await Deno.readTextFile(knownHosts),
    new RegExp(`^127\\.0\\.0\\.1:${server.tcpPort} seal SHA256:`),
  );
  // Each login kept its device token there (the TLS one, replaced at passwd, and the TCP one).
  assert.match(
    await Deno.readTextFile(deviceTokens),
    new RegExp(`^127\\.0\\.0\\.1:${server.tlsPort} alice `),
  );
  assert.match(
    await Deno.readTextFile(deviceTokens),
    new RegExp(`\n127\\.0\\.0\\.1:${server.tcpPort} alice `),
  );
  // The same through a configuration file whose paths are relative to itself: the launcher grants them.
  await Deno.mkdir(join(out.path, "cc"));
  await Deno.writeTextFile(
    join(out.path, "cc", "client.yaml"),
    `tls: true\nport: ${server.tlsPort}\nuser: alice\nca: ../data/server-cert.pem\npassword_file: ../new.pw\n` +
      "known_hosts: ../trust/known_hosts\nknown_peers: ../trust/known_peers\ndevice_tokens: ../trust/device_tokens\n",
  );
  const fromFile = await task(
    "client",
    ["--config", join(out.path, "cc", "client.yaml"), "--exec", "login"],
    env,
  );
  assert.equal(fromFile.code, 0, fromFile.stderr);
  assert.match(fromFile.stdout, /logged in as alice/);
  await assert.rejects(
    Deno.stat(join(out.path, "config")),
    Deno.errors.NotFound,
    "the default directory was left alone",
  );
});

Deno.test("deno task start refuses a bad configuration with the server's own message, exit 2", async () => {
  await using out = await tempDir();
  const config = join(out.path, "bad.yaml");
  await Deno.writeTextFile(config, "tcp_port: 99999\n");
  const args = ["--config", config, "--data", join(out.path, "data")];
  const viaTask = await task("start", args);
  const direct = await runProgram(Deno.execPath(), ["run", "--quiet", "--allow-all", MOD, "server", ...args]);
  const directErr = direct.stderr;
  assert.equal(direct.code, 2, directErr);
  assert.match(directErr, /^error: Invalid configuration tcp_port: 99999 is not within 0\.\.65535\n$/);
  assert.equal(viaTask.code, 2, viaTask.stderr);
  assert.equal(viaTask.stderr, directErr);
  await assert.rejects(Deno.stat(join(out.path, "data")), Deno.errors.NotFound, "nothing was created");
});

Deno.test("deno task keygen refuses a path with a comma, which no Deno permission can name", async () => {
  await using out = await tempDir();
  const result = await task("keygen", ["--data", join(out.path, "a,b")]);
  assert.equal(result.code, 2);
  assert.match(
    result.stderr,
    /^error: Cannot grant access to .*a,b: Deno cannot name a path containing a comma/,
  );
});

Deno.test("deno task start says a host Deno's permissions cannot name does not resolve, exit 2; seed does not use it", async () => {
  await using out = await tempDir();
  const data = join(out.path, "data");
  // The launcher has no network access: asking about such a name threw there, and seed (no network) failed.
  const start = await task("start", ["--host", "no such host", "--data", data]);
  assert.equal(start.code, 2, start.stderr);
  assert.match(start.stderr, /^error: Invalid configuration host: cannot resolve no such host \(/);
  await assert.rejects(Deno.stat(data), Deno.errors.NotFound, "nothing was created");
  const seed = await task("seed", ["--data", data, "--iterations", "4096", "--demo"], {
    AUTHCHAT_HOST: "no such host",
  });
  assert.equal(seed.code, 0, seed.stderr);
});

Deno.test("deno task client may write its named trust files, not the directory they are in", async () => {
  await using out = await tempDir();
  const data = join(out.path, "data");
  await installKeys(data);
  await Deno.writeTextFile(join(out.path, "pw"), PASSWORD);
  const seeded = await task("seed", [
    "--data",
    data,
    "--user",
    "alice",
    "--password-file",
    join(out.path, "pw"),
    "--iterations",
    String(TEST_ITERATIONS),
  ]);
  assert.equal(seeded.code, 0, seeded.stderr);
  await using server = await ServerProcess.start(data);
  // The trust files sit in a directory that holds other things (as a home directory does).
  const knownHosts = join(out.path, "kh");
  const knownPeers = join(out.path, "kp");
  const args = [
    "--port",
    String(server.tcpPort),
    "--user",
    "alice",
    "--password-file",
    join(out.path, "pw"),
    "--known-hosts",
    knownHosts,
    "--known-peers",
    knownPeers,
    "--exec",
    "login",
  ];
  const env = { AUTHCHAT_CONFIG_DIR: join(out.path, "config") };
  const login = await task("client", args, env);
  assert.equal(login.code, 0, login.stderr);
  assert.match(await Deno.readTextFile(knownHosts), new RegExp(`^127\\.0\\.0\\.1:${server.tcpPort} seal `));
  // With the client's flags: known_peers can be pinned (rewritten through its own directory), a file
  // beside it cannot be written.
  const flags = clientArgs(args, env).filter((a) => /^--allow-(read|write)=/.test(a));
  assert.ok(!flags.some((f) => f.split(/[=,]/).includes(out.path)), flags.join(" "));
  const probe = join(out.path, "probe.ts");
  await Deno.writeTextFile(
    probe,
    `import { KnownPeers } from ${JSON.stringify(join(ROOT, "lib/client/known_peers.ts"))};\n` +
      `await new KnownPeers(${JSON.stringify(knownPeers)}).pin("h:1", "bob", new Uint8Array(32));\n` +
      "console.log('pinned');\n" +
      `try { Deno.writeTextFileSync(${
        JSON.stringify(join(out.path, "other.txt"))
      }, "x"); console.log("wrote"); }` +
      " catch (e) { console.log((e as Error).name); }\n",
  );
  const probed = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--no-prompt", `--config=${join(ROOT, "deno.json")}`, ...flags, probe],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.deepEqual(
    decoder.decode(probed.stdout).trim().split("\n"),
    ["pinned", "NotCapable"],
    decoder.decode(probed.stderr),
  );
  assert.match(await Deno.readTextFile(knownPeers), /^h:1 bob /);
});
