import assert from "node:assert/strict";
import type { ServerMessage } from "../../lib/codec/messages.ts";
import { makeKit } from "./_session_kit.ts";
import type { Kit, Reply, TestConnection } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";

function code(msg: ServerMessage | undefined): string | undefined {
  return msg?.op === "ERROR" ? msg.code : msg?.op;
}

/** Log alice in from `ip` and drop the connection: one cycle of the loop. */
async function cycle(kit: Kit, ip: string, user = "alice"): Promise<Reply> {
  const conn = kit.connect({ peerAddress: ip });
  const { reply } = await conn.scram("LOGIN", user, PASSWORD);
  conn.session.disconnected("reset");
  return reply;
}

async function watcher(kit: Kit): Promise<TestConnection> {
  const bob = kit.connect({ peerAddress: "198.51.100.2" });
  await bob.login("bob", PASSWORD);
  return bob;
}

Deno.test("Session refuses a login past the account's budget, after the proof: nothing committed, nobody told", async () => {
  await using kit = await makeKit({ loginsPerMinutePerAccount: 3 });
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", PASSWORD);
  const bob = await watcher(kit);
  // Three logins from three addresses: the budget is per account, wherever they come from.
  for (const ip of ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) {
    assert.equal(code(await cycle(kit, ip)), "LOGIN");
  }
  assert.equal(bob.takeNotices().length, 6, "three times online and offline");
  const before = (await kit.store.findUser("alice"))!.lastLoginAt;

  // A fourth address, that never logged in to alice: it gets a challenge as for any name, and the refusal
  // only once it has proved the password.
  const late = kit.connect({ peerAddress: "203.0.113.4" });
  const { challenge, reply } = await late.scram("LOGIN", "alice", PASSWORD);
  assert.equal(challenge.op, "CHALLENGE");
  assert.deepEqual(reply, {
    op: "ERROR",
    id: 3,
    code: "RATE_LIMITED",
    message: "Too many logins to this account: retry in 20 s",
    retry_after_ms: 20_000,
  });
  assert.equal(late.session.user, null);
  assert.deepEqual(bob.takeNotices(), [], "no presence change");
  assert.equal((await kit.store.findUser("alice"))!.lastLoginAt, before, "the login was not recorded");
  assert.equal(kit.ctx.presence.get("alice"), undefined);

  // The looping address, which knows alice exists, is stopped before any exchange.
  const loop = kit.connect({ peerAddress: "203.0.113.1" });
  const early = await loop.scram("LOGIN", "alice", PASSWORD);
  assert.equal(early.clientFinal, undefined, "no challenge, so no proof was sent");
  assert.equal(code(early.reply), "RATE_LIMITED");

  kit.clock.now += 20_000;
  assert.equal(code(await cycle(kit, "203.0.113.4")), "LOGIN", "one login a refill later");
  assert.equal(code(await cycle(kit, "203.0.113.1")), "RATE_LIMITED", "and only one");
});

Deno.test("Session answers LOGIN for an account whose budget is spent as for a name that does not exist", async () => {
  await using kit = await makeKit({ loginsPerMinutePerAccount: 1 });
  await kit.addUser("alice", PASSWORD);
  assert.equal(code(await cycle(kit, "203.0.113.1")), "LOGIN");
  assert.equal(code(await cycle(kit, "203.0.113.1")), "RATE_LIMITED");
  const stranger = kit.connect({ peerAddress: "192.0.2.50" });
  for (const user of ["alice", "nobody"]) {
    const { challenge, reply } = await stranger.scram("LOGIN", user, "a wrong guess 123");
    assert.equal(challenge.op, "CHALLENGE", user);
    assert.equal(code(reply), "AUTH_FAILED", user);
  }
});

Deno.test("Session refuses LOGIN from a source past its budget before any exchange, for any name", async () => {
  await using kit = await makeKit({ loginsPerMinutePerSource: 2 });
  for (const user of ["alice", "bob", "carol"]) await kit.addUser(user, PASSWORD);
  assert.equal(code(await cycle(kit, "203.0.113.9", "alice")), "LOGIN");
  assert.equal(code(await cycle(kit, "203.0.113.9", "bob")), "LOGIN");
  for (const user of ["carol", "nobody"]) {
    const conn = kit.connect({ peerAddress: "203.0.113.9" });
    const { challenge } = await conn.scram("LOGIN", user, PASSWORD);
    assert.deepEqual(challenge, {
      op: "ERROR",
      id: 2,
      code: "RATE_LIMITED",
      message: "Too many logins from your address: retry in 30 s",
      retry_after_ms: 30_000,
    });
  }
  assert.equal(code(await cycle(kit, "198.51.100.9", "carol")), "LOGIN", "other addresses are not held back");
  kit.clock.now += 30_000;
  assert.equal(code(await cycle(kit, "203.0.113.9", "carol")), "LOGIN");
});

Deno.test("Session spends no login budget on wrong passwords: strangers cannot use up the owner's", async () => {
  await using kit = await makeKit({
    loginsPerMinutePerAccount: 1,
    loginsPerMinutePerSource: 1,
    freeFailures: 100,
  });
  await kit.addUser("alice", PASSWORD);
  const mallory = kit.connect({ peerAddress: "203.0.113.66" });
  for (let i = 0; i < 20; i++) {
    assert.equal(code((await mallory.scram("LOGIN", "alice", `guess ${i} abcdefgh`)).reply), "AUTH_FAILED");
  }
  assert.equal(code(await cycle(kit, "198.51.100.1")), "LOGIN", "the owner's one login");
});

Deno.test("Session spares a login with a valid device token the address's budget, which a neighbour can spend", async () => {
  await using kit = await makeKit({ loginsPerMinutePerSource: 2, loginsPerMinutePerAccount: 4 });
  for (const user of ["alice", "m1", "m2", "m3"]) await kit.addUser(user, PASSWORD);
  const NAT = "203.0.113.44";
  const first = kit.connect({ peerAddress: "198.51.100.80" });
  const token = (await first.login("alice", PASSWORD)).reply.device_token!;
  first.session.disconnected("reset");
  const withToken = async (shown = token) => {
    const conn = kit.connect({ peerAddress: NAT });
    const { reply } = await conn.scram("LOGIN", "alice", PASSWORD, { extra: { device_token: shown } });
    conn.session.disconnected("reset");
    return reply;
  };
  // Alice's device, behind a shared address, shows its token: her logins take nothing of the address's.
  assert.equal(code(await withToken()), "LOGIN");
  assert.equal(code(await withToken()), "LOGIN");
  // Someone behind the same address spends all of it, logging in to accounts of their own.
  for (const user of ["m1", "m2"]) assert.equal(code(await cycle(kit, NAT, user)), "LOGIN");
  assert.equal(code(await cycle(kit, NAT, "m3")), "RATE_LIMITED");
  // She still logs in with her token, within her account's budget (4, and now spent).
  assert.equal(code(await withToken()), "LOGIN");
  assert.deepEqual(await withToken(), {
    op: "ERROR",
    id: 2,
    code: "RATE_LIMITED",
    message: "Too many logins to this account: retry in 15 s",
    retry_after_ms: 15_000,
  });
  kit.clock.now += 15_000;
  // Without a valid token she waits like her neighbour.
  assert.equal(code(await cycle(kit, NAT)), "RATE_LIMITED");
  assert.equal(code(await withToken(token.replace(/^A/, "B"))), "RATE_LIMITED");
  assert.equal(code(await withToken()), "LOGIN");
});
