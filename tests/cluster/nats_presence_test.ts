import assert from "node:assert/strict";
import { encodeBase64 } from "../../lib/codec/base64.ts";
import {
  eventually,
  eventuallyAsync,
  type Member,
  member,
  natsUrl,
  notices,
  TestCluster,
  TestNode,
  user,
} from "./_nats_kit.ts";

const nats = natsUrl();

/** A watcher on `watching`, alice and bob on `other`; resolves once the watcher's node lists all three. */
async function aliceAndBobOn(other: TestNode, watching: TestNode): Promise<Member> {
  const watcher = member();
  watching.presence.join(watcher, user("watcher"));
  other.presence.join(member(), user("alice"));
  other.presence.join(member(), user("bob"));
  await eventually("alice and bob seen", () => watching.presence.list(undefined, 10).users.length === 3);
  return watcher;
}

/** The presence keys a node holds in the bucket, as another node reads them. */
async function presenceKeys(of: TestNode, reader: TestNode): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of await reader.liveness.kv.keys(`p.${of.liveness.node}.>`)) keys.push(key);
  return keys;
}

Deno.test({
  name: "NatsPresence shows a user of one node on every node, and tells every node's sessions",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 3);
    const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
    const bob = member();
    const carol = member();
    n2.presence.join(bob, user("bob"));
    n3.presence.join(carol, user("carol"));
    const alice = member();
    n1.presence.join(alice, user("Alice"));
    for (const node of c.nodes) {
      await eventually(
        "all three listed everywhere",
        () => node.presence.list(undefined, 10).users.length === 3,
      );
      assert.deepEqual(node.presence.list(undefined, 10).users.map((u) => u.name), ["Alice", "bob", "carol"]);
    }
    await eventually("bob hears of alice", () => notices(bob).includes("Alice online"));
    await eventually("carol hears of alice", () => notices(carol).includes("Alice online"));
    assert.ok(notices(alice).includes("bob online") || n1.presence.get("bob"), "alice's node knows bob");
    n1.presence.leave(alice, "alice");
    await eventually("bob hears alice leave", () => notices(bob).at(-1) === "Alice offline");
    await eventually("carol hears alice leave", () => notices(carol).at(-1) === "Alice offline");
    for (const node of c.nodes) assert.equal(node.presence.get("alice"), undefined);
    assert.ok(!notices(alice).some((n) => n.startsWith("Alice")), "never told about herself");
  },
});

Deno.test({
  name: "NatsPresence keeps a user with sessions on two nodes online until the last one leaves",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 3);
    const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
    const watcher = member();
    n3.presence.join(watcher, user("watcher"));
    const a1 = member();
    const a2 = member();
    n1.presence.join(a1, user("alice"));
    n2.presence.join(a2, user("alice"));
    await eventually("alice online", () => notices(watcher).includes("alice online"));
    n1.presence.leave(a1, "alice");
    // The leave on n1 and a marker after it: once the marker has arrived, so has the leave.
    const marker = member();
    n1.presence.join(marker, user("marker"));
    await eventually("marker seen", () => n3.presence.get("marker") !== undefined);
    assert.ok(n3.presence.get("alice"), "still online through n2");
    assert.deepEqual(notices(watcher).filter((n) => n.startsWith("alice")), ["alice online"]);
    n2.presence.leave(a2, "alice");
    await eventually("alice offline", () => notices(watcher).includes("alice offline"));
    assert.equal(n1.presence.get("alice"), undefined);
  },
});

