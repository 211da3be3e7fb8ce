import assert from "node:assert/strict";
import { join } from "node:path";
import type { CliResult } from "./_harness.ts";
import { ROOT, runProgram, ServerProcess, tempDir, TEST_ITERATIONS } from "./_harness.ts";

const PASSWORD = "bundled-and-copied-away-7";

/** Run a program to completion with stdin closed, without colours. */
function run(
  program: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<CliResult> {
  return runProgram(program, args, { cwd: options.cwd, env: { NO_COLOR: "1", ...options.env } });
}

Deno.test("deno task bundle writes dist/authchat, which works once copied out of the repository", async () => {
  const bundled = await run(Deno.execPath(), ["task", "bundle"], { cwd: ROOT });
  assert.equal(bundled.code, 0, bundled.stderr);
  await using dir = await tempDir();
  // Nothing of the repository applies here: no deno.json, no "unstable": ["net"].
  const bin = join(dir.path, "bin");
  await Deno.mkdir(bin);
  for (const file of ["authchat", "authchat.js", "authchat-launch.js"]) {
    await Deno.copyFile(join(ROOT, "dist", file), join(bin, file));
  }
  const authchat = join(bin, "authchat");
  const at = { cwd: dir.path };

  const help = await run(authchat, ["--help"], at);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: authchat \[options\] \[command\]/);
  const serverHelp = await run(authchat, ["server", "--help"], at);
  assert.equal(serverHelp.code, 0, serverHelp.stderr);
  assert.match(serverHelp.stdout, /--no-udp/);
  // Reached through a symbolic link (one on PATH, say), it still finds the scripts beside the real file.
  await Deno.symlink(authchat, join(dir.path, "linked"));
  assert.equal((await run(join(dir.path, "linked"), ["--version"], at)).code, 0);

  const keygen = await run(authchat, ["keygen", "--data", "data"], at);
  assert.equal(keygen.code, 0, keygen.stderr);
  await Deno.writeTextFile(join(dir.path, "pw"), PASSWORD);
  const seed = await run(
    authchat,
    [
      "seed",
      "--data",
      "data",
      "--user",
      "dave",
      "--password-file",
      "pw",
      "--iterations",
      String(TEST_ITERATIONS),
    ],
    at,
  );
  assert.equal(seed.code, 0, seed.stderr);
  assert.match(seed.stdout, /created dave/);

  await using server = await ServerProcess.start(join(dir.path, "data"), {
    via: { program: authchat, cwd: dir.path },
  });
  const env = { XDG_CONFIG_HOME: join(dir.path, "config") };
  const login = await run(authchat, [
    "client",
    "--tls",
    "--ca",
    "data/server-cert.pem",
    "--port",
    String(server.tlsPort),
    "--user",
    "dave",
    "--password-file",
    "pw",
    "--exec",
    "login",
    "--exec",
    "list",
  ], { ...at, env });
  assert.equal(login.code, 0, login.stderr);
  assert.match(login.stdout, /logged in as dave/);
  assert.match(login.stdout, /^dave SHA256:\S+ \(you\)$/m);
  assert.doesNotMatch(login.stderr, /warning/);

  // Run without the launcher (and so without --unstable-net), it says what is missing instead of failing
  // with "Deno.listenDatagram is not a function".
  const script = join(bin, "authchat.js");
  const bare = ["run", "--quiet", "--no-config", "--allow-all", script];
  const noUdpServer = await run(
    Deno.execPath(),
    [...bare, "server", "--data", "data", "--tcp-port", "0"],
    at,
  );
  assert.equal(noUdpServer.code, 2, noUdpServer.stderr);
  assert.match(
    noUdpServer.stderr,
    /^error: UDP is unavailable: .*run with --unstable-net \(the authchat launcher and deno tasks do\), or pass --no-udp/m,
  );
  const noUdpClient = await run(Deno.execPath(), [
    ...bare,
    "client",
    "--port",
    String(server.tcpPort),
    "--user",
    "dave",
    "--password-file",
    "pw",
    "--known-hosts",
    "known_hosts",
    "--known-peers",
    "known_peers",
    "--exec",
    "login",
  ], at);
  assert.match(noUdpClient.stdout, /logged in as dave/);
  assert.match(
    noUdpClient.stderr,
    /warning: Direct messages unavailable: UDP is unavailable: .*run with --unstable-net \(the authchat launcher/,
  );
  assert.equal((await server.stop("SIGINT")).code, 0, server.stderr);
});
