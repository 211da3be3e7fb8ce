import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkLeaseTiming,
  IDS_PER_SLOT,
  LEASE_TIMING,
  RelayIdAllocator,
  relayIdIn,
  SlotLease,
  slotOf,
  SLOTS,
} from "../../lib/cluster/relay_slots.ts";

Deno.test("relayIdIn and slotOf split every u32 into a slot and a session number", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: SLOTS - 1 }),
      fc.integer({ min: 0, max: IDS_PER_SLOT - 1 }),
      (slot, n) => {
        const id = relayIdIn(slot, n);
        assert.ok(Number.isInteger(id) && id >= 0 && id <= 0xffff_ffff);
        assert.equal(slotOf(id), slot);
        assert.equal(id % IDS_PER_SLOT, n);
      },
    ),
  );
  assert.equal(SLOTS * IDS_PER_SLOT, 2 ** 32, "the slots cover the relay id's 32 bits exactly");
  for (const [slot, n] of [[SLOTS, 0], [-1, 0], [0, IDS_PER_SLOT], [0.5, 1]] as const) {
    assert.throws(() => relayIdIn(slot, n), RangeError);
  }
});

Deno.test("RelayIdAllocator goes round past the slot's end without ever handing out 0", () => {
  const ids = new RelayIdAllocator(5, { start: IDS_PER_SLOT - 2 });
  const got = [ids.allocate()!, ids.allocate()!, ids.allocate()!];
  assert.deepEqual(got.map((id) => id % IDS_PER_SLOT), [IDS_PER_SLOT - 2, IDS_PER_SLOT - 1, 1]);
  assert.ok(got.every((id) => slotOf(id) === 5));
});

Deno.test("RelayIdAllocator never hands out an id still out, however allocations and releases interleave", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 12 }),
      fc.array(fc.oneof(fc.constant("take" as const), fc.nat(20)), { maxLength: 80 }),
      (span, steps) => {
        const ids = new RelayIdAllocator(9, { start: 1, span });
        const out: number[] = [];
        for (const step of steps) {
          if (step === "take") {
            const id = ids.allocate();
            if (out.length === span - 1) {
              assert.equal(id, null, "full: nothing to give");
              continue;
            }
            assert.notEqual(id, null);
            assert.ok(!out.includes(id!), `id ${id} handed out twice`);
            assert.ok(id! % IDS_PER_SLOT >= 1 && id! % IDS_PER_SLOT < span && slotOf(id!) === 9);
            out.push(id!);
          } else if (out.length > 0) {
            const [id] = out.splice(step % out.length, 1);
            ids.release(id!);
            assert.ok(!ids.holds(id!));
          }
          assert.equal(ids.size, out.length);
        }
      },
    ),
  );
});

Deno.test("SlotLease holds until ttl minus margin after the last accepted write was sent", () => {
  const lease = new SlotLease({ ttlMs: 1000, renewMs: 200, marginMs: 300, deadAfterMs: 600 });
  assert.equal(lease.valid(0), false, "not held before any write");
  lease.renewed(100);
  assert.equal(lease.until, 800);
  assert.ok(lease.valid(799) && !lease.valid(800));
  lease.renewed(50);
  assert.equal(lease.until, 800, "an older write's answer arriving late does not shorten it");
  lease.renewed(500);
  assert.equal(lease.until, 1200);
});

Deno.test("checkLeaseTiming refuses timing under which a holder could outlive its entry", () => {
  checkLeaseTiming(LEASE_TIMING);
  const bad = [
    { ttlMs: 1000, renewMs: 800, marginMs: 300, deadAfterMs: 1000 },
    { ttlMs: 1000, renewMs: 200, marginMs: 0, deadAfterMs: 600 },
    { ttlMs: 1000, renewMs: 200, marginMs: 300, deadAfterMs: 300 },
    { ttlMs: 1000, renewMs: 200, marginMs: 300, deadAfterMs: 1200 },
  ];
  for (const timing of bad) assert.throws(() => new SlotLease(timing), RangeError, JSON.stringify(timing));
  assert.ok(LEASE_TIMING.ttlMs - LEASE_TIMING.marginMs >= 0.8 * LEASE_TIMING.ttlMs);
});
