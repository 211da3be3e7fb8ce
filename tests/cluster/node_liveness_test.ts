import assert from "node:assert/strict";
import { LOGIN_REFUSED } from "../../lib/cluster/nats_session_directory.ts";
import { busToken } from "../../lib/cluster/nats_bus.ts";
import { NodeLiveness } from "../../lib/cluster/node_liveness.ts";
import type { NatsBus } from "../../lib/cluster/nats_bus.ts";
import {
  deletedKeys,
  eventually,
  eventuallyAsync,
  FAST,
  member,
  natsUrl,
  TestCluster,
  TestNode,
  user,
} from "./_nats_kit.ts";

const nats = natsUrl();

Deno.test({
  name: "NodeLiveness takes over the id of a run that lost the bus only after that run has fenced itself",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 0);
    const old = await c.add("n1", { via: c.proxy.url });
    try {
      old.sessionsOf.set("carol", 1);
      // The old run is still up, but its bus is gone: it cannot hear a PASSWD any more.
      await c.proxy.cut();
      const fresh = await c.add("n1");
      assert.equal(old.endAllCalls, 1, "the old run had ended its sessions when the new one took the id");
      assert.notEqual(fresh.liveness.incarnation, old.liveness.incarnation);
      assert.equal(fresh.liveness.fenced, false);
    } finally {
      // It lost the bus: it dies, as a run cut off would, rather than stopping cleanly.
      await old.kill();
    }
  },
});

Deno.test({
  name:
    "NodeLiveness is fenced at once after an event-loop stall longer than fenceAfterMs, before its check runs",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 1);
    const node = c.nodes[0]!;
    node.sessionsOf.set("carol", 1);
    const before = node.liveness.incarnation;
    assert.equal(node.sessions.loginsRefused(), null);
    // A stall: nothing else runs meanwhile, neither the heartbeats nor the check that fences.
    const end = performance.now() + FAST.fenceAfterMs + 200;
    while (performance.now() < end) { /* stalled */ }
    assert.equal(node.liveness.fenced, true, "a login checked now must find the node fenced");
    assert.equal(node.sessions.loginsRefused(), LOGIN_REFUSED);
    await eventually("its sessions ended", () => node.endAllCalls === 1);
    await eventually("back with a new incarnation", () => !node.liveness.fenced);
    assert.notEqual(node.liveness.incarnation, before);
    assert.equal(node.sessions.loginsRefused(), null);
  },
});

/** Deletes kept this long in the tests below, ms (a node away for half of it reads the bucket again). */
const KEEP_DELETES_MS = 2000;

/** Wait until the three delete markers a test made are in the bucket, then until they are purged. */
async function markersWrittenThenPurged(c: TestCluster): Promise<void> {
  await eventuallyAsync(
    "the markers are written",
    async () => (await deletedKeys(c.url, c.prefix)).length >= 3,
  );
  await eventuallyAsync(
    "the markers are purged",
    async () => (await deletedKeys(c.url, c.prefix)).length === 0,
    4 * KEEP_DELETES_MS,
  );
}

Deno.test({
  name: "NodeLiveness purges the bucket's delete markers once they are keepDeletesMs old, and only those",
  ignore: !nats,
  async fn() {
    const options = { keepDeletesMs: KEEP_DELETES_MS };
    await using c = await TestCluster.start(nats!, 3, options);
    const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
    // Markers: a user who left n2, a node that stopped cleanly (its heartbeat and its user's key).
    const bob = member();
    n2.presence.join(bob, user("bob"));
    n3.presence.join(member(), user("carol"));
    n1.presence.join(member(), user("alice"));
    await eventually(
      "bob and carol seen",
      () => n1.presence.get("bob") !== undefined && !!n1.presence.get("carol"),
    );
    n2.presence.leave(bob, "bob");
    await n3.stop();
    await markersWrittenThenPurged(c);
    assert.ok(n1.logs.concat(n2.logs).some((l) => l.includes('"event":"bus_deletes_purged"')));
    // What holds a value is untouched: the nodes' heartbeats and alice.
    assert.equal(n1.presence.get("alice")?.name, "alice");
    assert.deepEqual(n1.liveness.others().map((r) => r.nodeId), ["n2"]);
    const later = await c.add("n4", options);
    assert.equal(later.presence.get("alice")?.name, "alice");
    assert.equal(later.presence.get("bob"), undefined);
    assert.deepEqual(later.liveness.others().map((r) => r.nodeId).sort(), ["n1", "n2"]);
  },
});

Deno.test({
  name: "NodeLiveness back after an absence in which deletes were purged keeps no ghost of a user or a node",
  ignore: !nats,
  async fn() {
    const options = { keepDeletesMs: KEEP_DELETES_MS };
    await using c = await TestCluster.start(nats!, 2, options);
    const [n1, n2] = c.nodes as [TestNode, TestNode];
    const proxy = c.proxy;
    const away = await c.add("n3", { ...options, via: proxy.url });
    const bob = member();
    n1.presence.join(bob, user("bob"));
    n2.presence.join(member(), user("carol"));
    await eventually(
      "bob and carol seen",
      () => !!away.presence.get("bob") && !!away.presence.get("carol"),
    );
    await proxy.cut();
    await eventually("the node is fenced", () => away.liveness.fenced);
    // Meanwhile bob leaves and n2 stops, and their deletes are purged before the node is back.
    n1.presence.leave(bob, "bob");
    await n2.stop();
    await markersWrittenThenPurged(c);
    proxy.restore();
    await eventually("back", () => !away.liveness.fenced, 15_000);
    await eventually(
      "bob and carol offline, n2 gone",
      () =>
        away.presence.get("bob") === undefined && away.presence.get("carol") === undefined &&
        away.liveness.liveRef(busToken("n2")) === undefined,
    );
    assert.deepEqual(away.liveness.others().map((r) => r.nodeId), ["n1"]);
    assert.ok(away.logs.some((l) => l.includes('"event":"bus_watch_reread"')));
    // And it follows the bucket again from there.
    n1.presence.join(member(), user("dave"));
    await eventually("dave seen", () => away.presence.get("dave") !== undefined);
  },
});

Deno.test("NodeLiveness refuses a keepDeletesMs that is not a positive number of ms", () => {
  const bus = { nodeId: "n1" } as unknown as NatsBus;
  assert.throws(() => new NodeLiveness(bus, { timing: FAST, keepDeletesMs: 0 }), RangeError);
  assert.throws(() => new NodeLiveness(bus, { timing: FAST, keepDeletesMs: Number.NaN }), RangeError);
});
