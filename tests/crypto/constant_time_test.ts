import assert from "node:assert/strict";
import fc from "fast-check";
import { constantTimeEqual } from "../../lib/crypto/constant_time.ts";

Deno.test("constantTimeEqual tells equal from different arrays of the same length", () => {
  const a = new Uint8Array(32).fill(5);
  assert.equal(constantTimeEqual(a, a.slice()), true);
  for (const at of [0, 15, 31]) {
    const b = a.slice();
    b[at] = 6;
    assert.equal(constantTimeEqual(a, b), false, `differs at ${at}`);
  }
  assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
});

Deno.test("constantTimeEqual returns false for different lengths instead of throwing", () => {
  assert.equal(constantTimeEqual(new Uint8Array(32), new Uint8Array(31)), false);
  assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(1)), false);
});

Deno.test("constantTimeEqual compares the viewed bytes of subarrays", () => {
  const buf = new Uint8Array([9, 1, 2, 3, 9]);
  assert.equal(constantTimeEqual(buf.subarray(1, 4), new Uint8Array([1, 2, 3])), true);
  assert.equal(constantTimeEqual(buf.subarray(0, 3), new Uint8Array([1, 2, 3])), false);
});

Deno.test("constantTimeEqual agrees with a plain comparison (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 8 }), fc.uint8Array({ maxLength: 8 }), (a, b) => {
      const plain = a.length === b.length && a.every((v, i) => v === b[i]);
      assert.equal(constantTimeEqual(a, b), plain);
      assert.equal(constantTimeEqual(a, a.slice()), true);
    }),
    { numRuns: 500 },
  );
});
