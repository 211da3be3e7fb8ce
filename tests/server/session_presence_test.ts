import assert from "node:assert/strict";
import { makeKit, verifierFor } from "./_session_kit.ts";
import type { Kit, TestConnection } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";

const online = (user: string) => ({ op: "PRESENCE", user, state: "online" });
const offline = (user: string) => ({ op: "PRESENCE", user, state: "offline" });

async function loggedIn(kit: Kit, user: string, password = PASSWORD): Promise<TestConnection> {
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.login(user, password);
  return conn;
}

/** A kit with alice and bob, bob logged in and watching. */
async function withWatcher(
  options: Parameters<typeof makeKit>[0] = {},
): Promise<{ kit: Kit; bob: TestConnection }> {
  const kit = await makeKit(options);
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", PASSWORD);
  return { kit, bob: await loggedIn(kit, "bob") };
}

Deno.test("Session tells other logged-in users when a user logs in and out", async () => {
  const { kit, bob } = await withWatcher();
  await using _ = kit;
  const anon = kit.connect();
  await anon.sayHello();
  const alice = await loggedIn(kit, "alice");
  assert.deepEqual(bob.takeNotices(), [online("alice")]);
  assert.deepEqual(anon.takeNotices(), [], "a connection that is not logged in hears nothing");
  assert.deepEqual((await alice.send({ op: "LOGOUT" })).op, "LOGOUT");
  assert.deepEqual(bob.takeNotices(), [offline("alice")]);
  assert.deepEqual(alice.takeNotices(), [], "not told about themselves");
  assert.equal(kit.ctx.presence.get("alice"), undefined);
});

Deno.test("Session keeps a user online until their last session ends", async () => {
  const { kit, bob } = await withWatcher();
  await using _ = kit;
  const a1 = await loggedIn(kit, "alice");
  const a2 = await loggedIn(kit, "alice");
  assert.deepEqual(bob.takeNotices(), [online("alice")]);
  await a1.send({ op: "LOGOUT" });
  assert.deepEqual(bob.takeNotices(), []);
  a2.session.disconnected("reset");
  assert.deepEqual(bob.takeNotices(), [offline("alice")]);
});

Deno.test("Session announces offline when a logged-in connection is lost", async () => {
  const { kit, bob } = await withWatcher();
  await using _ = kit;
  const alice = await loggedIn(kit, "alice");
  bob.takeNotices();
  alice.session.disconnected("connection reset");
  alice.session.disconnected("again");
  assert.deepEqual(bob.takeNotices(), [offline("alice")]);
  assert.equal(kit.ctx.presence.get("alice"), undefined);
  assert.equal(kit.ctx.registry.sessionsOf("alice"), 0);
});

Deno.test("Session announces a switch of user on LOGIN as another user", async () => {
  const { kit, bob } = await withWatcher();
  await using _ = kit;
  await kit.addUser("carol", PASSWORD);
  const conn = await loggedIn(kit, "alice");
  bob.takeNotices();
  await conn.login("carol", PASSWORD);
  assert.deepEqual(bob.takeNotices(), [offline("alice"), online("carol")]);
});

Deno.test("Session DELETE takes every session of the user offline with one notice", async () => {
  const { kit, bob } = await withWatcher();
  await using _ = kit;
  const a1 = await loggedIn(kit, "alice");
  const a2 = await loggedIn(kit, "alice");
  bob.takeNotices();
  const done = await a1.scram("DELETE", "alice", PASSWORD);
  assert.equal(done.reply.op, "DELETE");
  assert.equal(a2.closed, true);
  assert.deepEqual(bob.takeNotices(), [offline("alice")]);
  assert.equal(kit.ctx.presence.get("alice"), undefined);
});

Deno.test("Session PASSWD ends the other sessions of the user but leaves the user online", async () => {
  const { kit, bob } = await withWatcher();
  await using _ = kit;
  const a1 = await loggedIn(kit, "alice");
  const a2 = await loggedIn(kit, "alice");
  bob.takeNotices();
  const changed = await a1.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor("fresh meadow quartz 8") },
  });
  assert.equal(changed.reply.op, "PASSWD");
  assert.deepEqual(a2.take(), [{
    op: "BYE",
    code: "PASSWORD_CHANGED",
    reason: "Password changed: log in again",
  }]);
  assert.deepEqual(bob.takeNotices(), [], "still online through the session that changed it");
  // The ended session left presence: the last one out takes the user offline.
  await a1.send({ op: "LOGOUT" });
  assert.deepEqual(bob.takeNotices(), [offline("alice")]);
});

