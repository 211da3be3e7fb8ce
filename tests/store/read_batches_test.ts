import assert from "node:assert/strict";
import fc from "fast-check";
import { ReadBatches } from "../../lib/store/_read_batches.ts";
import type { ReadBatchOptions } from "../../lib/store/_read_batches.ts";

/** A statement that answers when the test says so, and what it was sent. */
class Statements {
  sent: { queries: number[]; since: number }[] = [];
  #open: { resolve: (answers: number[]) => void; reject: (err: unknown) => void }[] = [];
  running = 0;
  mostRunning = 0;

  run = (queries: readonly number[], since: number): Promise<number[]> => {
    this.sent.push({ queries: [...queries], since });
    this.running++;
    this.mostRunning = Math.max(this.mostRunning, this.running);
    return new Promise<number[]>((resolve, reject) => this.#open.push({ resolve, reject })).finally(() => {
      this.running--;
    });
  };

  /** Answer the oldest statement still open with each query's square. */
  answer(): void {
    const { resolve } = this.#open.shift()!;
    resolve(this.sent[this.sent.length - this.#open.length - 1]!.queries.map((q) => q * q));
  }

  fail(err: unknown): void {
    this.#open.shift()!.reject(err);
  }

  get open(): number {
    return this.#open.length;
  }
}

/** Let the batches' microtasks and promise callbacks run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

const SHARED = new Error("Database not answering");

function options(extra: Partial<ReadBatchOptions> = {}): ReadBatchOptions {
  return { timeoutMs: 1000, expired: () => new Error("Too late"), shared: (err) => err === SHARED, ...extra };
}

Deno.test("ReadBatches sends the first read in its own turn and gathers those asked while it runs", async () => {
  const statements = new Statements();
  const batches = new ReadBatches(statements.run, options());
  const first = batches.read(2);
  await settle();
  assert.deepEqual(statements.sent.map((s) => s.queries), [[2]], "an idle database is asked at once");
  const later = [3, 4, 5].map((n) => batches.read(n));
  await settle();
  assert.equal(statements.sent.length, 1, "nothing more is sent while the first statement runs");
  assert.equal(batches.waiting, 3);
  statements.answer();
  assert.equal(await first, 4);
  await settle();
  assert.deepEqual(statements.sent.map((s) => s.queries), [[2], [3, 4, 5]]);
  statements.answer();
  assert.deepEqual(await Promise.all(later), [9, 16, 25]);
  await settle();
  assert.equal(statements.sent.length, 2, "nothing is sent for nothing");
});

Deno.test("ReadBatches: a statement refused for one value is tried read by read; only that read fails", async () => {
  const refused = new Error("invalid byte sequence");
  const sent: number[][] = [];
  const batches = new ReadBatches<number, number>((queries) => {
    sent.push([...queries]);
    return queries.includes(0) ? Promise.reject(refused) : Promise.resolve(queries.map((q) => q * 10));
  }, options());
  const reads = [1, 0, 2].map((n) => batches.read(n));
  const results = await Promise.allSettled(reads);
  assert.deepEqual(results, [
    { status: "fulfilled", value: 10 },
    { status: "rejected", reason: refused },
    { status: "fulfilled", value: 20 },
  ]);
  assert.deepEqual(sent, [[1, 0, 2], [1], [0], [2]]);
});

Deno.test("ReadBatches: a failure shared by all fails every read of the statement, sent once", async () => {
  const statements = new Statements();
  const batches = new ReadBatches(statements.run, options());
  const first = batches.read(1);
  await settle();
  const gathered = [2, 3].map((n) => batches.read(n));
  statements.answer();
  assert.equal(await first, 1);
  await settle();
  statements.fail(SHARED);
  for (const read of gathered) await assert.rejects(read, (err) => err === SHARED);
  assert.deepEqual(statements.sent.map((s) => s.queries), [[1], [2, 3]]);
});

Deno.test("ReadBatches: a read whose time ran out while it waited fails unsent; the statement's deadline is its newest read's", async () => {
  let now = 0;
  const statements = new Statements();
  const batches = new ReadBatches(statements.run, options({ timeoutMs: 100, now: () => now }));
  const first = batches.read(1);
  await settle();
  const stale = batches.read(2);
  now = 60;
  const fresh = [batches.read(3), batches.read(4)];
  now = 120;
  const staleFailed = assert.rejects(stale, /Too late/);
  statements.answer();
  assert.equal(await first, 1);
  await staleFailed;
  await settle();
  assert.deepEqual(statements.sent, [{ queries: [1], since: 0 }, { queries: [3, 4], since: 60 }]);
  statements.answer();
  assert.deepEqual(await Promise.all(fresh), [9, 16]);
});

Deno.test("ReadBatches: a statement answering a different number of rows fails its reads, not others", async () => {
  let calls = 0;
  const batches = new ReadBatches<number, number>(
    (queries) => Promise.resolve(calls++ === 0 ? [1] : queries.map((q) => -q)),
    options(),
  );
  // The first statement carries both and answers one row: each is then tried alone, and answered.
  assert.deepEqual(await Promise.all([batches.read(5), batches.read(6)]), [-5, -6]);
  assert.equal(calls, 3);
});

Deno.test("ReadBatches: one statement at a time, at most maxBatch reads each, every read answered its own", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.constant("answer" as const)), {
        maxLength: 60,
      }),
      async (maxBatch, steps) => {
        const statements = new Statements();
        const batches = new ReadBatches(statements.run, options({ maxBatch }));
        const reads: { n: number; answer: Promise<number> }[] = [];
        for (const step of steps) {
          if (step === "answer") {
            if (statements.open > 0) statements.answer();
          } else {
            reads.push({ n: step, answer: batches.read(step) });
          }
          await settle();
        }
        while (statements.open > 0) {
          statements.answer();
          await settle();
        }
        for (const read of reads) assert.equal(await read.answer, read.n * read.n);
        assert.ok(statements.mostRunning <= 1, "never two statements at once");
        assert.ok(statements.sent.every((s) => s.queries.length >= 1 && s.queries.length <= maxBatch));
        assert.deepEqual(
          statements.sent.flatMap((s) => s.queries),
          reads.map((r) => r.n),
          "each read sent once, in the order asked",
        );
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("ReadBatches: a statement is given the time its newest read has left, not its oldest's", async () => {
  let now = 0;
  const statements = new Statements();
  const batches = new ReadBatches(statements.run, options({ now: () => now }));
  const first = batches.read(1);
  await settle();
  now = 5;
  const old = batches.read(2);
  now = 900;
  const young = batches.read(3);
  statements.answer();
  assert.equal(await first, 1);
  await settle();
  // The oldest read's 95 ms left would fail the young read, asked 100 ms ago, far before its deadline.
  assert.deepEqual(statements.sent, [{ queries: [1], since: 0 }, { queries: [2, 3], since: 900 }]);
  statements.answer();
  assert.deepEqual(await Promise.all([old, young]), [4, 9]);
});

Deno.test("ReadBatches: a read fails at its own deadline while its statement, or the one it waits for, runs on", async () => {
  const statements = new Statements();
  const batches = new ReadBatches(statements.run, options({ timeoutMs: 50 }));
  const started = performance.now();
  const sent = batches.read(1);
  await settle();
  const waiting = batches.read(2);
  await assert.rejects(sent, /Too late/);
  await assert.rejects(waiting, /Too late/);
  assert.ok(performance.now() - started < 1000, "at the deadline, not when the statement ends");
  assert.equal(batches.waiting, 0, "a read that expired while it waited is no longer counted");
  // The statement answers late: nothing is settled twice, and the expired read is not sent.
  statements.answer();
  await settle();
  assert.deepEqual(statements.sent.map((s) => s.queries), [[1]]);
  const later = batches.read(3);
  await settle();
  statements.answer();
  assert.equal(await later, 9);
});

Deno.test("ReadBatches.settled waits for the reads asked so far, those waiting too, and no later ones", async () => {
  const statements = new Statements();
  const batches = new ReadBatches(statements.run, options());
  const sent = batches.read(1);
  await settle();
  const waiting = batches.read(2);
  let done = false;
  const settled = batches.settled().then(() => done = true);
  const later = batches.read(3);
  statements.answer();
  await settle();
  assert.equal(done, false, "the waiting read is not answered yet");
  statements.answer();
  await settled;
  assert.deepEqual(await Promise.all([sent, waiting, later]), [1, 4, 9]);
  await batches.settled();
});

Deno.test("ReadBatches: after a refusal, the reads are tried alone one at a time and answered in the order asked", async () => {
  const refused = new Error("invalid byte sequence");
  let running = 0;
  let mostRunning = 0;
  const sent: number[][] = [];
  const answered: number[] = [];
  const batches = new ReadBatches<number, number>(async (queries) => {
    sent.push([...queries]);
    running++;
    mostRunning = Math.max(mostRunning, running);
    try {
      if (queries.includes(0)) throw refused;
      // The first asked answers last if they run at once.
      await new Promise((resolve) => setTimeout(resolve, 30 - 10 * queries[0]!));
      return queries.map((q) => q * 10);
    } finally {
      running--;
    }
  }, options());
  const reads = [1, 0, 2].map((n) => batches.read(n).then((a) => void answered.push(a), () => {}));
  await Promise.all(reads);
  assert.deepEqual(sent, [[1, 0, 2], [1], [0], [2]]);
  assert.equal(mostRunning, 1, "never two statements at once");
  assert.deepEqual(answered, [10, 20], "in the order asked, as sequential reads are");
});
