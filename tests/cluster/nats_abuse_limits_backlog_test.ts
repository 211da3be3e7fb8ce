/**
 * NatsAbuseLimits after an outage: the outcomes it decided alone are written in the background, no request
 * waits for the whole backlog, and what is not yet written still counts in what the node decides meanwhile.
 */
import assert from "node:assert/strict";
import { sourceKey } from "../../lib/auth/rate_limiter.ts";
import { busToken } from "../../lib/cluster/nats_bus.ts";
import { TcpProxy } from "../_tcp_proxy.ts";
import { decodeRecord } from "../../lib/cluster/_limit_record.ts";
import { limitOptions } from "../../lib/server/local_parts.ts";
import { limitNodes, natsUrl, SETTINGS } from "./_limit_nodes.ts";
import type { LimitNodes } from "./_limit_nodes.ts";

const url = natsUrl();

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 800 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(ok(), `timed out waiting until ${what}`);
}

/** `count` nodes, the first reaching NATS through a proxy that can take it away. */
async function outageNodes(count: number): Promise<{ proxy: TcpProxy; nodes: LimitNodes }> {
  const proxy = new TcpProxy(url!);
  try {
    return { proxy, nodes: await limitNodes(count, { urls: [proxy.url] }) };
  } catch (err) {
    await proxy.close();
    throw err;
  }
}

/** Take NATS away from the first node, and wait until it knows. */
async function loseBus(proxy: TcpProxy, nodes: LimitNodes): Promise<void> {
  await proxy.cut();
  await until("the node has lost the bus", () => !nodes.buses[0]!.connected);
}

/** A source of its own (its own /64) for the i-th fresh attempt. */
function freshSource(i: number): string {
  return `2001:db8:${(i >> 8).toString(16)}:${(i & 255).toString(16)}::1`;
}

