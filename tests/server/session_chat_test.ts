import assert from "node:assert/strict";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { decodeBase64, encodeBase64 } from "../../lib/codec/base64.ts";
import { decodeDatagram, encodeRdv } from "../../lib/codec/datagram.ts";
import { importUdpKey, tagDatagram, verifyDatagram } from "../../lib/crypto/datagram_tag.ts";
import { LIST_PAGE } from "../../lib/codec/messages.ts";
import { fingerprint } from "../../lib/crypto/fingerprint.ts";
import { identityFingerprint } from "../../lib/crypto/identity_key.ts";
import { Rendezvous } from "../../lib/server/udp_rendezvous.ts";
import {
  errorCode as code,
  makeKit,
  roundTrip,
  storedBackup,
  testIdentity,
  verifierFor,
} from "./_session_kit.ts";
import type { Kit, TestConnection, TestIdentity } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";
const OTHER = "amber glacier piano 17";

/** The identity as a client sends it. */
function fields(id: TestIdentity): { key: string; backup: TestIdentity["backup"] } {
  return { key: id.key, backup: id.backup };
}

/** Add an account with an identity straight into the store. */
async function addWithIdentity(
  kit: Kit,
  user: string,
  id: TestIdentity = testIdentity(),
): Promise<TestIdentity> {
  await kit.addUser(user, PASSWORD, { key: id.raw, backup: storedBackup(id.backup) });
  return id;
}

async function loggedIn(kit: Kit, user: string, password = PASSWORD): Promise<TestConnection> {
  const conn = kit.connect();
  await conn.login(user, password);
  return conn;
}

Deno.test("Session REGISTER with an identity stores the key and backup, and LOGIN returns them", async () => {
  await using kit = await makeKit();
  const id = testIdentity();
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.sayHello();
  const verifier = await verifierFor(PASSWORD);
  const reply = await conn.send({ op: "REGISTER", user: "Alice", verifier, identity: fields(id) });
  assert.equal(reply.op, "REGISTER");
  const row = await kit.store.findUser("alice");
  assert.deepEqual(row?.identityKey, id.raw);
  assert.ok(row?.keyBackup);
  assert.deepEqual(JSON.parse(row.keyBackup), id.backup);
  const { reply: login } = await conn.login("alice", PASSWORD);
  assert.deepEqual(login.identity, { key: id.key, backup: id.backup });
  assert.deepEqual(roundTrip(login), login);
});

Deno.test("Session REGISTER refuses an identity key that is not 32 bytes and creates no account", async () => {
  await using kit = await makeKit();
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.sayHello();
  const short = { key: "A".repeat(42) + "==", backup: testIdentity().backup };
  const verifier = await verifierFor(PASSWORD);
  const reply = await conn.send({ op: "REGISTER", user: "alice", verifier, identity: short });
  assert.equal(code(reply), "BAD_MESSAGE");
  assert.match((reply as { message: string }).message, /32 bytes/);
  assert.equal(await kit.store.findUser("alice"), undefined);
});

Deno.test("Session LOGIN of an account without an identity returns none, and no udp without a rendezvous", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const { reply } = await kit.connect().login("alice", PASSWORD);
  assert.equal(reply.identity, undefined);
  assert.equal(reply.udp, undefined);
  assert.deepEqual(Object.keys(reply).sort(), ["data", "device_token", "id", "op", "user"]);
});

Deno.test("Session IDENTITY registers a key once, then refuses with IDENTITY_EXISTS", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const alice = await loggedIn(kit, "alice");
  const id = testIdentity();
  const reply = await alice.send({ op: "IDENTITY", id: 20, key: id.key, backup: id.backup });
  assert.deepEqual(reply, {
    op: "IDENTITY",
    id: 20,
    key: id.key,
    fingerprint: await fingerprint(id.raw),
  });
  assert.equal((reply as { fingerprint: string }).fingerprint, await identityFingerprint(id.raw));
  assert.deepEqual(roundTrip(reply), reply);
  const again = await alice.send({ op: "IDENTITY", ...fields(testIdentity(6)) });
  assert.equal(code(again), "IDENTITY_EXISTS");
  const row = await kit.store.findUser("alice");
  assert.deepEqual(row?.identityKey, id.raw, "the first key stays");
  assert.equal(row?.keyBackup, storedBackup(id.backup));
  const other = await loggedIn(kit, "alice");
  assert.equal(code(await other.send({ op: "IDENTITY", ...fields(testIdentity()) })), "IDENTITY_EXISTS");
  const { reply: login } = await kit.connect().login("alice", PASSWORD);
  assert.deepEqual(login.identity, { key: id.key, backup: id.backup });
});

