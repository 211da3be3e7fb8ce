// PASSWD and DELETE must not leave a session of the old password logged in, whatever happens between the
// store's check of a login and its reply, or between the store's write of a PASSWD and its answer.
import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { LOGIN_CUT_OFF } from "../../lib/server/_login_admission.ts";
import { databaseUnavailable } from "../../lib/store/database_unavailable.ts";
import type { UserStore } from "../../lib/store/user_store.ts";
import { errorCode, makeKit, verifierFor } from "./_session_kit.ts";
import type { Kit, TestConnection } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";
const NEW_PASSWORD = "amber glacier piano 17";

/** Replace one method of the kit's store for the rest of the test; the others go to the real store. */
function hookStore<K extends keyof UserStore>(kit: Kit, method: K, replacement: UserStore[K]): void {
  const inner = kit.ctx.store;
  kit.ctx.store = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === method) return replacement;
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * Start a login of alice from `thief` whose store check (recordLogin: on PostgreSQL a SELECT … WHERE verifier
 * = expected) has been answered, but whose session is not registered as logged in yet; the returned
 * `release` lets it go on (the database round trip and the awaits before the reply).
 */
async function loginHeldAfterStoreCheck(kit: Kit, thief: TestConnection) {
  const inner = kit.ctx.store;
  const checked = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  let hooked = false;
  hookStore(kit, "recordLogin", async (...args) => {
    const result = await inner.recordLogin(...args);
    if (!hooked) {
      hooked = true;
      checked.resolve();
      await gate.promise;
    }
    return result;
  });
  const login = thief.scram("LOGIN", "alice", PASSWORD);
  await checked.promise;
  return {
    release: async () => {
      gate.resolve();
      const { reply } = await login;
      kit.ctx.store = inner;
      return reply;
    },
  };
}

Deno.test("Session refuses a login whose store check passed just before a PASSWD on another session", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const owner = kit.connect({ transport: "tls", confidential: true });
  await owner.login("alice", PASSWORD);
  const thief = kit.connect({ peerAddress: "10.9.9.9" });
  const held = await loginHeldAfterStoreCheck(kit, thief);

  const changed = await owner.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor(NEW_PASSWORD) },
  });
  assert.equal(changed.reply.op, "PASSWD", "PASSWD said done");

  const reply = await held.release();
  assert.equal(errorCode(reply), "AUTH_FAILED", JSON.stringify(reply));
  assert.equal(thief.session.user, null, "the old password's session is not logged in");
  assert.equal(kit.ctx.registry.sessionsOf("alice"), 1, "only the session that changed it");
  assert.equal(kit.ctx.presence.get("alice")?.name, "alice", "alice stays online through her own session");
});

Deno.test("Session refuses a login whose store check passed just before another node's PASSWD ended the user here", async () => {
  await using kit = await makeKit();
  const alice = await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", PASSWORD);
  const thief = kit.connect({ peerAddress: "10.9.9.9" });
  const held = await loginHeldAfterStoreCheck(kit, thief);

  // Another node changed the password and asks this node to end alice's sessions (none is registered).
  assert.ok(await kit.store.updateVerifier(alice.id, alice.verifier, await verifierFor(NEW_PASSWORD)));
  assert.equal(
    kit.ctx.registry.endUser("alice", null, "PASSWORD_CHANGED", "Password changed: log in again"),
    0,
  );

  assert.equal(errorCode(await held.release()), "AUTH_FAILED");
  assert.equal(thief.session.user, null);
  // Nobody else is refused: the end was alice's.
  const bob = kit.connect({ peerAddress: "10.8.8.8" });
  assert.equal((await bob.scram("LOGIN", "bob", PASSWORD)).reply.op, "LOGIN");
  // And alice logs in with the new password.
  const again = kit.connect({ peerAddress: "10.7.7.7" });
  assert.equal((await again.scram("LOGIN", "alice", NEW_PASSWORD)).reply.op, "LOGIN");
});

