import assert from "node:assert/strict";
import { AuthchatClient } from "../../lib/client/authchat_client.ts";
import { TrustError } from "../../lib/client/known_hosts.ts";
import type { Sealed } from "../../lib/codec/messages.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { openSealed, sealContext } from "../../lib/crypto/seal.ts";
import { parseVerifier } from "../../lib/crypto/scram_verifier.ts";
import { requests, withServer } from "./_store_server.ts";

const FIRST = "saffron tundra pillow 5";
const SECOND = "saffron tundra pillow 6";
const decoder = new TextDecoder();

Deno.test("AuthchatClient sends only a verifier at register and passwd: the server never sees the password", async () => {
  await withServer(async ({ store, identity, received, connect }) => {
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
  }, { record: true });
});

Deno.test("AuthchatClient refuses a password against the server's policy before sending anything", async () => {
  await withServer(async ({ store, received, connect }) => {
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
  }, { record: true });
});

Deno.test("AuthchatClient checks a current password locally against what the login proved, and a new one against the policy", async () => {
  await withServer(async ({ received, connect }) => {
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
  }, { record: true });
});

Deno.test("AuthchatClient.connectAndLogin sends LOGIN right behind HELLO and logs in over TCP and TLS", async () => {
  await withServer(async ({ received, connect, options }) => {
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
  }, { record: true });
});

Deno.test("AuthchatClient.connectAndLogin sends no proof to a server whose sealing key is not the trusted one", async () => {
  await withServer(async ({ received, connect, options }) => {
    await (await connect(true)).register("erin", FIRST);
    received.length = 0;
    const pinned = { ...options(false), trust: { fingerprint: `SHA256:${"A".repeat(43)}` } };
    await assert.rejects(AuthchatClient.connectAndLogin(pinned, "erin", FIRST), TrustError);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(received.map((m) => m.op), ["HELLO", "LOGIN"], "the exchange stopped before PROOF");
  }, { record: true });
});
