import assert from "node:assert/strict";
import { PuzzleDifficulty } from "../../lib/server/puzzle_difficulty.ts";

const hps = (handshakesPerSecond: number) => ({ handshakesPerSecond, halfOpen: 0 });

Deno.test("PuzzleDifficulty asks nothing under the thresholds", () => {
  const d = new PuzzleDifficulty({ handshakesPerSecond: 100, halfOpen: 50 });
  assert.equal(d.current(), 0);
  assert.equal(d.observe({ handshakesPerSecond: 99, halfOpen: 49 }), 0);
  assert.equal(d.observe({ handshakesPerSecond: 0, halfOpen: 0 }), 0);
});

Deno.test("PuzzleDifficulty engages at either threshold: handshakes per second or half-open sessions", () => {
  assert.equal(new PuzzleDifficulty({ handshakesPerSecond: 100 }).observe(hps(100)), 12);
  assert.equal(new PuzzleDifficulty({ halfOpen: 50 }).observe({ handshakesPerSecond: 0, halfOpen: 50 }), 12);
});

Deno.test("PuzzleDifficulty rises by its step per doubling of the load, up to its max", () => {
  const d = new PuzzleDifficulty({ handshakesPerSecond: 100, base: 10, step: 3, max: 20 });
  const seen = [100, 199, 200, 400, 800, 1600, 1e9].map((n) => d.observe(hps(n)));
  assert.deepEqual(seen, [10, 10, 13, 16, 19, 20, 20]);
});

Deno.test("PuzzleDifficulty falls back a level only below half the load that raised it, and to 0", () => {
  const d = new PuzzleDifficulty({ handshakesPerSecond: 100 });
  assert.equal(d.observe(hps(800)), 18); // level 4
  assert.equal(d.observe(hps(500)), 18); // 500 ≥ 400: L(2r) = 4, stays
  assert.equal(d.observe(hps(399)), 16); // L(2r) = 3
  assert.equal(d.observe(hps(100)), 14); // L(2r) = 2
  assert.equal(d.observe(hps(50)), 12); // L(2r) = 1
  assert.equal(d.observe(hps(49)), 0);
  assert.equal(d.current(), 0);
});

Deno.test("PuzzleDifficulty does not flap around its threshold, and disengages when load drops", () => {
  const d = new PuzzleDifficulty({ handshakesPerSecond: 100 });
  const seen = [100, 60, 95, 51, 99, 50, 49, 60, 99, 100].map((n) => d.observe(hps(n)));
  assert.deepEqual(seen, [12, 12, 12, 12, 12, 12, 0, 0, 0, 12]);
});

Deno.test("PuzzleDifficulty counts NaN and negative reports as none, an infinite one as the most", () => {
  const d = new PuzzleDifficulty();
  for (const n of [NaN, -1, -Infinity]) assert.equal(d.observe({ handshakesPerSecond: n, halfOpen: n }), 0);
  assert.equal(d.observe({ handshakesPerSecond: Infinity, halfOpen: 0 }), 18);
});

Deno.test("PuzzleDifficulty refuses bad options", () => {
  for (
    const options of [
      { handshakesPerSecond: 0 },
      { halfOpen: -1 },
      { halfOpen: NaN },
      { base: 0 },
      { base: 21 },
      { step: 1.5 },
      { max: 65 },
    ]
  ) {
    assert.throws(() => new PuzzleDifficulty(options), RangeError, JSON.stringify(options));
  }
});
