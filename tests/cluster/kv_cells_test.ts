import assert from "node:assert/strict";
import type { KV } from "@nats-io/kv";
import { KvCells } from "../../lib/cluster/_kv_cells.ts";
import type { PendingWrite } from "../../lib/cluster/_kv_writes.ts";
import { BusUnavailableError } from "../../lib/cluster/nats_bus.ts";

const codec = {
  decode: (bytes: Uint8Array) => new TextDecoder().decode(bytes),
  encode: (text: string) => new TextEncoder().encode(text),
  empty: () => "",
};

/** A bucket whose answers the test decides (what NATS itself does is tested against a real server). */
function bucket(answers: { get?: () => Promise<unknown> }): () => Promise<KV> {
  const kv = { get: () => answers.get?.() ?? Promise.resolve(null) };
  return () => Promise.resolve(kv as unknown as KV);
}

/** Writes answered as the test decides, counting those forgotten (`cancel`). */
function writes(answer: () => Promise<number | null>) {
  const counts = { cancelled: 0 };
  const put = (): PendingWrite => ({ result: answer(), cancel: () => void counts.cancelled++ });
  return { put, counts };
}

Deno.test("KvCells turns a request NATS leaves unanswered into BusUnavailableError after the timeout", async () => {
  const silent = writes(() => new Promise(() => {}));
  const cells = new KvCells(bucket({ get: () => new Promise(() => {}) }), {
    codec,
    timeoutMs: 20,
    maxEntries: 10,
    put: silent.put,
  });
  await assert.rejects(
    cells.read("k"),
    (err) => err instanceof BusUnavailableError && /within 20 ms/.test(err.message),
  );
  await assert.rejects(cells.write("k", "v", 0), BusUnavailableError);
  assert.equal(silent.counts.cancelled, 1, "the write given up on is forgotten");
  assert.equal(cells.known("k"), undefined, "nothing was learnt");
});

Deno.test("KvCells says a write that found another revision is a conflict, and anything else unavailable", async () => {
  const conflict = writes(() => Promise.resolve(null));
  const conflicting = new KvCells(bucket({}), { codec, timeoutMs: 1000, maxEntries: 10, put: conflict.put });
  assert.equal(await conflicting.write("k", "v", 3), null);
  assert.equal(conflicting.known("k"), undefined, "nothing was learnt from a conflict");
  assert.equal(conflict.counts.cancelled, 1, "an answered write is forgotten too");
  const refused = writes(() =>
    Promise.reject(new BusUnavailableError("NATS refused a write: stream not found"))
  );
  const broken = new KvCells(bucket({ get: () => Promise.reject(new Error("no responders")) }), {
    codec,
    timeoutMs: 1000,
    maxEntries: 10,
    put: refused.put,
  });
  await assert.rejects(
    broken.write("k", "v", 3),
    (err) => err instanceof BusUnavailableError && /stream not found/.test(err.message),
  );
  await assert.rejects(
    broken.read("k"),
    (err) => err instanceof BusUnavailableError && /no responders/.test(err.message),
  );
  const faulty = new KvCells(bucket({}), {
    codec,
    timeoutMs: 1000,
    maxEntries: 10,
    put: writes(() => Promise.reject(new TypeError("boom"))).put,
  });
  await assert.rejects(
    faulty.write("k", "v", 3),
    (err) => err instanceof BusUnavailableError && /boom/.test(err.message),
  );
  const unopened = new KvCells(() => Promise.reject(new Error("timeout")), {
    codec,
    timeoutMs: 1000,
    maxEntries: 10,
    put: writes(() => Promise.resolve(1)).put,
  });
  await assert.rejects(unopened.read("k"), BusUnavailableError);
  await assert.rejects(unopened.write("k", "v", 0), BusUnavailableError);
});

Deno.test("KvCells mirrors at most maxEntries keys, and never starts a write from a record changed only here", async () => {
  let rev = 0;
  const cells = new KvCells(bucket({}), {
    codec,
    timeoutMs: 1000,
    maxEntries: 3,
    put: writes(() => Promise.resolve(++rev)).put,
  });
  for (let i = 0; i < 10; i++) await cells.write(`k${i}`, `v${i}`, 0);
  assert.equal(cells.size, 3);
  assert.equal(cells.known("k0"), undefined, "the least recently used went first");
  assert.deepEqual(cells.known("k9"), { record: "v9", rev: 10 });
  cells.setLocal("k9", "changed alone");
  assert.equal(cells.known("k9")?.record, "changed alone", "what the node knows");
  assert.equal(cells.known("k9", { fromBus: true }), undefined, "not what the bucket holds at rev 10");
});

Deno.test("KvCells.open reports a bucket that cannot be opened as BusUnavailableError", async () => {
  const put = writes(() => Promise.resolve(1)).put;
  const cells = new KvCells(() => Promise.reject(new Error("no responders")), {
    codec,
    timeoutMs: 1000,
    maxEntries: 1,
    put,
  });
  await assert.rejects(
    cells.open(),
    (err) => err instanceof BusUnavailableError && /opening the bucket/.test(err.message),
  );
  await new KvCells(bucket({}), { codec, timeoutMs: 1000, maxEntries: 1, put }).open();
});

Deno.test("KvCells never starts a write it gave up on while the bucket was opening", async () => {
  let calls = 0;
  let cancelled = 0;
  // NATS never answers the write, should it be sent: only a cancel forgets it.
  const put = (): PendingWrite => {
    calls++;
    return { result: new Promise(() => {}), cancel: () => void cancelled++ };
  };
  let opened!: () => void;
  const slowOpen = new Promise<void>((resolve) => opened = resolve);
  const kv = { get: () => Promise.resolve(null) } as unknown as KV;
  const cells = new KvCells(() => slowOpen.then(() => kv), { codec, timeoutMs: 20, maxEntries: 10, put });
  await assert.rejects(
    cells.write("k", "v", 0),
    (err) => err instanceof BusUnavailableError && /within 20 ms/.test(err.message),
  );
  opened();
  await new Promise((r) => setTimeout(r, 0));
  // The caller was told the write failed: sent now, it would land unseen (and its reply be waited for
  // forever, nothing left to cancel it).
  assert.equal(calls - cancelled, 0, "no write under way that nobody will cancel");
  assert.equal(calls, 0, "the write was not sent after the caller gave up");
});
