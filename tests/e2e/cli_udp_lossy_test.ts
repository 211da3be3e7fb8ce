import assert from "node:assert/strict";
import { join } from "node:path";
import { installKeys, runCli, ServerProcess, tempDir } from "./_harness.ts";
import { UdpLossyProxy } from "./_udp_lossy_proxy.ts";

const PASSWORD = "tulip orbit canyon 7";
const NEW_PASSWORD = "maple rocket sonnet 3";
/** How many requests go through one lossy session. */
const MESSAGES = 200;

async function lossySetup(dir: string, env: Record<string, string> = {}) {
  const data = join(dir, "data");
  await installKeys(data);
  const server = await ServerProcess.start(data, { args: ["--no-tls"], env });
  const proxy = new UdpLossyProxy(server.udpPort, { drop: 0.2, duplicate: 0.1, maxDelayMs: 20, seed: 11 });
  return { server, proxy };
}

Deno.test("authchat client --udp completes the account lifecycle through a lossy network", async () => {
  await using dir = await tempDir();
  const { server, proxy } = await lossySetup(dir.path);
  await using _server = server;
  await using _proxy = proxy;
  const pw = join(dir.path, "pw");
  const pw2 = join(dir.path, "pw2");
  await Deno.writeTextFile(pw, PASSWORD);
  await Deno.writeTextFile(pw2, NEW_PASSWORD);
  const client = (...commands: string[]) =>
    runCli("client", [
      ...["--udp", "--port", String(proxy.port), "--user", "dora"],
      ...["--password-file", pw, "--new-password-file", pw2, "--keep-going"],
      ...commands.flatMap((c) => ["--exec", c]),
    ], { env: { XDG_CONFIG_HOME: dir.path } });

  const first = await client("register", "login", "is_logged", "access", "passwd", "logout", "close");
  assert.equal(first.code, 0, first.stderr);
  assert.match(
    first.stdout,
    /^registered dora\nlogged in as dora\nlogged in as dora\n[\s\S]*Welcome, dora\.[\s\S]*password changed\nlogged out\nclosed\n$/,
  );
  const old = await client("login");
  assert.equal(old.code, 1, "the old password is refused");
  assert.match(old.stderr, /Authentication failed: wrong user name or password \(AUTH_FAILED\)/);
  await Deno.writeTextFile(pw, NEW_PASSWORD);
  const deleted = await client("login", "delete", "is_logged");
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.match(deleted.stdout, /^logged in as dora\naccount dora deleted\nnot logged in\n$/);
  // The network was as bad as claimed.
  assert(
    proxy.counts.dropped > 0 && proxy.counts.duplicated > 0 && proxy.counts.reordered > 0,
    JSON.stringify(proxy.counts),
  );
});

Deno.test(`authchat client --udp: ${MESSAGES} requests through a lossy network arrive exactly once, in order`, async () => {
  await using dir = await tempDir();
  // Every request registers a name of its own: the server logs each, so duplicates and reordering show.
  const { server, proxy } = await lossySetup(dir.path, {
    AUTHCHAT_REGISTRATIONS_PER_MINUTE: String(MESSAGES * 2),
    // Registering logs nobody in: the session must outlive the time unauthenticated sessions get.
    AUTHCHAT_AUTH_TIMEOUT: "600",
  });
  await using _server = server;
  await using _proxy = proxy;
  const pw = join(dir.path, "pw");
  await Deno.writeTextFile(pw, PASSWORD);
  const names = Array.from({ length: MESSAGES }, (_, i) => `user${String(i + 1).padStart(3, "0")}`);
  const result = await runCli("client", ["--udp", "--port", String(proxy.port), "--password-file", pw], {
    env: { XDG_CONFIG_HOME: dir.path },
    stdin: names.map((n) => `register ${n}\n`).join(""),
  });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, names.map((n) => `registered ${n}\n`).join(""), "every reply once, in order");
  const log = await server.settledLog();
  const logged = [...log.matchAll(/ register [^\n]*user=(user\d{3})/g)].map((m) => m[1]);
  assert.deepEqual(logged, names, "every request reached the server once, in order");
  assert.equal((log.match(/ connect [^\n]*transport=udp/g) ?? []).length, 1, "one session carried them all");
  assert(proxy.counts.dropped > 20 && proxy.counts.duplicated > 5, JSON.stringify(proxy.counts));
});
