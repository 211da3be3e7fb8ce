import assert from "node:assert/strict";
import { LOGIN_REFUSED } from "../../lib/cluster/nats_session_directory.ts";
import { BusProxy, dropBuckets, eventually, FAST, natsUrl, TestNode, testPrefix } from "./_nats_kit.ts";

const nats = natsUrl();

Deno.test({
  name: "NodeLiveness takes over the id of a run that lost the bus only after that run has fenced itself",
  ignore: !nats,
  async fn() {
    const proxy = new BusProxy(nats!);
    const prefix = testPrefix();
    const old = await TestNode.start(nats!, prefix, "n1", { via: proxy.url });
    let fresh: TestNode | undefined;
    try {
      old.sessionsOf.set("carol", 1);
      // The old run is still up, but its bus is gone: it cannot hear a PASSWD any more.
      proxy.cut();
      fresh = await TestNode.start(nats!, prefix, "n1");
      assert.equal(old.endAllCalls, 1, "the old run had ended its sessions when the new one took the id");
      assert.notEqual(fresh.liveness.incarnation, old.liveness.incarnation);
      assert.equal(fresh.liveness.fenced, false);
    } finally {
      await fresh?.stop();
      await old.kill();
      await proxy.close();
      await dropBuckets(nats!, prefix);
    }
  },
});

Deno.test({
  name:
    "NodeLiveness is fenced at once after an event-loop stall longer than fenceAfterMs, before its check runs",
  ignore: !nats,
  async fn() {
    const prefix = testPrefix();
    const node = await TestNode.start(nats!, prefix, "n1");
    try {
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
    } finally {
      await node.stop();
      await dropBuckets(nats!, prefix);
    }
  },
});
