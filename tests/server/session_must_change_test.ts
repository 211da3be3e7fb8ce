import assert from "node:assert/strict";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { decodeBase64 } from "../../lib/codec/base64.ts";
import { encodeRdv } from "../../lib/codec/datagram.ts";
import { importUdpKey, tagDatagram } from "../../lib/crypto/datagram_tag.ts";
import { CLIENT_OPS } from "../../lib/codec/messages.ts";
import { Rendezvous } from "../../lib/server/udp_rendezvous.ts";
import { createLegacyAccount } from "../../lib/store/create_account.ts";
import {
  errorCode as code,
  KIT_ITERATIONS,
  KIT_PASSWORD_MIN_LENGTH,
  makeKit,
  roundTrip,
  SAMPLE_BACKUP,
  testIdentity,
  verifierFor,
} from "./_session_kit.ts";
import type { Kit, KitOptions, Reply, TestConnection } from "./_session_kit.ts";

/** The legacy password: on the common list, so the imported account is flagged. */
const LEGACY = "password10";
const NEW_PASSWORD = "amber glacier piano 17";
const PASSWORD = "violet harbor engine 42";

/** A kit with user10 imported from a legacy file (flagged) and alice, a normal account. */
async function legacyKit(options: KitOptions = {}): Promise<Kit> {
  const kit = await makeKit(options);
  const { record } = await createLegacyAccount(kit.store, { user: "user10", password: LEGACY }, {
    iterations: KIT_ITERATIONS,
    minPasswordLength: KIT_PASSWORD_MIN_LENGTH,
  });
  assert.equal(record.mustChangePassword, true);
  await kit.addUser("alice", PASSWORD);
  return kit;
}

async function loggedIn(kit: Kit, user: string, password: string): Promise<TestConnection> {
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.login(user, password);
  return conn;
}

/** PASSWD over TLS (the new verifier in the channel). */
async function changePassword(conn: TestConnection, current: string, next = NEW_PASSWORD) {
  return await conn.scram("PASSWD", "user10", current, { extra: { verifier: await verifierFor(next) } });
}

/** One valid request of each command a restricted session may not send. */
async function forbiddenRequests(): Promise<Record<string, Record<string, unknown>>> {
  const id = testIdentity();
  return {
    REGISTER: { op: "REGISTER", user: "newbie", verifier: await verifierFor(PASSWORD) },
    LOGIN: { op: "LOGIN", mechanism: "SCRAM-SHA-256", data: "n,,n=alice,r=abcdefghijkl" },
    DELETE: { op: "DELETE", mechanism: "SCRAM-SHA-256", data: "n,,n=user10,r=abcdefghijkl" },
    ACCESS: { op: "ACCESS" },
    IDENTITY: { op: "IDENTITY", key: id.key, backup: SAMPLE_BACKUP },
    LIST: { op: "LIST" },
    PEER: { op: "PEER", user: "alice" },
  };
}

const ALLOWED = ["HELLO", "PING", "PASSWD", "PROOF", "IS_LOGGED", "LOGOUT", "CLOSE"];

Deno.test("Session LOGIN of a flagged account succeeds, says must_change_password, and gets no UDP rendezvous", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 100 });
  await using kit = await legacyKit({ rendezvous });
  const conn = kit.connect();
  const { reply } = await conn.login("user10", LEGACY);
  assert.equal(reply.must_change_password, true);
  assert.equal(reply.user, "user10");
  assert.equal(reply.udp, undefined, "not online yet: no rendezvous");
  assert.equal(reply.identity, undefined);
  assert.deepEqual(roundTrip(reply), reply);
  const state = await conn.send({ op: "IS_LOGGED" });
  assert.deepEqual(state, {
    op: "IS_LOGGED",
    id: 4,
    logged_in: true,
    user: "user10",
    must_change_password: true,
  });
  assert.deepEqual(roundTrip(state), state);
  const normal = kit.connect();
  const { reply: plain } = await normal.login("alice", PASSWORD);
  assert.equal("must_change_password" in plain, false, "present only when true");
  assert.ok(plain.udp);
  const plainState = await normal.send({ op: "IS_LOGGED", id: 9 });
  assert.deepEqual(plainState, { op: "IS_LOGGED", id: 9, logged_in: true, user: "alice" });
  assert.ok(
    kit.logs.some((l) => l.includes('"event":"login_ok"') && l.includes('"must_change_password":true')),
  );
});

