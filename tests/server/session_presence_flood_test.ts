import assert from "node:assert/strict";
import { LocalPresence } from "../../lib/server/presence.ts";
import { ManualClock } from "./_manual_clock.ts";
import { makeKit } from "./_session_kit.ts";
import type { TestConnection } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";

Deno.test("Session engine: one account logging in and dropping 84 times a second costs each observer a few notices a second, and the login loop is rate-limited", async () => {
  // The server's settings: 30 logins a minute per account, notices about a user at most every 500 ms.
  await using kit = await makeKit({ loginsPerMinutePerAccount: 30, loginsPerMinutePerSource: 300 });
  const clock = new ManualClock(kit.clock);
  kit.ctx.presence = new LocalPresence({ lingerMs: 0, noticeIntervalMs: 500, clock });
  try {
    await kit.addUser("mallory", PASSWORD);
    const observers: TestConnection[] = [];
    for (let i = 0; i < 20; i++) {
      await kit.addUser(`watcher${i}`, PASSWORD);
      const conn = kit.connect({ peerAddress: `198.51.100.${i + 1}` });
      await conn.login(`watcher${i}`, PASSWORD);
      conn.takeNotices();
      observers.push(conn);
    }

    for (const observer of observers) observer.takeNotices();
    const seconds = 10;
    const outcomes = new Map<string, number>();
    const perSecond: number[][] = observers.map(() => []);
    for (let second = 0; second < seconds; second++) {
      for (let cycle = 0; cycle < 84; cycle++) {
        const conn = kit.connect({ peerAddress: "203.0.113.66" });
        const { reply } = await conn.scram("LOGIN", "mallory", PASSWORD);
        const outcome = reply.op === "ERROR" ? reply.code : reply.op;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        conn.session.disconnected("reset");
        clock.advance(Math.floor(1000 / 84));
      }
      clock.advance(1000 - 84 * Math.floor(1000 / 84));
      observers.forEach((o, i) =>
        perSecond[i]!.push(o.takeNotices().filter((n) => n.user === "mallory").length)
      );
    }
    clock.advance(1000);

    // 30 at once, then one every 2 s: 34 or 35 logins in 10 s (depending on where the refills fall), not 840.
    const logins = outcomes.get("LOGIN") ?? 0;
    assert.ok(logins >= 30 + seconds / 2 - 1 && logins <= 30 + seconds / 2, JSON.stringify([...outcomes]));
    assert.equal(outcomes.get("RATE_LIMITED"), 84 * seconds - logins, JSON.stringify([...outcomes]));
    for (const [i, counts] of perSecond.entries()) {
      assert.ok(counts.every((n) => n <= 2), `observer ${i} heard per second: ${counts.join(",")}`);
    }
    for (const observer of observers) {
      const last = observer.notices.filter((n) => n.user === "mallory").at(-1);
      assert.equal(last?.state, "offline", "every observer ends knowing mallory is offline");
    }
    assert.equal(kit.ctx.presence.get("mallory"), undefined);
    assert.equal(clock.pending, 0, "nothing held back once the loop stopped");
  } finally {
    kit.ctx.presence.quiet();
  }
});
