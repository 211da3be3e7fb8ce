import assert from "node:assert/strict";
import { LatestWrites } from "../../lib/cluster/_latest_writes.ts";
import type { WriteTarget } from "../../lib/cluster/_latest_writes.ts";

const text = new TextDecoder();
const bytes = (s: string) => new TextEncoder().encode(s);

/** A bucket whose writes complete when the test says, recording what reached it. */
class SlowBucket {
  log: string[] = [];
  pending: { op: string; done(ok: boolean): void }[] = [];
  target: WriteTarget = {
    put: (key, value) => this.#op(`put ${key}=${text.decode(value as Uint8Array)}`).then(() => 1),
    delete: (key) => this.#op(`delete ${key}`),
  };

  #op(op: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({
        op,
        done: (ok) => {
          if (ok) this.log.push(op);
          (ok ? resolve : () => reject(new Error("bus down")))();
        },
      });
    });
  }

  async complete(ok = true): Promise<string[]> {
    const batch = this.pending.splice(0);
    for (const p of batch) p.done(ok);
    await new Promise((r) => setTimeout(r, 0));
    return batch.map((p) => p.op);
  }
}

Deno.test("LatestWrites writes a key once at a time, and only its newest value after that", async () => {
  const bucket = new SlowBucket();
  const writes = new LatestWrites(bucket.target, { maxInFlight: 10 });
  writes.set("a", bytes("1"));
  writes.set("a", bytes("2"));
  writes.set("a", bytes("3"));
  writes.set("b", null);
  assert.deepEqual(await bucket.complete(), ["put a=1", "delete b"], "one write of a under way");
  assert.deepEqual(await bucket.complete(), ["put a=3"], "2 was never written: 3 replaced it");
  assert.deepEqual(await bucket.complete(), []);
  assert.ok(writes.settled);
  writes.set("a", null);
  assert.deepEqual(await bucket.complete(), ["delete a"]);
  writes.rewriteAll();
  assert.deepEqual(await bucket.complete(), [], "a deleted key is not written again");
});

Deno.test("LatestWrites keeps at most maxInFlight writes under way", async () => {
  const bucket = new SlowBucket();
  const writes = new LatestWrites(bucket.target, { maxInFlight: 2 });
  for (const key of ["a", "b", "c", "d", "e"]) writes.set(key, bytes(key));
  assert.equal(bucket.pending.length, 2);
  assert.deepEqual(await bucket.complete(), ["put a=a", "put b=b"]);
  assert.deepEqual(await bucket.complete(), ["put c=c", "put d=d"]);
  assert.deepEqual(await bucket.complete(), ["put e=e"]);
  assert.ok(writes.settled);
});

Deno.test("LatestWrites tries a failed write again only when told, with the newest value", async () => {
  const bucket = new SlowBucket();
  const writes = new LatestWrites(bucket.target, { maxInFlight: 10 });
  writes.set("a", bytes("1"));
  await bucket.complete(false);
  assert.equal(writes.failures, 1);
  assert.ok(writes.settled, "nothing under way: the failure waits");
  assert.equal(bucket.pending.length, 0);
  writes.set("b", bytes("x"));
  await bucket.complete();
  writes.retryFailed();
  assert.deepEqual(await bucket.complete(), ["put a=1"]);
  writes.deleteAll();
  assert.deepEqual((await bucket.complete()).sort(), ["delete a", "delete b"]);
  assert.deepEqual(bucket.log.slice(0, 2), ["put b=x", "put a=1"], "the failed put made only when retried");
});

Deno.test("LatestWrites.whenSettled waits for the writes, or gives up after its grace", async () => {
  const bucket = new SlowBucket();
  const writes = new LatestWrites(bucket.target, { maxInFlight: 10 });
  writes.set("a", bytes("1"));
  await writes.whenSettled(30);
  assert.ok(!writes.settled, "it gave up with the write still under way");
  const waiting = writes.whenSettled(10_000);
  await bucket.complete();
  await waiting;
  assert.ok(writes.settled);
});
