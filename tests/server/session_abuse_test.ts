import assert from "node:assert/strict";
import type { ServerMessage } from "../../lib/codec/messages.ts";
import { Logger } from "../../lib/server/logger.ts";
import { makeKit, verifierFor } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";

function code(msg: ServerMessage | undefined): string | undefined {
  return msg?.op === "ERROR" ? msg.code : msg?.op;
}

Deno.test("Session keeps counting guesses at a victim between logins to the attacker's own account", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("victim", PASSWORD);
  await kit.addUser("mallory", "blue lantern orchard 5");
  const conn = kit.connect({ peerAddress: "203.0.113.66" });
  const outcomes: (string | undefined)[] = [];
  for (let i = 0; i < 8; i++) {
    outcomes.push(code((await conn.scram("LOGIN", "victim", `guess number ${i}zz`)).reply));
    // Once the source is in backoff this login is refused too; before that it succeeds.
    await conn.scram("LOGIN", "mallory", "blue lantern orchard 5");
  }
  assert.deepEqual(outcomes.slice(0, 3), ["AUTH_FAILED", "AUTH_FAILED", "AUTH_FAILED"]);
  assert.ok(outcomes.slice(3).every((o) => o === "RATE_LIMITED"), outcomes.join(","));
});

Deno.test("Session counts proofs of exchanges opened in parallel, before checking them", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("victim", PASSWORD);
  const pending = [];
  for (let i = 0; i < 10; i++) {
    const conn = kit.connect({ peerAddress: "203.0.113.5" });
    pending.push({ conn, final: await conn.heldProof("LOGIN", "victim", `guess ${i} aaaa`) });
  }
  // All proofs arrive together: none is awaited before the next is sent.
  const replies = await Promise.all(
    pending.map(({ conn, final }) => conn.send({ op: "PROOF", data: final })),
  );
  const codes = replies.map(code);
  assert.equal(codes.filter((c) => c === "AUTH_FAILED").length, 3, codes.join(","));
  assert.equal(codes.filter((c) => c === "RATE_LIMITED").length, 7);
});

Deno.test("Session refuses a proof of the old password once the password changed during the exchange", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const attacker = kit.connect({ peerAddress: "203.0.113.9" });
  const final = await attacker.heldProof("LOGIN", "alice", PASSWORD);
  const owner = kit.connect({ transport: "tls", confidential: true });
  await owner.login("alice", PASSWORD);
  const changed = await owner.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor("brand new words 77") },
  });
  assert.equal(changed.reply.op, "PASSWD");
  const late = await attacker.send({ op: "PROOF", data: final });
  assert.equal(code(late), "AUTH_FAILED");
  assert.match(
    (late as { message: string }).message,
    /password changed or the account was deleted meanwhile/,
  );
  assert.equal(attacker.session.user, null);
});

Deno.test("Session refuses a DELETE proof whose account changed password meanwhile, and ends nothing", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const first = kit.connect({ transport: "tls", confidential: true });
  const second = kit.connect({ transport: "tls", confidential: true });
  await first.login("alice", PASSWORD);
  await second.login("alice", PASSWORD);
  const final = await second.heldProof("DELETE", "alice", PASSWORD);
  const changed = await first.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor("brand new words 77") },
  });
  assert.equal(changed.reply.op, "PASSWD");
  assert.equal(second.closed, true, "the other session was ended by the password change");
  assert.deepEqual(await second.raw(JSON.stringify({ op: "PROOF", data: final })), [
    { op: "BYE", code: "PASSWORD_CHANGED", reason: "Password changed: log in again" },
  ], "an ended session answers nothing more");
  assert.ok(await kit.store.findUser("alice"), "the account was not deleted");
});

