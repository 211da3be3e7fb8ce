import assert from "node:assert/strict";
import { DEFAULT_LOGIN_BUDGET, LoginBudget } from "../../lib/auth/login_budget.ts";

Deno.test("LoginBudget lets an account log in perAccountPerMinute times at once, then one per refill", () => {
  const budget = new LoginBudget({ perSourcePerMinute: 1000, perAccountPerMinute: 6 });
  const outcomes = Array.from({ length: 8 }, (_, i) => budget.spend(`10.0.0.${i}`, "alice", 0));
  assert.deepEqual(outcomes.slice(0, 6), [null, null, null, null, null, null], "from any addresses");
  assert.deepEqual(outcomes[6], { of: "account", waitMs: 10_000 });
  assert.deepEqual(budget.spend("10.0.0.99", "alice", 9_999), { of: "account", waitMs: 1 });
  assert.equal(budget.spend("10.0.0.99", "alice", 10_000), null, "one token earned back in 10 s");
  assert.equal(budget.spend("10.0.0.99", "bob", 10_000), null, "other accounts have their own budget");
});

Deno.test("LoginBudget lets a source log in perSourcePerMinute times, to any accounts, IPv6 by /64", () => {
  const budget = new LoginBudget({ perSourcePerMinute: 3, perAccountPerMinute: 1000 });
  for (const user of ["a", "b", "c"]) assert.equal(budget.spend("2001:db8:1:2::1", user, 0), null);
  assert.deepEqual(budget.spend("2001:db8:1:2::ffff", "d", 0), { of: "source", waitMs: 20_000 });
  assert.deepEqual(budget.check("2001:db8:1:2::7", "anyone", 0), { of: "source", waitMs: 20_000 });
  assert.equal(budget.check("2001:db8:1:3::1", "d", 0), null, "another /64");
  assert.equal(budget.spend("2001:db8:1:3::1", "d", 0), null);
});

Deno.test("LoginBudget spends nothing on a refused login, nor when asked at LOGIN", () => {
  const budget = new LoginBudget({ perSourcePerMinute: 2, perAccountPerMinute: 1 });
  assert.equal(budget.spend("10.0.0.1", "alice", 0), null);
  // Refused for the account: the source's budget is untouched.
  for (let i = 0; i < 5; i++) assert.equal(budget.spend("10.0.0.1", "alice", 0)?.of, "account");
  for (let i = 0; i < 5; i++) budget.check("10.0.0.1", "bob", 0);
  assert.equal(budget.spend("10.0.0.1", "bob", 0), null, "the source's second login still fits");
  assert.equal(budget.spend("10.0.0.1", "carol", 0)?.of, "source");
  // Refused for the source: carol's budget is untouched.
  assert.equal(budget.spend("10.0.0.2", "carol", 0), null);
});

Deno.test("LoginBudget.check tells a spent account budget only to a source that has logged in to it", () => {
  const budget = new LoginBudget({ perSourcePerMinute: 1000, perAccountPerMinute: 2 });
  assert.equal(budget.spend("203.0.113.5", "alice", 0), null);
  assert.equal(budget.spend("198.51.100.7", "alice", 0), null);
  // The looping client is stopped before any exchange.
  assert.deepEqual(budget.check("203.0.113.5", "alice", 0), { of: "account", waitMs: 30_000 });
  // A stranger gets the same answer for alice as for a name with no account: go ahead (and is refused,
  // should it know the password, only after a correct proof).
  assert.equal(budget.check("192.0.2.1", "alice", 0), null);
  assert.equal(budget.check("192.0.2.1", "nobody", 0), null);
  assert.deepEqual(budget.spend("192.0.2.1", "alice", 0), { of: "account", waitMs: 30_000 });
  // Having proved the password, it is told early from now on.
  assert.equal(budget.check("192.0.2.1", "alice", 0)?.of, "account");
  assert.equal(budget.check("192.0.2.1", "alice", 30_000), null, "until the budget has a login again");
});

Deno.test("LoginBudget keeps at most maxEntries pairs, sources and accounts", () => {
  const budget = new LoginBudget({ perSourcePerMinute: 1, perAccountPerMinute: 1, maxEntries: 10 });
  for (let i = 0; i < 1000; i++) assert.equal(budget.spend(`10.0.${i >> 8}.${i & 255}`, `user${i}`, 0), null);
  // The oldest were forgotten (a forgotten bucket is full again); the newest are kept.
  assert.equal(budget.check("10.0.0.0", "user0", 0), null);
  assert.deepEqual(budget.check("10.0.3.231", "user999", 0), { of: "source", waitMs: 60_000 });
  assert.deepEqual(budget.check("10.9.9.9", "user999", 0), null, "a stranger: not told about user999");
});

Deno.test("LoginBudget defaults: 30 logins a minute per account, 300 per source", () => {
  assert.deepEqual(DEFAULT_LOGIN_BUDGET, {
    perSourcePerMinute: 300,
    perAccountPerMinute: 30,
    maxEntries: 100_000,
  });
  const budget = new LoginBudget();
  for (let i = 0; i < 30; i++) assert.equal(budget.spend("10.0.0.1", "alice", 0), null);
  assert.deepEqual(budget.spend("10.0.0.1", "alice", 0), { of: "account", waitMs: 2000 });
  for (let i = 0; i < 270; i++) assert.equal(budget.spend("10.0.0.1", `user${i}`, 0), null);
  assert.deepEqual(budget.spend("10.0.0.1", "zed", 0), { of: "source", waitMs: 200 });
});

Deno.test("LoginBudget neither asks nor spends the source's budget for a login that showed a valid device token", () => {
  const budget = new LoginBudget({ perSourcePerMinute: 1, perAccountPerMinute: 3 });
  assert.equal(budget.spend("10.0.0.1", "bob", 0), null);
  assert.equal(budget.check("10.0.0.1", "alice", 0)?.of, "source");
  assert.equal(budget.check("10.0.0.1", "alice", 0, { deviceToken: true }), null);
  assert.equal(budget.spend("10.0.0.1", "alice", 0, { deviceToken: true }), null);
  assert.equal(budget.spend("10.0.0.1", "alice", 0, { deviceToken: true }), null);
  assert.equal(budget.spend("10.0.0.1", "alice", 0, { deviceToken: true }), null);
  assert.equal(
    budget.spend("10.0.0.1", "alice", 0, { deviceToken: true })?.of,
    "account",
    "the account's holds",
  );
  assert.equal(budget.spend("10.0.0.2", "carol", 0, { deviceToken: true }), null);
  assert.equal(budget.spend("10.0.0.2", "dave", 0), null, "the source's one login is still there");
});
