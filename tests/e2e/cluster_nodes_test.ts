/**
 * Three real `authchat server` nodes on one PostgreSQL database and one NATS server (issue 10's end-to-end
 * cases): presence, ending sessions on every node, a dead node's users, the shared guess counters, and one
 * mock salt for an unknown name on every node.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { installKeys, runCli, serverArgs, tempDir } from "./_harness.ts";
import type { ServerProcess } from "./_harness.ts";
import { hello, RawClient, scramAttempt } from "./_raw_client.ts";
import type { Reply } from "./_raw_client.ts";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { decodeBase64 } from "../../lib/codec/base64.ts";
import { ChatClient, registerUsers } from "./_chat_kit.ts";
import { clusterTest } from "../_cluster_services.ts";
import { TestCluster } from "./_test_cluster.ts";

const PASSWORD = "tulip orbit canyon 7";
const NEW_PASSWORD = "maple rocket sonnet 3";

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

clusterTest(
  "Three authchat server nodes on one PostgreSQL and one NATS share presence, end sessions everywhere and drop a dead node's users",
  ["postgres", "nats"],
  async () => {
    await using dir = await tempDir();
    await using cluster = await TestCluster.start(dir.path);
    const [n1, n2, n3] = [cluster.node(1), cluster.node(2), cluster.node(3)];
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
  },
);

/** The backoff settings of the guess-counter test: 1 ms doubling, capped at 7 days (the most allowed). */
const BACKOFF = { baseMs: 1, maxMs: 7 * 86_400_000, free: 5 };

/**
 * docs/PROTOCOL.md §7: after the n-th failure of a counter (n ≥ the free ones), the next attempt waits
 * `backoff_base · 2^(n − free)`, at most `backoff_max`, counted from the latest failure.
 */
function documentedWait(failures: number): number {
  return Math.min(BACKOFF.maxMs, BACKOFF.baseMs * 2 ** (failures - BACKOFF.free));
}

/** One wrong guess at `user` from `from` on a node's TCP port: the code of the reply to LOGIN or PROOF. */
async function wrongGuess(node: ServerProcess, from: string, user: string): Promise<string> {
  await using c = await RawClient.connect(node.tcpPort, { from });
  const greeting = await hello(c);
  const password = `guess ${crypto.randomUUID()}`;
  const mechanisms = greeting.mechanisms as string[];
  return String((await scramAttempt(c, { user, password, mechanisms })).reply.code);
}

/** What the reply to a LOGIN for `user` from `from` is, without going further. */
async function loginReply(node: ServerProcess, from: string, user: string): Promise<Reply> {
  await using c = await RawClient.connect(node.tcpPort, { from });
  await hello(c);
  const scram = new ScramClient({ username: user, password: "unused", serverMechanisms: ["SCRAM-SHA-256"] });
  return await c.request({ op: "LOGIN", id: 2, mechanism: scram.mechanism, data: scram.first });
}

/**
 * The refusal of a guess at `user` from `from`: at `LOGIN`, or at `PROOF` (a node that has not seen every
 * change of the attempt's counters answers `LOGIN` on what it has seen; the proof's end decides, and tells
 * nothing of a proof it refuses).
 */
async function guessRefusal(node: ServerProcess, from: string, user: string): Promise<Reply> {
  await using c = await RawClient.connect(node.tcpPort, { from });
  const greeting = await hello(c);
  const password = `guess ${crypto.randomUUID()}`;
  return (await scramAttempt(c, { user, password, mechanisms: greeting.mechanisms as string[] })).reply;
}

