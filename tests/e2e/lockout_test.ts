/**
 * Lockouts of the real owner (issue 9, item 4), attacked with real processes: a guessing run from other
 * addresses, a source in backoff, idle connections filling the per-address cap. The owner's client keeps
 * the device token of an earlier login and shows it: none of these holds her back.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { installKeys, runCli, seedUsers, ServerProcess, tempDir } from "./_harness.ts";
import type { CliResult } from "./_harness.ts";
import { hello, RawClient, scramAttempt, scramLogin } from "./_raw_client.ts";
import type { Reply } from "./_raw_client.ts";
import { ScramClient } from "../../lib/auth/scram_client.ts";

const ALICE = { user: "alice", password: "tulip orbit canyon 7" };
const TOKEN_LINE = /^127\.0\.0\.1:\d+ alice [A-Za-z0-9+/]{98}==$/;

/** One server with alice, and a directory for the clients' configuration directories. */
async function aliceServer(env: Record<string, string> = {}) {
  const dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  const server = await ServerProcess.start(data, { env });
  const pwFile = join(dir.path, "pw");
  await Deno.writeTextFile(pwFile, "");
  return {
    server,
    /**
     * The real client logging alice in, with `password`, from a device whose configuration directory is
     * `device` (its known_hosts and device_tokens); one JSON event per line.
     */
    async login(device: string, password: string, options: { tls?: boolean } = {}): Promise<CliResult> {
      await Deno.writeTextFile(pwFile, password);
      return await runCli("client", [
        ...(options.tls ? ["--tls"] : []),
        ...["--port", String(options.tls ? server.tlsPort : server.tcpPort), "--user", "alice"],
        ...["--password-file", pwFile, "--json", "--exec", "login"],
      ], { env: { AUTHCHAT_CONFIG_DIR: join(dir.path, device) } });
    },
    tokens: (device: string) => Deno.readTextFile(join(dir.path, device, "device_tokens")),
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await dir[Symbol.asyncDispose]();
    },
  };
}

/** The error code of a failed scripted login (its JSON reply), or "ok". */
function outcome(result: CliResult): string {
  const reply = JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "{}");
  if (reply.ok) return "ok";
  return `${reply.error?.code}: ${reply.error?.message}`;
}

/** One wrong guess at alice on a connection: the code of what the server answered LOGIN or PROOF with. */
async function guess(c: RawClient, greeting: Reply, id: number): Promise<string> {
  const password = `guess ${crypto.randomUUID()}`;
  const mechanisms = greeting.mechanisms as string[];
  return String((await scramAttempt(c, { user: "alice", password, mechanisms, id })).reply.code);
}

