import assert from "node:assert/strict";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { parseVerifier } from "../../lib/crypto/scram_verifier.ts";
import { hashCalls } from "../../lib/crypto/sha256.ts";
import { errorCode as code, makeKit, verifierFor } from "./_session_kit.ts";
import type { Kit, TestConnection } from "./_session_kit.ts";

const PASSWORD = "violet harbor engine 42";
const OWNER_IP = "198.51.100.7";

/** Log in and return the device token of the reply. */
async function tokenOf(conn: TestConnection, user = "alice", password = PASSWORD): Promise<string> {
  const { reply } = await conn.login(user, password);
  assert.match(reply.device_token ?? "", /^[A-Za-z0-9+/]{98}==$/);
  return reply.device_token!;
}

/** A LOGIN with a device token (or none), and its outcome: the reply to PROOF, or the refusal of LOGIN. */
async function loginWith(
  conn: TestConnection,
  token: string | undefined,
  password = PASSWORD,
  user = "alice",
) {
  return await conn.scram(
    "LOGIN",
    user,
    password,
    token === undefined ? {} : { extra: { device_token: token } },
  );
}

/**
 * Strangers guess at alice from many addresses, and from the owner's own (one NAT): each address guesses
 * at alice, then at other names, until it is in backoff itself.
 */
async function guessingRun(kit: Kit, sources: string[]): Promise<void> {
  for (const ip of sources) {
    const attacker = kit.connect({ peerAddress: ip });
    for (let i = 0; i < 10; i++) {
      const { reply } = await loginWith(
        attacker,
        undefined,
        `guess ${ip} ${i} xyz`,
        // Names of its own after alice: a shared name's counter would stop it before its own does.
        i === 0 ? "alice" : `ghost${i}-${ip}`,
      );
      if (code(reply) === "RATE_LIMITED") break;
      assert.equal(code(reply), "AUTH_FAILED");
    }
    assert.ok(kit.limiter.retryAfter(ip, "anyone", kit.clock.now) > 0, `${ip} is in backoff`);
  }
  assert.ok(kit.limiter.retryAfter("192.0.2.99", "alice", kit.clock.now) === 0, "a clean source is not");
}

const STRANGERS = ["203.0.113.1", "203.0.113.2", "203.0.113.3", OWNER_IP];

Deno.test("Session lets the owner with a device token log in at once through a strangers' failure storm", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", "bravo sierra tango 99");
  const token = await tokenOf(kit.connect({ peerAddress: OWNER_IP }));
  await guessingRun(kit, STRANGERS);
  const owner = kit.connect({ peerAddress: OWNER_IP });
  // Without the token her address is in backoff, for every account.
  assert.equal(code((await loginWith(owner, undefined)).reply), "RATE_LIMITED");
  assert.equal(
    code((await loginWith(owner, undefined, "bravo sierra tango 99", "bob")).reply),
    "RATE_LIMITED",
  );
  // With it she goes ahead at once, and gets a fresh token.
  const { reply } = await loginWith(owner, token);
  assert.equal(reply.op, "LOGIN", JSON.stringify(reply));
  assert.notEqual((reply as { device_token: string }).device_token, token);
  assert.equal(owner.session.user, "alice");
  assert.ok(kit.logs.some((l) => l.includes('"event":"login_ok"') && l.includes('"device_token":true')));
});

Deno.test("Session backs off the owner's own wrong proofs with a token separately, and counts them nowhere else", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", "bravo sierra tango 99");
  const token = await tokenOf(kit.connect({ peerAddress: OWNER_IP }));
  await guessingRun(kit, STRANGERS.slice(0, 3));
  const owner = kit.connect({ peerAddress: OWNER_IP });
  for (let i = 0; i < 3; i++) {
    assert.equal(code((await loginWith(owner, token, `typo ${i} abcdef`)).reply), "AUTH_FAILED");
  }
  // freeFailures: 3 of her own typos are checked against the token, and only against it: her address is a
  // clean source, even for alice.
  assert.equal(kit.limiter.size.tokens, 1);
  assert.equal(kit.limiter.retryAfter(OWNER_IP, "alice", kit.clock.now), 0);
  assert.equal((await loginWith(owner, undefined, "bravo sierra tango 99", "bob")).reply.op, "LOGIN");
  // The token is in its own backoff now: set aside, her next attempt counts as one without a token.
  kit.logs.length = 0;
  assert.equal(code((await loginWith(owner, token, "typo 3 abcdef")).reply), "AUTH_FAILED");
  assert.ok(kit.logs.some((l) => l.includes('"event":"device_token_in_backoff"')), kit.logs.join("\n"));
  kit.clock.now += 1000;
  assert.equal((await loginWith(owner, token)).reply.op, "LOGIN");
  assert.equal(kit.limiter.size.tokens, 0, "a correct proof with it forgives the token's failures");
});

