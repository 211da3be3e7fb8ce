import assert from "node:assert/strict";
import { formatVerifier, parseVerifier } from "../../lib/crypto/scram_verifier.ts";
import { KIT_ITERATIONS, KIT_PASSWORD_MIN_LENGTH, makeKit, verifierFor } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";
const NEW_PASSWORD = "amber glacier piano 17";

Deno.test("Session HELLO reports version, mechanisms, seal key, a fresh nonce and what a verifier needs", async () => {
  await using kit = await makeKit();
  const tcp = kit.connect();
  const hello = await tcp.sayHello();
  assert.equal(hello.version, 1);
  assert.deepEqual(hello.versions, [1]);
  assert.deepEqual(hello.mechanisms, ["SCRAM-SHA-256"]);
  assert.equal(hello.confidential, false);
  assert.equal(hello.seal_key, kit.ctx.sealPublicKey);
  assert.equal(hello.iterations, KIT_ITERATIONS);
  assert.equal(hello.password_min_length, KIT_PASSWORD_MIN_LENGTH);
  const tls = kit.connect({ transport: "tls", confidential: true, channelBinding: new Uint8Array(32) });
  const tlsHello = await tls.sayHello();
  assert.deepEqual(tlsHello.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
  assert.equal(tlsHello.confidential, true);
  assert.notEqual(tlsHello.seal_nonce, hello.seal_nonce);
  assert.equal(tlsHello.iterations, KIT_ITERATIONS);
});

Deno.test("Session HELLO carries the configured iteration count and shortest password", async () => {
  await using kit = await makeKit({ iterations: 5000, passwordMinLength: 14 });
  for (const info of [{}, { transport: "tls" as const, confidential: true }]) {
    const hello = await kit.connect(info).sayHello();
    assert.equal(hello.iterations, 5000);
    assert.equal(hello.password_min_length, 14);
  }
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

Deno.test("Session registers over TLS with the verifier in the channel and over TCP sealed", async () => {
  await using kit = await makeKit();
  const tls = kit.connect({ transport: "tls", confidential: true });
  await tls.sayHello();
  const viaTls = await tls.send({ op: "REGISTER", user: "Alice", verifier: await verifierFor(PASSWORD) });
  assert.deepEqual(viaTls, { op: "REGISTER", id: 2, user: "Alice" });
  const tcp = kit.connect();
  const bobVerifier = await verifierFor(NEW_PASSWORD);
  const sealed = await tcp.sealed("REGISTER", "bob", bobVerifier);
  const viaTcp = await tcp.send({ op: "REGISTER", user: "bob", sealed });
  assert.equal(viaTcp.op, "REGISTER");
  const stored = await kit.store.findUser("alice");
  assert.ok(stored);
  assert.equal(stored.name, "Alice");
  assert.equal(parseVerifier(stored.verifier).iterations, KIT_ITERATIONS);
  assert.equal((await kit.store.findUser("bob"))?.verifier, bobVerifier, "the sealed verifier, as sent");
  await kit.connect().login("alice", PASSWORD);
  await kit.connect().login("bob", NEW_PASSWORD);
});

Deno.test("Session REGISTER over TLS stores the verifier byte for byte and the password then logs in", async () => {
  await using kit = await makeKit();
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.sayHello();
  const verifier = await verifierFor(PASSWORD, { salt: new Uint8Array(32).fill(0xa5) });
  assert.equal((await conn.send({ op: "REGISTER", user: "alice", verifier })).op, "REGISTER");
  assert.equal((await kit.store.findUser("alice"))?.verifier, verifier);
  const { reply } = await kit.connect().login("alice", PASSWORD);
  assert.equal(reply.user, "alice");
  assert.equal((await kit.connect().scram("LOGIN", "alice", NEW_PASSWORD)).reply.op, "ERROR");
});

Deno.test("Session registration refuses taken names in any case and bad names, and stores any password's verifier", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.sayHello();
  const taken = await conn.send({ op: "REGISTER", user: "ALICE", verifier: await verifierFor(NEW_PASSWORD) });
  assert.equal((taken as { code: string }).code, "USER_EXISTS");
  // The server never sees the password, so the policy is the client's to apply: a verifier is a verifier.
  const weak = await verifierFor("iloveyou");
  assert.equal((await conn.send({ op: "REGISTER", user: "carol", verifier: weak })).op, "REGISTER");
  assert.equal((await kit.store.findUser("carol"))?.verifier, weak);
  const spaced = await conn.send({
    op: "REGISTER",
    user: "car ol",
    verifier: await verifierFor(NEW_PASSWORD),
  });
  assert.equal((spaced as { code: string }).code, "INVALID_USERNAME");
  assert.equal(await kit.store.countUsers(), 2);
});

/** Verifier texts of the wrong form, with what the refusal says. */
async function badVerifiers(): Promise<[string, string, RegExp][]> {
  const good = await verifierFor(PASSWORD);
  return [
    [
      "another iteration count",
      await verifierFor(PASSWORD, { iterations: 2 * KIT_ITERATIONS }),
      new RegExp(`${2 * KIT_ITERATIONS} iterations, this server uses ${KIT_ITERATIONS} \\(see HELLO\\)`),
    ],
    ["too few iterations", good.replace(`$${KIT_ITERATIONS}:`, "$1000:"), /out of range/],
    [
      "a salt shorter than 16 bytes",
      await verifierFor(PASSWORD, { salt: new Uint8Array(15).fill(1) }),
      /a salt of 15 bytes, expected 16 to 64/,
    ],
    [
      "a salt longer than 64 bytes",
      await verifierFor(PASSWORD, { salt: new Uint8Array(65).fill(1) }),
      /a salt of 65 bytes/,
    ],
    ["the password itself", PASSWORD, /Not a SCRAM-SHA-256 verifier/],
    [
      "a StoredKey that is not 32 bytes",
      formatVerifier({ ...parseVerifier(good), storedKey: new Uint8Array(16) }),
      /Invalid verifier StoredKey: not 32 bytes/,
    ],
  ];
}

Deno.test("Session REGISTER refuses a verifier of another iteration count, a bad salt or other text, and creates no account", async () => {
  await using kit = await makeKit();
  const tls = kit.connect({ transport: "tls", confidential: true });
  const tcp = kit.connect();
  await tls.sayHello();
  for (const [what, verifier, message] of await badVerifiers()) {
    const clear = await tls.send({ op: "REGISTER", user: "alice", verifier });
    assert.equal((clear as { code: string }).code, "BAD_MESSAGE", what);
    assert.match((clear as { message: string }).message, message, what);
    // Sealed, the same text is opened and then refused for the same reason.
    const sealed = await tcp.sealed("REGISTER", "alice", verifier);
    const opened = await tcp.send({ op: "REGISTER", user: "alice", sealed });
    assert.equal((opened as { code: string }).code, "BAD_MESSAGE", `${what}, sealed`);
    assert.match((opened as { message: string }).message, message, `${what}, sealed`);
    await tcp.sayHello();
  }
  assert.equal(await kit.store.countUsers(), 0);
  assert.equal(
    (await tls.send({ op: "REGISTER", user: "alice", verifier: await verifierFor(PASSWORD) })).op,
    "REGISTER",
  );
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

Deno.test("Session answers a PING between a challenge and its proof and completes the exchange", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect();
  const final = await conn.heldProof("LOGIN", "alice", PASSWORD);
  // The client's keepalive runs on its own clock: it may cross any exchange.
  assert.equal((await conn.send({ op: "PING", id: 9 })).op, "PONG");
  const reply = await conn.send({ op: "PROOF", data: final });
  assert.equal(reply.op, "LOGIN", JSON.stringify(reply));
  assert.equal(conn.session.user, "alice");
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
    extra: { sealed: await conn.sealed("PASSWD", "alice", await verifierFor(NEW_PASSWORD)) },
  });
  assert.equal((wrong.reply as { code: string }).code, "AUTH_FAILED");
  assert.equal((await kit.store.findUser("alice"))!.verifier, before);
  await conn.sayHello();
  const verifier = await verifierFor(NEW_PASSWORD);
  const ok = await conn.scram("PASSWD", "alice", PASSWORD, {
    extra: { sealed: await conn.sealed("PASSWD", "alice", verifier) },
  });
  assert.equal(ok.reply.op, "PASSWD");
  assert.equal((await kit.store.findUser("alice"))!.verifier, verifier);
  const fresh = kit.connect();
  const old = await fresh.scram("LOGIN", "alice", PASSWORD);
  assert.equal((old.reply as { code: string }).code, "AUTH_FAILED");
  await fresh.login("alice", NEW_PASSWORD);
});

Deno.test("Session PASSWD needs a login, refuses another user's proof and stores any password's verifier", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", NEW_PASSWORD);
  const conn = kit.connect({ transport: "tls", confidential: true });
  const notYet = await conn.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor(NEW_PASSWORD) },
  });
  assert.equal((notYet.reply as { code: string }).code, "NOT_LOGGED_IN");
  await conn.login("alice", PASSWORD);
  const other = await conn.scram("PASSWD", "bob", NEW_PASSWORD, {
    extra: { verifier: await verifierFor("a brand new passphrase") },
  });
  assert.equal((other.reply as { code: string }).code, "BAD_SCRAM");
  assert.equal(conn.session.user, "alice");
  // The server never sees the new password, so the policy is the client's to apply.
  const weak = await verifierFor("short");
  const changed = await conn.scram("PASSWD", "alice", PASSWORD, { extra: { verifier: weak } });
  assert.equal(changed.reply.op, "PASSWD");
  assert.equal((await kit.store.findUser("alice"))!.verifier, weak);
  await kit.connect().login("alice", "short");
});