Deno.test("Session refuses every other request of a restricted session with PASSWORD_CHANGE_REQUIRED", async () => {
  await using kit = await legacyKit();
  const conn = await loggedIn(kit, "user10", LEGACY);
  const forbidden = await forbiddenRequests();
  // Every command is either allowed or tried here: a new command must be decided on.
  assert.deepEqual([...CLIENT_OPS].sort(), [...ALLOWED, ...Object.keys(forbidden)].sort());
  for (const [op, msg] of Object.entries(forbidden)) {
    const reply = await conn.send(msg);
    assert.deepEqual(reply, {
      op: "ERROR",
      id: (reply as { id: number }).id,
      code: "PASSWORD_CHANGE_REQUIRED",
      message:
        `Password change required: ${op} is refused until this account changes its password with PASSWD ` +
        "(only PASSWD, IS_LOGGED, LOGOUT and CLOSE are allowed until then)",
    }, op);
    assert.deepEqual(roundTrip(reply), reply);
  }
  assert.equal(conn.closed, false, "not fatal");
  const doc = (await Deno.readTextFile(new URL("../../docs/PROTOCOL.md", import.meta.url))).replace(
    /\s+/g,
    " ",
  );
  const template = (reply: Reply) =>
    reply.op === "ERROR" ? reply.message.replace(/^(.*?: )[A-Z_]+ /, "$1<op> ") : "";
  assert.ok(doc.includes(`\`${template(await conn.send({ op: "LIST" }))}\``), "the message as documented");
  assert.equal(await kit.store.findUser("newbie"), undefined, "REGISTER did nothing");
  const stored = await kit.store.findUser("user10");
  assert.ok(stored, "DELETE did nothing");
  assert.equal(stored.identityKey, null, "IDENTITY did nothing: no key sealed under the weak password");
  assert.equal(stored.mustChangePassword, true);
  assert.equal((await conn.send({ op: "IS_LOGGED" })).op, "IS_LOGGED", "still logged in");
  assert.equal((await conn.send({ op: "HELLO", version: 1 })).op, "HELLO");
  assert.equal((await conn.send({ op: "PING" })).op, "PONG");
});

Deno.test("Session PASSWD lifts the restriction without a new login: every request then works", async () => {
  await using kit = await legacyKit();
  const conn = await loggedIn(kit, "user10", LEGACY);
  const { reply } = await changePassword(conn, LEGACY);
  assert.equal(reply.op, "PASSWD");
  assert.deepEqual(roundTrip(reply), reply);
  const stored = await kit.store.findUser("user10");
  assert.equal(stored?.mustChangePassword, false, "the store cleared the flag with the verifier");
  assert.deepEqual(await conn.send({ op: "IS_LOGGED", id: 50 }), {
    op: "IS_LOGGED",
    id: 50,
    logged_in: true,
    user: "user10",
  });
  assert.equal((await conn.send({ op: "ACCESS" })).op, "ACCESS");
  assert.equal((await conn.send({ op: "LIST" })).op, "LIST");
  const id = testIdentity();
  assert.equal((await conn.send({ op: "IDENTITY", key: id.key, backup: id.backup })).op, "IDENTITY");
  assert.equal(
    code(await conn.send({ op: "PEER", user: "alice" })),
    "USER_OFFLINE",
    "alice is offline: PEER ran",
  );
  assert.ok(kit.logs.some((l) => l.includes('"event":"restriction_lifted"')));
  // The old password is gone, the new one logs in as a normal account.
  assert.equal(code((await kit.connect().scram("LOGIN", "user10", LEGACY)).reply), "AUTH_FAILED");
  const { reply: again } = await kit.connect().login("user10", NEW_PASSWORD);
  assert.equal(again.must_change_password, undefined);
});