Deno.test("A guessing run from other addresses does not hold back alice's client, which shows its device token", async () => {
  await using s = await aliceServer();
  // An earlier login on alice's device: its token is kept in device_tokens (mode 0600).
  const earlier = await s.login("alice-device", ALICE.password);
  assert.equal(outcome(earlier), "ok", earlier.stderr);
  assert.match((await s.tokens("alice-device")).trim(), TOKEN_LINE);

  // Fourteen other addresses guess at alice, one guess each: each is checked and fails.
  const attackers = await Promise.all(
    Array.from({ length: 14 }, async (_, i) => {
      const c = await RawClient.connect(s.server.tcpPort, { from: `127.0.0.${i + 2}` });
      return { c, greeting: await hello(c) };
    }),
  );
  try {
    for (const { c, greeting } of attackers) assert.equal(await guess(c, greeting, 2), "AUTH_FAILED");
    // From now on alice's account is in backoff for every address that has failed, for minutes.
    const again = await Promise.all(attackers.map(({ c, greeting }) => guess(c, greeting, 4)));
    assert.deepEqual(new Set(again), new Set(["RATE_LIMITED"]));
    // The run goes on while alice logs in.
    let stop = false;
    const storm = Promise.all(attackers.map(async ({ c, greeting }) => {
      for (let id = 10; !stop; id += 2) {
        assert.equal(await guess(c, greeting, id), "RATE_LIMITED");
        await new Promise((r) => setTimeout(r, 20));
      }
    }));
    try {
      // Without a token (another device), one typo makes alice's address one that has failed: the
      // account's backoff then holds her right password back for minutes.
      const typo = await s.login("other-device", "tulip orbit canyon 8");
      assert.match(outcome(typo), /^AUTH_FAILED/);
      const held = outcome(await s.login("other-device", ALICE.password));
      assert.match(held, /^RATE_LIMITED: Too many attempts: retry in (\d+) s$/);
      assert.ok(Number(/retry in (\d+) s/.exec(held)![1]) > 120, held);
      // With her token, her own typo counts against the token alone, and the right password goes through.
      const ownTypo = await s.login("alice-device", "tulip orbit canyon 8");
      assert.match(outcome(ownTypo), /^AUTH_FAILED/);
      const login = await s.login("alice-device", ALICE.password);
      assert.equal(outcome(login), "ok", login.stdout + login.stderr);
      assert.match((await s.tokens("alice-device")).trim(), TOKEN_LINE, "replaced by the new login's token");
    } finally {
      stop = true;
      await storm;
    }
  } finally {
    for (const { c } of attackers) await c.close();
  }
  assert.match(
    await s.server.settledLog(),
    /login_ok session=\d+ ip=127\.0\.0\.1 user=alice transport=tcp device_token=true/,
  );
});

Deno.test("A source in backoff for its guesses at other names does not hold back alice's client with its token", async () => {
  // A backoff of minutes from the first one on, so that it cannot pass while a client process starts.
  await using s = await aliceServer({ AUTHCHAT_BACKOFF_BASE: "300" });
  assert.equal(outcome(await s.login("alice-device", ALICE.password)), "ok");
  // Someone behind alice's own address (one NAT) guesses at many names until the address is in backoff.
  await using c = await RawClient.connect(s.server.tcpPort);
  await hello(c);
  const codes: string[] = [];
  for (let i = 0; i < 10 && codes.at(-1) !== "RATE_LIMITED"; i++) {
    const attempt = { user: `ghost${i}`, password: "wrong", mechanisms: ["SCRAM-SHA-256"] };
    codes.push(String((await scramAttempt(c, attempt)).reply.code));
  }
  assert.equal(codes.at(-1), "RATE_LIMITED", codes.join(","));
  assert.match(outcome(await s.login("other-device", ALICE.password)), /^RATE_LIMITED/, "without a token");
  assert.equal(outcome(await s.login("alice-device", ALICE.password)), "ok", "with one, at once");
});

Deno.test("Idle connections past the per-address cap do not stop alice's client from connecting and logging in", async () => {
  await using s = await aliceServer();
  assert.equal(outcome(await s.login("alice-device", ALICE.password, { tls: true })), "ok");
  // 40 connections from alice's address that never log in: plain TCP ones that said HELLO, and TLS ones
  // stuck before their handshake. The cap (max_unauthenticated_per_ip) is 32.
  const tcp: RawClient[] = [];
  const tls: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const c = await RawClient.connect(s.server.tcpPort);
      tcp.push(c);
      await hello(c);
      tls.push(await Deno.connect({ hostname: "127.0.0.1", port: s.server.tlsPort }));
    }
    const login = await s.login("alice-device", ALICE.password, { tls: true });
    assert.equal(outcome(login), "ok", login.stdout + login.stderr);
    // The oldest of them made room, told why.
    const first = await tcp[0]!.next();
    assert.deepEqual(first, {
      op: "BYE",
      code: "TOO_MANY_CONNECTIONS",
      reason:
        "Too many connections from your address that are not logged in: this one, the oldest, made room " +
        "for a new one (at most 32, or 256 in all)",
    });
  } finally {
    for (const c of tcp) await c.close();
    for (const c of tls) c.close();
  }
});