Deno.test("Session ignores a device token of another account, a tampered, expired or foreign one", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  const alice = await kit.addUser("alice", PASSWORD);
  await kit.addUser("bob", "bravo sierra tango 99");
  const bobToken = await tokenOf(kit.connect(), "bob", "bravo sierra tango 99");
  const aliceToken = await tokenOf(kit.connect());
  await guessingRun(kit, [OWNER_IP]);
  const tampered = `${aliceToken.slice(0, 40)}${aliceToken[40] === "A" ? "B" : "A"}${aliceToken.slice(41)}`;
  const { storedKey } = parseVerifier(alice.verifier);
  const expired = await kit.ctx.deviceTokens.issue(
    { accountId: alice.id, nameKey: "alice", storedKey },
    kit.clock.now - 2000,
    1000,
  );
  const owner = kit.connect({ peerAddress: OWNER_IP });
  for (
    const [token, reason] of [
      [bobToken, "invalid"],
      [tampered, "invalid"],
      [expired.token, "expired"],
      ["AAAA", "malformed"],
    ]
  ) {
    kit.logs.length = 0;
    assert.equal(code((await loginWith(owner, token)).reply), "RATE_LIMITED", reason);
    assert.ok(
      kit.logs.some((l) =>
        l.includes('"event":"device_token_ignored"') && l.includes(`"reason":"${reason}"`)
      ),
      kit.logs.join("\n"),
    );
  }
  assert.equal(owner.session.showedDeviceToken, false);
  // Not base64 at all is no token but a malformed request.
  assert.equal(code((await loginWith(owner, "not a token!")).reply), "BAD_MESSAGE");
});

Deno.test("Session kills the device tokens of the old password at PASSWD and gives the device a new one", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect({ transport: "tls", confidential: true, peerAddress: OWNER_IP });
  const old = await tokenOf(conn);
  const next = "brand new words 77";
  const { reply } = await conn.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor(next) },
  });
  assert.equal(reply.op, "PASSWD");
  const fresh = (reply as { device_token?: string }).device_token;
  assert.match(fresh ?? "", /^[A-Za-z0-9+/]{98}==$/);
  await guessingRun(kit, [OWNER_IP]);
  const owner = kit.connect({ peerAddress: OWNER_IP });
  assert.equal(
    code((await loginWith(owner, old, next)).reply),
    "RATE_LIMITED",
    "the old password's token is dead",
  );
  assert.equal((await loginWith(owner, fresh, next)).reply.op, "LOGIN");
});

Deno.test("Session counts the PASSWD of a session that holds a device token against the token", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect({ transport: "tls", confidential: true, peerAddress: OWNER_IP });
  await tokenOf(conn);
  // The session logged in; then strangers behind the same address put it in backoff.
  await guessingRun(kit, [OWNER_IP]);
  const { reply } = await conn.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor("brand new words 77") },
  });
  assert.equal(reply.op, "PASSWD", JSON.stringify(reply));
});

Deno.test("Session checks a device token with the same work for a name with an account and one without", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const token = await tokenOf(kit.connect());
  const findCredentials = kit.store.findCredentials.bind(kit.store);
  const findUser = kit.store.findUser.bind(kit.store);
  const lookups: string[] = [];
  kit.store.findCredentials = (key, decoy) => {
    lookups.push(key);
    return findCredentials(key, decoy);
  };
  kit.store.findUser = (key) => {
    lookups.push(key);
    return findUser(key);
  };
  const work = async (user: string) => {
    const conn = kit.connect();
    await conn.sayHello();
    lookups.length = 0;
    const before = hashCalls();
    const { challenge } = await conn.scram("LOGIN", user, "guess guess guess", {
      extra: { device_token: token },
    });
    assert.equal(challenge.op, "CHALLENGE");
    return { hashes: hashCalls() - before, lookups: lookups.length };
  };
  const known = await work("alice");
  const unknown = await work("alicf");
  assert.deepEqual(unknown, known);
  assert.equal(known.lookups, 1);
});