Deno.test("Session HELLO with keepalive holds the session to the keepalive timeout before any PING", async () => {
  await using kit = await makeKit({ keepaliveTimeoutMs: 15_000, idleTimeoutMs: 900_000 });
  await kit.addUser("alice", PASSWORD);
  const plain = kit.connect();
  await plain.sayHello();
  await plain.login("alice", PASSWORD);
  assert.equal(plain.session.deadline, kit.clock.now + 900_000, "without it: the idle timeout");
  const pinging = kit.connect();
  assert.equal((await pinging.send({ op: "HELLO", version: 1, keepalive: true })).op, "HELLO");
  await pinging.login("alice", PASSWORD);
  assert.equal(pinging.session.deadline, kit.clock.now + 15_000, "with it: the keepalive timeout at once");
  kit.clock.now += 15_001;
  pinging.session.tick(kit.clock.now);
  assert.equal((pinging.take()[0] as { code?: string })?.code, "KEEPALIVE_TIMEOUT");
});

Deno.test("Session PING answers PONG and holds the session to the keepalive timeout", async () => {
  const { kit, bob } = await withWatcher({ keepaliveTimeoutMs: 15_000, idleTimeoutMs: 900_000 });
  await using _ = kit;
  const alice = await loggedIn(kit, "alice");
  bob.takeNotices();
  assert.equal(alice.session.deadline, kit.clock.now + 900_000);
  assert.deepEqual(await alice.send({ op: "PING", id: 5 }), { op: "PONG", id: 5 });
  assert.equal(alice.session.deadline, kit.clock.now + 15_000);
  kit.clock.now += 10_000;
  await alice.send({ op: "PING" });
  alice.session.tick(kit.clock.now + 14_999);
  assert.equal(alice.closed, false, "each message restarts the keepalive timeout");
  kit.clock.now += 15_001;
  alice.session.tick(kit.clock.now);
  assert.deepEqual(alice.take(), [{
    op: "BYE",
    code: "KEEPALIVE_TIMEOUT",
    reason: "No keepalive for 15 s: session closed",
  }]);
  assert.equal(alice.closed, true);
  assert.deepEqual(bob.takeNotices(), [offline("alice")]);
  assert.equal(kit.ctx.presence.get("alice"), undefined);
  assert.match(kit.logs.join("\n"), /"code":"KEEPALIVE_TIMEOUT"/);
});

Deno.test("Session keeps the idle timeout for a session that never sends PING", async () => {
  const { kit, bob } = await withWatcher({ keepaliveTimeoutMs: 15_000, idleTimeoutMs: 60_000 });
  await using _ = kit;
  const alice = await loggedIn(kit, "alice");
  bob.takeNotices();
  alice.session.tick(kit.clock.now + 15_001);
  alice.session.tick(kit.clock.now + 59_999);
  assert.equal(alice.closed, false);
  assert.deepEqual(bob.takeNotices(), []);
  alice.session.tick(kit.clock.now + 60_000);
  assert.deepEqual(alice.take(), [{
    op: "BYE",
    code: "IDLE_TIMEOUT",
    reason: "Idle for 60 s: session closed",
  }]);
  assert.deepEqual(bob.takeNotices(), [offline("alice")]);
});

Deno.test("Session keepalive timeout never exceeds the idle timeout", async () => {
  const { kit } = await withWatcher({ keepaliveTimeoutMs: 120_000, idleTimeoutMs: 60_000 });
  await using _ = kit;
  const alice = await loggedIn(kit, "alice");
  await alice.send({ op: "PING" });
  assert.equal(alice.session.deadline, kit.clock.now + 60_000);
});

Deno.test("Session PING before login answers PONG and keeps the auth timeout", async () => {
  await using kit = await makeKit({ authTimeoutMs: 30_000, keepaliveTimeoutMs: 5_000 });
  const conn = kit.connect();
  await conn.sayHello();
  const deadline = conn.session.deadline;
  assert.equal((await conn.send({ op: "PING" })).op, "PONG");
  assert.equal(conn.session.deadline, deadline);
  conn.session.tick(deadline);
  assert.equal((conn.take().at(-1) as { code: string }).code, "AUTH_TIMEOUT");
});
