import assert from "node:assert/strict";
import fc from "fast-check";
import { DEFAULT_NOTICE_INTERVAL_MS, PresenceCoalescer } from "../../lib/server/presence_coalescer.ts";
import type { PresenceNotice } from "../../lib/server/presence_coalescer.ts";
import { ManualClock } from "./_manual_clock.ts";

const INTERVAL = 500;

function notice(user: string, state: "online" | "offline", key?: string): PresenceNotice {
  return key === undefined ? { op: "PRESENCE", user, state } : { op: "PRESENCE", user, state, key };
}

/** A coalescer on a manual clock, recording what it sends and when. */
function setup(intervalMs = INTERVAL) {
  const clock = new ManualClock();
  const sent: { at: number; key: string; notice: PresenceNotice }[] = [];
  const coalescer = new PresenceCoalescer((key, n) => sent.push({ at: clock.now(), key, notice: n }), {
    intervalMs,
    clock,
  });
  return { clock, sent, coalescer };
}

Deno.test("PresenceCoalescer sends a single change at once, with no timer and no delay", () => {
  const { clock, sent, coalescer } = setup();
  clock.advance(1234);
  coalescer.publish("alice", notice("alice", "online"));
  assert.deepEqual(sent, [{ at: 1234, key: "alice", notice: notice("alice", "online") }]);
  assert.equal(clock.pending, 0, "nothing scheduled");
  // Changes an interval apart or more: each at once.
  clock.advance(INTERVAL);
  coalescer.publish("alice", notice("alice", "offline"));
  clock.advance(10_000);
  coalescer.publish("alice", notice("alice", "online"));
  assert.deepEqual(sent.map((s) => `${s.at} ${s.notice.state}`), [
    "1234 online",
    "1734 offline",
    "11734 online",
  ]);
  assert.equal(clock.pending, 0);
});

Deno.test("PresenceCoalescer turns a burst of 100 online/offline flips into at most 2 notices, the last the final state", () => {
  for (const flips of [100, 101]) {
    const { clock, sent, coalescer } = setup();
    for (let i = 0; i < flips; i++) {
      coalescer.publish("alice", notice("alice", i % 2 === 0 ? "online" : "offline"));
      clock.advance(1);
    }
    const final = flips % 2 === 0 ? "offline" : "online";
    clock.advance(10 * INTERVAL);
    assert.ok(sent.length <= 2, `${flips} flips: ${sent.length} notices`);
    assert.equal(sent[0]!.at, 0, "the first at once");
    assert.equal(sent.at(-1)!.notice.state, final, `${flips} flips end ${final}`);
    // 100 flips end offline: online at once, offline at the end of the interval. 101 end online, as the
    // observers last heard: nothing more is sent.
    assert.deepEqual(
      sent.map((s) => `${s.at} ${s.notice.state}`),
      flips === 100 ? ["0 online", "500 offline"] : ["0 online"],
    );
    assert.equal(clock.pending, 0);
  }
});

Deno.test("PresenceCoalescer keeps a user who flaps for ever to one notice per interval", () => {
  const { clock, sent, coalescer } = setup();
  // 84 cycles a second (the attack measured), for 10 seconds.
  for (let ms = 0; ms < 10_000; ms += 6) {
    coalescer.publish("alice", notice("alice", "online"));
    clock.advance(3);
    coalescer.publish("alice", notice("alice", "offline"));
    clock.advance(3);
  }
  clock.advance(INTERVAL);
  for (let i = 1; i < sent.length; i++) {
    assert.ok(sent[i]!.at - sent[i - 1]!.at >= INTERVAL, `notices ${i - 1} and ${i} too close`);
  }
  assert.ok(sent.length <= 10_000 / INTERVAL + 2, `${sent.length} notices in 10 s`);
  assert.equal(sent.at(-1)!.notice.state, "offline");
});

Deno.test("PresenceCoalescer sends a new key at the end of the interval though the state is the same", () => {
  const { clock, sent, coalescer } = setup();
  coalescer.publish("alice", notice("alice", "online"));
  coalescer.publish("alice", notice("alice", "online", "S0VZ"));
  clock.advance(INTERVAL);
  assert.deepEqual(sent.map((s) => s.notice), [notice("alice", "online"), notice("alice", "online", "S0VZ")]);
});

