import assert from "node:assert/strict";
import { RelayDirectory } from "../../lib/cluster/relay_directory.ts";
import { relayIdIn } from "../../lib/cluster/relay_slots.ts";
import type { EndpointRecord } from "../../lib/cluster/_relay_wire.ts";

const A = "00000000000000aa";
const B = "00000000000000bb";
const C = "00000000000000cc";

function record(user: string, slot: number, claim: string, since: number, port = 5000): EndpointRecord {
  return { user, relayId: relayIdIn(slot, 7), hostname: "192.0.2.1", port, since, claim };
}

Deno.test("RelayDirectory names the newest endpoint of a user among live slots", () => {
  const dir = new RelayDirectory({ deadAfterMs: 1000 });
  dir.slotSeen(1, { node: "n1", claim: A }, 0);
  dir.slotSeen(2, { node: "n2", claim: B }, 0);
  dir.endpointSeen("alice.1", record("alice", 1, A, 100, 5001));
  dir.endpointSeen("alice.2", record("alice", 2, B, 200, 5002));
  dir.endpointSeen("bob.1", record("bob", 1, A, 50));
  assert.equal(dir.newest("alice", 500)?.port, 5002);
  assert.equal(dir.newest("alice", 500, new Set([B]))?.port, 5001, "this node's own hold is left out");
  assert.equal(dir.newest("bob", 500)?.relayId, relayIdIn(1, 7));
  assert.equal(dir.newest("carol", 500), null);
  dir.endpointSeen("alice.2", null);
  assert.equal(dir.newest("alice", 500)?.port, 5001, "a deleted entry is gone");
  assert.equal(dir.size, 2);
});

Deno.test("RelayDirectory forgets a slot not renewed in time, and every endpoint under it", () => {
  const dir = new RelayDirectory({ deadAfterMs: 1000 });
  dir.slotSeen(1, { node: "n1", claim: A }, 0);
  dir.slotSeen(2, { node: "n2", claim: B }, 0);
  dir.endpointSeen("alice.1", record("alice", 1, A, 100, 5001));
  dir.endpointSeen("alice.2", record("alice", 2, B, 200, 5002));
  dir.slotSeen(1, { node: "n1", claim: A }, 900);
  assert.equal(dir.newest("alice", 999)?.port, 5002);
  assert.equal(dir.newest("alice", 1000)?.port, 5001, "slot 2 went silent at 0: gone at 1000");
  assert.deepEqual(dir.liveSlots(1000), [1]);
  assert.equal(dir.holder(2, 1000), null);
  assert.equal(dir.newest("alice", 1900), null);
  dir.slotSeen(1, null, 950);
  assert.equal(dir.holder(1, 951), null, "a removed slot is gone at once");
});

Deno.test("RelayDirectory never names an endpoint written under an earlier hold of its slot", () => {
  const dir = new RelayDirectory({ deadAfterMs: 1000 });
  dir.slotSeen(3, { node: "n1", claim: A }, 0);
  dir.endpointSeen("alice.3", record("alice", 3, A, 100));
  // n1 died; n3 holds slot 3 now, and alice's old entry is still in the bucket.
  dir.slotSeen(3, { node: "n3", claim: C }, 500);
  assert.equal(dir.newest("alice", 600), null);
  assert.deepEqual(dir.holder(3, 600), { node: "n3", claim: C });
  dir.endpointSeen("bob.3", record("bob", 3, C, 700));
  assert.equal(dir.newest("bob", 800)?.since, 700);
});

Deno.test("RelayDirectory follows an entry whose user changes under the same key", () => {
  const dir = new RelayDirectory({ deadAfterMs: 1000 });
  dir.slotSeen(1, { node: "n1", claim: A }, 0);
  dir.endpointSeen("k.1", record("alice", 1, A, 1));
  dir.endpointSeen("k.1", record("bob", 1, A, 2));
  assert.equal(dir.newest("alice", 10), null);
  assert.equal(dir.newest("bob", 10)?.since, 2);
  assert.equal(dir.size, 1);
});
