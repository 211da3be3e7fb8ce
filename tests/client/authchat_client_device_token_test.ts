import assert from "node:assert/strict";
import type { DeviceTokenStore } from "../../lib/client/authchat_client.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { createAccount } from "../../lib/store/create_account.ts";
import { ACCOUNT_SETTINGS, withServer } from "./_store_server.ts";
import type { StoreServer } from "./_store_server.ts";

const PASSWORD = "saffron tundra pillow 5";
const NEXT = "saffron tundra pillow 6";

/** A device-token store in memory that records what it was asked. */
function memoryTokens(): DeviceTokenStore & { kept: Map<string, string>; asked: string[] } {
  const kept = new Map<string, string>();
  const asked: string[] = [];
  return {
    kept,
    asked,
    get: (server, user) => (asked.push(`get ${user}`), Promise.resolve(kept.get(`${server} ${user}`))),
    put: (
      server,
      user,
      token,
    ) => (asked.push(`put ${user}`), kept.set(`${server} ${user}`, token), Promise.resolve()),
    forget: (
      server,
      user,
    ) => (asked.push(`forget ${user}`), kept.delete(`${server} ${user}`), Promise.resolve()),
  };
}

const isCode = (code: string) => (err: unknown) => err instanceof ProtocolError && err.code === code;

/** Guess at names from this client's address (127.0.0.1) until the address is in backoff. */
async function putAddressInBackoff(login: StoreServer["login"]): Promise<void> {
  for (let i = 0; i < 20; i++) {
    try {
      await login(`ghost${i}`, "wrong wrong wrong");
    } catch (err) {
      if (isCode("RATE_LIMITED")(err)) return;
      assert.ok(isCode("AUTH_FAILED")(err), String(err));
    }
  }
  assert.fail("the address never went into backoff");
}

Deno.test("AuthchatClient keeps a login's device token and shows it at the next login, through its address's backoff", async () => {
  await withServer(async ({ store, login }) => {
    await createAccount(store, { user: "alice", password: PASSWORD }, ACCOUNT_SETTINGS);
    const deviceTokens = memoryTokens();
    await login("Alice", PASSWORD, { deviceTokens });
    assert.deepEqual(deviceTokens.asked, ["get alice", "put alice"], "kept under the account's user key");
    const [slot, first] = [...deviceTokens.kept][0]!;
    assert.match(slot, /^127\.0\.0\.1:\d+ alice$/);
    await putAddressInBackoff(login);
    await assert.rejects(login("alice", PASSWORD), isCode("RATE_LIMITED"), "without the token she waits");
    const client = await login("alice", PASSWORD, { deviceTokens });
    assert.equal(client.user, "alice");
    assert.notEqual(deviceTokens.kept.get(slot), first, "each login gives a fresh token");
  });
});

Deno.test("AuthchatClient keeps the token PASSWD gives and drops the account's token at DELETE", async () => {
  await withServer(async ({ store, login }) => {
    await createAccount(store, { user: "alice", password: PASSWORD }, ACCOUNT_SETTINGS);
    const deviceTokens = memoryTokens();
    const client = await login("alice", PASSWORD, { deviceTokens });
    const before = [...deviceTokens.kept.values()][0];
    await client.passwd(PASSWORD, NEXT);
    const after = [...deviceTokens.kept.values()][0];
    assert.notEqual(after, before);
    // The old password's token is dead; the new one works through the backoff.
    await putAddressInBackoff(login);
    const again = await login("alice", NEXT, { deviceTokens });
    await again.deleteAccount(NEXT);
    assert.equal(deviceTokens.kept.size, 0);
    assert.equal(deviceTokens.asked.at(-1), "forget alice");
  });
});

Deno.test("AuthchatClient logs in when its device tokens cannot be read or kept, and says so", async () => {
  await withServer(async ({ store, login }) => {
    await createAccount(store, { user: "alice", password: PASSWORD }, ACCOUNT_SETTINGS);
    const warnings: string[] = [];
    const broken: DeviceTokenStore = {
      get: () => Promise.reject(new Deno.errors.PermissionDenied("read denied")),
      put: () => Promise.reject(new Deno.errors.PermissionDenied("write denied")),
      forget: () => Promise.resolve(),
    };
    const client = await login("alice", PASSWORD, {
      deviceTokens: broken,
      onWarning: (m) => warnings.push(m),
    });
    assert.equal(client.user, "alice");
    assert.deepEqual(warnings, [
      "Cannot read the device token: read denied",
      "Cannot keep the device token: write denied",
    ]);
  });
});
