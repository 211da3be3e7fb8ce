import assert from "node:assert/strict";
import { TokenBucket } from "../../lib/auth/token_bucket.ts";

Deno.test("TokenBucket spends the burst, then says how long until the next token", () => {
  const bucket = new TokenBucket({ perMinute: 60, burst: 2 });
  assert.equal(bucket.take("10.0.0.1", 0), 0);
  assert.equal(bucket.take("10.0.0.1", 0), 0);
  assert.equal(bucket.take("10.0.0.1", 0), 1000);
  assert.equal(bucket.take("10.0.0.1", 500), 500, "half a token earned back");
  assert.equal(bucket.take("10.0.0.1", 1000), 0);
});

Deno.test("TokenBucket counts IPv6 addresses of one /64 together by default", () => {
  const bucket = new TokenBucket({ perMinute: 60, burst: 1 });
  assert.equal(bucket.take("2001:db8::1", 0), 0);
  assert.ok(bucket.take("2001:db8::2", 0) > 0);
  assert.equal(bucket.take("2001:db8:0:1::1", 0), 0, "another /64 has its own bucket");
});

Deno.test("TokenBucket with its own key counts sources as given, and forgets one on request", () => {
  const bucket = new TokenBucket({ perMinute: 60, burst: 1, key: (user) => user });
  assert.equal(bucket.take("2001:db8::1", 0), 0);
  assert.equal(bucket.take("2001:db8::2", 0), 0, "not grouped by /64");
  assert.ok(bucket.take("2001:db8::1", 0) > 0);
  bucket.forget("2001:db8::1");
  assert.equal(bucket.take("2001:db8::1", 0), 0, "a forgotten source starts full");
  assert.ok(bucket.take("2001:db8::2", 0) > 0, "the others are kept");
});

Deno.test("TokenBucket.wait says what take would, spending nothing", () => {
  const bucket = new TokenBucket({ perMinute: 60, burst: 2 });
  assert.equal(bucket.wait("10.0.0.1", 0), 0, "an unseen source has a full bucket");
  for (let i = 0; i < 5; i++) assert.equal(bucket.wait("10.0.0.1", 0), 0, "asking spends nothing");
  assert.equal(bucket.take("10.0.0.1", 0), 0);
  assert.equal(bucket.take("10.0.0.1", 0), 0);
  assert.equal(bucket.wait("10.0.0.1", 0), 1000);
  assert.equal(bucket.wait("10.0.0.1", 400), 600);
  assert.equal(bucket.take("10.0.0.1", 400), 600, "take agrees");
  assert.equal(bucket.wait("10.0.0.1", 1000), 0);
  assert.equal(bucket.take("10.0.0.1", 1000), 0, "the token wait saw is there");
});
