import assert from "node:assert/strict";
import { prepareUsername } from "../../lib/auth/username.ts";
import type { NewUser } from "../../lib/store/user_store.ts";
import { contractTest } from "./_store_kinds.ts";

const VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB";
const NEXT = "SCRAM-SHA-256$4096:bmV3$CCCC:DDDD";

function newUser(name: string, mustChangePassword?: boolean): NewUser {
  return {
    name,
    nameKey: prepareUsername(name).key,
    verifier: VERIFIER,
    now: 1_700_000_000_000,
    ...(mustChangePassword === undefined ? {} : { mustChangePassword }),
  };
}

contractTest(".createUser stores the must-change-password flag, off unless asked", async (db) => {
  const store = await db.open();
  assert.equal((await store.createUser(newUser("plain"))).mustChangePassword, false);
  assert.equal((await store.createUser(newUser("off", false))).mustChangePassword, false);
  const flagged = await store.createUser(newUser("user10", true));
  assert.equal(flagged.mustChangePassword, true);
  assert.equal((await store.findUser("user10"))?.mustChangePassword, true);
  assert.equal((await store.findUser("plain"))?.mustChangePassword, false);
});

contractTest(
  ".updateVerifier clears the flag in the same write, and only when it changes the verifier",
  async (db) => {
    const store = await db.open();
    const { id } = await store.createUser(newUser("user10", true));
    assert.equal(await store.updateVerifier(id, NEXT, NEXT), false, "a stale verifier changes nothing");
    assert.equal((await store.findUser("user10"))?.mustChangePassword, true, "so the flag stays");
    assert.equal((await store.recordLogin(id, VERIFIER, 5))?.previous, null, "a login does not clear it");
    assert.equal((await store.findUser("user10"))?.mustChangePassword, true);
    assert.equal(await store.updateVerifier(id, VERIFIER, NEXT), true);
    const after = await store.findUser("user10");
    assert.equal(after?.verifier, NEXT);
    assert.equal(after?.mustChangePassword, false);
  },
);

contractTest(".updateVerifier with a backup clears the flag too, and keeps its identity rule", async (db) => {
  const store = await db.open();
  const key = new Uint8Array(32).fill(3);
  const { id } = await store.createUser({ ...newUser("kim", true), identity: { key, backup: "old" } });
  assert.equal(await store.updateVerifier(id, VERIFIER, NEXT), false, "a key needs its re-sealed backup");
  assert.equal((await store.findUser("kim"))?.mustChangePassword, true, "a refused change keeps the flag");
  assert.equal(await store.updateVerifier(id, VERIFIER, NEXT, "new"), true);
  const after = await store.findUser("kim");
  assert.equal(after?.keyBackup, "new");
  assert.equal(after?.mustChangePassword, false);
});

contractTest(".open upgrades a version 2 database: accounts kept, none flagged, flags work", async (db) => {
  await db.legacy(2, [{
    name: "Alice",
    name_key: "alice",
    verifier: VERIFIER,
    created_at: 7,
    identity_key: new Uint8Array(32).fill(1),
    key_backup: "backup",
  }]);
  const store = await db.open();
  const alice = await store.findUser("alice");
  assert.equal(alice?.name, "Alice");
  assert.equal(alice?.keyBackup, "backup");
  assert.equal(alice?.mustChangePassword, false);
  assert.equal((await store.createUser(newUser("user10", true))).mustChangePassword, true);
});