Deno.test("SessionRegistry sheds connections that showed a device token only after those that did not", async () => {
  await using kit = await makeKit({ maxUnauthenticatedPerIp: 3 });
  await kit.addUser("alice", PASSWORD);
  const token = await tokenOf(kit.connect({ peerAddress: "10.1.1.1" }));
  const oldest = kit.connect({ peerAddress: OWNER_IP });
  const owner = kit.connect({ peerAddress: OWNER_IP });
  await owner.sayHello();
  // Her LOGIN shows the token; the challenge waits for her proof.
  const client = new ScramClient({
    username: "alice",
    password: PASSWORD,
    serverMechanisms: ["SCRAM-SHA-256"],
  });
  const challenge = await owner.send({
    op: "LOGIN",
    mechanism: client.mechanism,
    data: client.first,
    device_token: token,
  });
  assert.equal(challenge.op, "CHALLENGE");
  assert.equal(owner.session.showedDeviceToken, true);
  const newer = kit.connect({ peerAddress: OWNER_IP });
  assert.equal(newer.session.showedDeviceToken, false);
  const admitted: TestConnection[] = [];
  const admit = () => {
    assert.equal(kit.ctx.registry.admit(OWNER_IP), null);
    admitted.push(kit.connect({ peerAddress: OWNER_IP }));
  };
  admit();
  assert.deepEqual(
    [oldest.closed, owner.closed, newer.closed],
    [true, false, false],
    "oldest without a token",
  );
  admit();
  assert.deepEqual([owner.closed, newer.closed], [false, true], "then a newer one without a token");
  admit();
  assert.equal(admitted[0]!.closed, true, "and the newcomers in turn, while any has no token");
  assert.equal(owner.closed, false);
  // She proves her password meanwhile: a logged-in session is never shed.
  const done = await owner.send({
    op: "PROOF",
    data: await client.final((challenge as { data: string }).data),
  });
  assert.equal(done.op, "LOGIN");
  for (let i = 0; i < 5; i++) admit();
  assert.equal(owner.closed, false);
});

Deno.test("SessionRegistry sheds a connection that showed a device token when every other one did too", async () => {
  await using kit = await makeKit({ maxUnauthenticatedPerIp: 1 });
  await kit.addUser("alice", PASSWORD);
  const token = await tokenOf(kit.connect({ peerAddress: "10.1.1.1" }));
  const first = kit.connect({ peerAddress: OWNER_IP });
  assert.equal(code((await loginWith(first, token, "wrong wrong wrong")).reply), "AUTH_FAILED");
  assert.equal(first.session.showedDeviceToken, true);
  assert.equal(kit.ctx.registry.admit(OWNER_IP), null);
  assert.equal(first.closed, true);
});

Deno.test("Session holds the token of its login until its account is deleted", async () => {
  await using kit = await makeKit();
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect();
  assert.equal(conn.session.showedDeviceToken, false);
  await tokenOf(conn);
  assert.equal(conn.session.showedDeviceToken, true, "a login gives the session a token");
  assert.equal((await conn.scram("DELETE", "alice", PASSWORD)).reply.op, "DELETE");
  assert.equal(conn.session.showedDeviceToken, false, "it died with the account");
});

Deno.test("Session counts failed PASSWD proofs against the token its device holds now, the one PASSWD gave", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("alice", PASSWORD);
  const conn = kit.connect({ transport: "tls", confidential: true, peerAddress: OWNER_IP });
  await tokenOf(conn);
  const next = "brand new words 77";
  const { reply } = await conn.scram("PASSWD", "alice", PASSWORD, {
    extra: { verifier: await verifierFor(next) },
  });
  const fresh = (reply as { device_token: string }).device_token;
  const outcomes: (string | undefined)[] = [];
  for (let i = 0; i < 5; i++) {
    const wrong = await conn.scram("PASSWD", "alice", `wrong ${i} abcdef`, {
      extra: { verifier: await verifierFor("another new one 88") },
    });
    outcomes.push(code(wrong.reply));
  }
  // Three against the token, the source clean meanwhile; then, the token in its backoff set aside,
  // against the source (3 free there too).
  assert.deepEqual(outcomes, Array(5).fill("AUTH_FAILED"));
  assert.equal(kit.limiter.size.tokens, 1, "the device's token carries the first three");
  assert.equal(kit.limiter.retryAfter(OWNER_IP, "alice", kit.clock.now), 0, "two failures, 3 free");
  const again = kit.connect({ peerAddress: OWNER_IP });
  kit.logs.length = 0;
  assert.equal((await loginWith(again, fresh, next)).reply.op, "LOGIN");
  assert.ok(kit.logs.some((l) => l.includes('"event":"device_token_in_backoff"')), "set aside");
});