Deno.test({
  name: "NatsPresence tells every node of a user's changes in order, ending in the same state",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 3);
    const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
    const on2 = member();
    const on3 = member();
    n2.presence.join(on2, user("w2"));
    n3.presence.join(on3, user("w3"));
    await eventually("watchers see each other", () => n2.presence.get("w3") !== undefined);
    // Sessions of alice coming and going on two nodes at once. A node may skip a change that a later one
    // replaced before it read it (the bucket keeps one value per key), so the nodes need not hear the same
    // blips; but each hears alternately online and offline (never an older state after a newer one), and
    // all end in the true state.
    const a1 = member();
    const a2 = member();
    let marker = 0;
    const settle = async () => {
      // A marker after each writer's last change: once seen, that writer's changes have all arrived.
      marker++;
      n1.presence.join(member(), user(`m1-${marker}`));
      n2.presence.join(member(), user(`m2-${marker}`));
      for (const m of [on2, on3]) {
        await eventually(
          "markers seen",
          () => [1, 2].every((n) => notices(m).includes(`m${n}-${marker} online`)),
        );
      }
    };
    for (let i = 0; i < 20; i++) {
      n1.presence.join(a1, user("alice"));
      if (i % 3 === 0) n2.presence.join(a2, user("alice"));
      n1.presence.leave(a1, "alice");
      if (i % 3 === 2) n2.presence.leave(a2, "alice");
    }
    // a2 joined at i = 18 and is still there: online.
    await settle();
    n2.presence.leave(a2, "alice");
    n1.presence.join(a1, user("alice"));
    n1.presence.leave(a1, "alice");
    await settle();
    for (const m of [on2, on3]) {
      const about = m.seen.filter((n) => n.user === "alice").map((n) => n.state);
      assert.ok(about.length >= 2, "alice came and went");
      about.forEach((state, i) => assert.equal(state, i % 2 === 0 ? "online" : "offline", about.join()));
    }
    for (const node of c.nodes) assert.equal(node.presence.get("alice"), undefined);
  },
});

Deno.test({
  name: "NatsPresence tells every node of an identity key registered while online",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 2);
    const [n1, n2] = c.nodes as [TestNode, TestNode];
    const watcher = member();
    n2.presence.join(watcher, user("watcher"));
    n1.presence.join(member(), user("alice"));
    await eventually("alice online", () => notices(watcher).includes("alice online"));
    n1.presence.update(user("alice", new Uint8Array(32).fill(7)));
    await eventually(
      "alice's key",
      () => watcher.seen.some((n) => n.user === "alice" && n.key !== undefined),
    );
    assert.deepEqual(watcher.seen.at(-1), {
      op: "PRESENCE",
      user: "alice",
      state: "online",
      key: encodeBase64(new Uint8Array(32).fill(7)),
      fingerprint: "SHA256:alice",
    });
    assert.deepEqual(n2.presence.get("alice")?.identityKey, new Uint8Array(32).fill(7));
  },
});

Deno.test({
  name: "NatsPresence lets a node that starts later know who is online",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 1);
    const [n1] = c.nodes as [TestNode];
    n1.presence.join(member(), user("alice"));
    n1.presence.join(member(), user("bob"));
    const gone = member();
    n1.presence.join(gone, user("gone"));
    n1.presence.leave(gone, "gone");
    await eventually("n1 sees both", () => n1.presence.list(undefined, 10).users.length === 2);
    const late = await c.add("late");
    // Nothing to wait for: the start read the bucket to its end.
    assert.deepEqual(late.presence.list(undefined, 10).users.map((u) => u.key), ["alice", "bob"]);
  },
});

Deno.test({
  name: "NatsPresence lets a user who left cleanly linger, so a re-login on another node does not flap",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 2, { lingerMs: 400 });
    const [n1, n2] = c.nodes as [TestNode, TestNode];
    const watcher = member();
    n2.presence.join(watcher, user("watcher"));
    const a1 = member();
    n1.presence.join(a1, user("alice"));
    await eventually("alice online", () => notices(watcher).includes("alice online"));
    n1.presence.leave(a1, "alice", true);
    const a2 = member();
    n2.presence.join(a2, user("alice"));
    // Past the linger: n1's key is deleted, n2's holds her online.
    await new Promise((r) => setTimeout(r, 600));
    const marker = member();
    n1.presence.join(marker, user("marker"));
    await eventually("marker seen", () => notices(watcher).includes("marker online"));
    assert.deepEqual(notices(watcher).filter((n) => n.startsWith("alice")), ["alice online"]);
    n2.presence.leave(a2, "alice", false);
    await eventually("alice offline at once", () => notices(watcher).includes("alice offline"));
  },
});