Deno.test({
  name: "NatsAbuseLimits answers a request after an outage without waiting for the backlog to be written",
  ignore: url === undefined,
  fn: async () => {
    const { proxy, nodes } = await outageNodes(1);
    const limits = nodes.limits[0]!;
    try {
      const now = 50_000_000;
      assert.equal(await limits.retryAfter("203.0.113.1", "warm", now), 0);
      await loseBus(proxy, nodes);
      // Wrong passwords from many fresh sources on fresh names: each a free attempt alone, 3 outcomes each.
      for (let i = 0; i < 1200; i++) {
        assert.equal(await limits.beginProof(freshSource(i), `user${i}`, now), 0);
        await limits.endProof(freshSource(i), `user${i}`, now, false);
      }
      assert.equal(limits.pending, 3600);
      proxy.restore();
      await until("the node has the bus again", () => nodes.buses[0]!.connected);
      const before = limits.pending;
      const started = performance.now();
      assert.equal(await limits.retryAfter("198.51.100.7", "unrelated", now), 0);
      const tookMs = performance.now() - started;
      const after = limits.pending;
      console.log(
        `pending when asked: ${before}, when answered: ${after}, answer took ${tookMs.toFixed(0)} ms`,
      );
      assert.ok(after > 0, `the request was held until all ${before} outcomes were written (${tookMs} ms)`);
      await until("the backlog is written", () => limits.pending === 0);
    } finally {
      await nodes.close();
      await proxy.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits counts the outcomes not yet written while it writes the backlog of an outage",
  ignore: url === undefined,
  fn: async () => {
    const { proxy, nodes } = await outageNodes(2);
    const [cut, online] = nodes.limits as [typeof nodes.limits[0], typeof nodes.limits[0]];
    try {
      const now = 60_000_000;
      const free = SETTINGS.failures_before_backoff;
      assert.equal(await cut.retryAfter("203.0.113.70", "pia", now), 0);
      await loseBus(proxy, nodes);
      // The pair's first failure first in the backlog, then many others, then the pair's other free ones.
      assert.equal(await cut.beginProof("203.0.113.70", "pia", now), 0);
      await cut.endProof("203.0.113.70", "pia", now, false);
      for (let i = 0; i < 600; i++) {
        assert.equal(await cut.beginProof(freshSource(i), `user${i}`, now), 0);
        await cut.endProof(freshSource(i), `user${i}`, now, false);
      }
      for (let i = 1; i < free; i++) {
        assert.equal(await cut.beginProof("203.0.113.70", "pia", now), 0, `free attempt ${i}`);
        await cut.endProof("203.0.113.70", "pia", now, false);
      }
      const total = cut.pending;
      assert.equal(total, 3 * (600 + free));
      assert.equal(
        await cut.beginProof("203.0.113.70", "pia", now),
        1000,
        "alone, the pair is at its free ones",
      );

      proxy.restore();
      // Once the pair's first failure is in the bucket (its 3 keys written), and long before its others are.
      await until("the pair's first failure is written", () => cut.pending <= total - 3);
      assert.ok(cut.pending > 3 * free, "the pair's later failures are not written yet");
      assert.equal(
        await cut.beginProof("203.0.113.70", "pia", now),
        1000,
        "the failures not yet written still count: no attempt beyond the free ones",
      );
      await until("the backlog is written", () => cut.pending === 0);
      assert.equal(await online.retryAfter("203.0.113.70", "pia", now), 1000, "every failure in the bucket");
      assert.equal(await cut.retryAfter("203.0.113.70", "pia", now), 1000);
    } finally {
      await nodes.close();
      await proxy.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits writes a failure decided alone on its source and account before its pair",
  ignore: url === undefined,
  fn: async () => {
    // What lets a success leave a clean pair unwritten (nats_abuse_limits.ts, "Cost"): no pair ever holds a
    // failure its source does not. The bucket's revisions give the order of the backlog's writes.
    const { proxy, nodes } = await outageNodes(2);
    const [cut, online] = nodes.limits as [typeof nodes.limits[0], typeof nodes.limits[0]];
    try {
      const now = 70_000_000;
      assert.equal(await cut.retryAfter("203.0.113.80", "quinn", now), 0);
      await loseBus(proxy, nodes);
      assert.equal(await cut.beginProof("203.0.113.80", "quinn", now), 0);
      await cut.endProof("203.0.113.80", "quinn", now, false);
      assert.equal(cut.pending, 3);
      proxy.restore();
      await until("the backlog is written", () => cut.pending === 0);
      const kv = await nodes.buses[1]!.kv("limits");
      const source = busToken(sourceKey("203.0.113.80"));
      const revision = async (key: string) => (await kv.get(key))?.revision ?? 0;
      const pair = await revision(`p.${source}.${busToken("quinn")}`);
      const sourceRev = await revision(`s.${source}`);
      const account = await revision(`a.${busToken("quinn")}`);
      assert.ok(sourceRev > 0 && account > 0 && pair > 0, "all three written");
      assert.ok(
        pair > sourceRev && pair > account,
        `pair ${pair} after source ${sourceRev}, account ${account}`,
      );
      // And the failure counts, on the other node too.
      assert.equal(await online.retryAfter("203.0.113.80", "quinn", now), 0, "one failure is a free one");
    } finally {
      await nodes.close();
      await proxy.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits: a success decided alone forgives its source only the pair's failures not forgotten",
  ignore: url === undefined,
  fn: async () => {
    // A pair's forgotten failures are no longer on its source (a failure on a forgotten source counts from
    // none): forgiving them there takes off another pair's, and a source left clean beside a pair with
    // failures lets a login that finds it so leave that pair unwritten, and be told past its backoff.
    const { proxy, nodes } = await outageNodes(3);
    const [cut, stale, other] = nodes.limits as [
      typeof nodes.limits[0],
      typeof nodes.limits[0],
      typeof nodes.limits[0],
    ];
    try {
      const address = "203.0.113.95";
      const free = SETTINGS.failures_before_backoff;
      const forgetMs = limitOptions(SETTINGS).limiter.forgetAfterMs;
      const t0 = 80_000_000;
      // The pair (address, olga): its free failures, forgotten an hour later.
      for (let i = 0; i < free; i++) {
        assert.equal(await cut.beginProof(address, "olga", t0), 0);
        await cut.endProof(address, "olga", t0, false);
      }
      // Later: another node logs in to ruth from the same address (its pair clean, freshly marked)...
      const t1 = t0 + forgetMs + 10_000;
      assert.equal(await stale.beginProof(address, "ruth", t1), 0);
      assert.equal(await stale.endProof(address, "ruth", t1, true, {}, {}), null);
      // ...and a third one counts failures on (address, ruth) up to its backoff.
      const tq = t1 + 1000;
      for (let i = 0; i < free; i++) {
        assert.equal(await other.beginProof(address, "ruth", tq), 0);
        await other.endProof(address, "ruth", tq, false);
      }
      assert.equal(await other.retryAfter(address, "ruth", tq), 1000);
      // The first node, cut off, logs in to olga: a free attempt by what it knows.
      await loseBus(proxy, nodes);
      assert.equal(await cut.beginProof(address, "olga", tq + 100), 0);
      assert.equal(await cut.endProof(address, "olga", tq + 100, true), null);
      proxy.restore();
      await until("the backlog is written", () => cut.pending === 0);
      // (address, ruth) is still in its backoff, on every node: its failures are on its source.
      const kv = await nodes.buses[2]!.kv("limits");
      const entry = await kv.get(`s.${busToken(sourceKey(address))}`);
      const record = entry?.value.length ? decodeRecord(entry.value) : {};
      assert.deepEqual(record.failures, { failures: free, last: tq }, "the source keeps ruth's failures");
      const tx = tq + 500;
      assert.equal(await stale.beginProof(address, "ruth", tx), 0, "by what this node has seen");
      assert.deepEqual(
        await stale.endProof(address, "ruth", tx, true, {}, {}),
        { of: "backoff", waitMs: 500 },
        "a correct password within the pair's backoff is not told",
      );
    } finally {
      await nodes.close();
      await proxy.close();
    }
  },
});
