import assert from "node:assert/strict";
import { DEFAULT_RATE_LIMITS, RateLimiter, sourceKey } from "../../lib/auth/rate_limiter.ts";
import type { RateLimiterOptions } from "../../lib/auth/rate_limiter.ts";

const OPTIONS: RateLimiterOptions = {
  freeFailures: 3,
  baseMs: 1000,
  maxMs: 8000,
  forgetAfterMs: 60_000,
  maxEntries: 100,
};

function fail(limiter: RateLimiter, times: number, address: string, account: string, now: number): void {
  for (let i = 0; i < times; i++) limiter.recordFailure(address, account, now);
}

Deno.test("RateLimiter lets exactly freeFailures failed proofs through, and the next attempt waits", () => {
  const limiter = new RateLimiter(OPTIONS);
  const checked: number[] = [];
  // Attempts go on as long as the limiter allows them; each one fails.
  for (let attempt = 1; attempt <= 10; attempt++) {
    if (limiter.retryAfter("10.0.0.1", "alice", 0) > 0) break;
    checked.push(attempt);
    limiter.recordFailure("10.0.0.1", "alice", 0);
  }
  assert.deepEqual(checked, [1, 2, 3], "freeFailures is 3: three proofs are checked, not four");
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 1000, "the fourth waits backoff_base");
});

Deno.test("RateLimiter treats freeFailures 0 as 1: the first attempt is never held back", () => {
  for (const freeFailures of [0, 1]) {
    const limiter = new RateLimiter({ ...OPTIONS, freeFailures });
    assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 0);
    limiter.recordFailure("10.0.0.1", "alice", 0);
    assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 1000, `freeFailures ${freeFailures}`);
  }
});

Deno.test("RateLimiter doubles the backoff with each further failure up to the cap", () => {
  const limiter = new RateLimiter(OPTIONS);
  fail(limiter, 2, "10.0.0.1", "alice", 0);
  const seen: number[] = [];
  for (let i = 0; i < 6; i++) {
    limiter.recordFailure("10.0.0.1", "alice", 0);
    seen.push(limiter.retryAfter("10.0.0.1", "alice", 0));
  }
  assert.deepEqual(seen, [1000, 2000, 4000, 8000, 8000, 8000]);
  fail(limiter, 200, "10.0.0.1", "alice", 0);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 8000, "no overflow after many failures");
});

Deno.test("RateLimiter allows again once the backoff has passed", () => {
  const limiter = new RateLimiter(OPTIONS);
  fail(limiter, 4, "10.0.0.1", "alice", 10_000); // one past the free three: 2000 ms
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 10_000), 2000);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 11_500), 500);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 11_999), 1);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 12_000), 0);
  limiter.recordFailure("10.0.0.1", "alice", 12_000);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 12_000), 4000, "the count is kept");
});

Deno.test("RateLimiter.recordSuccess forgives the pair's failures in the source and account counters", () => {
  const limiter = new RateLimiter(OPTIONS);
  fail(limiter, 6, "10.0.0.1", "alice", 0);
  assert.ok(limiter.retryAfter("10.0.0.1", "alice", 0) > 0);
  limiter.recordSuccess("10.0.0.1", "alice");
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 0);
  assert.deepEqual(limiter.size, { sources: 0, accounts: 0, pairs: 0, tokens: 0, checking: 0 });
  limiter.recordFailure("10.0.0.1", "alice", 0);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 0, "counting starts again from zero");
});

Deno.test("RateLimiter forgets a counter after forgetAfterMs without failures", () => {
  const limiter = new RateLimiter(OPTIONS);
  fail(limiter, 10, "10.0.0.1", "alice", 0);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 60_000), 0, "backoff over, counter still kept");
  limiter.recordFailure("10.0.0.1", "alice", 60_001);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 60_001), 0, "forgotten: one failure is free");
  fail(limiter, 10, "10.0.0.2", "bob", 0);
  assert.equal(limiter.retryAfter("10.0.0.2", "bob", 60_001), 0);
  assert.equal(limiter.size.sources, 1, "the expired counter was dropped on read");
});

