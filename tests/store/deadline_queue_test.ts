import assert from "node:assert/strict";
import fc from "fast-check";
import { DeadlineQueue } from "../../lib/store/deadline_queue.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Wait until no deadline is open (a loaded machine's timers run late), at most 5 s. */
async function drained(deadlines: DeadlineQueue): Promise<void> {
  for (const started = performance.now(); deadlines.open > 0;) {
    assert.ok(performance.now() - started < 5000, `${deadlines.open} deadlines still open after 5 s`);
    await sleep(5);
  }
}

Deno.test("DeadlineQueue: each deadline expires once, not before its time, in the order started", async () => {
  const deadlines = new DeadlineQueue(150);
  const expired: { n: number; late: number }[] = [];
  for (let n = 0; n < 5; n++) {
    const started = performance.now();
    deadlines.start(() => expired.push({ n, late: performance.now() - started - 150 }));
    await sleep(2);
  }
  await drained(deadlines);
  assert.deepEqual(expired.map((e) => e.n), [0, 1, 2, 3, 4]);
  for (const { n, late } of expired) assert.ok(late >= 0, `deadline ${n} expired ${-late} ms early`);
  assert.equal(deadlines.open, 0);
});

Deno.test("DeadlineQueue: an ended deadline never expires, however it is placed among open ones", async () => {
  const deadlines = new DeadlineQueue(15);
  const expired: string[] = [];
  const endFirst = deadlines.start(() => expired.push("first"));
  deadlines.start(() => expired.push("second"));
  const endThird = deadlines.start(() => expired.push("third"));
  deadlines.start(() => expired.push("fourth"));
  endFirst();
  endThird();
  endThird();
  assert.equal(deadlines.open, 2);
  await drained(deadlines);
  assert.deepEqual(expired, ["second", "fourth"]);
});

Deno.test("DeadlineQueue: ending every deadline leaves no timer behind", () => {
  // The test's sanitizers fail it if a timer is still pending when it returns.
  const deadlines = new DeadlineQueue(10_000);
  const ends = Array.from({ length: 3 }, () => deadlines.start(() => assert.fail("expired")));
  for (const end of ends) end();
  assert.equal(deadlines.open, 0);
  // Started again from empty: a fresh timer, ended the same way.
  deadlines.start(() => assert.fail("expired"))();
});

Deno.test("DeadlineQueue: an expiring deadline may start and end others", async () => {
  const deadlines = new DeadlineQueue(10);
  const expired: string[] = [];
  let endLater = (): void => {};
  deadlines.start(() => {
    expired.push("first");
    endLater();
    deadlines.start(() => expired.push("started while expiring"));
  });
  endLater = deadlines.start(() => expired.push("ended by the first"));
  await drained(deadlines);
  assert.deepEqual(expired, ["first", "started while expiring"]);
  assert.equal(deadlines.open, 0);
});

Deno.test("DeadlineQueue: whatever the order of starts and ends, exactly the deadlines not ended expire", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.oneof(
          fc.constant({ op: "start" as const }),
          fc.record({ op: fc.constant("end" as const), which: fc.nat() }),
          fc.record({ op: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 6 }) }),
        ),
        { maxLength: 30 },
      ),
      async (steps) => {
        const deadlines = new DeadlineQueue(5);
        const started: { end: () => void; ended: boolean; expired: number; at: number }[] = [];
        for (const step of steps) {
          if (step.op === "start") {
            const at = performance.now() + 5;
            const entry = { end: () => {}, ended: false, expired: 0, at };
            entry.end = deadlines.start(() => {
              assert.ok(performance.now() >= entry.at, "not before its time");
              entry.expired++;
            });
            started.push(entry);
          } else if (step.op === "end" && started.length > 0) {
            const entry = started[step.which % started.length]!;
            if (entry.expired === 0) entry.ended = true;
            entry.end();
          } else if (step.op === "wait") {
            await sleep(step.ms);
          }
        }
        await drained(deadlines);
        for (const entry of started) assert.equal(entry.expired, entry.ended ? 0 : 1);
        assert.equal(deadlines.open, 0);
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("DeadlineQueue: many ended around a few open, the open ones still expire in order and on time", async () => {
  const deadlines = new DeadlineQueue(40);
  const expired: number[] = [];
  const starts = new Map<number, number>();
  // 600 deadlines over several of the timer's turns; all but every 97th ended at once or a little later.
  for (let n = 0; n < 600; n++) {
    starts.set(n, performance.now());
    const end = deadlines.start(() => {
      assert.ok(performance.now() - starts.get(n)! >= 40, `deadline ${n} expired early`);
      expired.push(n);
    });
    if (n % 97 === 0) continue;
    if (n % 2 === 0) end();
    else setTimeout(end, 5);
    if (n % 50 === 0) await sleep(7);
  }
  await drained(deadlines);
  assert.deepEqual(expired, [0, 97, 194, 291, 388, 485, 582]);
});