Deno.test("Session IDENTITY after the session's own PASSWD succeeds: the session follows the new verifier", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.login("alice", PASSWORD);
  const verifier = await verifierFor(OTHER);
  const changed = await conn.scram("PASSWD", "alice", PASSWORD, { extra: { verifier } });
  assert.equal(changed.reply.op, "PASSWD");
  // The key's backup is sealed under the new password: it is stored against the new verifier.
  const id = testIdentity();
  const reply = await conn.send({ op: "IDENTITY", id: 7, ...fields(id) });
  assert.deepEqual(reply, { op: "IDENTITY", id: 7, key: id.key, fingerprint: await fingerprint(id.raw) });
  const row = await kit.store.findUser("alice");
  assert.equal(row?.verifier, verifier);
  assert.deepEqual(row?.identityKey, id.raw);
  const { reply: login } = await kit.connect().login("alice", OTHER);
  assert.deepEqual(login.identity, fields(id));
});

Deno.test("Session IDENTITY tells other users' sessions, with the key, and requires a login", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", PASSWORD);
  const anon = kit.connect();
  await anon.sayHello();
  assert.equal(code(await anon.send({ op: "IDENTITY", ...fields(testIdentity()) })), "NOT_LOGGED_IN");
  const bob = await loggedIn(kit, "bob");
  const alice = await loggedIn(kit, "alice");
  const alice2 = await loggedIn(kit, "alice");
  bob.takeNotices();
  const id = testIdentity();
  await alice.send({ op: "IDENTITY", ...fields(id) });
  const notice = {
    op: "PRESENCE",
    user: "alice",
    state: "online",
    key: id.key,
    fingerprint: await fingerprint(id.raw),
  };
  assert.deepEqual(bob.takeNotices(), [notice]);
  assert.deepEqual(roundTrip(bob.notices.at(-1)!), notice);
  assert.deepEqual(alice.takeNotices(), []);
  assert.deepEqual(alice2.takeNotices(), []);
  const list = await bob.send({ op: "LIST" });
  assert.deepEqual((list as { users: unknown[] }).users[0], {
    user: "alice",
    key: id.key,
    fingerprint: notice.fingerprint,
  });
});

Deno.test("Session LIST shows online users with fingerprints and requires a login", async () => {
  await using kit = await makeKit();
  const id = await addWithIdentity(kit, "Alice");
  await kit.addUser("bob", PASSWORD);
  await kit.addUser("carol", PASSWORD);
  const anon = kit.connect();
  await anon.sayHello();
  assert.equal(code(await anon.send({ op: "LIST" })), "NOT_LOGGED_IN");
  const alice = await loggedIn(kit, "alice");
  const bob = await loggedIn(kit, "bob");
  const list = await bob.send({ op: "LIST", id: 21 });
  assert.deepEqual(list, {
    op: "LIST",
    id: 21,
    users: [{ user: "Alice", key: id.key, fingerprint: await fingerprint(id.raw) }, { user: "bob" }],
  });
  assert.deepEqual(roundTrip(list), list);
  assert.deepEqual(await alice.send({ op: "LIST", after: "alice", id: 9 }), {
    op: "LIST",
    id: 9,
    users: [{ user: "bob" }],
  });
});

Deno.test("Session LIST pages with a cursor when more than LIST_PAGE users are online", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const alice = await loggedIn(kit, "alice");
  // Stand-ins for other sessions: logging in 250 users for real would only cost time.
  for (let i = 0; i < 250; i++) {
    const name = `u${String(i).padStart(3, "0")}`;
    kit.ctx.presence.join({ id: 10_000 + i, notify() {} }, {
      key: name,
      name,
      identityKey: null,
      fingerprint: null,
    });
  }
  alice.takeNotices();
  const first = await alice.send({ op: "LIST" });
  assert.equal(first.op, "LIST");
  if (first.op !== "LIST") return;
  assert.equal(first.users.length, LIST_PAGE);
  assert.equal(first.users[0]!.user, "alice");
  assert.equal(first.next, "u198");
  assert.deepEqual(roundTrip(first), first);
  const second = await alice.send({ op: "LIST", after: first.next });
  assert.equal(second.op, "LIST");
  if (second.op !== "LIST") return;
  assert.equal(second.users.length, 51);
  assert.equal(second.users[0]!.user, "u199");
  assert.equal(second.next, undefined);
});