Deno.test("RateLimiter never holds back a source with no failures because of the account counter", () => {
  const limiter = new RateLimiter(OPTIONS);
  fail(limiter, 20, "203.0.113.9", "alice", 0); // an attacker guessing alice's password
  assert.ok(limiter.retryAfter("203.0.113.9", "alice", 0) > 0);
  assert.equal(
    limiter.retryAfter("198.51.100.7", "alice", 0),
    0,
    "the real owner elsewhere is not locked out",
  );
});

Deno.test("RateLimiter holds back a failing source on a hot account even below its own free failures", () => {
  const limiter = new RateLimiter(OPTIONS);
  fail(limiter, 20, "203.0.113.9", "alice", 0);
  limiter.recordFailure("198.51.100.7", "bob", 0); // one failure of its own: under the free count
  assert.equal(limiter.retryAfter("198.51.100.7", "bob", 0), 0);
  assert.equal(limiter.retryAfter("198.51.100.7", "alice", 0), 8000);
});

Deno.test("sourceKey keeps IPv4 and groups IPv6 by /64", () => {
  assert.equal(sourceKey("192.0.2.1"), "192.0.2.1");
  assert.equal(sourceKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(sourceKey("2001:db8:1:2::9"), "2001:db8:1:2::/64");
  assert.equal(sourceKey("2001:0DB8:0001:0002:0000:0000:0000:0001"), "2001:db8:1:2::/64");
  assert.equal(sourceKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(sourceKey("2001:db8::"), "2001:db8:0:0::/64");
  assert.equal(sourceKey("::1"), "0:0:0:0::/64");
  assert.equal(sourceKey("::"), "0:0:0:0::/64");
  assert.equal(sourceKey("fe80::1"), "fe80:0:0:0::/64");
  assert.equal(sourceKey("2001:db8:1:2:3::"), "2001:db8:1:2::/64");
  assert.notEqual(sourceKey("2001:db8:1:2::1"), sourceKey("2001:db8:1:3::1"));
});

Deno.test("sourceKey reads IPv4-mapped IPv6 addresses as IPv4", () => {
  assert.equal(sourceKey("::ffff:192.0.2.1"), "192.0.2.1");
  assert.equal(sourceKey("::FFFF:192.0.2.1"), "192.0.2.1");
  assert.notEqual(sourceKey("::ffff:192.0.2.1"), sourceKey("::ffff:192.0.2.2"));
});

Deno.test("RateLimiter counts a whole IPv6 /64 and an IPv4-mapped address as one source", () => {
  const limiter = new RateLimiter(OPTIONS);
  fail(limiter, 3, "2001:db8:1:2::1", "alice", 0);
  assert.equal(limiter.retryAfter("2001:db8:1:2:ffff:ffff:ffff:ffff", "bob", 0), 1000);
  assert.equal(limiter.retryAfter("2001:db8:1:3::1", "bob", 0), 0);
  fail(limiter, 3, "::ffff:192.0.2.1", "carol", 0);
  assert.equal(limiter.retryAfter("192.0.2.1", "dave", 0), 1000);
});

Deno.test("RateLimiter keeps at most maxEntries counters under ten times as many keys", () => {
  const limiter = new RateLimiter(OPTIONS);
  fail(limiter, 10, "10.255.255.255", "target", 0);
  for (let i = 0; i < OPTIONS.maxEntries * 10; i++) {
    limiter.recordFailure(`10.0.${i >> 8}.${i & 0xff}`, `user${i}`, 1 + i);
    const size = limiter.size;
    assert.ok(size.sources <= OPTIONS.maxEntries && size.accounts <= OPTIONS.maxEntries);
    assert.ok(size.pairs <= OPTIONS.maxEntries);
  }
  assert.deepEqual(limiter.size, { sources: 100, accounts: 100, pairs: 100, tokens: 0, checking: 0 });
  // The most recent failures are the ones kept.
  const last = OPTIONS.maxEntries * 10 - 1;
  fail(limiter, 3, `10.0.${last >> 8}.${last & 0xff}`, `user${last}`, 2000);
  assert.ok(limiter.retryAfter(`10.0.${last >> 8}.${last & 0xff}`, "x", 2000) > 0);
});

Deno.test("RateLimiter defaults to 5 free failures, then 1 s doubling up to 15 min", () => {
  assert.deepEqual(DEFAULT_RATE_LIMITS, {
    freeFailures: 5,
    baseMs: 1000,
    maxMs: 900_000,
    forgetAfterMs: 3_600_000,
    maxEntries: 100_000,
  });
  const limiter = new RateLimiter();
  fail(limiter, 4, "10.0.0.1", "alice", 0);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 0, "the fifth proof is checked");
  limiter.recordFailure("10.0.0.1", "alice", 0);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 1000, "the sixth waits");
  fail(limiter, 40, "10.0.0.1", "alice", 0);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 900_000);
});

