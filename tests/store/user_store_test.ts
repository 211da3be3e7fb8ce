// The UserStore contract, run against every implementation (tests/store/_store_kinds.ts).
import assert from "node:assert/strict";
import { prepareUsername } from "../../lib/auth/username.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import type { NewUser, UserRecord } from "../../lib/store/user_store.ts";
import { contractTest } from "./_store_kinds.ts";

const VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB";

function newUser(name: string, now = 1_700_000_000_000, verifier = VERIFIER): NewUser {
  return { name, nameKey: prepareUsername(name).key, verifier, now };
}

/** A verifier of its own, as each registration's random salt gives. */
function saltedFor(name: string): string {
  return `SCRAM-SHA-256$4096:${btoa(`salt-of-${name}`)}$AAAA:BBBB`;
}

contractTest(".open does not migrate again on reopen", async (db) => {
  const first = await db.open();
  const secret = (await first.mockSecret()).slice();
  await first.createUser(newUser("alice"));
  await first.close();
  const again = await db.open();
  assert.deepEqual(await again.mockSecret(), secret, "the secret was not drawn again");
  assert.equal(await again.countUsers(), 1, "the tables were not recreated");
});

contractTest("creates and finds users by their lower-cased key", async (db) => {
  const store = await db.open();
  const created = await store.createUser(newUser("Alice", 1234));
  assert.deepEqual(created, {
    id: created.id,
    name: "Alice",
    nameKey: "alice",
    verifier: VERIFIER,
    createdAt: 1234,
    lastLoginAt: null,
    identityKey: null,
    keyBackup: null,
    mustChangePassword: false,
  });
  assert.ok(Number.isInteger(created.id) && created.id > 0);
  assert.deepEqual(await store.findUser(prepareUsername("ALICE").key), created);
  assert.equal(await store.findUser("bob"), undefined);
  assert.equal(await store.countUsers(), 1);
});

contractTest("keeps times past 2^31 ms and ids as numbers", async (db) => {
  const store = await db.open();
  const created = await store.createUser(newUser("dora", 4_102_444_800_000));
  assert.equal(typeof created.id, "number");
  assert.equal((await store.findUser("dora"))?.createdAt, 4_102_444_800_000);
  assert.equal((await store.recordLogin(created.id, VERIFIER, 4_102_444_800_001))?.previous, null);
  await store.flushLogins();
  assert.equal((await store.findUser("dora"))?.lastLoginAt, 4_102_444_800_001);
});

contractTest("refuses the same name in another case with USER_EXISTS", async (db) => {
  const store = await db.open();
  await store.createUser(newUser("alice"));
  await assert.rejects(store.createUser(newUser("ALICE")), (err: unknown) => {
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, "USER_EXISTS");
    return true;
  });
  assert.equal(await store.countUsers(), 1);
  assert.equal((await store.findUser("alice"))?.name, "alice");
});

contractTest("refuses the same name registered at once through two stores: one is created", async (db) => {
  const store = await db.open();
  const other = await db.open();
  const results = await Promise.allSettled(
    ["carol", "CAROL", "Carol", "cArol"].map((name, i) =>
      (i % 2 === 0 ? store : other).createUser(newUser(name, 1, saltedFor(name)))
    ),
  );
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 1, JSON.stringify(results));
  for (const r of results) {
    if (r.status === "rejected") {
      assert.equal((r.reason as ProtocolError).code, "USER_EXISTS", String(r.reason));
    }
  }
  assert.equal(await other.countUsers(), 1);
});

contractTest("stores names with SQL metacharacters verbatim", async (db) => {
  const store = await db.open();
  const names = [
    "o'brien",
    "x');DROP/**/TABLE/**/users;--",
    "a%_b",
    'q"uote\\',
    "semi;colon",
    "$1",
    "dollar$$quote",
  ];
  for (const name of names) await store.createUser(newUser(name, 1, saltedFor(name)));
  for (const name of names) {
    const found = await store.findUser(name.toLowerCase());
    assert.equal(found?.name, name);
  }
  assert.equal(await store.findUser("a%"), undefined, "no LIKE matching");
  assert.equal(await store.countUsers(), names.length);
});

contractTest("refuses a verifier that is not SCRAM-SHA-256", async (db) => {
  const store = await db.open();
  await assert.rejects(store.createUser({ ...newUser("alice"), verifier: "plaintext-password" }));
  await assert.rejects(
    store.createUser({ ...newUser("bob"), verifier: "scram-sha-256$4096:x" }),
    "case-sensitive",
  );
  assert.equal(await store.countUsers(), 0);
});