Deno.test("Session PEER refuses unknown users, offline users and users who cannot be reached", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 100 });
  await using kit = await makeKit({ rendezvous });
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", PASSWORD);
  await addWithIdentity(kit, "carol");
  const alice = await loggedIn(kit, "alice");
  const anon = kit.connect();
  await anon.sayHello();
  assert.equal(code(await anon.send({ op: "PEER", user: "bob" })), "NOT_LOGGED_IN");
  assert.equal(code(await alice.send({ op: "PEER", user: "nobody" })), "UNKNOWN_USER");
  assert.equal(code(await alice.send({ op: "PEER", user: "" })), "INVALID_USERNAME");
  assert.equal(code(await alice.send({ op: "PEER", user: "bob" })), "USER_OFFLINE", "not logged in");
  assert.equal(code(await alice.send({ op: "PEER", user: "carol" })), "USER_OFFLINE", "not logged in");
  await loggedIn(kit, "bob");
  const noKey = await alice.send({ op: "PEER", user: "BOB" });
  assert.equal(code(noKey), "USER_OFFLINE", "logged in without an identity key");
  assert.match((noKey as { message: string }).message, /no identity key/);
  await loggedIn(kit, "carol");
  const noUdp = await alice.send({ op: "PEER", user: "carol" });
  assert.equal(code(noUdp), "USER_OFFLINE", "logged in with a key but no proven UDP address");
  assert.match((noUdp as { message: string }).message, /not reachable over UDP/);
});

Deno.test("Session PEER refuses a reachable-looking user when the server has no rendezvous", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  await addWithIdentity(kit, "carol");
  const alice = await loggedIn(kit, "alice");
  await loggedIn(kit, "carol");
  assert.equal(code(await alice.send({ op: "PEER", user: "carol" })), "USER_OFFLINE");
});

Deno.test("Session LOGIN's udp handle proves the session to a Rendezvous with the key ScramClient derived", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 100 });
  rendezvous.port = 4242;
  await using kit = await makeKit({ rendezvous });
  const id = await addWithIdentity(kit, "carol");
  await kit.addUser("alice", PASSWORD);
  const alice = await loggedIn(kit, "alice");
  const carol = kit.connect();
  const { reply, sessionKey } = await carol.login("carol", PASSWORD);
  assert.ok(reply.udp);
  assert.equal(reply.udp.port, 4242);
  assert.equal(reply.udp.relay_id, carol.session.id);
  assert.deepEqual(roundTrip(reply), reply);
  const handle = decodeBase64(reply.udp.handle);
  assert.equal(handle?.length, 16);
  const key = await importUdpKey(sessionKey);
  const from = { hostname: "198.51.100.9", port: 50_000 };
  const out = await rendezvous.receive(
    await tagDatagram(key, encodeRdv({ handle: handle!, counter: 0 })),
    from,
    kit.clock.now,
  );
  assert.equal(out.length, 1, "the server registered the very key the client derived");
  const ack = decodeDatagram(out[0]!.bytes);
  assert.equal(ack.type, "RDV_ACK");
  if (ack.type !== "RDV_ACK") return;
  assert.equal(await verifyDatagram(key, ack), true);
  assert.equal(ack.observed, "198.51.100.9:50000");
  const peer = await alice.send({ op: "PEER", id: 22, user: "Carol" });
  assert.deepEqual(peer, {
    op: "PEER",
    id: 22,
    user: "carol",
    key: id.key,
    fingerprint: await fingerprint(id.raw),
    relay_id: carol.session.id,
    address: "198.51.100.9",
    port: 50_000,
  });
  assert.deepEqual(roundTrip(peer), peer);
});

