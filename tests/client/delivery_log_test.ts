import assert from "node:assert/strict";
import fc from "fast-check";
import { DeliveryLog, MAX_INSTANCES, WINDOW } from "../../lib/client/_delivery_log.ts";
import { decodeNumbered, encodeNumbered } from "../../lib/client/_message_header.ts";

Deno.test("DeliveryLog accepts each number of an instance once, whatever session carries it again", () => {
  fc.assert(
    fc.property(
      // Sessions, each carrying the sender's messages from some point back (at most one past what was
      // delivered, as the sender keeps them in order) up to some point ahead.
      fc.array(fc.tuple(fc.nat(50), fc.nat(50)), { minLength: 1, maxLength: 20 }),
      fc.integer({ min: 1, max: 1000 }),
      (runs, first) => {
        const log = new DeliveryLog();
        const delivered: number[] = [];
        let top = first - 1;
        for (const [back, ahead] of runs) {
          const from = Math.max(first, top + 1 - back);
          for (let n = from; n <= top + 1 + ahead; n++) if (log.accept("aa", n)) delivered.push(n);
          top = Math.max(top, top + 1 + ahead);
        }
        assert.deepEqual(delivered, Array.from({ length: top - first + 1 }, (_, i) => first + i));
        assert.equal(log.size.numbers, 0, "nothing is kept above a contiguous run");
      },
    ),
  );
});

Deno.test("DeliveryLog tells sender instances apart: a restarted sender's first messages are new", () => {
  const log = new DeliveryLog();
  for (let n = 1; n <= 100; n++) assert.ok(log.accept("old", n));
  assert.ok(log.accept("new", 1));
  assert.ok(!log.accept("old", 100));
  assert.ok(!log.accept("new", 1));
  assert.ok(log.accept("new", 2));
});

Deno.test("DeliveryLog keeps bounded state whatever a peer sends", () => {
  const log = new DeliveryLog();
  // Every other number, far ahead: the holes are given up on past the window.
  for (let n = 2; n <= 10 * WINDOW; n += 2) assert.ok(log.accept("aa", n));
  assert.ok(log.size.numbers <= WINDOW);
  assert.ok(!log.accept("aa", 2), "below the window is done");
  assert.ok(log.accept("aa", 10 * WINDOW - 1), "a hole within the window is still deliverable");
  assert.ok(!log.accept("aa", 10 * WINDOW - 1));
  // Many instances: the least recently heard go.
  for (let i = 0; i < 10 * MAX_INSTANCES; i++) log.accept(`i${i}`, 1);
  assert.equal(log.size.instances, MAX_INSTANCES);
  assert.ok(log.accept("aa", 2), "a forgotten instance starts afresh");
});

Deno.test("encodeNumbered and decodeNumbered round-trip, and refuse what is short or numbered 0", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 8, maxLength: 8 }),
      fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      fc.uint8Array({ maxLength: 100 }),
      (instance, number, body) => {
        const m = decodeNumbered(encodeNumbered(instance, number, body));
        assert.ok(m);
        assert.equal(m.instance, instance.toHex());
        assert.equal(m.number, number);
        assert.deepEqual([...m.body], [...body]);
      },
    ),
  );
  assert.equal(decodeNumbered(new Uint8Array(15)), null);
  assert.equal(decodeNumbered(new Uint8Array(16)), null, "number 0");
  assert.equal(decodeNumbered(new Uint8Array(16).fill(0xff)), null, "above 2^53-1");
  assert.throws(() => encodeNumbered(new Uint8Array(7), 1, new Uint8Array()), RangeError);
  assert.throws(() => encodeNumbered(new Uint8Array(8), 0, new Uint8Array()), RangeError);
});
