import assert from "node:assert/strict";
import { join } from "node:path";
import { NatsBus } from "../../lib/cluster/nats_bus.ts";
import { installKeys, runCli, ServerProcess, tempDir } from "./_harness.ts";
import { ChatClient, registerUsers } from "./_chat_kit.ts";
import { natsUrlOrSkip } from "../_cluster_services.ts";

const nats = natsUrlOrSkip();
const PASSWORD = "tulip orbit canyon 7";
const NEW_PASSWORD = "maple rocket sonnet 3";

/** Remove the servers' bucket (the default prefix's), so no earlier run's nodes or users are in it. */
async function dropLiveBucket(url: string): Promise<void> {
  const bus = await NatsBus.connect({ servers: [url], nodeId: "e2e-cleanup" });
  try {
    await (await bus.kv("live", { history: 1 })).destroy();
  } finally {
    await bus.close();
  }
}

/** What a client with this password file gets from `login` on each node. */
async function loginOn(nodes: ServerProcess[], dir: string, user: string, passwordFile: string) {
  return await Promise.all(nodes.map((node) =>
    runCli("client", [
      "--port",
      String(node.tcpPort),
      "--user",
      user,
      "--password-file",
      passwordFile,
      "--exec",
      "login",
    ], { env: { AUTHCHAT_CONFIG_DIR: join(dir, `cfg-check-${user}`) } })
  ));
}

Deno.test({
  name:
    "Three authchat server nodes on one NATS share presence, end sessions everywhere and drop a dead node's users",
  ignore: !nats,
  async fn() {
    await dropLiveBucket(nats!);
    await using dir = await tempDir();
    // One SQLite file for the three nodes (same machine): the same accounts, keys and mock secret.
    const data = join(dir.path, "data");
    await installKeys(data);
    const node = (id: string) => ServerProcess.start(data, { args: ["--bus", nats!, "--node-id", id] });
    await using n1 = await node("node1");
    await using n2 = await node("node2");
    await using n3 = await node("node3");
    const passwordFile = await registerUsers(
      n1.tcpPort,
      dir.path,
      ["alice", "bob", "carol", "dave"],
      PASSWORD,
    );
    const newPasswordFile = join(dir.path, "pw-new");
    await Deno.writeTextFile(newPasswordFile, NEW_PASSWORD);
    const on = (server: ServerProcess, user: string, name = user) =>
      ChatClient.login({
        port: server.tcpPort,
        user,
        passwordFile,
        configDir: join(dir.path, `cfg-${name}`),
        args: ["--new-password-file", newPasswordFile],
      });

    // Presence across nodes: each sees the others come online, and in `list`.
    await using alice = await on(n1, "alice");
    await using bob = await on(n2, "bob");
    await alice.waitFor("out", /^presence: bob online$/);
    await using carol = await on(n3, "carol");
    for (const client of [alice, bob]) await client.waitFor("out", /^presence: carol online$/);
    for (const client of [alice, bob, carol]) {
      const from = client.out.length;
      const end = await client.expectOk("list", /^\d+ online$/);
      assert.equal(client.out[end], "3 online", client.transcript);
      const names = client.out.slice(from, end).filter((l) => / SHA256:/.test(l)).map((l) => l.split(" ")[0]);
      assert.deepEqual(names.sort(), ["alice", "bob", "carol"], client.transcript);
    }

    // bob's passwd on node 2 ends his session on node 1; the old password then fails on every node.
    await using bobOn1 = await on(n1, "bob", "bob-on-1");
    await bob.expectOk("passwd", /^password changed$/);
    await bobOn1.waitFor("err", /^server: .*\(PASSWORD_CHANGED\)$/);
    for (const result of await loginOn([n1, n2, n3], dir.path, "bob", passwordFile)) {
      assert.equal(result.code, 1, result.stdout);
      assert.match(result.stderr, /\(AUTH_FAILED\)/);
    }
    for (const result of await loginOn([n1, n2, n3], dir.path, "bob", newPasswordFile)) {
      assert.equal(result.code, 0, result.stderr);
    }
    assert.equal(
      bob.err.filter((l) => l.startsWith("server:")).length,
      0,
      `the session that changed it stays\n${bob.transcript}`,
    );
    assert.match(await n1.settledLog(), /ended_elsewhere .*user=bob .*ended_sessions=1/);

    // dave deletes his account on node 3: his session on node 1 ends, and no node logs him in.
    await using daveOn1 = await on(n1, "dave", "dave-on-1");
    await using dave = await on(n3, "dave");
    await alice.waitFor("out", /^presence: dave online$/);
    await dave.expectOk("delete", /^account dave deleted$/);
    await daveOn1.waitFor("err", /^server: .*\(ACCOUNT_DELETED\)$/);
    await alice.waitFor("out", /^presence: dave offline$/);
    for (const result of await loginOn([n1, n2, n3], dir.path, "dave", passwordFile)) {
      assert.equal(result.code, 1, result.stdout);
      assert.match(result.stderr, /\(AUTH_FAILED\)/);
    }

    // kill -9 of node 3: carol goes offline for alice and bob within 10 s.
    const from = { alice: alice.out.length, bob: bob.out.length };
    const killedAt = Date.now();
    await n3.kill();
    await Promise.all([
      alice.waitFor("out", /^presence: carol offline$/, { from: from.alice, timeoutMs: 10_000 }),
      bob.waitFor("out", /^presence: carol offline$/, { from: from.bob, timeoutMs: 10_000 }),
    ]);
    const offlineAfter = Date.now() - killedAt;
    assert.ok(offlineAfter < 10_000, `carol offline after ${offlineAfter} ms`);
    const end = await alice.expectOk("list", /^\d+ online$/);
    assert.equal(alice.out[end], "2 online", alice.transcript);
    assert.match(await n1.settledLog(), /node_dead node=node3|node_gone node=node3/);

    for (const client of [alice, bob]) assert.equal((await client.finish()).code, 0, client.transcript);
    for (const server of [n1, n2]) assert.equal((await server.stop()).code, 0, server.stderr);
    await dropLiveBucket(nats!);
  },
});

Deno.test("authchat server exits 2 with one error naming the bus, without its password, when NATS does not answer", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  // A port nothing listens on.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const result = await runCli("server", [
    "--data",
    data,
    "--tcp-port",
    "0",
    "--tls-port",
    "0",
    "--udp-port",
    "0",
    "--bus",
    `nats://app:s3cret@127.0.0.1:${port}`,
  ]);
  assert.equal(result.code, 2, result.stderr);
  const errors = result.stderr.split("\n").filter((l) => l.startsWith("error: "));
  assert.deepEqual(errors, [
    `error: cannot connect to NATS at nats://app:***@127.0.0.1:${port}: connection refused`,
  ]);
  assert.ok(!result.stderr.includes("s3cret"), result.stderr);
  assert.equal(result.stdout, "", "never listened");
});