Deno.test("Session LOGOUT and disconnect unregister the session from the rendezvous", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 100 });
  await using kit = await makeKit({ rendezvous });
  await kit.addUser("alice", PASSWORD);
  for (const leave of ["LOGOUT", "disconnect", "relogin"] as const) {
    const conn = kit.connect();
    const { reply, sessionKey } = await conn.login("alice", PASSWORD);
    const key = await importUdpKey(sessionKey);
    const handle = decodeBase64(reply.udp!.handle)!;
    const from = { hostname: "192.0.2.1", port: 1 };
    assert.equal(
      (await rendezvous.receive(await tagDatagram(key, encodeRdv({ handle, counter: 0 })), from, 1)).length,
      1,
    );
    if (leave === "LOGOUT") assert.equal((await conn.send({ op: "LOGOUT" })).op, "LOGOUT");
    else if (leave === "disconnect") conn.session.disconnected("reset");
    else await conn.login("alice", PASSWORD);
    assert.deepEqual(
      await rendezvous.receive(await tagDatagram(key, encodeRdv({ handle, counter: 1 })), from, 1),
      [],
      leave,
    );
    if (leave !== "relogin") assert.equal(rendezvous.endpointOf("alice"), null, leave);
    else assert.equal(rendezvous.endpointOf("alice"), null, "the new login has not proven itself yet");
  }
  assert.equal(rendezvous.stats.unknownHandle, 3);
});

Deno.test("Session PASSWD of an account with an identity requires a re-sealed backup and stores it", async () => {
  await using kit = await makeKit();
  const id = await addWithIdentity(kit, "alice");
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.login("alice", PASSWORD);
  const before = await kit.store.findUser("alice");
  const verifier = await verifierFor(OTHER);
  const refused = await conn.scram("PASSWD", "alice", PASSWORD, { extra: { verifier } });
  assert.equal(code(refused.reply), "BAD_MESSAGE");
  assert.match((refused.reply as { message: string }).message, /msg\.backup/);
  assert.deepEqual(await kit.store.findUser("alice"), before, "password and backup unchanged");
  assert.equal((await kit.connect().login("alice", PASSWORD)).reply.op, "LOGIN");

  const resealed = { ...id.backup, ct: encodeBase64(new Uint8Array(64).fill(0x42)) };
  const done = await conn.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier, backup: resealed },
  });
  assert.equal(done.reply.op, "PASSWD");
  const after = await kit.store.findUser("alice");
  assert.equal(after?.keyBackup, storedBackup(resealed));
  assert.deepEqual(after?.identityKey, id.raw);
  assert.notEqual(after?.verifier, before?.verifier);
  assert.equal(after?.verifier, verifier, "the new verifier, as sent");
  const { reply } = await kit.connect().login("alice", OTHER);
  assert.deepEqual(reply.identity, { key: id.key, backup: resealed });
});

Deno.test("Session PASSWD of an account without an identity ignores a backup", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.login("alice", PASSWORD);
  const done = await conn.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor(OTHER), backup: testIdentity().backup },
  });
  assert.equal(done.reply.op, "PASSWD");
  const after = await kit.store.findUser("alice");
  assert.equal(after?.keyBackup, null);
  assert.equal(after?.identityKey, null);
  assert.equal((await kit.connect().login("alice", OTHER)).reply.identity, undefined);
});

// PASSWD decides whether a re-sealed backup is required when its exchange starts; an IDENTITY registered
// by another session before the PROOF must still stop the commit, or the stored backup would stay sealed
// under the old password (the store refuses a verifier change without a backup once a key is there).
Deno.test("Session PASSWD does not commit a new password over a backup registered during its exchange", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const a = kit.connect({ transport: "tls", confidential: true });
  await a.login("alice", PASSWORD);
  const b = await loggedIn(kit, "alice");
  const client = new ScramClient({
    username: "alice",
    password: PASSWORD,
    serverMechanisms: a.hello!.mechanisms,
  });
  const challenge = await a.send({
    op: "PASSWD",
    mechanism: client.mechanism,
    data: client.first,
    verifier: await verifierFor(OTHER),
  });
  assert.equal(challenge.op, "CHALLENGE");
  if (challenge.op !== "CHALLENGE") return;
  const id = testIdentity();
  assert.equal((await b.send({ op: "IDENTITY", ...fields(id) })).op, "IDENTITY");
  const before = await kit.store.findUser("alice");
  const reply = await a.send({ op: "PROOF", data: await client.final(challenge.data) });
  const after = await kit.store.findUser("alice");
  assert.equal(after?.keyBackup, storedBackup(id.backup));
  assert.equal(
    reply.op,
    "ERROR",
    "the backup B stored is sealed under the old password: PASSWD must not commit",
  );
  assert.equal(after?.verifier, before?.verifier);
});
