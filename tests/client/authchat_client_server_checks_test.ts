/**
 * The client's checks of the server during SCRAM exchanges, against a real server made to misbehave in
 * one way: a server signature that does not verify on PASSWD and DELETE (LOGIN's is covered in
 * tests/e2e/cli_fake_server_test.ts), and a HELLO without the channel-bound mechanism on TLS, answered
 * while a pipelined LOGIN waits.
 */

import assert from "node:assert/strict";
import { AuthchatClient } from "../../lib/client/authchat_client.ts";
import { SCRAM_SHA_256_PLUS, ScramServer, ScramServerExchange } from "../../lib/auth/scram_server.ts";
import { encodeBase64 } from "../../lib/codec/base64.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { requests, withServer } from "./_store_server.ts";

const FIRST = "marble quiver lantern 3";
const SECOND = "marble quiver lantern 4";

/**
 * Run `body` with every server exchange that succeeds while `forge.on` is set answering a signature of
 * its own making instead of the real one (a server that does not know the verifier, or a meddler).
 */
async function withForgedSignatures(body: (forge: { on: boolean }) => Promise<void>): Promise<void> {
  const finish = ScramServerExchange.prototype.finish;
  const forge = { on: false };
  ScramServerExchange.prototype.finish = async function (this: ScramServerExchange, text: string) {
    const serverFinal = await finish.call(this, text);
    return forge.on ? `v=${encodeBase64(new Uint8Array(32).fill(1))}` : serverFinal;
  };
  try {
    await body(forge);
  } finally {
    ScramServerExchange.prototype.finish = finish;
  }
}

const signatureRefused = (err: unknown) =>
  err instanceof ProtocolError && err.code === "AUTH_FAILED" &&
  /Server signature did not verify/.test(err.message);

for (const tls of [false, true]) {
  const transport = tls ? "TLS" : "TCP";

  Deno.test(`AuthchatClient rejects a PASSWD reply whose server signature does not verify, and closes (${transport})`, async () => {
    await withForgedSignatures(async (forge) => {
      await withServer(async ({ connect }) => {
        const client = await connect(tls);
        await client.register("alice", FIRST);
        await client.login("alice", FIRST);
        forge.on = true;
        await assert.rejects(client.passwd(FIRST, SECOND), signatureRefused);
        assert.match(client.closedReason ?? "open", /^Server failed authentication checks: Server signature/);
        assert.equal(await client.passwordMatches(FIRST), true, "the client did not take the new password");
        assert.equal(await client.passwordMatches(SECOND), false);
        await assert.rejects(client.isLogged(), /Server failed authentication checks/);
      });
    });
  });

  Deno.test(`AuthchatClient rejects a DELETE reply whose server signature does not verify, and closes (${transport})`, async () => {
    await withForgedSignatures(async (forge) => {
      await withServer(async ({ connect }) => {
        const client = await connect(tls);
        await client.register("bob", FIRST);
        await client.login("bob", FIRST);
        forge.on = true;
        await assert.rejects(client.deleteAccount(FIRST), signatureRefused);
        assert.match(client.closedReason ?? "open", /^Server failed authentication checks: Server signature/);
        assert.equal(client.user, "bob", "the client did not take the deletion for done");
        await assert.rejects(client.isLogged(), /Server failed authentication checks/);
      });
    });
  });
}

Deno.test("AuthchatClient.connectAndLogin over TLS refuses a HELLO without SCRAM-SHA-256-PLUS before any PROOF", async () => {
  // The HELLO leaves the channel-bound mechanism out (a downgrade), yet the LOGIN sent behind it, which
  // asked for that mechanism, still gets its CHALLENGE: only the client's check stops the exchange.
  const mechanisms = Object.getOwnPropertyDescriptor(ScramServer.prototype, "mechanisms")!;
  const greeted = new WeakSet<ScramServer>();
  Object.defineProperty(ScramServer.prototype, "mechanisms", {
    configurable: true,
    get(this: ScramServer) {
      const all = mechanisms.get!.call(this) as string[];
      if (greeted.has(this)) return all;
      greeted.add(this);
      return all.filter((m) => m !== SCRAM_SHA_256_PLUS);
    },
  });
  try {
    await withServer(async ({ received, options }) => {
      const client = await AuthchatClient.connect(options(false));
      await client.register("carol", FIRST);
      await client.close();
      received.length = 0;
      await assert.rejects(
        AuthchatClient.connectAndLogin(options(true), "carol", FIRST),
        (err) =>
          err instanceof ProtocolError && err.code === "CHANNEL_BINDING" && /downgrade/.test(err.message),
      );
      assert.deepEqual(received.map((m) => m.op), ["HELLO", "LOGIN"], "no PROOF was sent");
      assert.equal(requests(received, "LOGIN")[0]!.mechanism, SCRAM_SHA_256_PLUS);
    }, { record: true });
  } finally {
    Object.defineProperty(ScramServer.prototype, "mechanisms", mechanisms);
  }
});
