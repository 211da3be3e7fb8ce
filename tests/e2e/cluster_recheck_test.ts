/**
 * The safety net under PASSWD and DELETE, end to end (lib/server/session_recheck.ts): real `authchat server`
 * nodes on one PostgreSQL database and one NATS server end the sessions of an account whose password changed,
 * or that was deleted, though no node told them: what a node that crashed right after its commit leaves.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { saslPrep } from "../../lib/auth/saslprep.ts";
import { createVerifier, formatVerifier } from "../../lib/crypto/scram_verifier.ts";
import { PostgresUserStore } from "../../lib/store/postgres_user_store.ts";
import { clusterTest, freshPostgresDatabase, natsUrl } from "../_cluster_services.ts";
import { TEST_ITERATIONS } from "./_cli_args.ts";
import { ChatClient, registerUsers } from "./_chat_kit.ts";
import { installKeys, ServerProcess, tempDir } from "./_harness.ts";

const PASSWORD = "tulip orbit canyon 7";
const NEW_PASSWORD = "maple rocket sonnet 3";

/** Destroy the servers' buckets (the default prefix's), so nothing an earlier test left is in them. */
async function clearBus(url: string): Promise<void> {
  const nc = await connect({ servers: [url], name: "authchat e2e cleanup" });
  try {
    const kvm = new Kvm(nc);
    const names: string[] = [];
    for await (const status of kvm.list()) {
      if (status.bucket.startsWith("authchat_")) names.push(status.bucket);
    }
    for (const name of names) await (await kvm.open(name)).destroy();
  } finally {
    await nc.close();
  }
}

clusterTest(
  "authchat server nodes end the sessions of a password changed or an account deleted without a word to them",
  ["postgres", "nats"],
  async () => {
    const nats = natsUrl()!;
    await clearBus(nats);
    await using db = await freshPostgresDatabase();
    await using dir = await tempDir();
    const data = join(dir.path, "data");
    await installKeys(data);
    // Re-checked every second (the default is 30 s), so the test waits seconds, not half a minute.
    const env = { AUTHCHAT_DATABASE: db.url, AUTHCHAT_SESSION_RECHECK: "1" };
    const node = (id: string) => ServerProcess.start(data, { args: ["--bus", nats, "--node-id", id], env });
    await using n1 = await node("node1");
    await using n2 = await node("node2");
    const passwordFile = await registerUsers(n1.tcpPort, dir.path, ["bob", "carol", "erin"], PASSWORD);
    const on = (server: ServerProcess, user: string) =>
      ChatClient.login({
        port: server.tcpPort,
        user,
        passwordFile,
        configDir: join(dir.path, `cfg-${user}`),
      });
    await using bob = await on(n2, "bob");
    await using carol = await on(n1, "carol");
    await using erin = await on(n2, "erin");

    // What a node that crashed right after committing a PASSWD and a DELETE leaves behind: the database
    // changed, and no node was asked to end anything.
    const store = await PostgresUserStore.open(db.url, { poolSize: 1 });
    try {
      const record = (await store.findUser("bob"))!;
      const verifier = formatVerifier(
        await createVerifier(saslPrep(NEW_PASSWORD), { iterations: TEST_ITERATIONS }),
      );
      // The chat client registered an identity key: its backup goes along (as a PASSWD re-seals it).
      assert.ok(
        await store.updateVerifier(record.id, record.verifier, verifier, record.keyBackup ?? undefined),
      );
      const gone = (await store.findUser("carol"))!;
      assert.ok(await store.deleteUser(gone.id, gone.verifier));
    } finally {
      await store.close();
    }
    await bob.waitFor("err", /^server: .*\(PASSWORD_CHANGED\)$/, { timeoutMs: 10_000 });
    await carol.waitFor("err", /^server: .*\(ACCOUNT_DELETED\)$/, { timeoutMs: 10_000 });
    assert.match(await n2.settledLog(), /session_recheck .*ended_sessions=1/);
    assert.match(await n1.settledLog(), /session_recheck .*ended_sessions=1/);
    // erin's account did not change: her session stays.
    const end = await erin.expectOk("list", /^\d+ online$/);
    assert.equal(erin.out[end], "1 online", erin.transcript);
    assert.equal(erin.err.filter((l) => l.startsWith("server:")).length, 0, erin.transcript);

    assert.equal((await erin.finish()).code, 0, erin.transcript);
    for (const server of [n1, n2]) assert.equal((await server.stop()).code, 0, server.stderr);
    await clearBus(nats);
  },
);
