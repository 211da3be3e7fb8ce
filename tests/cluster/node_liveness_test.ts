import assert from "node:assert/strict";
import { BusProxy, dropBuckets, natsUrl, TestNode, testPrefix } from "./_nats_kit.ts";

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