Deno.test("SessionRegistry puts one connection per account ahead for its token, however many show it", async () => {
  // The attacker's own account: one token shown on every connection of a reconnecting flood must not
  // keep them all ahead of a client without a token (a new user, a new device) alone on its address.
  await using kit = await makeKit({ maxConnections: 5 });
  await kit.addUser("mallory", PASSWORD);
  const token = await tokenOf(kit.connect({ peerAddress: "10.9.9.9" }), "mallory");
  const flood: TestConnection[] = [];
  const showToken = async (conn: TestConnection) => {
    await conn.sayHello();
    const client = new ScramClient({
      username: "mallory",
      password: PASSWORD,
      serverMechanisms: ["SCRAM-SHA-256"],
    });
    const challenge = await conn.send({
      op: "LOGIN",
      mechanism: client.mechanism,
      data: client.first,
      device_token: token,
    });
    assert.equal(challenge.op, "CHALLENGE");
  };
  for (let i = 0; i < 3; i++) {
    const conn = kit.connect({ peerAddress: "203.0.113.66" });
    await showToken(conn);
    flood.push(conn);
  }
  const newcomer = kit.connect({ peerAddress: "192.0.2.10" });
  // The flood reconnects what it loses, each new connection showing the token at once.
  for (let i = 0; i < 6; i++) {
    assert.equal(kit.ctx.registry.admit("203.0.113.66"), null);
    const conn = kit.connect({ peerAddress: "203.0.113.66" });
    await showToken(conn);
    flood.push(conn);
    assert.equal(newcomer.closed, false, `the client without a token stays (round ${i})`);
  }
  assert.ok(flood.filter((c) => c.closed).length >= 6, "the flood sheds its own");
});

Deno.test("Session sets a device token in its own backoff aside: failing with a stolen one cannot lock the owner out", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  await kit.addUser("alice", PASSWORD);
  const token = await tokenOf(kit.connect({ peerAddress: OWNER_IP }));
  // Someone who copied her token guesses with it from elsewhere, until the token is in backoff, and keeps
  // it there with one more guess whenever the backoff ends.
  const thief = kit.connect({ peerAddress: "203.0.113.9" });
  for (let i = 0; i < 3; i++) {
    assert.equal(code((await loginWith(thief, token, `guess ${i} abcdef`)).reply), "AUTH_FAILED");
  }
  const held = (await loginWith(thief, token, "guess 3 abcdef")).reply;
  assert.equal(code(held), "AUTH_FAILED", "set aside, the guess is counted as one without a token");
  assert.ok(
    kit.limiter.retryAfter("203.0.113.9", "alice", kit.clock.now) === 0,
    "its first such failure",
  );
  // Her device shows the same token: she logs in at once, as without a token from her clean address.
  const owner = kit.connect({ peerAddress: OWNER_IP });
  const { reply } = await loginWith(owner, token);
  assert.equal(reply.op, "LOGIN", JSON.stringify(reply));
  assert.ok(
    kit.logs.some((l) => l.includes('"event":"device_token_in_backoff"')),
    "the log says the token was set aside",
  );
});

Deno.test("Session ignores the device token of a deleted account once its name is registered again, with the same id", async () => {
  await using kit = await makeKit({ freeFailures: 3 });
  const before = await kit.addUser("alice", PASSWORD);
  const conn = kit.connect({ peerAddress: OWNER_IP });
  const token = await tokenOf(conn);
  assert.equal((await conn.scram("DELETE", "alice", PASSWORD)).reply.op, "DELETE");
  // The same name and password again: SQLite gives the new row the id the deleted one had.
  const after = await kit.addUser("alice", PASSWORD);
  assert.equal(after.id, before.id);
  await guessingRun(kit, [OWNER_IP]);
  kit.logs.length = 0;
  const owner = kit.connect({ peerAddress: OWNER_IP });
  assert.equal(
    code((await loginWith(owner, token)).reply),
    "RATE_LIMITED",
    "the old token is not the new account's",
  );
  assert.ok(
    kit.logs.some((l) => l.includes('"event":"device_token_ignored"') && l.includes('"reason":"invalid"')),
  );
});