Deno.test("Session keeps a restricted session offline: no notice, not listed, hears nothing, until PASSWD", async () => {
  await using kit = await legacyKit();
  const alice = await loggedIn(kit, "alice", PASSWORD);
  const user10 = await loggedIn(kit, "user10", LEGACY);
  assert.deepEqual(alice.takeNotices(), [], "nobody is told");
  assert.equal(kit.ctx.presence.get("user10"), undefined);
  const list = await alice.send({ op: "LIST" });
  assert.deepEqual(list.op === "LIST" && list.users.map((u) => u.user), ["alice"]);
  assert.equal(code(await alice.send({ op: "PEER", user: "user10" })), "USER_OFFLINE");
  await kit.addUser("bob", PASSWORD);
  const bob = await loggedIn(kit, "bob", PASSWORD);
  await bob.send({ op: "LOGOUT" });
  assert.deepEqual(user10.takeNotices(), [], "it hears nothing");
  alice.takeNotices();

  assert.equal((await changePassword(user10, LEGACY)).reply.op, "PASSWD");
  assert.deepEqual(alice.takeNotices(), [{ op: "PRESENCE", user: "user10", state: "online" }]);
  assert.equal(kit.ctx.presence.get("user10")?.name, "user10");
  await loggedIn(kit, "bob", PASSWORD);
  assert.deepEqual(user10.takeNotices(), [{ op: "PRESENCE", user: "bob", state: "online" }], "and hears");
  alice.takeNotices();
  await user10.send({ op: "LOGOUT" });
  assert.deepEqual(alice.takeNotices(), [{ op: "PRESENCE", user: "user10", state: "offline" }]);
});

Deno.test("Session PASSWD that lifts the restriction carries the UDP rendezvous, keyed by its own exchange", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 100 });
  rendezvous.port = 4242;
  await using kit = await legacyKit({ rendezvous });
  const conn = await loggedIn(kit, "user10", LEGACY);
  const { reply, client } = await changePassword(conn, LEGACY);
  assert.equal(reply.op, "PASSWD");
  if (reply.op !== "PASSWD") return;
  assert.ok(reply.udp);
  assert.equal(reply.udp.port, 4242);
  assert.equal(reply.udp.relay_id, conn.session.id);
  assert.deepEqual(roundTrip(reply), reply);
  const key = await importUdpKey(client.sessionKey!);
  const handle = decodeBase64(reply.udp.handle)!;
  const from = { hostname: "198.51.100.7", port: 40_000 };
  const out = await rendezvous.receive(
    await tagDatagram(key, encodeRdv({ handle, counter: 0 })),
    from,
    kit.clock.now,
  );
  assert.equal(out.length, 1, "the server registered the key of the PASSWD exchange");
  assert.deepEqual(rendezvous.endpointOf("user10"), {
    relayId: conn.session.id,
    hostname: "198.51.100.7",
    port: 40_000,
  });
  // A later PASSWD of a normal session is what it always was.
  const next = await conn.scram("PASSWD", "user10", NEW_PASSWORD, {
    extra: { verifier: await verifierFor(PASSWORD) },
  });
  assert.equal(next.reply.op, "PASSWD");
  assert.equal("udp" in next.reply, false);
});

Deno.test("Session leaves a restricted session restricted after a failed PASSWD; LOGOUT and CLOSE work", async () => {
  await using kit = await legacyKit();
  const conn = await loggedIn(kit, "user10", LEGACY);
  assert.equal(code((await changePassword(conn, "not the password")).reply), "AUTH_FAILED");
  assert.equal(code(await conn.send({ op: "ACCESS" })), "PASSWORD_CHANGE_REQUIRED");
  assert.equal((await kit.store.findUser("user10"))?.mustChangePassword, true);
  // An abandoned exchange (any other command before PROOF) leaves it restricted too.
  const challenge = await conn.send({
    op: "PASSWD",
    mechanism: "SCRAM-SHA-256",
    data: "n,,n=user10,r=abcdefgh",
    verifier: await verifierFor(NEW_PASSWORD),
  });
  assert.equal(challenge.op, "CHALLENGE");
  assert.equal(code(await conn.send({ op: "ACCESS" })), "OUT_OF_ORDER");
  assert.equal(code(await conn.send({ op: "ACCESS" })), "PASSWORD_CHANGE_REQUIRED");
  assert.equal((await conn.send({ op: "LOGOUT" })).op, "LOGOUT");
  assert.deepEqual(await conn.send({ op: "IS_LOGGED", id: 70 }), {
    op: "IS_LOGGED",
    id: 70,
    logged_in: false,
  });
  assert.equal(code(await conn.send({ op: "ACCESS" })), "NOT_LOGGED_IN");
  await conn.login("user10", LEGACY);
  assert.equal(code(await conn.send({ op: "LIST" })), "PASSWORD_CHANGE_REQUIRED");
  assert.equal((await conn.send({ op: "CLOSE" })).op, "CLOSE");
  assert.equal(conn.closed, true);
});