contractTest(".updateVerifier and deleteUser act only on the verifier the caller checked", async (db) => {
  const store = await db.open();
  const { id, verifier: first } = await store.createUser(newUser("alice"));
  const next = "SCRAM-SHA-256$4096:bmV3$CCCC:DDDD";
  assert.equal(await store.updateVerifier(id, first, next), true);
  assert.equal((await store.findUser("alice"))?.verifier, next);
  assert.equal(await store.updateVerifier(id, first, first), false, "a stale verifier changes nothing");
  assert.equal((await store.findUser("alice"))?.verifier, next);
  assert.equal(await store.updateVerifier(id + 1000, next, next), false);
  assert.equal(await store.deleteUser(id, first), false, "a stale verifier deletes nothing");
  assert.equal(await store.deleteUser(id, next), true);
  assert.equal(await store.findUser("alice"), undefined);
  assert.equal(await store.deleteUser(id, next), false);
  assert.equal(await store.updateVerifier(id, next, next), false);
});

contractTest(
  "lets one of two password changes from the same old verifier commit, through two stores",
  async (db) => {
    const store = await db.open();
    const other = await db.open();
    const { id, verifier } = await store.createUser(newUser("erin"));
    const results = await Promise.all([
      store.updateVerifier(id, verifier, "SCRAM-SHA-256$4096:b25l$AAAA:BBBB"),
      other.updateVerifier(id, verifier, "SCRAM-SHA-256$4096:dHdv$AAAA:BBBB"),
    ]);
    assert.deepEqual(results.toSorted(), [false, true]);
    const now = (await other.findUser("erin"))!.verifier;
    assert.equal(now, results[0] ? "SCRAM-SHA-256$4096:b25l$AAAA:BBBB" : "SCRAM-SHA-256$4096:dHdv$AAAA:BBBB");
    assert.equal(await store.recordLogin(id, verifier, 1), undefined, "the old password logs in nowhere");
    assert.equal(await other.deleteUser(id, verifier), false, "nor deletes the account");
  },
);

contractTest(
  ".recordLogin returns null, then the previous time, and undefined for no account",
  async (db) => {
    const store = await db.open();
    const { id, verifier } = await store.createUser(newUser("alice"));
    assert.equal((await store.recordLogin(id, verifier, 1000))?.previous, null);
    assert.equal((await store.recordLogin(id, verifier, 2000))?.previous, 1000);
    assert.equal((await store.recordLogin(id, verifier, 3000))?.previous, 2000);
    assert.equal((await store.findUser("alice"))?.lastLoginAt, 3000);
    assert.equal(await store.recordLogin(id + 1000, verifier, 4000), undefined);
    assert.equal(await store.recordLogin(id, "SCRAM-SHA-256$other", 5000), undefined, "verifier changed");
    assert.equal((await store.findUser("alice"))?.lastLoginAt, 3000);
  },
);

contractTest(
  "writes login times behind: others see them after a flush or close, none is lost",
  async (db) => {
    const store = await db.open();
    const other = await db.open();
    const { id, verifier } = await store.createUser(newUser("alice"));
    assert.equal((await store.recordLogin(id, verifier, 1000))?.previous, null);
    assert.equal((await store.findUser("alice"))?.lastLoginAt, 1000, "this store sees it at once");
    assert.equal((await other.findUser("alice"))?.lastLoginAt, null, "not written yet");
    await store.flushLogins();
    assert.equal((await other.findUser("alice"))?.lastLoginAt, 1000);
    assert.equal((await store.recordLogin(id, verifier, 2000))?.previous, 1000);
    assert.equal((await store.recordLogin(id, verifier, 3000))?.previous, 2000);
    await store.close();
    assert.equal((await other.findUser("alice"))?.lastLoginAt, 3000, "close writes what is left");
  },
);

contractTest(
  "never moves a login time backwards when a node writes an older one after a newer",
  async (db) => {
    const slow = await db.open();
    const fast = await db.open();
    const { id, verifier } = await slow.createUser(newUser("alice"));
    // A login on one node, then a later one on another whose time is written first.
    await slow.recordLogin(id, verifier, 1000);
    await fast.recordLogin(id, verifier, 2000);
    await fast.flushLogins();
    await slow.flushLogins();
    const reader = await db.open();
    assert.equal((await reader.findUser("alice"))?.lastLoginAt, 2000);
  },
);