clusterTest(
  "30 wrong passwords for bob spread over three authchat server nodes hit the same backoff as 30 on one node",
  ["postgres", "nats"],
  async () => {
    await using dir = await tempDir();
    await using cluster = await TestCluster.start(dir.path, {
      env: {
        AUTHCHAT_BACKOFF_BASE: String(BACKOFF.baseMs / 1000),
        AUTHCHAT_BACKOFF_MAX: String(BACKOFF.maxMs / 1000),
      },
    });
    const nodes = cluster.nodes;
    await registerUsers(cluster.node(1).tcpPort, dir.path, ["bob", "carol"], PASSWORD);

    // 30 addresses guess once each, so only the account's counter goes past its free failures (a source's
    // own and a pair's stay at 1). 127.0.0.1, where the real client below runs, is one of bob's.
    const bobSources = ["127.0.0.1", ...Array.from({ length: 29 }, (_, i) => `127.0.1.${i + 2}`)];
    const carolSources = Array.from({ length: 30 }, (_, i) => `127.0.2.${i + 1}`);
    // bob: spread over the three nodes, all at once; carol: all on node 1.
    const bobFrom = Date.now();
    const bobCodes = await Promise.all(bobSources.map((from, i) => wrongGuess(nodes[i % 3]!, from, "bob")));
    const carolFrom = Date.now();
    const carolCodes = await Promise.all(
      carolSources.map((from) => wrongGuess(cluster.node(1), from, "carol")),
    );
    assert.deepEqual(new Set(bobCodes), new Set(["AUTH_FAILED"]), "every guess was checked");
    assert.deepEqual(new Set(carolCodes), new Set(["AUTH_FAILED"]));

    // Each node holds bob back exactly as 30 failures do: the wait after the 30th failure, less the time
    // since it. Had each node counted alone it would have seen 10 (a wait of 32 ms, over by now); any
    // other count is at least twice or at most half this one, which the test cannot take hours to reach.
    const window = (since: number) => ({
      most: documentedWait(30),
      least: documentedWait(30) - (Date.now() - since),
    });
    for (
      const [user, since, sources] of [["bob", bobFrom, bobSources], [
        "carol",
        carolFrom,
        carolSources,
      ]] as const
    ) {
      const replies = await Promise.all(nodes.map((node, i) => guessRefusal(node, sources[i]!, user)));
      const { most, least } = window(since);
      for (const [i, reply] of replies.entries()) {
        assert.equal(reply.code, "RATE_LIMITED", `${user} on node ${i + 1}: ${JSON.stringify(reply)}`);
        const wait = reply.retry_after_ms as number;
        assert.ok(
          least <= wait && wait <= most,
          `${user} on node ${i + 1}: ${wait} ms, not in [${least}, ${most}]`,
        );
        assert.equal(reply.message, `Too many attempts: retry in ${Math.ceil(wait / 1000)} s`);
      }
    }

    // The real client sees the same on every node: 127.0.0.1 has failed (once, at bob), so the account's
    // counter holds it back too, before any exchange.
    for (const [user, since] of [["bob", bobFrom], ["carol", carolFrom]] as const) {
      const results = await Promise.all(nodes.map((node) =>
        runCli("client", [
          ...["--port", String(node.tcpPort), "--user", user, "--password-file", join(dir.path, "pw")],
          ...["--json", "--exec", "login"],
        ], { env: { AUTHCHAT_CONFIG_DIR: join(dir.path, `cfg-${user}-${node.tcpPort}`) } })
      ));
      const { most, least } = window(since);
      for (const [i, result] of results.entries()) {
        assert.equal(result.code, 1, result.stderr);
        const reply = JSON.parse(result.stdout.trim().split("\n").at(-1)!);
        assert.equal(reply.error.code, "RATE_LIMITED", result.stdout);
        const seconds = Number(/^Too many attempts: retry in (\d+) s$/.exec(reply.error.message)?.[1]);
        assert.ok(
          Math.ceil(least / 1000) <= seconds && seconds <= Math.ceil(most / 1000),
          `${user}'s client on node ${i + 1}: ${reply.error.message}`,
        );
      }
    }
    for (const status of await cluster.stop()) assert.equal(status.code, 0);
  },
);

/** The salt and iteration count of the CHALLENGE a node gives a LOGIN for `user`. */
async function challengeSalt(node: ServerProcess, user: string): Promise<{ s: string; i: string }> {
  const reply = await loginReply(node, "127.0.0.1", user);
  assert.equal(reply.op, "CHALLENGE", JSON.stringify(reply));
  const fields = new Map(String(reply.data).split(",").map((f) => [f.slice(0, 1), f.slice(2)]));
  return { s: fields.get("s")!, i: fields.get("i")! };
}

clusterTest(
  "An unknown user gets the same salt and iteration count from every authchat server node",
  ["postgres", "nats"],
  async () => {
    await using dir = await tempDir();
    await using cluster = await TestCluster.start(dir.path);
    await registerUsers(cluster.node(1).tcpPort, dir.path, ["bob"], PASSWORD);
    const salts = async (user: string) => await Promise.all(cluster.nodes.map((n) => challengeSalt(n, user)));

    const ghost = await salts("ghost");
    const phantom = await salts("phantom");
    const bob = await salts("bob");
    for (const seen of [ghost, phantom, bob]) {
      assert.equal(new Set(seen.map((c) => c.s)).size, 1, `one salt on every node: ${JSON.stringify(seen)}`);
      assert.deepEqual(seen.map((c) => c.i), ["4096", "4096", "4096"], "the configured count, known or not");
    }
    assert.equal(decodeBase64(ghost[0]!.s)?.length, 16, "a salt of 16 bytes, as an account's");
    assert.notEqual(ghost[0]!.s, phantom[0]!.s, "another name, another salt");
    assert.notEqual(ghost[0]!.s, bob[0]!.s);
    // Names are matched case-insensitively, mock or not.
    assert.equal((await salts("GHOST"))[2]!.s, ghost[0]!.s);
    for (const status of await cluster.stop()) assert.equal(status.code, 0);
  },
);

Deno.test("authchat server exits 2 with one error naming the bus, without its password, when NATS does not answer", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  // A port nothing listens on.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const result = await runCli("server", serverArgs(data, ["--bus", `nats://app:s3cret@127.0.0.1:${port}`]));
  assert.equal(result.code, 2, result.stderr);
  const errors = result.stderr.split("\n").filter((l) => l.startsWith("error: "));
  assert.deepEqual(errors, [
    `error: cannot connect to NATS at nats://app:***@127.0.0.1:${port}: connection refused`,
  ]);
  assert.ok(!result.stderr.includes("s3cret"), result.stderr);
  assert.equal(result.stdout, "", "never listened");
});
