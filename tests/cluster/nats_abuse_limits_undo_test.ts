/**
 * NatsAbuseLimits when a proof's end is refused after some of its keys were written (another node counted
 * meanwhile): what it wrote is taken back, and nothing of it may show, to the attacker or to the counts.
 */
import assert from "node:assert/strict";
import { RateLimiter, sourceKey } from "../../lib/auth/rate_limiter.ts";
import { busToken } from "../../lib/cluster/nats_bus.ts";
import { limitOptions } from "../../lib/server/local_parts.ts";
import { limitNodes, natsUrl, SETTINGS } from "./_limit_nodes.ts";

const ignore = natsUrl() === undefined;
const OPTIONS = limitOptions(SETTINGS);

Deno.test({
  name:
    "NatsAbuseLimits leaves no trace of a correct proof refused at its end: LOGIN answers as after a wrong one",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(2);
    const [a, b] = nodes.limits as [typeof nodes.limits[0], typeof nodes.limits[0]];
    try {
      const t0 = 70_000_000;
      // The same steps for a right and for a wrong guess, each on a pair of its own.
      const probe = async (source: string, account: string, correct: boolean) => {
        // An earlier wrong guess, seen by node a; then node b counts the source's failures on other accounts
        // up to its backoff, which node a has not seen.
        assert.equal(await a.beginProof(source, account, t0), 0);
        assert.equal(await a.endProof(source, account, t0, false), null);
        for (const other of ["x1", "x2"]) {
          assert.equal(await b.beginProof(source, other, t0), 0);
          assert.equal(await b.endProof(source, other, t0, false), null);
        }
        // The guess begins on what node a has seen, and is refused as it ends: its outcome is not told.
        assert.equal(await a.beginProof(source, account, t0), 0);
        const ended = await a.endProof(source, account, t0, correct, {}, correct ? {} : undefined);
        assert.deepEqual(ended, { of: "backoff", waitMs: 1000 }, `refused (${correct ? "right" : "wrong"})`);
        // The account's owner logs in from elsewhere as often as its budget allows.
        for (let i = 0; i < SETTINGS.logins_per_minute_per_account; i++) {
          assert.equal(await b.spendLogin(`10.20.${correct ? 1 : 2}.${i}`, account, t0), null);
        }
        // Once the backoff is over, the guesser's next LOGIN.
        return await b.loginGate(source, account, t0 + 1000);
      };
      const afterWrong = await probe("203.0.113.101", "vic-wrong", false);
      const afterRight = await probe("203.0.113.102", "vic-right", true);
      assert.deepEqual(
        afterWrong,
        { refusal: null, waitMs: 0 },
        "a stranger is not told the account's budget",
      );
      assert.deepEqual(afterRight, afterWrong, "a refused right guess must look like a refused wrong one");
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits lets no success forgive a failure that was refused at its end",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(2);
    const [a, b] = nodes.limits as [typeof nodes.limits[0], typeof nodes.limits[0]];
    const local = new RateLimiter(OPTIONS.limiter);
    const s = "203.0.113.120";
    const fail = async (node: typeof a, account: string, now: number) => {
      assert.equal(await node.beginProof(s, account, now), 0, `${account} begins`);
      assert.equal(await node.endProof(s, account, now, false), null, `${account} is counted`);
      local.recordFailure(s, account, now);
    };
    try {
      const t0 = 80_000_000;
      // The source sprays wrong guesses at other accounts: three on node a, a fourth on node b once the
      // backoff is over (node a has not seen it).
      for (const v of ["v1", "v2", "v3"]) await fail(a, v, t0);
      await fail(b, "v4", t0 + 1000);
      // The sprayer owns mallory. A wrong guess at it (p) begins on node a, on what node a has seen; as it
      // ends it meets the fourth failure and is refused. Right after p's end started, a correct proof (q)
      // of the same pair begins and ends on node a, once the backoff is over.
      const t1 = t0 + 1500;
      const t2 = t0 + 3100;
      assert.equal(await a.beginProof(s, "mallory", t1), 0);
      const p = a.endProof(s, "mallory", t1, false);
      assert.equal(await a.beginProof(s, "mallory", t2), 0);
      const q = a.endProof(s, "mallory", t2, true, {}, {});
      assert.equal((await p)?.of, "backoff", "p is refused: nothing of it counts");
      assert.equal(await q, null, "q is counted");
      local.begin(s, "mallory");
      local.end(s, "mallory", t2, true);
      // The source's next failure: its backoff must be what the failures told make it.
      await fail(b, "v5", t2);
      for (const node of [a, b]) {
        assert.equal(await node.retryAfter(s, "v6", t2), local.retryAfter(s, "v6", t2));
      }
      assert.equal(local.retryAfter(s, "v6", t2), 4000, "five failures of the source");
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits takes a refused success back on its source and account before its pair",
  ignore,
  fn: async () => {
    // A success that cleared its pair and forgave its source, then refused on its account, gives the pair's
    // failures back only once the source has them again: no pair ever holds a failure its source does not
    // (a login that finds its source clean leaves its pair unwritten). The revisions give the order.
    const nodes = await limitNodes(2);
    const [a, b] = nodes.limits as [typeof nodes.limits[0], typeof nodes.limits[0]];
    try {
      const t0 = 90_000_000;
      const s = "203.0.113.130";
      // A wrong guess seen by node a: the pair, the source and the account have a failure each.
      assert.equal(await a.beginProof(s, "wendy", t0), 0);
      assert.equal(await a.endProof(s, "wendy", t0, false), null);
      // Node b counts the account's failures from elsewhere up to its backoff (node a has not seen them).
      for (const other of ["198.51.100.31", "198.51.100.32"]) {
        assert.equal(await b.beginProof(other, "wendy", t0), 0);
        assert.equal(await b.endProof(other, "wendy", t0, false), null);
      }
      // A correct proof on node a: the pair cleared first, the source forgiven, the account refuses.
      assert.equal(await a.beginProof(s, "wendy", t0), 0);
      assert.deepEqual(await a.endProof(s, "wendy", t0, true, {}, {}), { of: "backoff", waitMs: 1000 });
      const kv = await nodes.buses[1]!.kv("limits");
      const source = busToken(sourceKey(s));
      const read = async (key: string) => {
        const entry = await kv.get(key);
        const record = entry?.value.length ? JSON.parse(new TextDecoder().decode(entry.value)) : {};
        return { rev: entry?.revision ?? 0, failures: record.f?.[0] ?? 0 };
      };
      const pair = await read(`p.${source}.${busToken("wendy")}`);
      const src = await read(`s.${source}`);
      assert.equal(pair.failures, 1, "the pair's failure is back");
      assert.equal(src.failures, 1, "the source's failure is back");
      assert.ok(pair.rev > src.rev, `the pair (${pair.rev}) taken back after the source (${src.rev})`);
    } finally {
      await nodes.close();
    }
  },
});
