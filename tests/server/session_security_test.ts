import assert from "node:assert/strict";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { parseServerFirst } from "../../lib/codec/scram_messages.ts";
import { errorCode as code, makeKit, verifierFor } from "./_session_kit.ts";
import type { TestConnection } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";

/** Everything an attacker sees of a failed login except the random nonces. */
async function failedLoginView(conn: TestConnection, user: string) {
  const { challenge, reply } = await conn.scram("LOGIN", user, "guess guess guess 1");
  const first = parseServerFirst((challenge as { data: string }).data);
  const { id: _id, ...rest } = reply as Record<string, unknown>;
  return {
    saltLength: first.salt.length,
    salt: first.salt.toBase64(),
    iterations: first.iterations,
    reply: rest,
  };
}

Deno.test("Session gives an unknown user a mock exchange indistinguishable from a wrong password", async () => {
  // Five failures from one address: all must be checked, not rate-limited.
  await using kit = await makeKit({ freeFailures: 5 });
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect();
  const real = await failedLoginView(conn, "alice");
  const ghost = await failedLoginView(conn, "mallory");
  const ghostAgain = await failedLoginView(kit.connect({ peerAddress: "10.9.9.9" }), "Mallory");
  const other = await failedLoginView(conn, "trent");
  assert.equal(ghost.saltLength, real.saltLength);
  assert.equal(ghost.iterations, real.iterations);
  assert.deepEqual(ghost.reply, real.reply);
  assert.deepEqual(ghost.reply, {
    op: "ERROR",
    code: "AUTH_FAILED",
    message: "Authentication failed: wrong user name or password",
    scram: "invalid-proof",
  });
  assert.equal(ghostAgain.salt, ghost.salt, "the same unknown name always gets the same salt");
  assert.notEqual(other.salt, ghost.salt);
  const realAgain = await failedLoginView(conn, "alice");
  assert.equal(realAgain.salt, real.salt);
});

Deno.test("Session leaves a connection logged out after a failed LOGIN (no stale identity)", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", "bravo sierra tango 99");
  const conn = kit.connect();
  await conn.login("alice", PASSWORD);
  const failed = await conn.scram("LOGIN", "bob", "wrong wrong wrong 0");
  assert.equal(code(failed.reply), "AUTH_FAILED");
  assert.deepEqual(await conn.send({ op: "IS_LOGGED", id: 1 }), { op: "IS_LOGGED", id: 1, logged_in: false });
  assert.equal(code(await conn.send({ op: "ACCESS" })), "NOT_LOGGED_IN");
  await conn.login("alice", PASSWORD);
  const client = new ScramClient({
    username: "alice",
    password: PASSWORD,
    serverMechanisms: ["SCRAM-SHA-256"],
  });
  assert.equal(
    (await conn.send({ op: "LOGIN", mechanism: "SCRAM-SHA-256", data: client.first })).op,
    "CHALLENGE",
  );
  assert.equal(code(await conn.send({ op: "ACCESS" })), "OUT_OF_ORDER", "abandoning the exchange");
  assert.equal((await conn.send({ op: "IS_LOGGED" }) as { logged_in: boolean }).logged_in, false);
  assert.equal(kit.ctx.registry.sessionsOf("alice"), 0);
});

Deno.test("Session refuses a replayed client-final, inside and across exchanges", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect();
  const { clientFinal } = await conn.scram("LOGIN", "alice", PASSWORD);
  assert.equal(code(await conn.send({ op: "PROOF", data: clientFinal })), "OUT_OF_ORDER");
  const client = new ScramClient({
    username: "alice",
    password: PASSWORD,
    serverMechanisms: ["SCRAM-SHA-256"],
  });
  await conn.send({ op: "LOGIN", mechanism: "SCRAM-SHA-256", data: client.first });
  const replay = await conn.send({ op: "PROOF", data: clientFinal });
  assert.equal(code(replay), "AUTH_FAILED");
  assert.match((replay as { message: string }).message, /nonce does not match/);
  assert.equal(conn.session.user, null);
});

Deno.test("Session refuses a sealed verifier replayed in the same or another session, or for another user", async () => {
  await using kit = await makeKit();
  const conn = kit.connect();
  const verifier = await verifierFor(PASSWORD);
  const sealed = await conn.sealed("REGISTER", "alice", verifier);
  assert.equal((await conn.send({ op: "REGISTER", user: "alice", sealed })).op, "REGISTER");
  const alice = (await kit.store.findUser("alice"))!;
  await kit.store.deleteUser(alice.id, alice.verifier);
  assert.equal(code(await conn.send({ op: "REGISTER", user: "alice", sealed })), "SEAL_INVALID");
  await conn.sayHello();
  assert.equal(code(await conn.send({ op: "REGISTER", user: "alice", sealed })), "SEAL_INVALID");
  const other = kit.connect();
  await other.sayHello();
  assert.equal(code(await other.send({ op: "REGISTER", user: "alice", sealed })), "SEAL_INVALID");
  const forBob = await other.sealed("REGISTER", "bob", verifier);
  assert.equal(code(await other.send({ op: "REGISTER", user: "mallory", sealed: forBob })), "SEAL_INVALID");
  assert.equal(await kit.store.countUsers(), 0);
});

