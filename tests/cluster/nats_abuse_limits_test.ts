import assert from "node:assert/strict";
import { LoginBudget } from "../../lib/auth/login_budget.ts";
import { RateLimiter } from "../../lib/auth/rate_limiter.ts";
import { TokenBucket } from "../../lib/auth/token_bucket.ts";
import { NatsAbuseLimits } from "../../lib/cluster/nats_abuse_limits.ts";
import { BusUnavailableError } from "../../lib/cluster/nats_bus.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { limitOptions } from "../../lib/server/local_parts.ts";
import { TcpProxy } from "../_tcp_proxy.ts";
import { limitNodes, natsUrl, SETTINGS } from "./_limit_nodes.ts";

const url = natsUrl();
const ignore = url === undefined;
const OPTIONS = limitOptions(SETTINGS);

Deno.test({
  name:
    "NatsAbuseLimits backs off 30 failures spread over three nodes exactly as one RateLimiter fed the same",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(3);
    try {
      const local = new RateLimiter(OPTIONS.limiter);
      let now = 1_000_000;
      for (let i = 0; i < 30; i++) {
        // Each attempt waits what the backoff says, so every one of them is checked.
        now += local.retryAfter("203.0.113.7", "bob", now);
        const node = nodes.limits[i % 3]!;
        assert.equal(await node.beginProof("203.0.113.7", "bob", now), 0, `attempt ${i} on node ${i % 3}`);
        local.begin("203.0.113.7", "bob");
        await node.endProof("203.0.113.7", "bob", now, false);
        local.end("203.0.113.7", "bob", now, false);
        for (const [n, other] of nodes.limits.entries()) {
          assert.equal(
            await other.retryAfter("203.0.113.7", "bob", now),
            local.retryAfter("203.0.113.7", "bob", now),
            `after failure ${i + 1}, node ${n}`,
          );
        }
      }
      assert.equal(await nodes.limits[0]!.retryAfter("203.0.113.7", "bob", now), 60_000, "at backoff_max");
      assert.equal(await nodes.limits[1]!.beginProof("203.0.113.7", "bob", now + 59_999), 1);
      // Another address is held back by the account only once it has failed itself, as on one node.
      assert.equal(await nodes.limits[2]!.retryAfter("198.51.100.1", "bob", now), 0);
      assert.equal(await nodes.limits[2]!.beginProof("198.51.100.1", "bob", now), 0);
      await nodes.limits[2]!.endProof("198.51.100.1", "bob", now, false);
      local.begin("198.51.100.1", "bob");
      local.end("198.51.100.1", "bob", now, false);
      assert.equal(
        await nodes.limits[0]!.retryAfter("198.51.100.1", "bob", now),
        local.retryAfter("198.51.100.1", "bob", now),
      );
      assert.equal(local.retryAfter("198.51.100.1", "bob", now), 60_000);
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits counts no more proofs raced on three nodes than one gate allows, and tells no other",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(3);
    try {
      const now = 5_000_000;
      // Every node has seen the pair clean: each lets proofs begin on what it knows (its own under way
      // counted), and the count that decides is made as each ends.
      for (const node of nodes.limits) assert.equal(await node.retryAfter("203.0.113.9", "carol", now), 0);
      const tries = nodes.limits.flatMap((node) =>
        Array.from(
          { length: 8 },
          () => node.beginProof("203.0.113.9", "carol", now).then((w) => ({ node, w })),
        )
      );
      const begun = (await Promise.all(tries)).filter((o) => o.w === 0);
      assert.equal(begun.length, 3 * SETTINGS.failures_before_backoff, "each node's free ones");
      const ends = await Promise.all(begun.map((o) => o.node.endProof("203.0.113.9", "carol", now, false)));
      const counted = ends.filter((r) => r === null).length;
      assert.equal(counted, SETTINGS.failures_before_backoff, "the free failures, and not one more");
      for (const r of ends.filter((r) => r !== null)) assert.ok(r.of === "backoff" && r.waitMs >= 1000);
      const local = new RateLimiter(OPTIONS.limiter);
      for (let i = 0; i < counted; i++) local.recordFailure("203.0.113.9", "carol", now);
      for (const node of nodes.limits) {
        assert.equal(
          await node.retryAfter("203.0.113.9", "carol", now),
          local.retryAfter("203.0.113.9", "carol", now),
        );
      }
      // A correct proof raced past the free ones is refused as well: its outcome is never told.
      const late = nodes.limits[2]!;
      assert.deepEqual(await late.endProof("203.0.113.9", "carol", now, true), {
        of: "backoff",
        waitMs: 1000,
      });
      // A source that has failed cannot spray proofs at other accounts in parallel either: once its first
      // backoff is over, one proof is counted (the next would wait 2 s after the latest failure).
      const spray = await Promise.all(
        nodes.limits.flatMap((node, n) =>
          Array.from({ length: 4 }, async (_, i) => {
            const wait = await node.beginProof("203.0.113.9", `user${n}-${i}`, now + 1000);
            if (wait > 0) return wait;
            return await node.endProof("203.0.113.9", `user${n}-${i}`, now + 1000, false);
          })
        ),
      );
      assert.equal(spray.filter((r) => r === null).length, 1, "one, on any node");
      for (const r of spray.filter((r) => r !== null)) {
        assert.ok((typeof r === "number" ? r : r.waitMs) > 0, JSON.stringify(r));
      }
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name:
    "NatsAbuseLimits counts a device token apart on every node: strangers' failures spare it, its own count",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(3);
    const [a, b, c] = nodes.limits as [
      typeof nodes.limits[0],
      typeof nodes.limits[0],
      typeof nodes.limits[0],
    ];
    try {
      const local = new RateLimiter(OPTIONS.limiter);
      const now = 9_000_000;
      // Strangers guess at alice from the owner's own address (one NAT), on every node.
      for (let i = 0; i < 6; i++) {
        const node = nodes.limits[i % 3]!;
        if ((await node.beginProof("198.51.100.7", "alice", now)) > 0) continue;
        if ((await node.endProof("198.51.100.7", "alice", now, false)) !== null) continue;
        local.recordFailure("198.51.100.7", "alice", now);
      }
      assert.ok((await a.retryAfter("198.51.100.7", "alice", now)) > 0, "without a token the address waits");
      const token = { deviceToken: "0123456789abcdef0123456789abcdef" };
      for (const node of nodes.limits) {
        assert.equal(await node.retryAfter("198.51.100.7", "alice", now, token), 0);
      }
      // Its own failures count, on every node, and only against the token.
      for (let i = 0; i < SETTINGS.failures_before_backoff; i++) {
        const node = nodes.limits[i % 3]!;
        assert.equal(await node.beginProof("198.51.100.7", "alice", now, token), 0);
        await node.endProof("198.51.100.7", "alice", now, false, token);
        local.begin("198.51.100.7", "alice", token);
        local.end("198.51.100.7", "alice", now, false, token);
      }
      for (const node of nodes.limits) {
        assert.equal(await node.retryAfter("10.0.0.1", "alice", now, token), 1000, "the token backs off");
        assert.equal(await node.retryAfter("10.0.0.1", "alice", now, { deviceToken: "other" }), 0);
        assert.equal(await node.retryAfter("10.0.0.1", "alice", now), 0, "no one else is counted");
      }
      assert.equal(
        await b.retryAfter("198.51.100.7", "alice", now),
        local.retryAfter("198.51.100.7", "alice", now),
      );
      // A correct proof with the token forgives the token's failures, everywhere.
      assert.equal(await c.beginProof("10.0.0.1", "alice", now + 1000, token), 0);
      await c.endProof("10.0.0.1", "alice", now + 1000, true, token);
      assert.equal(await a.retryAfter("10.0.0.1", "alice", now + 1000, token), 0);
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits shares the registration budget and the login budgets across nodes",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(3);
    try {
      const now = 20_000_000;
      const registrations = new TokenBucket(OPTIONS.registrations);
      for (let i = 0; i < 6; i++) {
        assert.equal(
          await nodes.limits[i % 3]!.takeRegistration("192.0.2.5", now + i),
          registrations.take("192.0.2.5", now + i),
          `registration ${i}`,
        );
      }
      assert.ok(registrations.wait("192.0.2.5", now + 6) > 0, "the budget was reached");
      const logins = new LoginBudget(OPTIONS.logins);
      const steps: [string, string, boolean][] = [
        ["10.1.0.1", "dave", false],
        ["10.1.0.2", "dave", false],
        ["10.1.0.3", "dave", true],
        ["10.1.0.1", "dave", false],
        ["10.1.0.4", "dave", false],
        ["10.1.0.5", "erin", false],
        ["10.1.0.5", "fred", false],
        ["10.1.0.5", "gina", false],
        ["10.1.0.5", "hugo", false],
        ["10.1.0.5", "ivan", true],
        ["10.1.0.5", "jack", false],
      ];
      for (const [i, [address, account, deviceToken]] of steps.entries()) {
        const node = nodes.limits[i % 3]!;
        const other = nodes.limits[(i + 1) % 3]!;
        const options = { deviceToken };
        assert.deepEqual(
          await node.checkLogin(address, account, now, options),
          logins.check(address, account, now, options),
          `check ${i}`,
        );
        assert.deepEqual(
          await node.spendLogin(address, account, now, options),
          logins.spend(address, account, now, options),
          `spend ${i}`,
        );
        assert.deepEqual(
          await other.checkLogin(address, account, now, options),
          logins.check(address, account, now, options),
          `check ${i} on the next node`,
        );
      }
      assert.deepEqual(await nodes.limits[0]!.checkLogin("10.1.0.1", "dave", now), {
        of: "account",
        waitMs: 20_000,
      });
      assert.equal(
        await nodes.limits[1]!.checkLogin("10.1.0.9", "dave", now),
        null,
        "a stranger is not told",
      );
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits counts nothing of the proofs a node that died had under way",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(2);
    const [dying, alive] = nodes.limits as [typeof nodes.limits[0], typeof nodes.limits[0]];
    try {
      const now = 30_000_000;
      for (let i = 0; i < SETTINGS.failures_before_backoff; i++) {
        assert.equal(await dying.beginProof("203.0.113.20", "kim", now), 0);
      }
      // The node dies with its proofs under way: it never ends them, and nobody was told their outcome.
      await nodes.buses[0]!.close();
      assert.equal(await alive.beginProof("203.0.113.20", "kim", now), 0, "nothing counted");
      assert.equal(await alive.endProof("203.0.113.20", "kim", now, false), null);
      const local = new RateLimiter(OPTIONS.limiter);
      local.recordFailure("203.0.113.20", "kim", now);
      assert.equal(
        await alive.retryAfter("203.0.113.20", "kim", now),
        local.retryAfter("203.0.113.20", "kim", now),
      );
    } finally {
      await nodes.close();
    }
  },
});

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(ok(), `timed out waiting until ${what}`);
}

function isUnavailable(err: unknown): boolean {
  return err instanceof ProtocolError && err.code === "UNAVAILABLE";
}

Deno.test({
  name:
    "NatsAbuseLimits without the bus allows only the free attempts, refuses the rest, and counts them when it is back",
  ignore,
  fn: async () => {
    const proxy = new TcpProxy(url!);
    const nodes = await limitNodes(2, { urls: [proxy.url] });
    const [cut, online] = nodes.limits as [typeof nodes.limits[0], typeof nodes.limits[0]];
    try {
      const now = 40_000_000;
      const free = SETTINGS.failures_before_backoff;
      // Before the cut: a pair at its free failures, which the cut node has seen.
      for (let i = 0; i < free; i++) {
        assert.equal(await online.beginProof("203.0.113.30", "lena", now), 0);
        await online.endProof("203.0.113.30", "lena", now, false);
      }
      assert.equal(await cut.retryAfter("203.0.113.30", "lena", now), 1000);
      await proxy.cut();
      await until("the node has lost the bus", () => !nodes.buses[0]!.connected);
      const starting = new NatsAbuseLimits(nodes.buses[0]!, SETTINGS, { bucket: "other", timeoutMs: 200 });
      await assert.rejects(starting.ready(), BusUnavailableError, "a node starting now can tell");
      await starting.close();

      // What it knows must wait is RATE_LIMITED; past the free failures with the backoff over, UNAVAILABLE.
      assert.equal(await cut.retryAfter("203.0.113.30", "lena", now + 400), 600);
      assert.equal(await cut.beginProof("203.0.113.30", "lena", now + 400), 600);
      await assert.rejects(cut.retryAfter("203.0.113.30", "lena", now + 1000), isUnavailable);
      const told = await cut.retryAfter("203.0.113.30", "lena", now + 1000).catch((err: Error) =>
        err.message
      );
      const doc = await Deno.readTextFile(new URL("../../docs/PROTOCOL.md", import.meta.url));
      assert.ok(
        doc.includes(`\`UNAVAILABLE\` (\`${told}\`)`),
        `docs/PROTOCOL.md section 7.3 quotes: ${told}`,
      );
      await assert.rejects(cut.beginProof("203.0.113.30", "lena", now + 1000), isUnavailable);
      assert.equal(await online.beginProof("203.0.113.30", "lena", now + 1000), 0, "a node with the bus may");
      await online.endProof("203.0.113.30", "lena", now + 1000, true);

      // A pair it has not seen: its free failures, no more.
      const local = new RateLimiter(OPTIONS.limiter);
      for (let i = 0; i < free; i++) {
        assert.equal(await cut.beginProof("203.0.113.31", "mona", now), 0, `free attempt ${i}`);
        await cut.endProof("203.0.113.31", "mona", now, false);
        local.recordFailure("203.0.113.31", "mona", now);
      }
      assert.equal(await cut.beginProof("203.0.113.31", "mona", now), 1000);
      await assert.rejects(cut.beginProof("203.0.113.31", "mona", now + 1000), isUnavailable);
      // A device token the same way.
      const token = { deviceToken: "feedfacefeedfacefeedfacefeedface" };
      for (let i = 0; i < free; i++) {
        assert.equal(await cut.beginProof("203.0.113.32", "nina", now, token), 0);
        await cut.endProof("203.0.113.32", "nina", now, false, token);
      }
      await assert.rejects(cut.beginProof("203.0.113.32", "nina", now + 1000, token), isUnavailable);
      assert.equal(
        cut.pending,
        free * 3 + free,
        "the outcomes wait for the bus: 3 keys a failure, 1 a token's",
      );
      // Registrations need the bus; logins count on the node's own budgets meanwhile.
      await assert.rejects(cut.takeRegistration("203.0.113.40", now), isUnavailable);
      for (let i = 0; i < SETTINGS.logins_per_minute_per_account; i++) {
        assert.equal(await cut.spendLogin(`203.0.113.${50 + i}`, "olga", now), null);
      }
      assert.equal((await cut.spendLogin("203.0.113.60", "olga", now))?.of, "account");
      assert.equal(await online.retryAfter("203.0.113.31", "mona", now), 0, "the others have not heard yet");

      // The bus is back: what the node counted alone counts everywhere, and it asks the bus again.
      proxy.restore();
      await until("the node has the bus again", () => nodes.buses[0]!.connected);
      await until("the node has written what it decided alone", () => cut.pending === 0);
      for (const node of nodes.limits) {
        assert.equal(
          await node.retryAfter("203.0.113.31", "mona", now),
          local.retryAfter("203.0.113.31", "mona", now),
        );
        assert.equal(await node.retryAfter("203.0.113.32", "nina", now, token), 1000);
      }
      assert.equal(
        await cut.beginProof("203.0.113.31", "mona", now + 1000),
        0,
        "past the free ones, as one node",
      );
      await cut.endProof("203.0.113.31", "mona", now + 1000, false);
      assert.equal(await cut.takeRegistration("203.0.113.40", now), 0);
      assert.equal(
        await online.retryAfter("203.0.113.30", "lena", now + 1000),
        0,
        "the success on the bus holds",
      );
    } finally {
      await nodes.close();
      await proxy.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits forgets a counter on every node after the forget time, as one node does",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(2);
    try {
      const local = new RateLimiter(OPTIONS.limiter);
      const now = 50_000_000;
      for (let i = 0; i < 5; i++) {
        const node = nodes.limits[i % 2]!;
        const at = now + local.retryAfter("203.0.113.70", "pia", now);
        assert.equal(await node.beginProof("203.0.113.70", "pia", at), 0);
        await node.endProof("203.0.113.70", "pia", at, false);
        local.begin("203.0.113.70", "pia");
        local.end("203.0.113.70", "pia", at, false);
      }
      const later = now + OPTIONS.limiter.forgetAfterMs + 10_000;
      for (const at of [later - 20_000, later]) {
        for (const node of nodes.limits) {
          assert.equal(
            await node.retryAfter("203.0.113.70", "pia", at),
            local.retryAfter("203.0.113.70", "pia", at),
          );
        }
      }
      // Forgotten: the next failure is the first again.
      assert.equal(await nodes.limits[0]!.beginProof("203.0.113.70", "pia", later), 0);
      await nodes.limits[0]!.endProof("203.0.113.70", "pia", later, false);
      local.begin("203.0.113.70", "pia");
      local.end("203.0.113.70", "pia", later, false);
      assert.equal(await nodes.limits[1]!.retryAfter("203.0.113.70", "pia", later), 0);
      assert.equal(local.retryAfter("203.0.113.70", "pia", later), 0);
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits raises the bucket's entry lifetime to what its settings need, never lowers it",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(1, { limits: { bucket: "short" } });
    try {
      // Another node made the bucket for settings that forget sooner.
      const bus = nodes.buses[0]!;
      assert.equal((await (await bus.kv("short", { ttlMs: 60_000, history: 1 })).status()).ttl, 60_000);
      await nodes.limits[0]!.retryAfter("10.0.0.1", "quinn", 0);
      const kv = await bus.kv("short");
      assert.equal((await kv.status()).ttl, OPTIONS.limiter.forgetAfterMs);
      const longer = new NatsAbuseLimits(bus, { ...SETTINGS, backoff_max: 3600 }, { bucket: "short" });
      await longer.retryAfter("10.0.0.1", "quinn", 0);
      await longer.close();
      // backoff_max 3600 s: counters are kept twice as long, 2 h.
      assert.equal((await kv.status()).ttl, 7_200_000);
      const shorter = new NatsAbuseLimits(bus, SETTINGS, { bucket: "short" });
      await shorter.retryAfter("10.0.0.1", "quinn", 0);
      await shorter.close();
      assert.equal((await kv.status()).ttl, 7_200_000, "not lowered");
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits leaves no failed request unheard when NATS stops answering in the middle of a login",
  ignore,
  fn: async () => {
    // A correct proof's end writes the pair, and meanwhile the source and the account; a login's budgets are
    // written while the pair is marked: when NATS stops answering, each of these writes fails. A failure
    // nobody listens for would end the whole process.
    const proxy = new TcpProxy(url!);
    const nodes = await limitNodes(1, { urls: [proxy.url], limits: { timeoutMs: 200, retryMs: 300 } });
    const unheard: unknown[] = [];
    const listener = (event: PromiseRejectionEvent) => {
      event.preventDefault();
      unheard.push(event.reason);
    };
    globalThis.addEventListener("unhandledrejection", listener);
    try {
      const limits = nodes.limits[0]!;
      const now = 50_000_000;
      assert.equal(await limits.beginProof("203.0.113.70", "pia", now), 0);
      proxy.pause();
      assert.equal(await limits.spendLogin("203.0.113.72", "rae", now), null, "decided alone");
      // Past `retryMs` the node asks NATS again.
      await new Promise((resolve) => setTimeout(resolve, 400));
      await limits.endProof("203.0.113.70", "pia", now, true);
      // Every write sent before the node decided alone has timed out by now.
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.deepEqual(unheard.map(String), [], "every failure was heard");
      assert.ok(limits.pending > 0, "the outcome decided alone is kept for NATS");
      proxy.resume();
      // Past `retryMs`, the next question starts writing what was decided alone (in the background).
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(await limits.retryAfter("203.0.113.71", "quinn", now), 0);
      for (let waited = 0; limits.pending > 0; waited += 20) {
        assert.ok(waited < 5000, `still ${limits.pending} outcomes unwritten 5 s after NATS answered again`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    } finally {
      globalThis.removeEventListener("unhandledrejection", listener);
      proxy.resume();
      await nodes.close();
      await proxy.close();
    }
  },
});
