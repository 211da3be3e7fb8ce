import assert from "node:assert/strict";
import type { ClientCache } from "../../lib/client/authchat_client.ts";
import type { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { createAccount } from "../../lib/store/create_account.ts";
import { ACCOUNT_SETTINGS, privateBytes, withServer } from "./_store_server.ts";

const PASSWORD = "amber lantern quiet 7";
const NEXT = "second amber lantern 8";

Deno.test("AuthchatClient makes and registers an identity key at the first login of an account without one", async () => {
  await withServer(async ({ store, login }) => {
    await createAccount(store, { user: "seeded", password: PASSWORD }, ACCOUNT_SETTINGS);
    assert.equal((await store.findUser("seeded"))?.identityKey, null);
    const first = await login("seeded", PASSWORD);
    const made = first.chat?.identity;
    assert.ok(made, first.chat?.identityError);
    const row = await store.findUser("seeded");
    assert.deepEqual(row?.identityKey, made.publicKey, "the server holds the new public key");
    assert.ok(row?.keyBackup?.includes('"kdf":"argon2id"'));
    await first.close();

    const again = await login("seeded", PASSWORD);
    assert.equal(
      await privateBytes(again.chat?.identity),
      await privateBytes(made),
      "the next login (a new machine) recovers the same key from the backup",
    );
  });
});

Deno.test("AuthchatClient re-seals the key backup on passwd so the new password recovers the same key", async () => {
  await withServer(async ({ store, login }) => {
    await createAccount(store, { user: "carol", password: PASSWORD }, ACCOUNT_SETTINGS);
    const first = await login("carol", PASSWORD);
    const original = await privateBytes(first.chat?.identity);
    const backupBefore = (await store.findUser("carol"))?.keyBackup;
    await first.passwd(PASSWORD, NEXT);
    const backupAfter = (await store.findUser("carol"))?.keyBackup;
    assert.notEqual(backupAfter, backupBefore, "the backup changed with the password");
    await first.close();

    const after = await login("carol", NEXT);
    assert.equal(await privateBytes(after.chat?.identity), original);
    await assert.rejects(login("carol", PASSWORD), (err: ProtocolError) => err.code === "AUTH_FAILED");
  });
});

Deno.test("AuthchatClient keeps a login whose key backup does not open, and says why chat is unavailable", async () => {
  await withServer(async ({ store, login }) => {
    await createAccount(store, { user: "dora", password: PASSWORD }, ACCOUNT_SETTINGS);
    await (await login("dora", PASSWORD)).close();
    const row = (await store.findUser("dora"))!;
    const backup = JSON.parse(row.keyBackup!) as { ct: string };
    const ct = Uint8Array.fromBase64(backup.ct);
    ct[0]! ^= 1;
    backup.ct = ct.toBase64();
    // A server (or a thief with write access) altering the backup cannot make the client accept it.
    assert.equal(
      await store.updateVerifier(row.id, row.verifier, row.verifier, JSON.stringify(backup)),
      true,
    );
    const client = await login("dora", PASSWORD);
    assert.equal(client.user, "dora");
    assert.equal(client.chat?.identity, null);
    assert.match(client.chat?.identityError ?? "", /did not open/);
  });
});

Deno.test("AuthchatClient with a shared cache opens a key backup once, and again only when it changes", async () => {
  await withServer(async ({ store, login }) => {
    await createAccount(store, { user: "erin", password: PASSWORD }, ACCOUNT_SETTINGS);
    const cache: ClientCache = { saltedPasswords: new Map(), identities: new Map() };
    const made = (await login("erin", PASSWORD, { cache })).chat?.identity;
    assert.ok(made);
    const again = await login("erin", PASSWORD, { cache });
    assert.equal(again.chat?.identity, made, "the same key object: no Argon2id on the second login");
    assert.equal(cache.identities.size, 1);
    assert.equal(cache.saltedPasswords.size, 1);
    await again.passwd(PASSWORD, NEXT);
    const after = await login("erin", NEXT, { cache });
    assert.notEqual(after.chat?.identity, made, "a new backup is opened anew");
    assert.equal(await privateBytes(after.chat?.identity), await privateBytes(made));
    assert.equal(cache.identities.size, 2);
    // Without the shared cache, every connection opens the backup itself.
    const alone = await login("erin", NEXT);
    assert.notEqual(alone.chat?.identity, after.chat?.identity);
  });
});