contractTest(
  ".verifiersOf reads the key and verifier of many accounts at once, leaving out the gone",
  async (db) => {
    const store = await db.open();
    const other = await db.open();
    assert.deepEqual(await store.verifiersOf([]), new Map());
    const accounts = [];
    for (const name of ["alice", "Bob", "carol"]) {
      accounts.push(
        await store.createUser(newUser(name, 1, saltedFor(name))),
      );
    }
    const [alice, bob, carol] = accounts as [UserRecord, UserRecord, UserRecord];
    assert.equal(await other.updateVerifier(bob.id, bob.verifier, "SCRAM-SHA-256$4096:bmV3$CCCC:DDDD"), true);
    assert.equal(await other.deleteUser(carol.id, carol.verifier), true);
    const found = await store.verifiersOf([alice.id, bob.id, carol.id, alice.id, carol.id + 1000]);
    assert.deepEqual(
      found,
      new Map([
        [alice.id, { nameKey: "alice", verifier: alice.verifier }],
        [bob.id, { nameKey: "bob", verifier: "SCRAM-SHA-256$4096:bmV3$CCCC:DDDD" }],
      ]),
    );
    // A batch as big as the re-check of sessions sends, in one call.
    const ids = Array.from({ length: 5000 }, (_, i) => i % 2 === 0 ? alice.id : 1_000_000 + i);
    assert.deepEqual([...(await store.verifiersOf(ids)).keys()], [alice.id]);
  },
);

contractTest("writes a waiting login time only under the verifier it was recorded with", async (db) => {
  const store = await db.open();
  const other = await db.open();
  const { id, verifier } = await store.createUser(newUser("frank"));
  await store.recordLogin(id, verifier, 1000);
  // Another node changes the password before the time is written: the time is not written past it.
  assert.equal(await other.updateVerifier(id, verifier, "SCRAM-SHA-256$4096:bmV3$CCCC:DDDD"), true);
  await store.flushLogins();
  assert.equal((await other.findUser("frank"))?.lastLoginAt, null);
  assert.equal((await other.findUser("frank"))?.verifier, "SCRAM-SHA-256$4096:bmV3$CCCC:DDDD");
});

contractTest("sees at once what another store wrote, though it keeps rows it read", async (db) => {
  const store = await db.open();
  const other = await db.open();
  const { id, verifier } = await store.createUser(newUser("alice"));
  assert.equal((await store.findUser("alice"))?.verifier, verifier, "read, and kept");
  // Another process changes the password: a proof checked against the old verifier must not commit.
  assert.equal(await other.updateVerifier(id, verifier, "SCRAM-SHA-256$4096:new"), true);
  assert.equal((await store.findUser("alice"))?.verifier, "SCRAM-SHA-256$4096:new");
  assert.equal(await store.recordLogin(id, verifier, 1000), undefined, "the old verifier no longer logs in");
  assert.equal(await other.deleteUser(id, "SCRAM-SHA-256$4096:new"), true);
  assert.equal(await store.findUser("alice"), undefined, "deleted elsewhere: gone here too");
  assert.equal(await store.recordLogin(id, "SCRAM-SHA-256$4096:new", 2000), undefined);
});

contractTest("forgets a kept row when it writes that row itself", async (db) => {
  const store = await db.open();
  const { id, verifier } = await store.createUser(newUser("bob"));
  await store.findUser("bob");
  assert.equal(await store.updateVerifier(id, verifier, "SCRAM-SHA-256$4096:changed"), true);
  assert.equal((await store.findUser("bob"))?.verifier, "SCRAM-SHA-256$4096:changed");
  assert.equal(await store.recordLogin(id, verifier, 1000), undefined);
  assert.equal((await store.recordLogin(id, "SCRAM-SHA-256$4096:changed", 1000))?.previous, null);
});

contractTest("keeps a waiting login time across the account's own password change", async (db) => {
  const store = await db.open();
  const { id, verifier } = await store.createUser(newUser("carol"));
  await store.recordLogin(id, verifier, 1000);
  assert.equal(await store.updateVerifier(id, verifier, "SCRAM-SHA-256$4096:next"), true);
  assert.equal((await store.findUser("carol"))?.lastLoginAt, 1000);
  await store.flushLogins();
  assert.equal((await store.findUser("carol"))?.lastLoginAt, 1000, "written under the new verifier");
});