Deno.test("sourceKey reads every spelling of an IPv4-mapped address as that IPv4 address", () => {
  for (
    const form of ["::ffff:192.0.2.1", "0:0:0:0:0:ffff:192.0.2.1", "::ffff:c000:201", "::FFFF:192.0.2.1"]
  ) {
    assert.equal(sourceKey(form), "192.0.2.1", form);
  }
  assert.equal(sourceKey("2001:0db8:0001:0002::"), "2001:db8:1:2::/64");
  assert.equal(sourceKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.notEqual(sourceKey("::1"), sourceKey("::ffff:0.0.0.1"));
});

Deno.test("RateLimiter does not let a login to one's own account wipe out guesses at another", () => {
  const limiter = new RateLimiter(OPTIONS);
  for (let i = 0; i < 10; i++) {
    if (limiter.retryAfter("10.0.0.66", "victim", 0) > 0) break;
    limiter.recordFailure("10.0.0.66", "victim", 0);
    limiter.recordFailure("10.0.0.66", "mallory", 0);
    limiter.recordSuccess("10.0.0.66", "mallory");
  }
  assert.ok(limiter.retryAfter("10.0.0.66", "victim", 0) > 0, "the victim's guesses still count");
  assert.ok(limiter.retryAfter("10.0.0.66", "mallory", 0) > 0, "the source's own counter still holds them");
  assert.equal(limiter.retryAfter("10.0.0.77", "victim", 0), 0, "the owner elsewhere is not locked out");
});

Deno.test("RateLimiter lets a source with no failures check up to maxParallel proofs for different accounts at once", () => {
  const limiter = new RateLimiter(OPTIONS);
  // The users behind one NAT logging in together: no failures, so no one waits, up to the cap.
  for (let i = 0; i < 31; i++) limiter.begin("10.0.0.1", `user${i}`);
  assert.equal(limiter.retryAfter("10.0.0.1", "user31", 0), 0);
  limiter.begin("10.0.0.1", "user31");
  assert.equal(limiter.retryAfter("10.0.0.1", "user32", 0), 1000, "the 33rd waits: a first burst is bounded");
  assert.equal(limiter.retryAfter("10.0.0.2", "user32", 0), 0, "other sources do not");
  for (let i = 0; i < 32; i++) limiter.end("10.0.0.1", `user${i}`, 0, true);
  assert.deepEqual(limiter.size, { sources: 0, accounts: 0, pairs: 0, tokens: 0, checking: 0 });
});

Deno.test("RateLimiter counts proofs of one pair still being checked, so parallel guesses cannot all pass", () => {
  const limiter = new RateLimiter(OPTIONS);
  for (let i = 0; i < 2; i++) limiter.begin("10.0.0.1", "alice");
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 0, "two in flight: a third may still go");
  limiter.begin("10.0.0.1", "alice");
  assert.equal(
    limiter.retryAfter("10.0.0.1", "alice", 0),
    1000,
    "three in flight: the free count; a fourth waits",
  );
  assert.equal(limiter.retryAfter("10.0.0.1", "bob", 0), 0, "other accounts of a clean source do not");
  for (let i = 0; i < 3; i++) limiter.end("10.0.0.1", "alice", 0, false);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 1000, "all three counted as failures");
  assert.equal(limiter.size.checking, 0);
});