Deno.test({
  name: "NatsPresence takes a dead node's users offline everywhere once its heartbeat stops",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 3);
    const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
    const alice = member();
    const bob = member();
    n1.presence.join(alice, user("alice"));
    n2.presence.join(bob, user("bob"));
    n3.presence.join(member(), user("carol"));
    n3.presence.join(member(), user("dave"));
    await eventually(
      "carol seen",
      () => notices(alice).includes("carol online") && notices(bob).includes("carol online"),
    );
    await n3.kill();
    await eventually(
      "carol and dave offline for alice and bob",
      () => [alice, bob].every((m) => ["carol offline", "dave offline"].every((n) => notices(m).includes(n))),
    );
    for (const node of [n1, n2]) {
      assert.deepEqual(node.presence.list(undefined, 10).users.map((u) => u.key), ["alice", "bob"]);
      assert.deepEqual(node.liveness.others().map((r) => r.nodeId).sort(), node === n1 ? ["n2"] : ["n1"]);
    }
    // Whoever declared n3 dead removed its keys.
    await eventuallyAsync("n3's keys removed", async () => (await presenceKeys(n3, n1)).length === 0);
    assert.ok(
      n1.logs.concat(n2.logs).some((l) => l.includes('"event":"node_dead"') && l.includes('"node":"n3"')),
    );
  },
});

Deno.test({
  name: "NatsPresence shows no ghosts of a node's previous run when it restarts with the same id",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 2);
    const [n1, n2] = c.nodes as [TestNode, TestNode];
    await aliceAndBobOn(n2, n1);
    const before = n2.liveness.incarnation;
    await n2.kill();
    const again = await c.add("n2");
    assert.notEqual(again.liveness.incarnation, before);
    // The new run took the key over (once the old run would have fenced itself, had it been up: as long as
    // the others take to declare it dead, so whichever came first): the old run's users are gone.
    await eventually("old users offline", () => n1.presence.list(undefined, 10).users.length === 1);
    assert.deepEqual(again.presence.list(undefined, 10).users.map((u) => u.key), ["watcher"]);
    again.presence.join(member(), user("alice"));
    await eventually("alice back on the new run", () => n1.presence.get("alice") !== undefined);
  },
});

Deno.test({
  name: "NatsPresence ignores entries in the bucket that are not presence",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 2);
    const [n1, n2] = c.nodes as [TestNode, TestNode];
    const kv = n1.liveness.kv;
    await kv.put("p.x.YWxpY2U", "not json");
    await kv.put("p.x.YWxpY2U", JSON.stringify({ inc: "i", key: "bob", name: "bob", ik: null, fp: null }));
    await kv.put("p.x", "{}");
    await kv.put("n.x", JSON.stringify({ node: "y", inc: "1" }));
    await kv.put(`p.${n1.liveness.node}.YWxpY2U`, JSON.stringify({ inc: n1.liveness.incarnation }));
    n1.presence.join(member(), user("marker"));
    await eventually("marker seen", () => n2.presence.get("marker") !== undefined);
    for (const node of [n1, n2]) {
      assert.deepEqual(node.presence.list(undefined, 10).users.map((u) => u.key), ["marker"]);
    }
    assert.ok(n2.logs.some((l) => l.includes('"event":"bus_bad_entry"')));
  },
});

Deno.test({
  name: "NatsPresence takes a cleanly stopped node's users offline at once and leaves none of its keys",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 2);
    const [n1, n2] = c.nodes as [TestNode, TestNode];
    const watcher = await aliceAndBobOn(n2, n1);
    await n2.stop();
    // The stop returned after its heartbeat was deleted: no death to wait for.
    await eventually(
      "offline",
      () => ["alice offline", "bob offline"].every((n) => notices(watcher).includes(n)),
      1000,
    );
    assert.deepEqual(n1.liveness.others(), []);
    assert.deepEqual(await presenceKeys(n2, n1), []);
    assert.ok(!n1.logs.some((l) => l.includes('"event":"node_dead"')));
  },
});
