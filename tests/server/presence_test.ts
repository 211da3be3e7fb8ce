import assert from "node:assert/strict";
import { encodeBase64 } from "../../lib/codec/base64.ts";
import { LIST_PAGE } from "../../lib/codec/messages.ts";
import type { ServerMessageOf } from "../../lib/codec/messages.ts";
import { LocalPresence, presenceNotice } from "../../lib/server/presence.ts";
import type { OnlineUser, PresenceMember } from "../../lib/server/presence.ts";
import { ManualClock } from "./_manual_clock.ts";

let nextId = 1;

/** A session stand-in that records the notices it gets. */
function member(): PresenceMember & { seen: ServerMessageOf<"PRESENCE">[] } {
  const seen: ServerMessageOf<"PRESENCE">[] = [];
  return { id: nextId++, seen, notify: (m) => seen.push(m) };
}

function user(name: string, identityKey: Uint8Array | null = null): OnlineUser {
  return { key: name.toLowerCase(), name, identityKey, fingerprint: identityKey ? `SHA256:${name}` : null };
}

Deno.test("LocalPresence announces a user online with their first session and offline with their last", () => {
  const presence = new LocalPresence();
  const bob = member();
  presence.join(bob, user("bob"));
  const a1 = member();
  const a2 = member();
  presence.join(a1, user("Alice"));
  presence.join(a2, user("Alice"));
  assert.deepEqual(bob.seen, [{ op: "PRESENCE", user: "Alice", state: "online" }], "once, not per session");
  presence.leave(a1, "alice");
  assert.equal(bob.seen.length, 1, "still online through a2");
  assert.equal(presence.get("alice")?.name, "Alice");
  presence.leave(a2, "alice");
  assert.deepEqual(bob.seen.at(-1), { op: "PRESENCE", user: "Alice", state: "offline" });
  assert.equal(presence.get("alice"), undefined);
  presence.leave(a2, "alice");
  assert.equal(bob.seen.length, 2, "leaving twice says nothing more");
});

Deno.test("LocalPresence does not tell a user about themselves, on any of their sessions", () => {
  const presence = new LocalPresence();
  const a1 = member();
  const a2 = member();
  const bob = member();
  presence.join(a1, user("alice"));
  presence.join(bob, user("bob"));
  presence.join(a2, user("alice"));
  presence.leave(bob, "bob");
  presence.leave(a1, "alice");
  assert.deepEqual(a1.seen.map((m) => `${m.user} ${m.state}`), ["bob online", "bob offline"]);
  assert.deepEqual(a2.seen.map((m) => `${m.user} ${m.state}`), ["bob offline"]);
  assert.deepEqual(bob.seen.map((m) => `${m.user} ${m.state}`), []);
});

Deno.test("LocalPresence ignores a leave for a user the member did not join as", () => {
  const presence = new LocalPresence();
  const alice = member();
  const bob = member();
  presence.join(alice, user("alice"));
  presence.join(bob, user("bob"));
  presence.leave(alice, "bob");
  assert.ok(presence.get("bob"));
  assert.deepEqual(alice.seen.map((m) => m.state), ["online"]);
});

Deno.test("LocalPresence moves a member that joins again as another user", () => {
  const presence = new LocalPresence();
  const watcher = member();
  const m = member();
  presence.join(watcher, user("carol"));
  presence.join(m, user("alice"));
  presence.join(m, user("bob"));
  assert.equal(presence.get("alice"), undefined);
  assert.ok(presence.get("bob"));
  assert.deepEqual(watcher.seen.map((n) => `${n.user} ${n.state}`), [
    "alice online",
    "alice offline",
    "bob online",
  ]);
});

Deno.test("LocalPresence.update re-announces an online user with their key and fingerprint", () => {
  const presence = new LocalPresence();
  const bob = member();
  const alice = member();
  presence.join(bob, user("bob"));
  presence.join(alice, user("Alice"));
  const key = new Uint8Array(32).fill(3);
  presence.update(user("Alice", key));
  assert.deepEqual(bob.seen.at(-1), {
    op: "PRESENCE",
    user: "Alice",
    state: "online",
    key: encodeBase64(key),
    fingerprint: "SHA256:Alice",
  });
  assert.deepEqual(alice.seen, [], "not told about their own key (nor, on joining, about those already on)");
  assert.deepEqual(presence.get("alice")?.identityKey, key);
  presence.update(user("Zed", key));
  assert.equal(bob.seen.length, 2, "an offline user is not announced");
  assert.equal(presence.get("zed"), undefined);
});

