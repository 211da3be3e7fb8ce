import assert from "node:assert/strict";
import { hashCalls } from "../../lib/crypto/sha256.ts";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { makeKit } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";

Deno.test("Session closes a connection that does not log in within the auth timeout", async () => {
  await using kit = await makeKit({ authTimeoutMs: 30_000 });
  const conn = kit.connect();
  await conn.sayHello();
  assert.equal(conn.session.deadline, kit.clock.now + 30_000);
  conn.session.tick(kit.clock.now + 29_999);
  assert.equal(conn.closed, false);
  conn.session.tick(kit.clock.now + 30_000);
  assert.deepEqual(conn.take(), [{
    op: "BYE",
    code: "AUTH_TIMEOUT",
    reason: "Not logged in within 30 s: connection closed",
  }]);
  assert.equal(conn.closed, true);
});

Deno.test("Session activity does not extend the auth timeout but does extend the idle timeout", async () => {
  await using kit = await makeKit({ authTimeoutMs: 30_000, idleTimeoutMs: 60_000 });
  await kit.addUser("alice", PASSWORD);
  const lurker = kit.connect();
  await lurker.sayHello();
  const start = kit.clock.now;
  kit.clock.now += 20_000;
  await lurker.send({ op: "IS_LOGGED" });
  assert.equal(lurker.session.deadline, start + 30_000);
  const user = kit.connect();
  await user.login("alice", PASSWORD);
  assert.equal(user.session.deadline, kit.clock.now + 60_000);
  kit.clock.now += 50_000;
  await user.send({ op: "IS_LOGGED" });
  user.session.tick(kit.clock.now + 59_999);
  assert.equal(user.closed, false);
  user.session.tick(kit.clock.now + 60_000);
  assert.equal(user.take().at(-1)?.op, "BYE");
  assert.equal(user.closed, true);
});

Deno.test("Session restarts the auth timeout after LOGOUT", async () => {
  await using kit = await makeKit({ authTimeoutMs: 30_000, idleTimeoutMs: 600_000 });
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect();
  await conn.login("alice", PASSWORD);
  kit.clock.now += 100_000;
  await conn.send({ op: "LOGOUT" });
  assert.equal(conn.session.deadline, kit.clock.now + 30_000);
});

Deno.test("SessionRegistry sheds the oldest connection not logged in at the per-source cap, never refusing", async () => {
  await using kit = await makeKit({ maxUnauthenticatedPerIp: 2 });
  await kit.addUser("alice", PASSWORD);
  const { registry } = kit.ctx;
  const from = (address = "192.0.2.1") => {
    assert.equal(registry.admit(address), null, "a newcomer is never refused for connections not logged in");
    return kit.connect({ peerAddress: address });
  };
  const first = from();
  const second = from();
  await first.login("alice", PASSWORD);
  assert.equal(registry.unauthenticatedFrom("192.0.2.1"), 1, "a logged-in session frees its slot");
  const third = from();
  assert.equal(second.closed, false, "below the cap nothing is shed");
  from("192.0.2.2");
  assert.equal(second.closed || third.closed, false, "another address is not affected");
  const fourth = from();
  assert.equal(second.closed, true, "at the cap the oldest not logged in is shed");
  assert.deepEqual(second.take().at(-1), {
    op: "BYE",
    code: "TOO_MANY_CONNECTIONS",
    reason:
      "Too many connections from your address that are not logged in: this one, the oldest, made room " +
      "for a new one (at most 2, or 1000 in all)",
  });
  assert.equal(
    first.closed || third.closed || fourth.closed,
    false,
    "never a logged-in one, nor a newer one",
  );
  // A session that logs out counts as the newest connection not logged in.
  await first.send({ op: "LOGOUT" });
  from();
  assert.deepEqual([third.closed, fourth.closed, first.closed], [true, true, false]);
  for (const shed of [second, third, fourth]) shed.session.disconnected("test");
  assert.equal(registry.unauthenticatedFrom("192.0.2.1"), 2, "a shed session is not counted again");
  assert.equal(registry.size, 3);
});