Deno.test("Session refuses a verifier in clear on a plain connection", async () => {
  await using kit = await makeKit();
  await kit.addUser("bob", PASSWORD);
  const conn = kit.connect();
  await conn.sayHello();
  const reply = await conn.send({ op: "REGISTER", user: "alice", verifier: await verifierFor(PASSWORD) });
  assert.equal(code(reply), "CONFIDENTIALITY_REQUIRED");
  assert.equal(await kit.store.countUsers(), 1);
  await conn.login("bob", PASSWORD);
  const before = await kit.store.findUser("bob");
  const passwd = await conn.scram("PASSWD", "bob", PASSWORD, {
    extra: { verifier: await verifierFor("other words entirely 3") },
  });
  assert.equal(passwd.challenge.op, "ERROR", "refused before any exchange");
  assert.equal(code(passwd.reply), "CONFIDENTIALITY_REQUIRED");
  assert.deepEqual(await kit.store.findUser("bob"), before);
});

Deno.test("Session REGISTER refuses the old password field, no secret at all, and both verifier and sealed", async () => {
  await using kit = await makeKit();
  const tls = kit.connect({ transport: "tls", confidential: true });
  await tls.sayHello();
  const old = await tls.send({ op: "REGISTER", user: "alice", password: PASSWORD });
  assert.equal(code(old), "BAD_MESSAGE");
  assert.match((old as { message: string }).message, /msg\.password: unknown field/);
  const none = await tls.send({ op: "REGISTER", user: "alice" });
  assert.equal(code(none), "BAD_MESSAGE");
  assert.match((none as { message: string }).message, /needs verifier \(TLS\) or sealed/);
  const verifier = await verifierFor(PASSWORD);
  const both = await tls.send({
    op: "REGISTER",
    user: "alice",
    verifier,
    sealed: await tls.sealed("REGISTER", "alice", verifier),
  });
  assert.equal(code(both), "BAD_MESSAGE");
  assert.match((both as { message: string }).message, /send verifier or sealed, not both/);
  assert.equal(await kit.store.countUsers(), 0);
});

Deno.test("Session on TLS refuses a channel binding downgrade and a binding to another certificate", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const binding = crypto.getRandomValues(new Uint8Array(32));
  const tls = { transport: "tls" as const, confidential: true, channelBinding: binding };
  const stripped = kit.connect(tls);
  await stripped.sayHello();
  // An RFC 5802 client that can bind but was shown a mechanism list without PLUS sends the "y" flag.
  const refused = await stripped.send({
    op: "LOGIN",
    mechanism: "SCRAM-SHA-256",
    data: "y,,n=alice,r=abcdef",
  });
  assert.equal(code(refused), "CHANNEL_BINDING");
  assert.equal((refused as { scram: string }).scram, "server-does-support-channel-binding");
  const mitm = kit.connect(tls);
  const other = await mitm.scram("LOGIN", "alice", PASSWORD, {
    channelBinding: crypto.getRandomValues(new Uint8Array(32)),
  });
  assert.equal(code(other.reply), "CHANNEL_BINDING");
  assert.equal(mitm.session.user, null);
  const honest = kit.connect(tls);
  const ok = await honest.scram("LOGIN", "alice", PASSWORD, { channelBinding: binding });
  assert.equal(ok.reply.op, "LOGIN");
});

Deno.test("Session backs off a failing source without locking the owner out from elsewhere", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("alice", PASSWORD);
  const attacker = kit.connect({ peerAddress: "203.0.113.7" });
  for (let i = 0; i < 3; i++) {
    assert.equal(code((await attacker.scram("LOGIN", "alice", `guess number ${i}xx`)).reply), "AUTH_FAILED");
  }
  // failures_before_backoff 3: three guesses were checked, the fourth attempt waits.
  const limited = (await attacker.scram("LOGIN", "alice", PASSWORD)).reply as Record<string, unknown>;
  assert.equal(limited.code, "RATE_LIMITED");
  assert.equal(limited.retry_after_ms, 1000);
  const blockedOther = (await attacker.scram("LOGIN", "bob", "anything at all 1")).reply;
  assert.equal(code(blockedOther), "RATE_LIMITED", "the source's own counter covers every account");
  const owner = kit.connect({ peerAddress: "198.51.100.20" });
  await owner.login("alice", PASSWORD);
  kit.clock.now += 1000;
  assert.equal((await attacker.scram("LOGIN", "alice", PASSWORD)).reply.op, "LOGIN");
});