Deno.test("presenceNotice carries the key only when online and known", () => {
  const key = new Uint8Array(32).fill(1);
  assert.deepEqual(presenceNotice(user("a", key), "offline"), {
    op: "PRESENCE",
    user: "a",
    state: "offline",
  });
  assert.deepEqual(presenceNotice(user("a"), "online"), { op: "PRESENCE", user: "a", state: "online" });
  assert.equal(presenceNotice(user("a", key), "online").key, encodeBase64(key));
});

Deno.test("LocalPresence.list pages through more than LIST_PAGE users in key order with a cursor", () => {
  const presence = new LocalPresence();
  const count = LIST_PAGE * 2 + 37;
  const names = Array.from({ length: count }, (_, i) => `User${String(i).padStart(4, "0")}`);
  // Joined in a scrambled order: the listing sorts.
  for (const i of names.keys()) presence.join(member(), user(names[(i * 7919) % count]!));
  const seen: string[] = [];
  let after: string | undefined;
  let pages = 0;
  do {
    const page = presence.list(after, LIST_PAGE);
    pages++;
    assert.ok(page.users.length <= LIST_PAGE);
    seen.push(...page.users.map((u) => u.name));
    if (page.next !== undefined) assert.equal(page.next, page.users.at(-1)!.key);
    after = page.next;
  } while (after !== undefined);
  assert.equal(pages, 3);
  assert.deepEqual(seen, names, "each user exactly once, in order");
  assert.deepEqual(presence.list(undefined, count), {
    users: names.map((n) => presence.get(n.toLowerCase())),
  });
});

Deno.test("LocalPresence.list starts after a cursor that is not itself online, and ends without next", () => {
  const presence = new LocalPresence();
  for (const name of ["amy", "bob", "cat", "dan"]) presence.join(member(), user(name));
  assert.deepEqual(presence.list("b", 2).users.map((u) => u.key), ["bob", "cat"]);
  assert.deepEqual(presence.list("b", 2).next, "cat");
  assert.deepEqual(presence.list("bob", 2), { users: [user("cat"), user("dan")] });
  assert.deepEqual(presence.list("dan", 2), { users: [] });
  assert.deepEqual(presence.list("zzz", 2), { users: [] });
  assert.deepEqual(presence.list(undefined, 4).next, undefined, "an exactly full last page has no next");
  assert.deepEqual(new LocalPresence().list(undefined, 10), { users: [] });
});

Deno.test("LocalPresence.list reflects joins and leaves made after an earlier listing", () => {
  const presence = new LocalPresence();
  const bob = member();
  presence.join(member(), user("amy"));
  presence.join(bob, user("bob"));
  assert.deepEqual(presence.list(undefined, 10).users.map((u) => u.key), ["amy", "bob"]);
  presence.join(member(), user("abe"));
  presence.leave(bob, "bob");
  assert.deepEqual(presence.list(undefined, 10).users.map((u) => u.key), ["abe", "amy"]);
});

Deno.test("LocalPresence.get returns an online user by key and undefined otherwise", () => {
  const presence = new LocalPresence();
  const key = new Uint8Array(32).fill(9);
  presence.join(member(), user("Alice", key));
  assert.deepEqual(presence.get("alice"), user("Alice", key));
  assert.equal(presence.get("Alice"), undefined, "keys are lower-cased names");
  assert.equal(presence.get("bob"), undefined);
});

Deno.test("LocalPresence tells nobody once quiet (shutdown ends every session at once)", () => {
  const presence = new LocalPresence();
  const seen: string[] = [];
  const member = (id: number) => ({
    id,
    notify: (m: { user: string; state: string }) => seen.push(`${id}:${m.user} ${m.state}`),
  });
  const a = member(1);
  const b = member(2);
  presence.join(a, { key: "alice", name: "alice", identityKey: null, fingerprint: null });
  presence.join(b, { key: "bob", name: "bob", identityKey: null, fingerprint: null });
  assert.deepEqual(seen, ["1:bob online"]);
  presence.quiet();
  presence.leave(a, "alice");
  assert.deepEqual(seen, ["1:bob online"], "bob is not told alice left");
  assert.equal(presence.get("alice"), undefined, "the directory itself is still kept");
});

