import assert from "node:assert/strict";
import { AMPLIFICATION_FACTOR, AmplificationBudget } from "../../lib/server/amplification_budget.ts";

Deno.test("AmplificationBudget allows nothing before a byte is received", () => {
  const budget = new AmplificationBudget();
  assert.equal(budget.canSend(1), false);
  assert.equal(budget.canSend(0), true);
  assert.throws(() => budget.sent(1), /Amplification bound exceeded/);
});

Deno.test("AmplificationBudget allows at most 3× the bytes received until complete", () => {
  assert.equal(AMPLIFICATION_FACTOR, 3);
  const budget = new AmplificationBudget();
  budget.received(1200);
  let out = 0;
  // Send 1000-byte datagrams while allowed: three of them, not four.
  while (budget.canSend(1000)) {
    budget.sent(1000);
    out += 1000;
  }
  assert.equal(out, 3000);
  assert.equal(budget.remaining, 600);
  assert.throws(() => budget.sent(601), RangeError);
  budget.sent(600);
  assert.equal(budget.canSend(1), false);
  budget.received(100);
  assert.equal(budget.remaining, 300);
  assert(out + 600 <= AMPLIFICATION_FACTOR * 1200);
});

Deno.test("AmplificationBudget lifts the bound once the handshake completes", () => {
  const budget = new AmplificationBudget();
  budget.received(10);
  assert.equal(budget.isComplete, false);
  budget.complete();
  assert.equal(budget.isComplete, true);
  assert(budget.canSend(1 << 30));
  budget.sent(1 << 30);
  assert.equal(budget.remaining, Infinity);
});

Deno.test("AmplificationBudget refuses byte counts that are not non-negative integers", () => {
  const budget = new AmplificationBudget();
  for (const n of [-1, 1.5, NaN, Infinity]) {
    assert.throws(() => budget.received(n), RangeError);
    assert.throws(() => budget.canSend(n), RangeError);
  }
  budget.received(5);
  assert.throws(() => budget.sent(-1), RangeError);
  assert.equal(budget.remaining, 15);
});
