import assert from "node:assert/strict";
import { join } from "node:path";
import { AuthchatClient } from "../../lib/client/authchat_client.ts";
import type { ClientOptions } from "../../lib/client/authchat_client.ts";
import { KnownHosts, TrustError } from "../../lib/client/known_hosts.ts";
import type { Sealed } from "../../lib/codec/messages.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { openSealed, sealContext } from "../../lib/crypto/seal.ts";
import { parseVerifier } from "../../lib/crypto/scram_verifier.ts";
import {
  generateServerIdentity,
  identityPaths,
  loadServerIdentity,
} from "../../lib/crypto/server_identity.ts";
import type { ServerIdentity } from "../../lib/crypto/server_identity.ts";
import { AuthchatServer } from "../../lib/server/authchat_server.ts";
import { Logger } from "../../lib/server/logger.ts";
import { loadServerConfig } from "../../lib/server/server_config.ts";
import { Session } from "../../lib/server/session.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";

const FIRST = "saffron tundra pillow 5";
const SECOND = "saffron tundra pillow 6";
const decoder = new TextDecoder();

interface Running {
  store: SqliteUserStore;
  identity: ServerIdentity;
  /** Every frame payload a session of the server received, in order. */
  received: Record<string, unknown>[];
  connect(tls: boolean): Promise<AuthchatClient>;
  /** Options for a client of this server (trust on first use, no keepalive timer left behind). */
  options(tls: boolean): ClientOptions;
}

/** An in-process server (TCP and TLS) that records every request its sessions receive. */
async function withRecordingServer(body: (running: Running) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const received: Record<string, unknown>[] = [];
  const receive = Session.prototype.receive;
  // What a session's receive() gets is exactly what the server sees: TLS already removed.
  Session.prototype.receive = function (payload: Uint8Array) {
    received.push(JSON.parse(decoder.decode(payload)));
    return receive.call(this, payload);
  };
  const clients: AuthchatClient[] = [];
  try {
    const paths = identityPaths(dir);
    await generateServerIdentity(paths);
    const identity = await loadServerIdentity(paths, { tls: true });
    const store = SqliteUserStore.open(join(dir, "authchat.db"));
    const server = await AuthchatServer.start({
      config: await loadServerConfig({
        file: "/dev/null",
        flags: { tcp_port: 0, tls_port: 0, udp_port: 0, scram_iterations: 4096 },
      }),
      identity,
      store,
      log: new Logger({ write: () => {} }),
    });
    const knownHosts = new KnownHosts(join(dir, "known_hosts"));
    const options = (tls: boolean): ClientOptions => ({
      host: "127.0.0.1",
      port: tls ? server.addresses.tls!.port : server.addresses.tcp!.port,
      tls,
      trust: { knownHosts },
      keepaliveMs: 0,
    });
    try {
      await body({
        store,
        identity,
        received,
        async connect(tls) {
          const client = await AuthchatClient.connect(options(tls));
          clients.push(client);
          return client;
        },
        options,
      });
    } finally {
      for (const c of clients) await c.close();
      await server.shutdown();
    }
  } finally {
    Session.prototype.receive = receive;
    await Deno.remove(dir, { recursive: true });
  }
}

function requests(received: Record<string, unknown>[], op: string): Record<string, unknown>[] {
  return received.filter((m) => m.op === op);
}

Deno.test("AuthchatClient sends only a verifier at register and passwd: the server never sees the password", async () => {
  await withRecordingServer(async ({ store, identity, received, connect }) => {
    // TLS: the verifier travels in the channel.
    const tls = await connect(true);
    await tls.register("alice", FIRST);
    await tls.login("alice", FIRST);
    await tls.passwd(FIRST, SECOND);
    const [register, passwd] = [requests(received, "REGISTER")[0]!, requests(received, "PASSWD")[0]!];
    for (const m of [register, passwd]) {
      assert.equal(typeof m.verifier, "string");
      assert.equal(m.sealed, undefined);
      assert.equal(parseVerifier(m.verifier as string).iterations, 4096);
    }
    assert.equal((await store.findUser("alice"))!.verifier, passwd.verifier, "stored as sent");

    // Plain TCP: the verifier is sealed; opened with the server's key, it is a verifier too.
    const tcp = await connect(false);
    const nonce = tcp.info.seal_nonce;
    await tcp.register("bob", FIRST);
    const sealed = requests(received, "REGISTER")[1]!.sealed as Sealed;
    assert.equal(requests(received, "REGISTER")[1]!.verifier, undefined);
    const opened = decoder.decode(
      await openSealed(identity.sealPrivateKey, sealed, sealContext("REGISTER", { user: "bob", nonce })),
    );
    assert.equal(opened, (await store.findUser("bob"))!.verifier);

    const everything = JSON.stringify(received) + opened;
    for (const password of [FIRST, SECOND]) {
      assert.ok(!everything.includes(password), `the server received ${password}`);
    }
    // Both passwords still work where they should: the verifiers are real.
    const again = await connect(false);
    assert.equal(await again.login("alice", SECOND), "alice");
    assert.equal(await again.login("bob", FIRST), "bob");
  });
});

