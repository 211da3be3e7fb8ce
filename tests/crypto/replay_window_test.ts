import assert from "node:assert/strict";
import fc from "fast-check";
import { REPLAY_WINDOW_SIZE, ReplayWindow } from "../../lib/crypto/replay_window.ts";

Deno.test("ReplayWindow accepts each counter once and check marks nothing", () => {
  const w = new ReplayWindow();
  assert.equal(w.highest, -1);
  assert.equal(w.check(0), true);
  assert.equal(w.check(0), true);
  assert.equal(w.accept(0), true);
  assert.equal(w.check(0), false);
  assert.equal(w.accept(0), false);
  assert.equal(w.accept(1), true);
  assert.equal(w.accept(1), false);
  assert.equal(w.highest, 1);
});

Deno.test("ReplayWindow accepts out-of-order counters within 64 and refuses older ones", () => {
  const w = new ReplayWindow();
  assert.equal(REPLAY_WINDOW_SIZE, 64);
  assert.ok(w.accept(100));
  assert.equal(w.check(100 - 63), true);
  assert.equal(w.check(100 - 64), false);
  assert.equal(w.accept(100 - 64), false);
  for (let c = 99; c >= 37; c--) assert.ok(w.accept(c), `counter ${c}`);
  for (let c = 37; c <= 100; c++) assert.equal(w.check(c), false, `counter ${c}`);
  assert.equal(w.highest, 100);
});

Deno.test("ReplayWindow moves on a jump and forgets what fell out of it", () => {
  const w = new ReplayWindow();
  assert.ok(w.accept(3));
  assert.ok(w.accept(1000));
  assert.equal(w.check(3), false);
  assert.equal(w.check(999), true);
  assert.equal(w.check(1000 - 63), true);
  // 1064 shares a slot with 1000, which it pushes out of the window.
  assert.ok(w.accept(1000 + 64));
  assert.equal(w.check(1000), false);
  assert.equal(w.check(1000 + 64), false);
  assert.equal(w.check(1001), true);
  assert.ok(w.accept(1001));
  assert.equal(w.check(1001), false);
});

Deno.test("ReplayWindow refuses counters that are not non-negative safe integers", () => {
  const w = new ReplayWindow();
  for (const c of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
    assert.equal(w.check(c), false, String(c));
    assert.equal(w.accept(c), false, String(c));
  }
  assert.equal(w.highest, -1);
  assert.ok(w.accept(2 ** 53 - 1));
});

Deno.test("ReplayWindow agrees with a set-based model (property)", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 200 }), (counters) => {
      const w = new ReplayWindow();
      const seen = new Set<number>();
      let top = -1;
      for (const c of counters) {
        const expected = c > top || (top - c < 64 && !seen.has(c));
        assert.equal(w.check(c), expected);
        assert.equal(w.accept(c), expected);
        if (expected) {
          seen.add(c);
          top = Math.max(top, c);
        }
      }
    }),
    { numRuns: 300 },
  );
});