Deno.test("LocalPresence keeps a user who left cleanly online for the linger time, and a return says nothing", async () => {
  const presence = new LocalPresence({ lingerMs: 50 });
  try {
    const bob = member();
    presence.join(bob, user("bob"));
    const alice = member();
    presence.join(alice, user("alice"));
    assert.equal(bob.seen.length, 1);
    // A re-login or a reconnect: back within the linger time, nobody hears of it.
    presence.leave(alice, "alice", true);
    assert.equal(presence.get("alice")?.name, "alice", "still listed while lingering");
    const again = member();
    presence.join(again, user("alice"));
    await new Promise((r) => setTimeout(r, 80));
    assert.deepEqual(bob.seen.map((m) => m.state), ["online"], "no offline, no second online");
    // Gone for good: offline once the linger time has passed, not before.
    presence.leave(again, "alice", true);
    assert.equal(bob.seen.length, 1);
    await new Promise((r) => setTimeout(r, 80));
    assert.deepEqual(bob.seen.map((m) => m.state), ["online", "offline"]);
    assert.equal(presence.get("alice"), undefined);
    // A drop (no linger) is announced at once.
    const carol = member();
    presence.join(carol, user("carol"));
    presence.leave(carol, "carol");
    assert.deepEqual(bob.seen.slice(-2).map((m) => `${m.user} ${m.state}`), [
      "carol online",
      "carol offline",
    ]);
  } finally {
    presence.quiet();
  }
});

Deno.test("LocalPresence.quiet forgets lingering users without a notice (shutdown)", async () => {
  const presence = new LocalPresence({ lingerMs: 30 });
  const bob = member();
  presence.join(bob, user("bob"));
  const alice = member();
  presence.join(alice, user("alice"));
  presence.leave(alice, "alice", true);
  presence.quiet();
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(bob.seen.map((m) => m.state), ["online"]);
});

Deno.test("LocalPresence with a notice interval tells observers of a flapping user once per interval, ending with the truth", () => {
  for (const endOnline of [false, true]) {
    const clock = new ManualClock();
    const presence = new LocalPresence({ noticeIntervalMs: 500, clock });
    const at: number[] = [];
    const seen: ServerMessageOf<"PRESENCE">[] = [];
    const bob = {
      id: nextId++,
      notify: (m: ServerMessageOf<"PRESENCE">) => (seen.push(m), at.push(clock.now())),
    };
    presence.join(bob, user("bob"));
    // alice logs in and drops 100 times in 200 ms, then maybe logs in once more.
    for (let i = 0; i < 100; i++) {
      const session = member();
      presence.join(session, user("alice"));
      clock.advance(1);
      presence.leave(session, "alice");
      clock.advance(1);
    }
    if (endOnline) presence.join(member(), user("alice"));
    clock.advance(2000);
    const aboutAlice = seen.filter((m) => m.user === "alice");
    assert.ok(aboutAlice.length <= 2, `${aboutAlice.length} notices about alice`);
    assert.equal(aboutAlice[0]!.state, "online", "the first change at once");
    const truth = presence.get("alice") ? "online" : "offline";
    assert.equal(truth, endOnline ? "online" : "offline");
    assert.equal(aboutAlice.at(-1)!.state, truth, "the last notice is the final state");
    for (let i = 1; i < at.length; i++) assert.ok(at[i]! - at[i - 1]! >= 500);
    assert.equal(clock.pending, 0);
  }
});

Deno.test("LocalPresence with a notice interval brings a newcomer's listing up to date when a held change is undone", () => {
  const clock = new ManualClock();
  const presence = new LocalPresence({ noticeIntervalMs: 500, clock });
  const bob = member();
  presence.join(bob, user("bob"));
  const alice = member();
  presence.join(alice, user("alice"));
  presence.leave(alice, "alice"); // held: bob last heard "online"
  const carol = member();
  presence.join(carol, user("carol"));
  assert.deepEqual(
    presence.list(undefined, 10).users.map((u) => u.key),
    ["bob", "carol"],
    "carol sees no alice",
  );
  presence.join(member(), user("alice")); // back: what bob last heard, but not what carol saw
  clock.advance(500);
  assert.deepEqual(carol.seen.map((m) => `${m.user} ${m.state}`), ["alice online"]);
  assert.deepEqual(bob.seen.map((m) => `${m.user} ${m.state}`), [
    "alice online",
    "carol online",
    "alice online",
  ]);
});

Deno.test("LocalPresence.quiet drops held notices and their timers", () => {
  const clock = new ManualClock();
  const presence = new LocalPresence({ noticeIntervalMs: 500, clock });
  const bob = member();
  presence.join(bob, user("bob"));
  const alice = member();
  presence.join(alice, user("alice"));
  presence.leave(alice, "alice");
  assert.equal(clock.pending, 1);
  presence.quiet();
  assert.equal(clock.pending, 0);
  clock.advance(1000);
  assert.deepEqual(bob.seen.map((m) => m.state), ["online"]);
});