Deno.test("AuthchatClient refuses a password against the server's policy before sending anything", async () => {
  await withRecordingServer(async ({ store, received, connect }) => {
    const client = await connect(true);
    const policy = (reason: string) => (err: unknown) =>
      err instanceof ProtocolError && err.code === "PASSWORD_POLICY" && err.details.reason === reason;
    await assert.rejects(client.register("carol", "iloveyou12"), policy("common"));
    await assert.rejects(client.register("carol", "short 1"), policy("too_short"));
    await assert.rejects(client.register("carol", "carol and her kite"), policy("contains_username"));
    assert.deepEqual(requests(received, "REGISTER"), [], "nothing was sent");
    assert.equal(await store.findUser("carol"), undefined);
    await client.register("carol", FIRST);
    await client.login("carol", FIRST);
    await assert.rejects(client.passwd(FIRST, "password123"), policy("common"));
    assert.deepEqual(requests(received, "PASSWD"), [], "nothing was sent");
  });
});

Deno.test("AuthchatClient checks a current password locally against what the login proved, and a new one against the policy", async () => {
  await withRecordingServer(async ({ received, connect }) => {
    const client = await connect(false);
    assert.equal(await client.passwordMatches("anything at all"), true, "not logged in: nothing to compare");
    await client.register("erin", FIRST);
    await client.login("erin", FIRST);
    const sent = received.length;
    assert.equal(await client.passwordMatches(FIRST), true);
    assert.equal(await client.passwordMatches(SECOND), false);
    assert.equal(await client.passwordMatches("\u0007bell"), false, "SASLprep refuses it: not the password");
    await assert.rejects(
      client.checkNewPassword("erin", "short 1"),
      (err) => err instanceof ProtocolError && err.code === "PASSWORD_POLICY",
    );
    await client.checkNewPassword("erin", SECOND);
    assert.equal(received.length, sent, "the checks send nothing");
    // After passwd the new password is the current one; after logout there is nothing to compare.
    await client.passwd(FIRST, SECOND);
    assert.equal(await client.passwordMatches(SECOND), true);
    assert.equal(await client.passwordMatches(FIRST), false);
    await client.logout();
    assert.equal(await client.passwordMatches(FIRST), true);
  });
});

Deno.test("AuthchatClient.connectAndLogin sends LOGIN right behind HELLO and logs in over TCP and TLS", async () => {
  await withRecordingServer(async ({ received, connect, options }) => {
    await (await connect(true)).register("dave", FIRST);
    received.length = 0;
    for (const tls of [false, true]) {
      const client = await AuthchatClient.connectAndLogin(options(tls), "dave", FIRST);
      assert.equal(client.user, "dave");
      assert.equal(client.canBind, tls);
      await client.close();
    }
    assert.deepEqual(received.map((m) => m.op), [
      "HELLO",
      "LOGIN",
      "PROOF",
      "CLOSE",
      "HELLO",
      "LOGIN",
      "PROOF",
      "CLOSE",
    ]);
    assert.equal(received[0]!.keepalive, undefined, "a client that does not ping does not say it will");
    assert.equal(received[1]!.mechanism, "SCRAM-SHA-256");
    assert.equal(received[5]!.mechanism, "SCRAM-SHA-256-PLUS");
  });
});

Deno.test("AuthchatClient.connectAndLogin sends no proof to a server whose sealing key is not the trusted one", async () => {
  await withRecordingServer(async ({ received, connect, options }) => {
    await (await connect(true)).register("erin", FIRST);
    received.length = 0;
    const pinned = { ...options(false), trust: { fingerprint: `SHA256:${"A".repeat(43)}` } };
    await assert.rejects(AuthchatClient.connectAndLogin(pinned, "erin", FIRST), TrustError);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(received.map((m) => m.op), ["HELLO", "LOGIN"], "the exchange stopped before PROOF");
  });
});
