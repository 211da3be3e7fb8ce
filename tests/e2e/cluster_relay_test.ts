import assert from "node:assert/strict";
import { join } from "node:path";
import { tempDir } from "./_harness.ts";
import type { ServerProcess } from "./_harness.ts";
import { ChatClient, registerUsers } from "./_chat_kit.ts";
import type { ChatClientOptions } from "./_chat_kit.ts";
import { UdpCapture } from "./_udp_capture.ts";
import { clusterTest } from "../_cluster_services.ts";
import { TestCluster } from "./_test_cluster.ts";

const PASSWORD = "maple harbor quartz 42";

function count(lines: string[], line: string): number {
  return lines.filter((l) => l === line).length;
}

/** The `udp_stats` line a node logs when it stops (JSON log format). */
function udpStats(log: string): Record<string, number> {
  const line = log.trim().split("\n").map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return {};
    }
  }).find((e) => e.event === "udp_stats");
  assert.ok(line, `no udp_stats line in ${log}`);
  return line as Record<string, number>;
}

clusterTest(
  "authchat server nodes on one PostgreSQL and one NATS deliver direct and relayed messages between users on different nodes, once",
  ["postgres", "nats"],
  async () => {
    await using dir = await tempDir();
    // Three nodes sharing one identity, one database and one bus.
    await using cluster = await TestCluster.start(dir.path, {
      idPrefix: "relay-e2e-n",
      args: ["--log-format", "json"],
    });
    const nodes = cluster.nodes;
    const clients: ChatClient[] = [];
    const udp: UdpCapture[] = [];
    try {
      const [n1, n2, n3] = [cluster.node(1), cluster.node(2), cluster.node(3)];
      const passwordFile = await registerUsers(n1.tcpPort, dir.path, ["alice", "bob", "carol"], PASSWORD);
      const options = (user: string, node: ServerProcess, args: string[] = []): ChatClientOptions => ({
        port: node.tcpPort,
        user,
        passwordFile,
        configDir: join(dir.path, `cfg-${user}`),
        args,
      });

      const alice = await ChatClient.login(options("alice", n1));
      clients.push(alice);
      const bob = await ChatClient.login(options("bob", n2));
      clients.push(bob);
      const carol = await ChatClient.login(options("carol", n3));
      clients.push(carol);
      await alice.waitFor("out", /^presence: carol online$/);

      // Direct: PEER on node 1 names bob's session on node 2 and the address node 2 observed.
      await alice.expectOk("send bob hello bob, straight to you", /^delivered$/);
      await bob.waitFor("out", /^msg from alice: /);
      await bob.expectOk("send alice and back to you, alice", /^delivered$/);
      await alice.waitFor("out", /^msg from bob: /);
      assert.equal((await alice.finish()).code, 0, alice.transcript);

      // Relay only: alice's second session sends through node 1's UDP port (through a proxy that counts
      // the bytes); node 1 forwards to the nodes holding bob's and carol's sessions over NATS.
      const proxy = new UdpCapture(n1.udpPort);
      udp.push(proxy);
      const relayed = await ChatClient.login(
        options("alice", n1, ["--relay", "--server-udp-port", String(proxy.port)]),
      );
      clients.push(relayed);
      await relayed.expectOk("send bob through the relay, bob", /^delivered$/);
      await bob.waitFor("out", /^msg from alice: through the relay, bob$/);
      await relayed.expectOk("send carol through the relay, carol", /^delivered$/);
      await carol.waitFor("out", /^msg from alice: through the relay, carol$/);
      assert.ok(proxy.flows.length > 0 && proxy.flows.every((f) => f.up.length > 0));
      assert.equal((await relayed.finish()).code, 0, relayed.transcript);
      assert.equal((await bob.finish()).code, 0, bob.transcript);
      assert.equal((await carol.finish()).code, 0, carol.transcript);

      for (
        const [client, line] of [
          [bob, "msg from alice: hello bob, straight to you"],
          [bob, "msg from alice: through the relay, bob"],
          [carol, "msg from alice: through the relay, carol"],
          [alice, "msg from bob: and back to you, alice"],
        ] as const
      ) {
        assert.equal(count(client.out, line), 1, `exactly once: ${line}\n${client.transcript}`);
      }
      assert.ok(!carol.out.some((l) => l.includes("straight to you")), "carol got only what was hers");

      for (const status of await cluster.stop()) assert.equal(status.code, 0);
      const [s1, s2, s3] = nodes.map((n) => udpStats(n.stderr)) as [
        Record<string, number>,
        Record<string, number>,
        Record<string, number>,
      ];
      assert.ok(s1.forwarded! >= 2, `node 1 forwarded alice's datagrams: ${JSON.stringify(s1)}`);
      assert.ok(
        s2.relayed! >= 1 && s3.relayed! >= 1,
        `nodes 2 and 3 relayed them: ${JSON.stringify([s2, s3])}`,
      );
      assert.ok(s2.forwarded! + s3.forwarded! >= 2, "the replies went back to node 1 over the bus");
      assert.ok(s1.relayed! >= 2, "node 1 sent them to alice");
    } finally {
      for (const c of clients) await c.kill();
      for (const p of udp) await p.close();
    }
  },
);