Deno.test("Session PASSWD refuses a bad new verifier before any exchange and changes nothing", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const tls = kit.connect({ transport: "tls", confidential: true });
  const tcp = kit.connect();
  const watcher = kit.connect();
  await tls.login("alice", PASSWORD);
  await tcp.login("alice", PASSWORD);
  await watcher.login("alice", PASSWORD);
  const before = await kit.store.findUser("alice");
  for (const [what, verifier, message] of await badVerifiers()) {
    const clear = await tls.scram("PASSWD", "alice", PASSWORD, { extra: { verifier } });
    assert.equal(clear.challenge.op, "ERROR", `${what}: no CHALLENGE`);
    assert.equal((clear.reply as { code: string }).code, "BAD_MESSAGE", what);
    assert.match((clear.reply as { message: string }).message, message, what);
    const sealed = await tcp.scram("PASSWD", "alice", PASSWORD, {
      extra: { sealed: await tcp.sealed("PASSWD", "alice", verifier) },
    });
    assert.equal(sealed.challenge.op, "ERROR", `${what}, sealed: no CHALLENGE`);
    assert.equal((sealed.reply as { code: string }).code, "BAD_MESSAGE", `${what}, sealed`);
    await tcp.sayHello();
  }
  assert.deepEqual(await kit.store.findUser("alice"), before);
  assert.equal(watcher.closed, false, "no other session was ended");
  assert.equal(tls.session.user, "alice");
  await kit.connect().login("alice", PASSWORD);
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
    extra: { verifier: await verifierFor("fresh meadow quartz 8") },
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

Deno.test("Session PASSWD and DELETE end the user's sessions on the other nodes before they reply", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const asked: string[] = [];
  let finish = () => {};
  kit.ctx.sessions = {
    endElsewhere(userKey, code) {
      asked.push(`${userKey} ${code}`);
      return new Promise((resolve) => finish = () => resolve(2));
    },
    serve() {},
    loginsRefused: () => null,
  };
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.login("alice", PASSWORD);
  const verifier = await verifierFor(NEW_PASSWORD);
  let replied = false;
  const changing = conn.scram("PASSWD", "alice", PASSWORD, { extra: { verifier } }).finally(() =>
    replied = true
  );
  for (let i = 0; asked.length === 0; i++) {
    assert.ok(i < 1000, "the other nodes were not asked");
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.deepEqual(asked, ["alice PASSWORD_CHANGED"]);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(replied, false, "PASSWD replied before the others ended");
  finish();
  assert.equal((await changing).reply.op, "PASSWD");
  assert.ok(kit.logs.some((l) => l.includes('"event":"passwd"') && l.includes('"ended_sessions":2')));

  replied = false;
  const deleting = conn.scram("DELETE", "alice", NEW_PASSWORD).finally(() => replied = true);
  for (let i = 0; asked.length === 1; i++) {
    assert.ok(i < 1000, "the other nodes were not asked");
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.deepEqual(asked, ["alice PASSWORD_CHANGED", "alice ACCOUNT_DELETED"]);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(replied, false, "DELETE replied before the others ended");
  finish();
  assert.equal((await deleting).reply.op, "DELETE");
});

Deno.test("Session refuses a login with UNAVAILABLE while the node has lost touch with the others", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  let refused: string | null = "Cut off from the other nodes";
  kit.ctx.sessions = { ...kit.ctx.sessions, loginsRefused: () => refused };
  const conn = kit.connect();
  const { reply } = await conn.scram("LOGIN", "alice", PASSWORD);
  assert.equal(reply.op, "ERROR");
  assert.equal((reply as { code: string }).code, "UNAVAILABLE");
  assert.equal((reply as { message: string }).message, "Cut off from the other nodes");
  assert.equal(conn.session.user, null);
  assert.equal(kit.ctx.registry.sessionsOf("alice"), 0);
  refused = null;
  assert.equal((await conn.login("alice", PASSWORD)).reply.op, "LOGIN");
});

Deno.test("Session refuses a login whose node loses touch while its proof is checked", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  let refused: string | null = null;
  kit.ctx.sessions = { ...kit.ctx.sessions, loginsRefused: () => refused };
  const conn = kit.connect();
  const final = await conn.heldProof("LOGIN", "alice", PASSWORD);
  // The fence comes between the challenge and the proof.
  refused = "Cut off";
  const reply = await conn.send({ op: "PROOF", data: final });
  assert.equal((reply as { code?: string }).code, "UNAVAILABLE");
  assert.equal(conn.session.user, null);
  assert.equal(kit.ctx.registry.sessionsOf("alice"), 0);
});