Deno.test("Session reports a store failure as INTERNAL and keeps serving", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect();
  await conn.sayHello();
  const findCredentials = kit.store.findCredentials.bind(kit.store);
  kit.store.findCredentials = () => Promise.reject(new Error("disk on fire"));
  const failed = await conn.scram("LOGIN", "alice", PASSWORD);
  assert.equal((failed.reply as { code: string }).code, "INTERNAL");
  assert.ok(!JSON.stringify(failed.reply).includes("disk on fire"), "internal details stay in the log");
  assert.ok(kit.logs.some((l) => l.includes("internal_error") && l.includes("disk on fire")));
  kit.store.findCredentials = findCredentials;
  await conn.login("alice", PASSWORD);
});

Deno.test("Session answers a framing failure with a fatal error and closes", async () => {
  await using kit = await makeKit();
  const conn = kit.connect();
  conn.session.fail(
    new ProtocolError("FRAME_TOO_LARGE", "Frame too large: 70000 bytes exceeds 65536", { fatal: true }),
  );
  assert.deepEqual(conn.take(), [{
    op: "ERROR",
    code: "FRAME_TOO_LARGE",
    message: "Frame too large: 70000 bytes exceeds 65536",
    fatal: true,
  }]);
  assert.equal(conn.closed, true);
});

Deno.test("Session answers malformed payloads with their codes and the request id when it can read one", async () => {
  await using kit = await makeKit();
  const conn = kit.connect();
  await conn.sayHello();
  const cases: [Uint8Array | string, string][] = [
    [new Uint8Array([0xff, 0xfe]), "BAD_ENCODING"],
    ["{not json", "BAD_JSON"],
    ["[1,2]", "BAD_JSON"],
    [new Uint8Array(0), "BAD_FRAME"],
    ['{"op":"DANCE","id":4}', "UNKNOWN_COMMAND"],
    ['{"op":"HELLO","id":5,"version":"1"}', "BAD_MESSAGE"],
    ['{"op":"IS_LOGGED","id":6,"extra":true}', "BAD_MESSAGE"],
    ['{"op":"IS_LOGGED","id":1.5}', "BAD_MESSAGE"],
  ];
  for (const [payload, expected] of cases) {
    const [reply] = await conn.raw(payload);
    assert.equal(reply?.op, "ERROR");
    assert.equal((reply as { code: string }).code, expected, String(payload));
  }
  const [withId] = await conn.raw('{"op":"DANCE","id":4}');
  assert.equal((withId as { id?: number }).id, 4);
  assert.equal(conn.closed, false);
  assert.equal((await conn.send({ op: "IS_LOGGED" })).op, "IS_LOGGED");
});

/** Count hash and HMAC computations (hash-wasm and WebCrypto) made while `work` runs. */
async function counted(work: () => Promise<unknown>): Promise<number> {
  const { digest, sign } = crypto.subtle;
  const before = hashCalls();
  let calls = 0;
  crypto.subtle.digest =
    ((...args: Parameters<typeof digest>) => (calls++, digest.apply(crypto.subtle, args))) as typeof digest;
  crypto.subtle.sign =
    ((...args: Parameters<typeof sign>) => (calls++, sign.apply(crypto.subtle, args))) as typeof sign;
  try {
    await work();
    return calls + hashCalls() - before;
  } finally {
    crypto.subtle.digest = digest;
    crypto.subtle.sign = sign;
  }
}

Deno.test("Session spends the same work on unknown users as on wrong passwords", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const serverSteps = async (user: string) => {
    const conn = kit.connect();
    await conn.sayHello();
    const client = new ScramClient({
      username: user,
      password: "some wrong words",
      serverMechanisms: ["SCRAM-SHA-256"],
    });
    let challenge: { data: string } | undefined;
    const first = await counted(async () => {
      challenge = await conn.send({ op: "LOGIN", mechanism: "SCRAM-SHA-256", data: client.first }) as {
        data: string;
      };
    });
    // The client's own key derivation runs outside the counted steps.
    const final = await client.final(challenge!.data);
    const second = await counted(() => conn.send({ op: "PROOF", data: final }));
    return [first, second];
  };
  const known = await serverSteps("alice");
  const unknown = await serverSteps("nobody-here");
  assert.deepEqual(unknown, known);
  assert.ok(known[1]! >= 2, "the proof is really checked");
});
