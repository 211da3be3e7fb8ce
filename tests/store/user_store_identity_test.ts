import assert from "node:assert/strict";
import type { NewUser } from "../../lib/store/user_store.ts";
import { contractTest } from "./_store_kinds.ts";

const VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB";
const NEXT = "SCRAM-SHA-256$4096:bmV3$CCCC:DDDD";

function newUser(name: string): NewUser {
  return { name, nameKey: name.toLowerCase(), verifier: VERIFIER, now: 1_700_000_000_000 };
}

function key(fill: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(32).fill(fill);
}

contractTest(".createUser stores an identity key and backup and findUser returns them", async (db) => {
  const store = await db.open();
  const created = await store.createUser({
    ...newUser("alice"),
    identity: { key: key(1), backup: '{"b":1}' },
  });
  assert.deepEqual(created.identityKey, key(1));
  assert.equal(created.keyBackup, '{"b":1}');
  const found = await store.findUser("alice");
  assert.ok(found?.identityKey instanceof Uint8Array);
  assert.deepEqual(found.identityKey, key(1));
  assert.equal(found.keyBackup, '{"b":1}');
  const plain = await store.createUser(newUser("bob"));
  assert.equal(plain.identityKey, null);
  assert.equal(plain.keyBackup, null);
});

contractTest(".createUser refuses an identity key that is not 32 bytes and stores nothing", async (db) => {
  const store = await db.open();
  for (const bad of [new Uint8Array(31), new Uint8Array(33), new Uint8Array(0)]) {
    await assert.rejects(
      async () => await store.createUser({ ...newUser("alice"), identity: { key: bad, backup: "{}" } }),
      /check constraint/i,
    );
  }
  assert.equal(await store.countUsers(), 0);
});

contractTest(".setIdentity registers a key once and never replaces it", async (db) => {
  const store = await db.open();
  const { id } = await store.createUser(newUser("alice"));
  assert.equal(
    await store.setIdentity(id, NEXT, { key: key(1), backup: "first" }),
    false,
    "a login checked against an older verifier cannot register a key",
  );
  assert.equal(await store.setIdentity(id, VERIFIER, { key: key(1), backup: "first" }), true);
  assert.equal(await store.setIdentity(id, VERIFIER, { key: key(2), backup: "second" }), false);
  const found = await store.findUser("alice");
  assert.deepEqual(found?.identityKey, key(1));
  assert.equal(found?.keyBackup, "first");
  assert.equal(
    await store.setIdentity(id + 1000, VERIFIER, { key: key(3), backup: "x" }),
    false,
    "no such account",
  );
});

contractTest(
  ".setIdentity refuses a key that is not 32 bytes and leaves the account without one",
  async (db) => {
    const store = await db.open();
    const { id } = await store.createUser(newUser("alice"));
    await assert.rejects(
      async () => await store.setIdentity(id, VERIFIER, { key: new Uint8Array(16), backup: "x" }),
      /check constraint/i,
    );
    const found = await store.findUser("alice");
    assert.equal(found?.identityKey, null);
    assert.equal(found?.keyBackup, null);
    assert.equal(await store.setIdentity(id, VERIFIER, { key: key(4), backup: "x" }), true, "still settable");
  },
);

contractTest(".updateVerifier with a backup replaces it only where an identity exists", async (db) => {
  const store = await db.open();
  const alice = await store.createUser({ ...newUser("alice"), identity: { key: key(1), backup: "old" } });
  assert.equal(await store.updateVerifier(alice.id, VERIFIER, NEXT, "new"), true);
  let found = await store.findUser("alice");
  assert.equal(found?.verifier, NEXT);
  assert.equal(found?.keyBackup, "new");
  assert.deepEqual(found?.identityKey, key(1), "the public key stays");

  assert.equal(await store.updateVerifier(alice.id, VERIFIER, VERIFIER, "stale"), false);
  found = await store.findUser("alice");
  assert.equal(found?.keyBackup, "new", "a stale verifier changes neither");
  assert.equal(found?.verifier, NEXT);

  assert.equal(
    await store.updateVerifier(alice.id, NEXT, VERIFIER),
    false,
    "an account with a key never changes its password without a re-sealed backup",
  );
  assert.equal((await store.findUser("alice"))?.verifier, NEXT);

  const bob = await store.createUser(newUser("bob"));
  assert.equal(await store.updateVerifier(bob.id, VERIFIER, NEXT, "orphan"), true);
  found = await store.findUser("bob");
  assert.equal(found?.verifier, NEXT);
  assert.equal(found?.keyBackup, null, "no backup without a key");
  assert.equal(found?.identityKey, null);
});

contractTest(".recordLogin reads the identity key as the login is recorded", async (db) => {
  const store = await db.open();
  const alice = await store.createUser({
    ...newUser("alice"),
    identity: { key: key(4), backup: '{"b":4}' },
  });
  const login = await store.recordLogin(alice.id, VERIFIER, 1000);
  assert.equal(login?.previous, null);
  assert.ok(login?.identity?.key instanceof Uint8Array);
  assert.deepEqual([...login.identity.key], [...key(4)]);
  assert.equal(login.identity.backup, '{"b":4}');
  const bob = await store.createUser(newUser("bob"));
  assert.deepEqual(await store.recordLogin(bob.id, VERIFIER, 1000), { previous: null, identity: null });
  // Registered between a challenge and its proof: the login sees it.
  assert.equal(await store.setIdentity(bob.id, VERIFIER, { key: key(5), backup: '{"b":5}' }), true);
  const again = await store.recordLogin(bob.id, VERIFIER, 2000);
  assert.equal(again?.previous, 1000);
  assert.equal(again?.identity?.backup, '{"b":5}');
});