Deno.test("Session refuses a login during which its node lost touch with the others, even when it is back", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const thief = kit.connect({ peerAddress: "10.9.9.9" });
  const held = await loginHeldAfterStoreCheck(kit, thief);
  // The fence (nats_session_directory.ts: SessionsHere.endAll) and, before the login goes on, the rejoin:
  // loginsRefused() says null again.
  kit.ctx.registry.endLoggedIn("UNAVAILABLE", "cut off");
  assert.equal(kit.ctx.sessions.loginsRefused(), null);

  const reply = await held.release();
  assert.equal(errorCode(reply), "UNAVAILABLE", JSON.stringify(reply));
  assert.equal((reply as { message: string }).message, LOGIN_CUT_OFF);
  assert.equal(thief.session.user, null);
  assert.equal((await thief.scram("LOGIN", "alice", PASSWORD)).reply.op, "LOGIN", "a new login succeeds");
});

Deno.test("Session lets a login complete when only other users' sessions were ended meanwhile", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const thief = kit.connect({ peerAddress: "10.9.9.9" });
  const held = await loginHeldAfterStoreCheck(kit, thief);
  kit.ctx.registry.endUser("bob", null, "PASSWORD_CHANGED", "Password changed: log in again");
  assert.equal((await held.release()).op, "LOGIN");
  assert.equal(thief.session.user, "alice");
});

/** Assert that docs/PROTOCOL.md gives an error message as it is sent (section 9's table). */
async function assertDocumented(reply: unknown): Promise<void> {
  const doc = await Deno.readTextFile(new URL("../../docs/PROTOCOL.md", import.meta.url));
  const message = (reply as { message: string }).message;
  assert.ok(doc.includes(`| \`${message}\``), `PROTOCOL.md section 9 gives the message: ${message}`);
}

/** A session directory that records what it is asked to end on the other nodes. */
function recordingDirectory(kit: Kit): string[] {
  const asked: string[] = [];
  kit.ctx.sessions = {
    endElsewhere: (user, code) => {
      asked.push(`${user} ${code}`);
      return Promise.resolve(0);
    },
    serve: () => {},
    loginsRefused: () => null,
  };
  return asked;
}

/** A session directory whose other nodes never all confirm. */
function unansweringDirectory(kit: Kit): void {
  kit.ctx.sessions = {
    endElsewhere: () => Promise.reject(new ProtocolError("UNAVAILABLE", "Not every server node confirmed")),
    serve: () => {},
    loginsRefused: () => null,
  };
}

/** alice logged in twice: `owner` over TLS (the session that asks) and `other` from another address. */
async function aliceTwice(kit: Kit): Promise<{ owner: TestConnection; other: TestConnection }> {
  await kit.addUser("alice", PASSWORD);
  const owner = kit.connect({ transport: "tls", confidential: true });
  const other = kit.connect({ peerAddress: "10.9.9.9" });
  await owner.login("alice", PASSWORD);
  await other.login("alice", PASSWORD);
  return { owner, other };
}

Deno.test("Session ends the other sessions when the database loses a PASSWD's commit acknowledgement", async () => {
  await using kit = await makeKit();
  const asked = recordingDirectory(kit);
  const { owner, other } = await aliceTwice(kit);
  const inner = kit.ctx.store;
  hookStore(kit, "updateVerifier", async (...args) => {
    await inner.updateVerifier(...args); // committed…
    throw databaseUnavailable(); // …but the answer was lost with the connection
  });

  const changed = await owner.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor(NEW_PASSWORD) },
  });
  assert.equal(errorCode(changed.reply), "UNAVAILABLE");
  assert.match((changed.reply as { message: string }).message, /it may have been changed/);
  await assertDocumented(changed.reply);
  assert.equal(other.session.user, null, "the other session of the old password ended");
  assert.deepEqual(other.take().at(-1), {
    op: "BYE",
    code: "PASSWORD_CHANGED",
    reason: "Password changed: log in again",
  });
  assert.deepEqual(asked, ["alice PASSWORD_CHANGED"], "and the other nodes were asked to end theirs");
  assert.equal(owner.session.user, "alice", "the session that asked stays (UNAVAILABLE keeps it)");
  kit.ctx.store = inner;
  const fresh = kit.connect({ peerAddress: "10.1.1.1" });
  assert.equal(errorCode((await fresh.scram("LOGIN", "alice", PASSWORD)).reply), "AUTH_FAILED");
  assert.ok(kit.logs.some((l) => l.includes('"event":"passwd_unconfirmed"')));
});

