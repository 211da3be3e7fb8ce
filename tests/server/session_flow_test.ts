import assert from "node:assert/strict";
import { parseVerifier } from "../../lib/crypto/scram_verifier.ts";
import { makeKit } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";
const NEW_PASSWORD = "amber glacier piano 17";

Deno.test("Session HELLO reports version, mechanisms, seal key and a fresh nonce", async () => {
  await using kit = await makeKit();
  const tcp = kit.connect();
  const hello = await tcp.sayHello();
  assert.equal(hello.version, 1);
  assert.deepEqual(hello.versions, [1]);
  assert.deepEqual(hello.mechanisms, ["SCRAM-SHA-256"]);
  assert.equal(hello.confidential, false);
  assert.equal(hello.seal_key, kit.ctx.sealPublicKey);
  const tls = kit.connect({ transport: "tls", confidential: true, channelBinding: new Uint8Array(32) });
  const tlsHello = await tls.sayHello();
  assert.deepEqual(tlsHello.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
  assert.equal(tlsHello.confidential, true);
  assert.notEqual(tlsHello.seal_nonce, hello.seal_nonce);
});

Deno.test("Session refuses an unknown protocol version and everything before HELLO", async () => {
  await using kit = await makeKit();
  const conn = kit.connect();
  const early = await conn.send({ op: "IS_LOGGED" });
  assert.equal(early.op, "ERROR");
  assert.equal((early as { code: string }).code, "OUT_OF_ORDER");
  const v2 = await conn.send({ op: "HELLO", version: 2 });
  assert.equal((v2 as { code: string }).code, "UNSUPPORTED_VERSION");
  assert.match((v2 as { message: string }).message, /Unsupported protocol version: 2/);
  assert.equal((await conn.send({ op: "IS_LOGGED" }) as { code: string }).code, "OUT_OF_ORDER");
  await conn.sayHello();
  assert.equal((await conn.send({ op: "IS_LOGGED" })).op, "IS_LOGGED");
});

Deno.test("Session registers over TLS with the password in the channel and over TCP sealed", async () => {
  await using kit = await makeKit();
  const tls = kit.connect({ transport: "tls", confidential: true });
  await tls.sayHello();
  const viaTls = await tls.send({ op: "REGISTER", user: "Alice", password: PASSWORD });
  assert.deepEqual(viaTls, { op: "REGISTER", id: 2, user: "Alice" });
  const tcp = kit.connect();
  const sealed = await tcp.sealed("REGISTER", "bob", PASSWORD);
  const viaTcp = await tcp.send({ op: "REGISTER", user: "bob", sealed });
  assert.equal(viaTcp.op, "REGISTER");
  const stored = await kit.store.findUser("alice");
  assert.ok(stored);
  assert.equal(stored.name, "Alice");
  assert.equal(parseVerifier(stored.verifier).iterations, 4096);
  assert.ok(!stored.verifier.includes(PASSWORD));
});

Deno.test("Session registration refuses taken names in any case, weak passwords and bad names", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.sayHello();
  const taken = await conn.send({ op: "REGISTER", user: "ALICE", password: NEW_PASSWORD });
  assert.equal((taken as { code: string }).code, "USER_EXISTS");
  const weak = await conn.send({ op: "REGISTER", user: "carol", password: "iloveyou" });
  assert.equal((weak as { code: string }).code, "PASSWORD_POLICY");
  assert.equal((weak as { reason: string }).reason, "too_short");
  const own = await conn.send({ op: "REGISTER", user: "carol", password: "carol-carol-carol" });
  assert.equal((own as { reason: string }).reason, "contains_username");
  const spaced = await conn.send({ op: "REGISTER", user: "car ol", password: NEW_PASSWORD });
  assert.equal((spaced as { code: string }).code, "INVALID_USERNAME");
  assert.equal(await kit.store.countUsers(), 1);
});

Deno.test("Session logs in, answers IS_LOGGED and ACCESS, and logs out", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect();
  assert.equal((await conn.send({ op: "HELLO", version: 1 })).op, "HELLO");
  const denied = await conn.send({ op: "ACCESS" });
  assert.equal((denied as { code: string }).code, "NOT_LOGGED_IN");
  await conn.login("ALICE", PASSWORD);
  assert.deepEqual(await conn.send({ op: "IS_LOGGED", id: 7 }), {
    op: "IS_LOGGED",
    id: 7,
    logged_in: true,
    user: "alice",
  });
  const first = await conn.send({ op: "ACCESS" }) as Record<string, unknown>;
  assert.equal(first.user, "alice");
  assert.equal(first.last_login, undefined);
  assert.equal(first.login, new Date(kit.clock.now).toISOString());
  assert.equal(conn.session.user, "alice");
  assert.equal((await conn.send({ op: "LOGOUT" })).op, "LOGOUT");
  assert.equal((await conn.send({ op: "IS_LOGGED" }) as { logged_in: boolean }).logged_in, false);
  const loginAt = kit.clock.now;
  kit.clock.now += 60_000;
  await conn.login("alice", PASSWORD);
  const second = await conn.send({ op: "ACCESS" }) as Record<string, unknown>;
  assert.equal(second.last_login, new Date(loginAt).toISOString());
});