Deno.test("Session PASSWD of one restricted session ends the account's other sessions", async () => {
  await using kit = await legacyKit();
  const first = await loggedIn(kit, "user10", LEGACY);
  const second = await loggedIn(kit, "user10", LEGACY);
  assert.equal((await changePassword(first, LEGACY)).reply.op, "PASSWD");
  assert.deepEqual(second.take(), [{
    op: "BYE",
    code: "PASSWORD_CHANGED",
    reason: "Password changed: log in again",
  }]);
  assert.equal(second.closed, true);
  assert.equal((await first.send({ op: "ACCESS" })).op, "ACCESS");
});

Deno.test("Session LOGIN begun before the PASSWD that lifted the flag cannot log in with the weak password", async () => {
  await using kit = await legacyKit();
  const restricted = await loggedIn(kit, "user10", LEGACY);
  // A second connection starts a LOGIN with the weak password: its exchange read the flag and the old verifier.
  const late = kit.connect({ transport: "tls", confidential: true });
  const hello = await late.sayHello();
  const client = new ScramClient({
    username: "user10",
    password: LEGACY,
    serverMechanisms: hello.mechanisms,
  });
  const challenge = await late.send({ op: "LOGIN", mechanism: client.mechanism, data: client.first });
  assert.equal(challenge.op, "CHALLENGE");
  assert.equal((await changePassword(restricted, LEGACY)).reply.op, "PASSWD");
  // Its proof is right for the verifier it was begun against, which is gone: nothing is committed.
  const proof = await late.send({
    op: "PROOF",
    data: await client.final((challenge as { data: string }).data),
  });
  assert.equal(code(proof), "AUTH_FAILED");
  assert.deepEqual(await late.send({ op: "IS_LOGGED", id: 3 }), { op: "IS_LOGGED", id: 3, logged_in: false });
  assert.equal((await kit.store.findUser("user10"))?.mustChangePassword, false);
  assert.equal((await restricted.send({ op: "ACCESS" })).op, "ACCESS");
});

Deno.test("Session LOGIN of a flagged account that has an identity key sends its backup, and PASSWD needs it re-sealed", async () => {
  await using kit = await makeKit();
  const id = testIdentity();
  await kit.store.createUser({
    name: "kim",
    nameKey: "kim",
    verifier: await verifierFor(LEGACY),
    now: kit.clock.now,
    identity: { key: id.raw, backup: JSON.stringify(id.backup) },
    mustChangePassword: true,
  });
  const conn = kit.connect({ transport: "tls", confidential: true });
  const { reply } = await conn.login("kim", LEGACY);
  assert.equal(reply.must_change_password, true);
  assert.equal(reply.identity?.key, id.key, "the client must re-seal it under the new password");
  const bare = await conn.scram("PASSWD", "kim", LEGACY, {
    extra: { verifier: await verifierFor(NEW_PASSWORD) },
  });
  assert.equal(code(bare.reply), "BAD_MESSAGE");
  assert.equal(code(await conn.send({ op: "ACCESS" })), "PASSWORD_CHANGE_REQUIRED");
  const resealed = { ...id.backup, ct: SAMPLE_BACKUP.ct };
  const done = await conn.scram("PASSWD", "kim", LEGACY, {
    extra: { verifier: await verifierFor(NEW_PASSWORD), backup: resealed },
  });
  assert.equal(done.reply.op, "PASSWD");
  const stored = await kit.store.findUser("kim");
  assert.equal(stored?.mustChangePassword, false);
  assert.equal(stored?.keyBackup, JSON.stringify(resealed));
  assert.equal((await conn.send({ op: "ACCESS" })).op, "ACCESS");
});
