import assert from "node:assert/strict";
import type { AuthchatClient } from "../../lib/client/authchat_client.ts";
import { newIdentity } from "../../lib/client/_chat_identity.ts";
import { saslPrep } from "../../lib/auth/saslprep.ts";
import { decodeBase64 } from "../../lib/codec/base64.ts";
import { decodeDatagram, encodeRdv } from "../../lib/codec/datagram.ts";
import { importUdpKey, tagDatagram, verifyDatagram } from "../../lib/crypto/datagram_tag.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { createVerifier, formatVerifier } from "../../lib/crypto/scram_verifier.ts";
import { createLegacyAccount } from "../../lib/store/create_account.ts";
import { ACCOUNT_SETTINGS, privateBytes, withServer } from "./_store_server.ts";

/** A legacy password on the common list: the imported account must change it. */
const LEGACY = "password10";
const NEXT = "second amber lantern 8";

/** Read afresh (an assertion on `client.chat` would narrow its type for the rest of the test). */
function chatOf(client: AuthchatClient) {
  return client.chat;
}

function isCode(code: string) {
  return (err: unknown) => err instanceof ProtocolError && err.code === code;
}

/** Prove the UDP credentials to the server's rendezvous: the server must answer with a valid RDV_ACK. */
async function proveUdp(udp: { port: number; handle: string; key: Uint8Array }): Promise<boolean> {
  const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const key = await importUdpKey(udp.key);
    const rdv = await tagDatagram(key, encodeRdv({ handle: decodeBase64(udp.handle)!, counter: 0 }));
    await socket.send(rdv, { transport: "udp", hostname: "127.0.0.1", port: udp.port });
    const [bytes] = await socket.receive();
    const ack = decodeDatagram(bytes);
    return ack.type === "RDV_ACK" && await verifyDatagram(key, ack);
  } finally {
    socket.close();
  }
}

Deno.test("AuthchatClient logs a flagged account in restricted; passwd starts chat with a key under the new password", async () => {
  await withServer(async ({ store, udpPort, login }) => {
    await createLegacyAccount(store, { user: "user10", password: LEGACY }, ACCOUNT_SETTINGS);
    const client = await login("user10", LEGACY);
    assert.equal(client.user, "user10");
    assert.equal(client.mustChangePassword, true);
    assert.equal(client.chat, null, "no chat until the password is changed");
    assert.deepEqual(await client.isLogged(), { loggedIn: true, user: "user10", mustChangePassword: true });
    await assert.rejects(client.access(), isCode("PASSWORD_CHANGE_REQUIRED"));
    await assert.rejects(client.list(), isCode("PASSWORD_CHANGE_REQUIRED"));
    assert.equal(
      (await store.findUser("user10"))?.identityKey,
      null,
      "nothing sealed under the old password",
    );

    await client.passwd(LEGACY, NEXT);
    assert.equal(client.mustChangePassword, false);
    assert.deepEqual(await client.isLogged(), { loggedIn: true, user: "user10" });
    const chat = chatOf(client);
    assert.ok(chat?.identity, chat?.identityError);
    assert.ok(chat.udp, "the UDP rendezvous came with the PASSWD reply");
    assert.equal(chat.udp.port, udpPort);
    assert.equal(await proveUdp(chat.udp), true, "with the key of the PASSWD exchange");
    const row = await store.findUser("user10");
    assert.equal(row?.mustChangePassword, false);
    assert.deepEqual(row?.identityKey, chat.identity.publicKey, "the key was registered");
    assert.equal((await client.access()).user, "user10");
    await client.close();

    const again = await login("user10", NEXT);
    assert.equal(again.mustChangePassword, false);
    assert.equal(
      await privateBytes(again.chat?.identity),
      await privateBytes(chat.identity),
      "the backup opens with the new password",
    );
    await assert.rejects(login("user10", LEGACY), isCode("AUTH_FAILED"));
  });
});

Deno.test("AuthchatClient re-seals the existing key of a flagged account on passwd and keeps it", async () => {
  await withServer(async ({ store, login }) => {
    const made = await newIdentity("kim", LEGACY);
    const { v, kdf, m, t, p, salt, iv, ct } = made.message.backup;
    await store.createUser({
      name: "kim",
      nameKey: "kim",
      verifier: formatVerifier(await createVerifier(saslPrep(LEGACY), { iterations: 4096 })),
      now: Date.now(),
      identity: { key: made.identity.publicKey, backup: JSON.stringify({ v, kdf, m, t, p, salt, iv, ct }) },
      mustChangePassword: true,
    });
    const client = await login("kim", LEGACY);
    assert.equal(client.mustChangePassword, true);
    assert.equal(client.chat, null);
    await client.passwd(LEGACY, NEXT);
    assert.equal(await privateBytes(chatOf(client)?.identity), await privateBytes(made.identity));
    await client.close();
    const again = await login("kim", NEXT);
    assert.equal(await privateBytes(again.chat?.identity), await privateBytes(made.identity));
  });
});

Deno.test("AuthchatClient logs a restricted connection out before it logs in again", async () => {
  await withServer(async ({ store, login }) => {
    await createLegacyAccount(store, { user: "user12", password: "password12" }, ACCOUNT_SETTINGS);
    await createLegacyAccount(
      store,
      { user: "dora", password: "a-long-and-uncommon-passphrase" },
      ACCOUNT_SETTINGS,
    );
    const client = await login("user12", "password12");
    assert.equal(await client.login("dora", "a-long-and-uncommon-passphrase"), "dora");
    assert.equal(client.mustChangePassword, false);
    assert.deepEqual(await client.isLogged(), { loggedIn: true, user: "dora" });
    assert.equal((await client.access()).user, "dora");
    await client.login("user12", "password12");
    await assert.rejects(client.login("user12", "wrong password"), isCode("AUTH_FAILED"));
    assert.deepEqual(await client.isLogged(), { loggedIn: false }, "a failed re-login leaves it logged out");
  });
});

Deno.test("AuthchatClient forgets the restriction on logout and keeps it after a failed passwd", async () => {
  await withServer(async ({ store, login }) => {
    await createLegacyAccount(store, { user: "user11", password: "password11" }, ACCOUNT_SETTINGS);
    const client = await login("user11", "password11");
    await assert.rejects(client.passwd("wrong password", NEXT), isCode("AUTH_FAILED"));
    assert.equal(client.mustChangePassword, true);
    assert.equal(client.chat, null);
    await client.logout();
    assert.equal(client.mustChangePassword, false);
    assert.deepEqual(await client.isLogged(), { loggedIn: false });
  });
});
