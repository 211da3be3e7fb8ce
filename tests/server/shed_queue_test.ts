import assert from "node:assert/strict";
import fc from "fast-check";
import { shedGroup, ShedQueue } from "../../lib/server/_shed_queue.ts";

Deno.test("ShedQueue picks the oldest entry of the source holding the most", () => {
  const queue = new ShedQueue<string>();
  const keys = Array.from({ length: 6 }, () => ({}));
  queue.add(keys[0]!, "a", "a1");
  queue.add(keys[1]!, "b", "b1");
  queue.add(keys[2]!, "b", "b2");
  assert.equal(queue.next()?.[1], "b1");
  queue.add(keys[3]!, "a", "a2");
  assert.equal(queue.next()?.[1], "b1", "a tie goes to the source that got there first");
  queue.delete(keys[1]!);
  assert.equal(queue.next()?.[1], "a1");
  assert.equal(queue.size, 3);
  assert.equal(queue.delete(keys[1]!), false);
  queue.add(keys[0]!, "a", "a1 again");
  assert.equal(queue.next()?.[1], "a2", "a key added again is the youngest of its source");
  for (const key of keys) queue.delete(key);
  assert.equal(queue.next(), undefined);
  assert.equal(queue.size, 0);
});

for (
  const [what, group] of [
    ["each source alone", (source: string) => source],
    ["a and b in one group", (source: string) => source === "b" ? "a" : source],
  ] as const
) {
  Deno.test(`ShedQueue agrees with a plain scan after any sequence of adds and deletes, ${what}`, () => {
    const op = fc.oneof(
      fc.record({ add: fc.integer({ min: 0, max: 19 }), source: fc.constantFrom("a", "b", "c", "d") }),
      fc.record({ del: fc.integer({ min: 0, max: 19 }) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const keys = Array.from({ length: 20 }, () => ({}));
      const queue = new ShedQueue<number>({ group });
      // The model: entries in insertion order, and when each group last reached its current count.
      let model: { id: number; source: string }[] = [];
      const reached = new Map<string, number>();
      let clock = 0;
      const count = (g: string) => model.filter((e) => group(e.source) === g).length;
      for (const o of ops) {
        if ("add" in o) {
          const old = model.find((e) => e.id === o.add);
          if (old) {
            model = model.filter((e) => e !== old);
            reached.set(group(old.source), clock++);
          }
          queue.add(keys[o.add]!, o.source, o.add);
          model.push({ id: o.add, source: o.source });
          reached.set(group(o.source), clock++);
        } else {
          const old = model.find((e) => e.id === o.del);
          assert.equal(queue.delete(keys[o.del]!), old !== undefined);
          if (old) {
            model = model.filter((e) => e !== old);
            reached.set(group(old.source), clock++);
          }
        }
        assert.equal(queue.size, model.length);
        for (const source of ["a", "b", "c", "d"]) {
          const mine = model.filter((e) => e.source === source).map((e) => e.id);
          assert.equal(queue.sizeOf(source), mine.length);
          assert.deepEqual([...queue.entriesOf(source)].map(([, v]) => v), mine);
        }
        const groups = [...new Set(model.map((e) => group(e.source)))];
        const most = Math.max(0, ...groups.map(count));
        const heaviest = groups.filter((g) =>
          count(g) === most
        ).sort((x, y) => reached.get(x)! - reached.get(y)!)[0];
        const expected = model.find((e) => group(e.source) === heaviest);
        const next = queue.next();
        assert.equal(next?.[1], expected?.id);
        assert.equal(next?.[2], expected?.source);
      }
    }));
  });
}

Deno.test("ShedQueue picks from the group holding the most, its oldest, and counts per source within it", () => {
  const queue = new ShedQueue<string>({ group: shedGroup });
  const keys = Array.from({ length: 5 }, () => ({}));
  queue.add(keys[0]!, "192.0.2.1", "lone");
  queue.add(keys[1]!, "2001:db8:ff:1::/64", "x1");
  queue.add(keys[2]!, "2001:db8:ff:2::/64", "x2");
  queue.add(keys[3]!, "2001:db8:1:1::/64", "y1");
  assert.equal(queue.next()?.[1], "x1", "the /48 holding two, though each /64 holds one");
  assert.deepEqual(queue.next()?.[2], "2001:db8:ff:1::/64", "with its own source");
  assert.equal(queue.sizeOf("2001:db8:ff:1::/64"), 1);
  assert.deepEqual([...queue.entriesOf("2001:db8:ff:2::/64")].map(([, v]) => v), ["x2"]);
  queue.delete(keys[1]!);
  assert.equal(queue.next()?.[1], "lone", "one each: the group that got there first");
  queue.add(keys[4]!, "2001:db8:1:2::/64", "y2");
  assert.equal(queue.next()?.[1], "y1");
  assert.equal(queue.size, 4);
});