Deno.test("PresenceCoalescer re-sends an unchanged state held back when someone started listening meanwhile", () => {
  for (const joined of [false, true]) {
    const { clock, sent, coalescer } = setup();
    coalescer.publish("alice", notice("alice", "online"));
    coalescer.publish("alice", notice("alice", "offline"));
    // A newcomer logs in here, and may list who is online: alice is not.
    if (joined) coalescer.observerJoined();
    coalescer.publish("alice", notice("alice", "online"));
    clock.advance(INTERVAL);
    assert.deepEqual(
      sent.map((s) => s.notice.state),
      joined ? ["online", "online"] : ["online"],
      joined ? "the newcomer learns alice is back" : "the others' view is already right",
    );
  }
});

Deno.test("PresenceCoalescer coalesces each user on their own", () => {
  const { clock, sent, coalescer } = setup();
  coalescer.publish("alice", notice("alice", "online"));
  coalescer.publish("bob", notice("bob", "online"));
  coalescer.publish("alice", notice("alice", "offline"));
  assert.deepEqual(sent.map((s) => `${s.key} ${s.notice.state}`), ["alice online", "bob online"]);
  clock.advance(INTERVAL);
  assert.deepEqual(sent.map((s) => `${s.key} ${s.notice.state}`), [
    "alice online",
    "bob online",
    "alice offline",
  ]);
});

Deno.test("PresenceCoalescer.close drops what is held back and leaves no timer", () => {
  const { clock, sent, coalescer } = setup();
  coalescer.publish("alice", notice("alice", "online"));
  coalescer.publish("alice", notice("alice", "offline"));
  assert.equal(clock.pending, 1);
  coalescer.close();
  assert.equal(clock.pending, 0);
  coalescer.publish("bob", notice("bob", "online"));
  clock.advance(INTERVAL);
  assert.deepEqual(sent.map((s) => s.key), ["alice"]);
});

Deno.test("PresenceCoalescer with interval 0 sends every change at once", () => {
  const { clock, sent, coalescer } = setup(0);
  for (let i = 0; i < 10; i++) coalescer.publish("alice", notice("alice", i % 2 ? "offline" : "online"));
  assert.equal(sent.length, 10);
  assert.equal(clock.pending, 0);
  assert.equal(coalescer.size, 0);
});

Deno.test("PresenceCoalescer keeps state only for users who changed within the last interval", () => {
  const { clock, coalescer } = setup();
  for (let i = 0; i < 10_000; i++) {
    coalescer.publish(`user${i}`, notice(`user${i}`, "online"));
    clock.advance(1);
    assert.ok(coalescer.size <= INTERVAL + 1, `${coalescer.size} users tracked`);
  }
  clock.advance(INTERVAL);
  coalescer.publish("last", notice("last", "online"));
  assert.equal(coalescer.size, 1);
});

Deno.test("PresenceCoalescer: any changes, any timing — notices an interval apart, the first of a quiet user at once, the last the final state", () => {
  const event = fc.record({
    user: fc.constantFrom("alice", "bob"),
    state: fc.constantFrom("online" as const, "offline" as const),
    gap: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 2 * INTERVAL })),
    join: fc.boolean(),
  });
  fc.assert(
    fc.property(fc.array(event, { maxLength: 200 }), (events) => {
      const { clock, sent, coalescer } = setup();
      const last = new Map<string, PresenceNotice>();
      const lastSentAt = new Map<string, number>();
      for (const e of events) {
        clock.advance(e.gap);
        for (const s of sent) lastSentAt.set(s.key, s.at);
        if (e.join) coalescer.observerJoined();
        const before = sent.length;
        // Nothing sent about the user for an interval: nothing can be held back for them either.
        const quiet = !lastSentAt.has(e.user) || clock.now() - lastSentAt.get(e.user)! >= INTERVAL;
        const n = notice(e.user, e.state);
        coalescer.publish(e.user, n);
        last.set(e.user, n);
        if (quiet) {
          assert.deepEqual(sent.slice(before), [{ at: clock.now(), key: e.user, notice: n }], "at once");
        } else assert.equal(sent.length, before, "held back");
      }
      clock.advance(2 * INTERVAL);
      for (const user of ["alice", "bob"]) {
        const mine = sent.filter((s) => s.key === user);
        for (let i = 1; i < mine.length; i++) assert.ok(mine[i]!.at - mine[i - 1]!.at >= INTERVAL);
        if (last.has(user)) {
          assert.deepEqual(mine.at(-1)!.notice, last.get(user), `${user} ends as last published`);
        }
      }
      assert.equal(clock.pending, 0);
    }),
    { numRuns: 300 },
  );
});

Deno.test("PresenceCoalescer's default interval is 500 ms: at most two notices about a user a second", () => {
  assert.equal(DEFAULT_NOTICE_INTERVAL_MS, 500);
});
