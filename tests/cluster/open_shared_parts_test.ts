import assert from "node:assert/strict";
import { BusUnavailableError, nodeIdOf, openSharedParts } from "../../lib/cluster/open_shared_parts.ts";
import { NatsPresence } from "../../lib/cluster/nats_presence.ts";
import { LocalPresence } from "../../lib/server/presence.ts";
import { loadServerConfig } from "../../lib/server/server_config.ts";
import { bucketKeys, dropBuckets, eventually, FAST, natsUrl, testPrefix } from "./_nats_kit.ts";
import { busToken } from "../../lib/cluster/nats_bus.ts";

const nats = natsUrl();

Deno.test("openSharedParts gives the in-process parts without a bus", async () => {
  const opened = await openSharedParts(await loadServerConfig({ file: "/dev/null" }));
  assert.equal(opened.bus, null);
  assert.equal(opened.liveness, null);
  assert.ok(opened.parts.presence instanceof LocalPresence);
  assert.equal(opened.parts.sessions.loginsRefused(), null);
  await opened.close();
});

Deno.test("nodeIdOf names the host and the port that is known", () => {
  const config = { node_id: null, tcp: true, tcp_port: 1991, tls_port: 1992 };
  assert.equal(nodeIdOf(config, "chat1.example"), "chat1.example:1991");
  assert.equal(nodeIdOf({ ...config, tcp: false }, "chat1"), "chat1:1992");
  assert.equal(nodeIdOf({ ...config, tcp_port: 0 }, "chat1"), `chat1:pid${Deno.pid}`);
  assert.equal(nodeIdOf(config, "my host/é"), "my-host--:1991");
  assert.equal(nodeIdOf({ ...config, node_id: "eu-1" }, "chat1"), "eu-1");
});

Deno.test("openSharedParts refuses a bus that does not answer with the URL, never its password", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const config = await loadServerConfig({
    file: "/dev/null",
    flags: { bus: `nats://app:s3cret@127.0.0.1:${port}` },
  });
  const err = await openSharedParts(config, { nodeId: "n1", connectTimeoutMs: 2000 }).then(
    () => null,
    (e) => e,
  );
  assert.ok(err instanceof BusUnavailableError);
  assert.match(
    err.message,
    new RegExp(`^cannot connect to NATS at nats://app:\\*\\*\\*@127\\.0\\.0\\.1:${port}: `),
  );
  assert.ok(!err.message.includes("s3cret"));
});

Deno.test({
  name:
    "openSharedParts joins the bus with NATS presence and sessions, and its close leaves the bucket clean",
  ignore: !nats,
  async fn() {
    const prefix = testPrefix();
    const config = await loadServerConfig({ file: "/dev/null", flags: { bus: nats!, node_id: "solo" } });
    const opened = await openSharedParts(config, { prefix, timing: FAST });
    try {
      assert.ok(opened.parts.presence instanceof NatsPresence);
      assert.equal(opened.bus?.nodeId, "solo");
      assert.equal(opened.liveness?.fenced, false);
      assert.equal(await opened.parts.sessions.endElsewhere("bob", "PASSWORD_CHANGED", "x"), 0);
      assert.equal(await opened.parts.limits.retryAfter("10.0.0.1", "bob", 0), 0, "limits: per node for now");
      opened.parts.presence.join({ id: 1, notify() {} }, {
        key: "bob",
        name: "bob",
        identityKey: null,
        fingerprint: null,
      });
      await eventually("bob online", () => opened.parts.presence.get("bob") !== undefined);
      assert.deepEqual((await bucketKeys(nats!, prefix)).sort(), [
        `n.${busToken("solo")}`,
        `p.${busToken("solo")}.${busToken("bob")}`,
      ]);
      await opened.close();
      assert.equal(opened.bus?.nc.isClosed(), true);
      assert.deepEqual(await bucketKeys(nats!, prefix), [], "heartbeat and presence keys deleted");
    } finally {
      await dropBuckets(nats!, prefix);
    }
  },
});
