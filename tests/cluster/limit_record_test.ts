import assert from "node:assert/strict";
import fc from "fast-check";
import { KeyLocks } from "../../lib/cluster/_key_locks.ts";
import { decodeRecord, encodeRecord, othersChecking, withProofs } from "../../lib/cluster/_limit_record.ts";
import type { LimitRecord } from "../../lib/cluster/_limit_record.ts";

// Tokens as the bucket arithmetic makes them (never -0, which JSON does not keep).
const tokens = fc.double({ min: -10, max: 1000, noNaN: true }).filter((x) => !Object.is(x, -0));
const record: fc.Arbitrary<LimitRecord> = fc.record({
  failures: fc.record({
    failures: fc.integer({ min: 1, max: 1e6 }),
    last: fc.integer({ min: 0, max: 2 ** 50 }),
  }),
  proofs: fc.array(
    fc.record({
      node: fc.string({ minLength: 1, maxLength: 12 }),
      count: fc.integer({ min: 1, max: 1000 }),
      expiresAt: fc.integer({ min: 0, max: 2 ** 50 }),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  logins: fc.record({
    tokens,
    at: fc.integer({ min: 0, max: 2 ** 50 }),
  }),
  registrations: fc.record({
    tokens,
    at: fc.integer({ min: 0, max: 2 ** 50 }),
  }),
  knownAt: fc.integer({ min: 0, max: 2 ** 50 }),
}, { requiredKeys: [] });

Deno.test("A limit record reads back exactly as it was written, to the last bit of a bucket's tokens", () => {
  fc.assert(fc.property(record, (r) => {
    const back = decodeRecord(encodeRecord(r));
    assert.deepEqual(back, JSON.parse(JSON.stringify(r)));
    for (const key of ["logins", "registrations"] as const) {
      assert.ok(Object.is(back[key]?.tokens, r[key]?.tokens));
    }
  }));
  assert.equal(encodeRecord({}).length, 0, "an empty record is an empty value");
  assert.deepEqual(decodeRecord(new Uint8Array(0)), {});
});

Deno.test("A stored value of any other form reads as what it holds of a record, never throws", () => {
  const samples = [
    "not json",
    "null",
    "[]",
    "7",
    '{"f":"x"}',
    '{"f":[1]}',
    '{"f":[0,5]}',
    '{"r":[["n",-1,9],["m",2,"x"],3]}',
    '{"l":[1,null]}',
    '{"k":"yesterday"}',
  ];
  for (const text of samples) {
    const r = decodeRecord(new TextEncoder().encode(text));
    assert.equal(r.failures, undefined, text);
    assert.equal(r.proofs, undefined, text);
    assert.equal(r.logins, undefined, text);
    assert.equal(r.knownAt, undefined, text);
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
    decodeRecord(bytes);
  }));
  fc.assert(fc.property(fc.json(), (text) => {
    decodeRecord(new TextEncoder().encode(text));
  }));
});

Deno.test("withProofs sets this node's count and lease, drops others' expired counts; othersChecking skips this node's", () => {
  const r: LimitRecord = {
    proofs: [{ node: "a", count: 2, expiresAt: 100 }, { node: "b", count: 3, expiresAt: 50 }, {
      node: "me",
      count: 9,
      expiresAt: 100,
    }],
  };
  assert.equal(othersChecking(r, "me", 40), 5);
  assert.equal(othersChecking(r, "me", 50), 2, "b's lease is over");
  assert.deepEqual(withProofs(r, "me", 1, 200, 60).proofs, [{ node: "a", count: 2, expiresAt: 100 }, {
    node: "me",
    count: 1,
    expiresAt: 200,
  }]);
  assert.deepEqual(withProofs({ proofs: [{ node: "me", count: 1, expiresAt: 9 }] }, "me", 0, 99, 1), {});
});

Deno.test("KeyLocks lets one holder of a key at a time, takes several keys without deadlock, and forgets free keys", async () => {
  const locks = new KeyLocks();
  const order: string[] = [];
  const hold = async (name: string, keys: string[], ms: number) => {
    const release = await locks.acquire(keys);
    order.push(`${name}+`);
    await new Promise((r) => setTimeout(r, ms));
    order.push(`${name}-`);
    release();
  };
  await Promise.all([hold("x", ["a", "b"], 20), hold("y", ["b", "a"], 5), hold("z", ["c"], 1)]);
  assert.deepEqual(order.filter((e) => e.startsWith("x") || e.startsWith("y")), ["x+", "x-", "y+", "y-"]);
  assert.ok(order.indexOf("z+") < order.indexOf("x-"), "other keys do not wait");
  assert.equal(locks.size, 0);
});
