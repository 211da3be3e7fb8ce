import assert from "node:assert/strict";
import { DeleteMarkers } from "../../lib/cluster/_delete_markers.ts";

Deno.test("DeleteMarkers gives the markers once they are old, oldest first, and forgets a key written again", () => {
  const markers = new DeleteMarkers(1000);
  markers.seen("p.n1.bob", 5, true, 0);
  markers.seen("n.n2", 6, true, 100);
  markers.seen("p.n1.carol", 7, true, 200);
  markers.seen("p.n1.carol", 8, false, 300);
  markers.seen("n.n1", 9, false, 300);
  assert.equal(markers.size, 2, "a value forgets its key's marker; values are never noted");
  assert.deepEqual(markers.take(999), []);
  assert.deepEqual(markers.take(1000), [{ key: "p.n1.bob", rev: 5 }]);
  // Deleted again later: the newer marker, and counted from then.
  markers.seen("n.n2", 12, true, 900);
  assert.deepEqual(markers.take(1500), []);
  assert.deepEqual(markers.take(1900), [{ key: "n.n2", rev: 12 }]);
  assert.equal(markers.size, 0);
});

Deno.test("DeleteMarkers gives markers whose purge failed first next time, and drops by another age", () => {
  const markers = new DeleteMarkers(1000);
  markers.seen("a", 1, true, 0);
  markers.seen("b", 2, true, 500);
  const due = markers.take(1000);
  assert.deepEqual(due, [{ key: "a", rev: 1 }]);
  markers.retry(due);
  assert.equal(markers.size, 2);
  assert.deepEqual(markers.take(1000), [{ key: "a", rev: 1 }], "given back, due at once");
  assert.deepEqual(markers.take(2400, 2000), [], "b is 1900 ms old");
  assert.deepEqual(markers.take(2500, 2000), [{ key: "b", rev: 2 }]);
});