Deno.test("Session CLOSE confirms and then closes", async () => {
  await using kit = await makeKit();
  const conn = kit.connect();
  const replies = await conn.raw(JSON.stringify({ op: "CLOSE", id: 3 }));
  assert.deepEqual(replies, [{ op: "CLOSE", id: 3 }]);
  assert.equal(conn.closed, true);
  assert.deepEqual(await conn.raw(JSON.stringify({ op: "HELLO", version: 1 })), []);
});

Deno.test("Session PASSWD needs a fresh proof of the current password and re-seals nothing in clear", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect();
  await conn.login("alice", PASSWORD);
  const before = (await kit.store.findUser("alice"))!.verifier;
  const wrong = await conn.scram("PASSWD", "alice", "not the password at all", {
    extra: { sealed: await conn.sealed("PASSWD", "alice", NEW_PASSWORD) },
  });
  assert.equal((wrong.reply as { code: string }).code, "AUTH_FAILED");
  assert.equal((await kit.store.findUser("alice"))!.verifier, before);
  await conn.sayHello();
  const ok = await conn.scram("PASSWD", "alice", PASSWORD, {
    extra: { sealed: await conn.sealed("PASSWD", "alice", NEW_PASSWORD) },
  });
  assert.equal(ok.reply.op, "PASSWD");
  const fresh = kit.connect();
  const old = await fresh.scram("LOGIN", "alice", PASSWORD);
  assert.equal((old.reply as { code: string }).code, "AUTH_FAILED");
  await fresh.login("alice", NEW_PASSWORD);
});

Deno.test("Session PASSWD refuses a weak new password before any exchange and another user's proof", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", NEW_PASSWORD);
  const conn = kit.connect({ transport: "tls", confidential: true });
  const notYet = await conn.scram("PASSWD", "alice", PASSWORD, { extra: { password: NEW_PASSWORD } });
  assert.equal((notYet.reply as { code: string }).code, "NOT_LOGGED_IN");
  await conn.login("alice", PASSWORD);
  const weak = await conn.scram("PASSWD", "alice", PASSWORD, { extra: { password: "short" } });
  assert.equal(weak.challenge.op, "ERROR");
  assert.equal((weak.reply as { code: string }).code, "PASSWORD_POLICY");
  const other = await conn.scram("PASSWD", "bob", NEW_PASSWORD, {
    extra: { password: "a brand new passphrase" },
  });
  assert.equal((other.reply as { code: string }).code, "BAD_SCRAM");
  assert.equal(conn.session.user, "alice");
});

Deno.test("Session PASSWD ends the user's other sessions but not other users'", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", NEW_PASSWORD);
  const a1 = kit.connect({ transport: "tls", confidential: true });
  const a2 = kit.connect();
  const b = kit.connect();
  await a1.login("alice", PASSWORD);
  await a2.login("alice", PASSWORD);
  await b.login("bob", NEW_PASSWORD);
  const changed = await a1.scram("PASSWD", "alice", PASSWORD, {
    extra: { password: "fresh meadow quartz 8" },
  });
  assert.equal(changed.reply.op, "PASSWD");
  assert.deepEqual(a2.take(), [{
    op: "BYE",
    code: "PASSWORD_CHANGED",
    reason: "Password changed: log in again",
  }]);
  assert.equal(a2.closed, true);
  assert.equal(b.closed, false);
  assert.equal(a1.session.user, "alice");
  assert.equal(kit.ctx.registry.sessionsOf("bob"), 1);
});

Deno.test("Session DELETE proves the password, removes the account and ends all its sessions", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", NEW_PASSWORD);
  const a1 = kit.connect();
  const a2 = kit.connect();
  const b = kit.connect();
  await a1.login("alice", PASSWORD);
  await a2.login("alice", PASSWORD);
  await b.login("bob", NEW_PASSWORD);
  const wrong = await a1.scram("DELETE", "alice", "definitely wrong words");
  assert.equal((wrong.reply as { code: string }).code, "AUTH_FAILED");
  assert.ok(await kit.store.findUser("alice"));
  const done = await a1.scram("DELETE", "alice", PASSWORD);
  assert.equal(done.reply.op, "DELETE");
  assert.equal((done.reply as { user: string }).user, "alice");
  assert.equal(await kit.store.findUser("alice"), undefined);
  assert.equal(a1.session.user, null);
  assert.equal(a1.closed, false);
  assert.deepEqual(a2.take(), [{ op: "BYE", code: "ACCOUNT_DELETED", reason: "Account deleted" }]);
  assert.equal(a2.closed, true);
  assert.equal(b.closed, false);
  assert.equal((await b.send({ op: "IS_LOGGED" }) as { user: string }).user, "bob");
  const again = kit.connect();
  assert.equal((await again.scram("LOGIN", "alice", PASSWORD)).reply.op, "ERROR");
});