Deno.test("A login that showed its device token outlasts a flood of new connections from its address", async () => {
  await using s = await aliceServer();
  // Alice's raw client logs in once for a token, then starts a login that shows it and waits to prove it.
  await using alice = await RawClient.connect(s.server.tcpPort);
  const greeting = await hello(alice);
  const { reply } = await scramLogin(alice, { ...ALICE, mechanisms: greeting.mechanisms as string[] });
  assert.equal((await alice.request({ op: "LOGOUT", id: 4 })).op, "LOGOUT");
  const scram = new ScramClient({
    username: "alice",
    password: ALICE.password,
    serverMechanisms: ["SCRAM-SHA-256"],
  });
  const challenge = await alice.request({
    op: "LOGIN",
    id: 5,
    mechanism: scram.mechanism,
    data: scram.first,
    device_token: reply.device_token,
  });
  assert.equal(challenge.op, "CHALLENGE");
  // She is the oldest connection not logged in from her address; 64 newer ones arrive, each over the cap.
  const flood: RawClient[] = [];
  try {
    for (let i = 0; i < 64; i++) {
      const c = await RawClient.connect(s.server.tcpPort);
      flood.push(c);
      await hello(c);
    }
    const shed = await Promise.all(flood.slice(0, 32).map((c) => c.next()));
    assert.deepEqual(new Set(shed.map((m) => m?.code)), new Set(["TOO_MANY_CONNECTIONS"]));
    const done = await alice.request({ op: "PROOF", id: 6, data: await scram.final(String(challenge.data)) });
    assert.equal(done.op, "LOGIN", JSON.stringify(done));
  } finally {
    for (const c of flood) await c.close();
  }
});

Deno.test("A flood showing one account's device token on every connection does not push out a client without one", async () => {
  // Mallory has an account of her own, and its token; the server is full (a small max_connections).
  const MALLORY = { user: "mallory", password: "granite willow fable 3" };
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password, [MALLORY.user]: MALLORY.password });
  await using server = await ServerProcess.start(data, { env: { AUTHCHAT_MAX_CONNECTIONS: "8" } });
  const token = await (async () => {
    await using c = await RawClient.connect(server.tcpPort, { from: "127.0.0.5" });
    const greeting = await hello(c);
    return (await scramLogin(c, { ...MALLORY, mechanisms: greeting.mechanisms as string[] })).reply
      .device_token;
  })();
  const flood: RawClient[] = [];
  /** A flood connection: it shows the token at once and never proves the password. */
  const floodOne = async () => {
    const c = await RawClient.connect(server.tcpPort, { from: "127.0.0.5" });
    flood.push(c);
    await hello(c);
    const scram = new ScramClient({
      ...MALLORY,
      username: MALLORY.user,
      serverMechanisms: ["SCRAM-SHA-256"],
    });
    const challenge = await c.request({
      op: "LOGIN",
      id: 2,
      mechanism: scram.mechanism,
      data: scram.first,
      device_token: token,
    });
    assert.equal(challenge.op, "CHALLENGE");
  };
  try {
    for (let i = 0; i < 7; i++) await floodOne();
    // A client with no token yet (a new device), alone on its address, starts to log in.
    await using newcomer = await RawClient.connect(server.tcpPort, { from: "127.0.0.9" });
    const greeting = await hello(newcomer);
    // The flood goes on: each new connection makes room, and shows the token.
    for (let i = 0; i < 16; i++) await floodOne();
    const outcome = await scramLogin(newcomer, { ...ALICE, mechanisms: greeting.mechanisms as string[] })
      .then(({ reply }) => reply.op, (err) => `shed or refused: ${(err as Error).message}`);
    assert.equal(outcome, "LOGIN", "the client without a token keeps its connection and logs in");
  } finally {
    for (const c of flood) await c.close();
  }
});