Deno.test("Session gives each source a budget of registrations", async () => {
  await using kit = await makeKit({ registrationsPerMinute: 2 });
  const conn = kit.connect({ transport: "tls", confidential: true });
  await conn.sayHello();
  const verifier = await verifierFor(PASSWORD);
  assert.equal((await conn.send({ op: "REGISTER", user: "one", verifier })).op, "REGISTER");
  assert.equal((await conn.send({ op: "REGISTER", user: "two", verifier })).op, "REGISTER");
  const third = await conn.send({ op: "REGISTER", user: "three", verifier }) as Record<
    string,
    unknown
  >;
  assert.equal(third.code, "RATE_LIMITED");
  assert.equal(third.retry_after_ms, 30_000);
  const elsewhere = kit.connect({ transport: "tls", confidential: true, peerAddress: "10.0.0.2" });
  await elsewhere.sayHello();
  assert.equal((await elsewhere.send({ op: "REGISTER", user: "three", verifier })).op, "REGISTER");
  kit.clock.now += 30_000;
  assert.equal((await conn.send({ op: "REGISTER", user: "four", verifier })).op, "REGISTER");
});

Deno.test("SessionRegistry caps all connections per source, logged in or not", async () => {
  await using kit = await makeKit({ maxConnectionsPerIp: 2 });
  await kit.addUser("alice", PASSWORD);
  const a = kit.connect({ peerAddress: "192.0.2.7" });
  const b = kit.connect({ peerAddress: "192.0.2.7" });
  await a.login("alice", PASSWORD);
  await b.login("alice", PASSWORD);
  // Every connection of the address is logged in: nothing may be shed, so the newcomer is refused.
  assert.match(
    kit.ctx.registry.admit("192.0.2.7")!.message,
    /Too many connections from your address: 2 are open/,
  );
  assert.equal(a.closed || b.closed, false);
  b.session.disconnected("test");
  assert.equal(kit.ctx.registry.admit("192.0.2.7"), null);
});

Deno.test("Session logs an unknown command under a fixed event name, so a client cannot forge log lines", async () => {
  await using kit = await makeKit();
  const lines: string[] = [];
  kit.ctx.log = new Logger({ format: "text", write: (l) => lines.push(l), now: () => 0 });
  const conn = kit.connect();
  await conn.raw('{"op":"x\\nFAKE login_ok user=admin","id":1}');
  assert.deepEqual(lines.map((l) => l.split(" ")[2]), ["connect", "request_failed"]);
  assert.ok(lines.every((l) => !l.includes("\n")));
  assert.match(lines[1]!, / INFO request_failed .*code=UNKNOWN_COMMAND/);
});

Deno.test("Session issues a fresh seal nonce on every HELLO and a secret sealed to the old one fails", async () => {
  await using kit = await makeKit();
  const conn = kit.connect();
  const verifier = await verifierFor(PASSWORD);
  const sealed = await conn.sealed("REGISTER", "alice", verifier);
  const before = conn.hello!.seal_nonce;
  const again = await conn.sayHello();
  assert.notEqual(again.seal_nonce, before);
  assert.equal(code(await conn.send({ op: "REGISTER", user: "alice", sealed })), "SEAL_INVALID");
  // The failed attempt used up that nonce too: the same verifier sealed to the next one opens.
  await conn.sayHello();
  const fresh = await conn.sealed("REGISTER", "alice", verifier);
  assert.equal(code(await conn.send({ op: "REGISTER", user: "alice", sealed: fresh })), "REGISTER");
});

Deno.test("Session checks exactly failures_before_backoff wrong proofs, and the next attempt waits", async () => {
  await using kit = await makeKit({ freeFailures: 5 });
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect({ peerAddress: "203.0.113.40" });
  const outcomes: (string | undefined)[] = [];
  for (let i = 0; i < 7; i++) {
    outcomes.push(code((await conn.scram("LOGIN", "alice", `wrong guess ${i}xx`)).reply));
  }
  assert.deepEqual(outcomes, [
    "AUTH_FAILED",
    "AUTH_FAILED",
    "AUTH_FAILED",
    "AUTH_FAILED",
    "AUTH_FAILED",
    "RATE_LIMITED",
    "RATE_LIMITED",
  ]);
  // Even the right password waits: the 6th attempt is held back before any exchange.
  const sixth = (await conn.scram("LOGIN", "alice", PASSWORD)).reply as Record<string, unknown>;
  assert.equal(sixth.code, "RATE_LIMITED");
  assert.equal(sixth.retry_after_ms, 1000);
});
