import assert from "node:assert/strict";
import { prepareUsername } from "../../lib/auth/username.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import {
  countPresenceNotices,
  countStoreErrors,
  DATABASE_ERRORS,
  PRESENCE_NOTICES,
} from "../../lib/server/counted_parts.ts";
import { Metrics } from "../../lib/server/metrics.ts";
import { LocalPresence } from "../../lib/server/presence.ts";
import type { PresenceMember } from "../../lib/server/presence.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import type { UserStore } from "../../lib/store/user_store.ts";

const VERIFIER = "SCRAM-SHA-256$4096:c2FsdA==$AAAA:BBBB";

function counters(): Metrics {
  return new Metrics()
    .counter(DATABASE_ERRORS, "Database errors.", { labels: ["op"] })
    .counter(PRESENCE_NOTICES, "Notices.", { labels: ["state"] });
}

Deno.test("countStoreErrors passes results through and counts nothing while the database answers", async () => {
  const metrics = counters();
  const store = countStoreErrors(SqliteUserStore.open(":memory:"), metrics);
  try {
    const record = await store.createUser({
      name: "alice",
      nameKey: prepareUsername("alice").key,
      verifier: VERIFIER,
      now: 1,
    });
    assert.equal((await store.findUser("alice"))?.id, record.id);
    assert.equal(await store.countUsers(), 1);
    assert.equal((await store.findCredentials("bob", "decoy")).verifier, "decoy");
    // A refusal the store makes on purpose is no database error.
    await assert.rejects(
      store.createUser({ name: "Alice", nameKey: "alice", verifier: VERIFIER, now: 2 }),
      (err) => err instanceof ProtocolError && err.code === "USER_EXISTS",
    );
    await store.ping!();
  } finally {
    store.close();
  }
  assert.equal(metrics.render().match(/^authchat_database_errors_total\{/gm), null, "no series counted");
});

Deno.test("countStoreErrors counts each failing store call by method, thrown or rejected", async () => {
  const metrics = counters();
  const inner = SqliteUserStore.open(":memory:");
  const store = countStoreErrors(inner, metrics);
  store.close();
  // SQLite throws at once from a closed database; the counted store rejects, as a promise should.
  await assert.rejects(store.findUser("alice"));
  await assert.rejects(store.findUser("bob"));
  await assert.rejects(store.countUsers());
  await assert.rejects(store.ping!(), /Database closed/);
  assert.equal(metrics.value(DATABASE_ERRORS, { op: "findUser" }), 2);
  assert.equal(metrics.value(DATABASE_ERRORS, { op: "countUsers" }), 1);
  assert.equal(metrics.value(DATABASE_ERRORS, { op: "ping" }), 1);
});

Deno.test("countStoreErrors counts UNAVAILABLE as a database error, and pings by counting when the store cannot", async () => {
  const metrics = counters();
  let users = 0;
  const unavailable = () => Promise.reject(new ProtocolError("UNAVAILABLE", "Database not answering"));
  // A store without ping (as any UserStore may be): what a networked store that lost its database says.
  const store = countStoreErrors(
    {
      countUsers: () => users++ === 0 ? Promise.resolve(0) : unavailable(),
      close() {},
    } as unknown as UserStore,
    metrics,
  );
  await store.ping!();
  await assert.rejects(store.ping!(), /Database not answering/);
  assert.equal(users, 2, "each ping counted the accounts");
  assert.equal(metrics.value(DATABASE_ERRORS, { op: "ping" }), 1);
});

Deno.test("countPresenceNotices counts each notice a session is sent, and keeps each member the same object", () => {
  const metrics = counters();
  const presence = countPresenceNotices(new LocalPresence(), metrics);
  const heard: string[] = [];
  const member = (id: number): PresenceMember => ({
    id,
    notify: (m) => void heard.push(`${id}: ${m.user} ${m.state}`),
  });
  const user = (key: string) => ({ key, name: key, identityKey: null, fingerprint: null });
  const [a, b, c] = [member(1), member(2), member(3)];
  presence.join(a, user("alice"));
  presence.join(b, user("bob"));
  presence.join(c, user("carol"));
  assert.equal(metrics.value(PRESENCE_NOTICES, { state: "online" }), 3, "alice hears of bob; both of carol");
  presence.leave(c, "carol");
  assert.equal(metrics.value(PRESENCE_NOTICES, { state: "offline" }), 2);
  assert.deepEqual(presence.list(undefined, 10).users.map((u) => u.key), ["alice", "bob"], "carol left");
  // A member that leaves again, or under another name, changes nothing: the directory saw the same member.
  presence.leave(c, "carol");
  presence.leave(a, "bob");
  assert.equal(presence.get("bob")?.key, "bob");
  assert.deepEqual(heard, [
    "1: bob online",
    "1: carol online",
    "2: carol online",
    "1: carol offline",
    "2: carol offline",
  ]);
  presence.quiet();
});