Deno.test("Session ends the other sessions when the database loses a DELETE's commit acknowledgement", async () => {
  await using kit = await makeKit();
  const asked = recordingDirectory(kit);
  const { owner, other } = await aliceTwice(kit);
  const inner = kit.ctx.store;
  hookStore(kit, "deleteUser", async (...args) => {
    await inner.deleteUser(...args);
    throw databaseUnavailable();
  });
  const deleted = await owner.scram("DELETE", "alice", PASSWORD);
  assert.equal(errorCode(deleted.reply), "UNAVAILABLE");
  assert.match((deleted.reply as { message: string }).message, /it may have been deleted/);
  await assertDocumented(deleted.reply);
  assert.equal(other.session.user, null);
  assert.equal(other.take().at(-1)?.op, "BYE");
  assert.deepEqual(asked, ["alice ACCOUNT_DELETED"]);
  assert.equal(await kit.store.findUser("alice"), undefined);
});

Deno.test("Session ends nothing when the database refuses a PASSWD before writing (it is not UNAVAILABLE)", async () => {
  await using kit = await makeKit();
  const asked = recordingDirectory(kit);
  const { owner, other } = await aliceTwice(kit);
  hookStore(kit, "updateVerifier", () => Promise.reject(new Error("disk full")));
  const changed = await owner.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor(NEW_PASSWORD) },
  });
  assert.equal(errorCode(changed.reply), "INTERNAL");
  assert.equal(other.session.user, "alice", "a write that surely failed ends nothing");
  assert.deepEqual(asked, []);
});

Deno.test("Session says a PASSWD is made but unconfirmed when another node does not answer in time", async () => {
  await using kit = await makeKit();
  unansweringDirectory(kit);
  const { owner, other } = await aliceTwice(kit);
  const changed = await owner.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor(NEW_PASSWORD) },
  });
  assert.equal(errorCode(changed.reply), "UNAVAILABLE");
  assert.equal(
    (changed.reply as { message: string }).message,
    "Password changed, but not every server node confirmed that the account's other sessions ended: " +
      "they end within a minute. Log in with the new password from now on",
  );
  await assertDocumented(changed.reply);
  assert.equal(other.session.user, null, "this node's other sessions ended");
  assert.equal(owner.session.user, "alice", "the session that asked stays");
  assert.equal(
    owner.session.account?.verifier,
    (await kit.store.findUser("alice"))?.verifier,
    "on the new one",
  );
  const fresh = kit.connect({ peerAddress: "10.1.1.1" });
  assert.equal(
    (await fresh.scram("LOGIN", "alice", NEW_PASSWORD)).reply.op,
    "LOGIN",
    "the new password is in force",
  );
  assert.ok(kit.logs.some((l) => l.includes('"event":"passwd_unconfirmed"')));
});

Deno.test("Session says a DELETE is made but unconfirmed when another node does not answer in time", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  unansweringDirectory(kit);
  const owner = kit.connect({ transport: "tls", confidential: true });
  await owner.login("alice", PASSWORD);
  const deleted = await owner.scram("DELETE", "alice", PASSWORD);
  assert.equal(errorCode(deleted.reply), "UNAVAILABLE");
  assert.match((deleted.reply as { message: string }).message, /^Account deleted, but not every server node/);
  await assertDocumented(deleted.reply);
  assert.equal(owner.session.user, null, "logged out, as after any DELETE");
  assert.equal(await kit.store.findUser("alice"), undefined);
});