Deno.test("RateLimiter counts proofs being checked against a source that has failed, for any account", () => {
  const limiter = new RateLimiter(OPTIONS);
  limiter.recordFailure("10.0.0.1", "bob", 0);
  limiter.begin("10.0.0.1", "carol");
  assert.equal(limiter.retryAfter("10.0.0.1", "erin", 0), 0, "1 failure + 1 in flight: under the free count");
  limiter.begin("10.0.0.1", "dave");
  assert.equal(limiter.retryAfter("10.0.0.1", "erin", 0), 1000, "a guessing source cannot spray in parallel");
  for (const name of ["carol", "dave"]) limiter.end("10.0.0.1", name, 0, true);
  assert.equal(limiter.retryAfter("10.0.0.1", "erin", 0), 0, "correct proofs are forgiven");
});

Deno.test("RateLimiter exempts an attempt with a device token from the source's and account's backoff", () => {
  const limiter = new RateLimiter(OPTIONS);
  // Strangers guess at alice from many addresses, and from the owner's own address (one NAT).
  for (let i = 0; i < 20; i++) fail(limiter, 4, `203.0.113.${i}`, "alice", 0);
  fail(limiter, 10, "198.51.100.7", "alice", 0);
  assert.ok(limiter.retryAfter("198.51.100.7", "alice", 0) > 0, "without a token the owner's address waits");
  assert.ok(limiter.retryAfter("198.51.100.7", "bob", 0) > 0, "for every account");
  const token = { deviceToken: "00112233445566778899aabbccddeeff" };
  assert.equal(limiter.retryAfter("198.51.100.7", "alice", 0, token), 0, "with one she goes ahead at once");
});

Deno.test("RateLimiter counts a device token's own failures against the token alone, with their own backoff", () => {
  const limiter = new RateLimiter(OPTIONS);
  const token = { deviceToken: "aa" };
  for (let i = 0; i < OPTIONS.freeFailures; i++) {
    assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0, token), 0, `failure ${i} is free`);
    limiter.begin("10.0.0.1", "alice", token);
    limiter.end("10.0.0.1", "alice", 0, false, token);
  }
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0, token), 1000, "the token backs off like a pair");
  assert.equal(
    limiter.retryAfter("10.0.0.1", "alice", 0, { deviceToken: "bb" }),
    0,
    "another token does not",
  );
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 0), 0, "nor the source and account without a token");
  assert.deepEqual(limiter.size, { sources: 0, accounts: 0, pairs: 0, tokens: 1, checking: 0 });
  // A correct proof with the token forgives the token's failures.
  limiter.begin("10.0.0.1", "alice", token);
  limiter.end("10.0.0.1", "alice", 1000, true, token);
  assert.equal(limiter.retryAfter("10.0.0.1", "alice", 1000, token), 0);
  assert.deepEqual(limiter.size, { sources: 0, accounts: 0, pairs: 0, tokens: 0, checking: 0 });
});

Deno.test("RateLimiter counts proofs with one device token still being checked, so parallel guesses cannot all pass", () => {
  const limiter = new RateLimiter(OPTIONS);
  const token = { deviceToken: "aa" };
  for (let i = 0; i < OPTIONS.freeFailures - 1; i++) limiter.begin("10.0.0.1", "alice", token);
  assert.equal(
    limiter.retryAfter("10.0.0.2", "alice", 0, token),
    0,
    "one fewer in flight than the free count",
  );
  limiter.begin("10.0.0.3", "alice", token);
  assert.equal(limiter.retryAfter("10.0.0.4", "alice", 0, token), 1000, "from any address, the next waits");
  for (let i = 0; i < OPTIONS.freeFailures; i++) limiter.end("10.0.0.1", "alice", 0, false, token);
  assert.equal(limiter.size.checking, 0);
});

Deno.test("RateLimiter keeps at most maxEntries device token counters", () => {
  const limiter = new RateLimiter(OPTIONS);
  for (let i = 0; i < OPTIONS.maxEntries * 3; i++) {
    limiter.end("10.0.0.1", "alice", i, false, { deviceToken: `t${i}` });
    assert.ok(limiter.size.tokens <= OPTIONS.maxEntries);
  }
});