contractTest("drops a waiting login time of an account it deletes", async (db) => {
  const store = await db.open();
  const other = await db.open();
  const gone = await store.createUser(newUser("gone", 1, saltedFor("gone")));
  await store.recordLogin(gone.id, gone.verifier, 3000);
  assert.equal(await store.deleteUser(gone.id, gone.verifier), true);
  const next = await store.createUser(newUser("gone", 2, saltedFor("gone")));
  await store.flushLogins();
  assert.equal((await other.findUser("gone"))?.lastLoginAt, null, `a new account ${next.id}`);
});

contractTest(".mockSecret is 32 bytes, stable across reopen and distinct per database", async (db) => {
  const a = await db.open();
  const secret = (await a.mockSecret()).slice();
  await a.close();
  assert.equal(secret.length, 32);
  const again = await db.open();
  assert.deepEqual(await again.mockSecret(), secret);
  assert.notDeepEqual(await again.mockSecret(), new Uint8Array(32), "random, not zeros");
});

contractTest(".close may be called twice and later calls fail", async (db) => {
  const store = await db.open();
  await store.close();
  await store.close();
  await assert.rejects(async () => await store.countUsers());
  await assert.rejects(async () => await store.findUser("alice"));
});

contractTest(".iterationCounts counts accounts per PBKDF2 iteration count", async (db) => {
  const store = await db.open();
  await store.createUser({ ...newUser("a"), verifier: "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB" });
  await store.createUser({ ...newUser("b"), verifier: "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB" });
  await store.createUser({ ...newUser("c"), verifier: "SCRAM-SHA-256$600000:c2FsdA==$AAAA:BBBB" });
  assert.deepEqual(await store.iterationCounts(), new Map([[4096, 2], [600000, 1]]));
});

contractTest(".findCredentials answers an unknown name with the decoy, in the same shape", async (db) => {
  const store = await db.open();
  const decoy = "SCRAM-SHA-256$4096:ZGVjb3k=$EEEE:FFFF";
  const alice = await store.createUser(newUser("Alice", 1, saltedFor("alice")));
  await store.createUser({ ...newUser("carol"), mustChangePassword: true });
  const known = await store.findCredentials("alice", decoy);
  assert.deepEqual(known, {
    found: true,
    id: alice.id,
    name: "Alice",
    verifier: saltedFor("alice"),
    mustChangePassword: false,
  });
  assert.equal((await store.findCredentials("carol", decoy)).mustChangePassword, true);
  const unknown = await store.findCredentials("nobody", decoy);
  assert.deepEqual(unknown, {
    found: false,
    id: 0,
    name: "nobody",
    verifier: decoy,
    mustChangePassword: false,
  });
  const shape = (c: object) => Object.entries(c).map(([k, v]) => `${k}:${typeof v}`);
  assert.deepEqual(shape(unknown), shape(known), "the same fields of the same types, in the same order");
});

contractTest("ping answers while the store is open and fails once it is closed", async (db) => {
  const store = await db.open();
  assert.ok(store.ping, "every store answers /healthz itself");
  await store.ping();
  await store.createUser(newUser("alice"));
  await store.ping();
  await store.close();
  await assert.rejects(store.ping());
});

