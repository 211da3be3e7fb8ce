import assert from "node:assert/strict";
import { SessionRecheck } from "../../lib/server/session_recheck.ts";
import type { UserStore } from "../../lib/store/user_store.ts";
import { makeKit, verifierFor } from "./_session_kit.ts";
import type { Kit, TestConnection } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";
const NEW_PASSWORD = "amber glacier piano 17";

/** The store with its verifiersOf calls counted (ids asked for, per call). */
function countingStore(kit: Kit): { store: UserStore; calls: number[][] } {
  const calls: number[][] = [];
  const inner = kit.ctx.store;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "verifiersOf") {
        return (ids: readonly number[]) => {
          calls.push([...ids]);
          return target.verifiersOf(ids);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store, calls };
}

function lastBye(connection: TestConnection): unknown {
  return connection.take().filter((m) => m.op === "BYE").at(-1);
}

Deno.test("SessionRecheck ends the sessions of a changed password and of a deleted account, with their BYE codes", async () => {
  await using kit = await makeKit();
  const alice = await kit.addUser("alice", PASSWORD);
  const bob = await kit.addUser("bob", PASSWORD);
  await kit.addUser("carol", PASSWORD);
  const [a1, a2, b, c] = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"].map((ip) =>
    kit.connect({ peerAddress: ip })
  ) as [TestConnection, TestConnection, TestConnection, TestConnection];
  await a1.login("alice", PASSWORD);
  await a2.login("alice", PASSWORD);
  await b.login("bob", PASSWORD);
  await c.login("carol", PASSWORD);
  const anonymous = kit.connect({ peerAddress: "10.0.0.5" });
  await anonymous.sayHello();
  // Another node changed alice's password and deleted bob, and nobody told this one.
  assert.ok(await kit.store.updateVerifier(alice.id, alice.verifier, await verifierFor(NEW_PASSWORD)));
  assert.ok(await kit.store.deleteUser(bob.id, bob.verifier));

  const recheck = new SessionRecheck(kit.ctx.registry, kit.ctx.store, kit.ctx.log);
  assert.deepEqual(await recheck.run(), { checked: 4, ended: 3, failed: false });
  for (const session of [a1, a2]) {
    assert.deepEqual(lastBye(session), {
      op: "BYE",
      code: "PASSWORD_CHANGED",
      reason: "Password changed: log in again",
    });
    assert.ok(session.closed);
  }
  assert.deepEqual(lastBye(b), { op: "BYE", code: "ACCOUNT_DELETED", reason: "Account deleted" });
  assert.equal(c.session.user, "carol", "an unchanged account's session stays");
  assert.equal(anonymous.closed, false, "a session not logged in is not concerned");
  assert.equal(kit.ctx.registry.sessionsOf("alice") + kit.ctx.registry.sessionsOf("bob"), 0);
  assert.equal(kit.ctx.presence.get("alice"), undefined, "alice is offline");
  assert.ok(
    kit.logs.some((l) => l.includes('"event":"session_recheck"') && l.includes('"ended_sessions":3')),
  );
  assert.deepEqual(await recheck.run(), { checked: 1, ended: 0, failed: false });
});

Deno.test("SessionRecheck leaves a session that changed its own password while the store was asked", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const owner = kit.connect({ transport: "tls", confidential: true });
  await owner.login("alice", PASSWORD);
  const inner = kit.ctx.store;
  const asked = Promise.withResolvers<void>();
  const answer = Promise.withResolvers<void>();
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "verifiersOf") {
        return async (ids: readonly number[]) => {
          // Read before the PASSWD commits, answered after: the old verifier.
          const read = await target.verifiersOf(ids);
          asked.resolve();
          await answer.promise;
          return read;
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const recheck = new SessionRecheck(kit.ctx.registry, store, kit.ctx.log);
  const pass = recheck.run();
  await asked.promise;
  const changed = await owner.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor(NEW_PASSWORD) },
  });
  assert.equal(changed.reply.op, "PASSWD");
  answer.resolve();
  assert.deepEqual(await pass, { checked: 1, ended: 0, failed: false });
  assert.equal(owner.session.user, "alice");
  assert.deepEqual(await recheck.run(), { checked: 1, ended: 0, failed: false }, "and the next pass agrees");
});

Deno.test("SessionRecheck ends the asking session too when its PASSWD committed but the database did not say so", async () => {
  await using kit = await makeKit();
  const alice = await kit.addUser("alice", PASSWORD);
  const owner = kit.connect({ transport: "tls", confidential: true });
  await owner.login("alice", PASSWORD);
  // The PASSWD was answered UNAVAILABLE, yet committed: the session still holds the old verifier.
  assert.ok(await kit.store.updateVerifier(alice.id, alice.verifier, await verifierFor(NEW_PASSWORD)));
  const recheck = new SessionRecheck(kit.ctx.registry, kit.ctx.store, kit.ctx.log);
  assert.equal((await recheck.run()).ended, 1);
  assert.equal((lastBye(owner) as { code: string }).code, "PASSWORD_CHANGED");
});

Deno.test("SessionRecheck reads the accounts in batches, one query per batch, each account once", async () => {
  await using kit = await makeKit({ maxConnectionsPerIp: 10_000 });
  const users = [];
  for (let i = 0; i < 5; i++) users.push(await kit.addUser(`user${i}`, PASSWORD));
  const sessions: TestConnection[] = [];
  for (let i = 0; i < 25; i++) {
    const connection = kit.connect({ peerAddress: `10.1.0.${i}` });
    await connection.login(`user${i % 5}`, PASSWORD);
    sessions.push(connection);
  }
  const { store, calls } = countingStore(kit);
  const recheck = new SessionRecheck(kit.ctx.registry, store, kit.ctx.log, { batch: 10 });
  assert.deepEqual(await recheck.run(), { checked: 25, ended: 0, failed: false });
  assert.equal(calls.length, 3, "25 sessions in batches of 10");
  for (const ids of calls) assert.equal(new Set(ids).size, ids.length, "no id twice in a query");
  assert.deepEqual(new Set(calls.flat()), new Set(users.map((u) => u.id)));
});

Deno.test("SessionRecheck ends nothing when the store fails, says so, and succeeds on the next pass", async () => {
  await using kit = await makeKit();
  const alice = await kit.addUser("alice", PASSWORD);
  const session = kit.connect();
  await session.login("alice", PASSWORD);
  assert.ok(await kit.store.deleteUser(alice.id, alice.verifier));
  let fail = true;
  const inner = kit.ctx.store;
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "verifiersOf" && fail) return () => Promise.reject(new Error("database away"));
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const recheck = new SessionRecheck(kit.ctx.registry, store, kit.ctx.log);
  assert.deepEqual(await recheck.run(), { checked: 0, ended: 0, failed: true });
  assert.equal(session.session.user, "alice", "kept while the store cannot tell");
  assert.ok(kit.logs.some((l) => l.includes('"event":"session_recheck_failed"')));
  fail = false;
  assert.deepEqual(await recheck.run(), { checked: 1, ended: 1, failed: false });
});

Deno.test("SessionRecheck runs one pass at a time, and once more when asked during one", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const session = kit.connect();
  await session.login("alice", PASSWORD);
  const { store, calls } = countingStore(kit);
  const recheck = new SessionRecheck(kit.ctx.registry, store, kit.ctx.log);
  const passes = [recheck.run(), recheck.run(), recheck.run()];
  await Promise.all(passes);
  assert.equal(calls.length, 2, "the pass under way, then one more for the two asked during it");
});