Deno.test("Session applies the account counter to sources that failed, so spreading guesses does not help", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("alice", PASSWORD);
  for (let i = 0; i < 4; i++) {
    const bot = kit.connect({ peerAddress: `203.0.113.${i + 1}` });
    assert.equal(code((await bot.scram("LOGIN", "alice", `guess number ${i}xx`)).reply), "AUTH_FAILED");
  }
  const bot = kit.connect({ peerAddress: "203.0.113.1" });
  assert.equal(code((await bot.scram("LOGIN", "alice", PASSWORD)).reply), "RATE_LIMITED");
  const owner = kit.connect({ peerAddress: "198.51.100.20" });
  await owner.login("alice", PASSWORD);
});

Deno.test("Session never logs passwords, verifiers, proofs or sealed secrets", async () => {
  await using kit = await makeKit();
  const conn = kit.connect();
  const first = await verifierFor(PASSWORD);
  const sealed = await conn.sealed("REGISTER", "alice", first);
  assert.equal((await conn.send({ op: "REGISTER", user: "alice", sealed })).op, "REGISTER");
  const login = await conn.scram("LOGIN", "alice", PASSWORD);
  await conn.scram("LOGIN", "alice", "wrong horse battery 1");
  const tls = kit.connect({ transport: "tls", confidential: true });
  await tls.login("alice", PASSWORD);
  const second = await verifierFor("second secret phrase 2");
  assert.equal(
    (await tls.scram("PASSWD", "alice", PASSWORD, { extra: { verifier: second } })).reply.op,
    "PASSWD",
  );
  // Refused verifiers are not echoed either.
  const refused = await verifierFor("third secret phrase 3", { iterations: 8192 });
  assert.equal(code(await tls.send({ op: "REGISTER", user: "mallory", verifier: refused })), "BAD_MESSAGE");
  const text = kit.logs.join("\n");
  assert.match(text, /"event":"login_ok"/);
  assert.match(text, /"event":"login_failed".*"code":"AUTH_FAILED"/);
  assert.match(text, /"event":"register"/);
  const keys = [first, second, refused].flatMap((v) => v.split("$")[2]!.split(":"));
  assert.equal(keys.length, 6);
  const secrets = [
    PASSWORD,
    "wrong horse battery 1",
    "second secret phrase 2",
    "third secret phrase 3",
    sealed.ct,
    sealed.key,
    ...keys,
  ];
  for (const secret of secrets) {
    assert.ok(!text.includes(secret), `log contains ${secret.slice(0, 12)}…`);
  }
  const proof = login.clientFinal!.split(",p=")[1]!;
  assert.ok(!text.includes(proof));
  assert.ok(!text.includes((login.reply as { data: string }).data));
});

Deno.test("Session has at most max_unauthenticated_per_ip proofs of a clean source checked at once, even after logins", async () => {
  await using kit = await makeKit({ maxUnauthenticatedPerIp: 4, maxConnectionsPerIp: 1000, freeFailures: 3 });
  await kit.addUser("mallory", PASSWORD);
  const victims = Array.from({ length: 40 }, (_, i) => `victim${i}`);
  for (const v of victims) await kit.addUser(v, PASSWORD);
  // Logged-in connections do not count against the cap on unauthenticated ones; a LOGIN on each then
  // makes it an exchange again.
  const conns: TestConnection[] = [];
  for (const _ of victims) {
    const conn = kit.connect();
    await conn.login("mallory", PASSWORD);
    conns.push(conn);
  }
  const finals = await Promise.all(victims.map(async (v, i) => {
    const client = new ScramClient({
      username: v,
      password: `guess ${i}`,
      serverMechanisms: conns[i]!.hello!.mechanisms,
    });
    const challenge = await conns[i]!.send({ op: "LOGIN", mechanism: client.mechanism, data: client.first });
    assert.equal(challenge.op, "CHALLENGE");
    return await client.final((challenge as { data: string }).data);
  }));
  const replies = await Promise.all(conns.map((c, i) => c.send({ op: "PROOF", data: finals[i] })));
  const codes = replies.map((r) => (r as { code?: string }).code);
  assert.equal(codes.filter((c) => c === "AUTH_FAILED").length, 4, "only 4 guesses were checked");
  assert.equal(codes.filter((c) => c === "RATE_LIMITED").length, 36);
});