contractTest(
  "answers many logins at once each with its own account: credentials, then the check of the verifier",
  async (db) => {
    const store = await db.open();
    const decoy = "SCRAM-SHA-256$4096:ZGVjb3k=$EEEE:FFFF";
    const names = Array.from({ length: 12 }, (_, i) => `user${i}`);
    const users = await Promise.all(names.map((name) => store.createUser(newUser(name, 1, saltedFor(name)))));
    // Known names and unknown ones interleaved, all asked in the same turn and then while those run (a
    // store that gathers reads answers each from its own row).
    const asked = names.flatMap((name, i) => [name, `nobody${i}`]);
    const first = asked.slice(0, 8).map((key) => store.findCredentials(key, decoy));
    await Promise.resolve();
    const rest = asked.slice(8).map((key) => store.findCredentials(key, decoy));
    const credentials = await Promise.all([...first, ...rest]);
    asked.forEach((key, i) => {
      const known = users.find((u) => u.nameKey === key);
      assert.deepEqual(
        credentials[i],
        known
          ? { found: true, id: known.id, name: key, verifier: saltedFor(key), mustChangePassword: false }
          : { found: false, id: 0, name: key, verifier: decoy, mustChangePassword: false },
        key,
      );
    });
    // Proofs checked against the current verifier log in; against another, or of no account, they do not.
    // Two logins of one account at once: the second sees the first's time as the previous one.
    const logins = await Promise.all([
      ...users.map((u, i) =>
        store.recordLogin(u.id, i % 3 === 0 ? "SCRAM-SHA-256$old" : u.verifier, 5000 + i)
      ),
      store.recordLogin(users[1]!.id, users[1]!.verifier, 7000),
      store.recordLogin(10_000_000, VERIFIER, 5000),
    ]);
    users.forEach((_, i) => {
      assert.deepEqual(logins[i], i % 3 === 0 ? undefined : { previous: null, identity: null }, names[i]);
    });
    assert.deepEqual(logins[users.length], { previous: 5001, identity: null });
    assert.equal(logins[users.length + 1], undefined);
    assert.equal((await store.findUser("user1"))?.lastLoginAt, 7000);
    assert.equal(
      (await store.findUser("user0"))?.lastLoginAt,
      null,
      "the old verifier's proof recorded nothing",
    );
  },
);

contractTest(
  "answers credentials and checks of the verifier asked in the same turn, each read as its own kind",
  async (db) => {
    const store = await db.open();
    const decoy = "SCRAM-SHA-256$4096:ZGVjb3k=$EEEE:FFFF";
    const plain = await store.createUser(newUser("plain", 1, saltedFor("plain")));
    const keyed = await store.createUser({
      ...newUser("keyed", 1, saltedFor("keyed")),
      identity: { key: new Uint8Array(32).fill(7), backup: '{"b":7}' },
    });
    // Asked together, so a store that gathers reads answers them from one statement, the kinds interleaved:
    // no read may take another's row, nor the other kind's answer.
    const [plainCredentials, keyedLogin, unknown, staleLogin, keyedCredentials, plainLogin, noAccount] =
      await Promise.all([
        store.findCredentials("plain", decoy),
        store.recordLogin(keyed.id, keyed.verifier, 10),
        store.findCredentials("nobody", decoy),
        store.recordLogin(plain.id, saltedFor("someone else"), 11),
        store.findCredentials("keyed", decoy),
        store.recordLogin(plain.id, plain.verifier, 12),
        store.recordLogin(keyed.id + plain.id + 1000, plain.verifier, 13),
      ]);
    const expected = (found: UserRecord | undefined, name: string) =>
      found
        ? { found: true, id: found.id, name, verifier: found.verifier, mustChangePassword: false }
        : { found: false, id: 0, name, verifier: decoy, mustChangePassword: false };
    assert.deepEqual(plainCredentials, expected(plain, "plain"));
    assert.deepEqual(unknown, expected(undefined, "nobody"));
    assert.deepEqual(keyedCredentials, expected(keyed, "keyed"));
    assert.deepEqual([...keyedLogin?.identity?.key ?? []], [...new Uint8Array(32).fill(7)]);
    assert.equal(keyedLogin?.identity?.backup, '{"b":7}');
    assert.equal(keyedLogin?.previous, null);
    assert.equal(staleLogin, undefined, "a proof checked against another verifier does not log in");
    assert.deepEqual(plainLogin, { previous: null, identity: null });
    assert.equal(noAccount, undefined);
    await store.flushLogins();
    assert.equal((await store.findUser("plain"))?.lastLoginAt, 12);
    assert.equal((await store.findUser("keyed"))?.lastLoginAt, 10);
  },
);

contractTest(
  "answers a name that is not well-formed UTF-16 as unknown, and the names read with it",
  async (db) => {
    const store = await db.open();
    const decoy = "SCRAM-SHA-256$4096:ZGVjb3k=$EEEE:FFFF";
    await store.createUser(newUser("alice"));
    // Asked in one turn (a store that gathers reads sends them together): a lone surrogate is what a text
    // parameter sends as U+FFFD, a name nobody has.
    const [lone, alice] = await Promise.all([
      store.findCredentials("a\uD800b", decoy),
      store.findCredentials("alice", decoy),
    ]);
    assert.deepEqual(lone, {
      found: false,
      id: 0,
      name: "a\uFFFDb",
      verifier: decoy,
      mustChangePassword: false,
    });
    assert.equal(alice.found, true);
  },
);
