import assert from "node:assert/strict";
import type { NatsConnection } from "@nats-io/transport-node";
import { BusUnavailableError, NatsBus } from "../../lib/cluster/nats_bus.ts";
import { KvWrites } from "../../lib/cluster/_kv_writes.ts";
import { natsUrl } from "./_nats_kit.ts";
import { TcpProxy } from "../_tcp_proxy.ts";

const url = natsUrl();
const ignore = url === undefined;

/** A bus with a bucket of its own (a fresh prefix), removed at the end. */
async function withBucket(fn: (bus: NatsBus, bucket: string) => Promise<void>): Promise<void> {
  const prefix = `kvw${crypto.getRandomValues(new Uint8Array(4)).toHex()}`;
  const bus = await NatsBus.connect({ servers: [url!], nodeId: "kv-writes", prefix });
  try {
    await bus.kv("cells", { history: 1 });
    await fn(bus, bus.bucketName("cells"));
  } finally {
    // A test may have closed the connection: the bucket is removed on a fresh one.
    const cleaner = await NatsBus.connect({ servers: [url!], nodeId: "kv-writes-cleaner", prefix });
    await (await cleaner.kv("cells")).destroy().catch(() => {});
    await cleaner.close();
    await bus.close();
  }
}

const bytes = (text: string) => new TextEncoder().encode(text);

/** `promise`, or a failure after `ms` (a guard against a hang, not a speed target). */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`No answer in ${ms} ms`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "KvWrites: a write at the key's latest revision lands, one at an older revision is a conflict",
  ignore,
  fn: () =>
    withBucket(async (bus, bucket) => {
      const kv = await bus.kv("cells");
      const first = await bus.writes.put(bucket, "s.a", bytes("one"), 0).result;
      assert.ok(first !== null && first > 0);
      assert.equal(await bus.writes.put(bucket, "s.a", bytes("again from nothing"), 0).result, null);
      const second = await bus.writes.put(bucket, "s.a", bytes("two"), first).result;
      assert.ok(second !== null && second > first);
      assert.equal(await bus.writes.put(bucket, "s.a", bytes("stale"), first).result, null, "first is stale");
      const entry = await kv.get("s.a");
      assert.equal(new TextDecoder().decode(entry!.value), "two", "a conflict wrote nothing");
      assert.equal(entry!.revision, second);
      assert.equal(bus.writes.waiting, 0, "every answered write is forgotten");
    }),
});

Deno.test({
  name: "KvWrites: many writes at once each get their own answer",
  ignore,
  fn: () =>
    withBucket(async (bus, bucket) => {
      const revisions = await Promise.all(
        Array.from({ length: 300 }, (_, i) => bus.writes.put(bucket, `p.k${i}`, bytes(`v${i}`), 0).result),
      );
      assert.equal(new Set(revisions).size, 300, "distinct revisions");
      assert.ok(revisions.every((r) => r !== null));
      // Half of them again: the even ones at their revision (land), the odd ones at 0 (conflict).
      const again = await Promise.all(
        revisions.map((rev, i) =>
          bus.writes.put(bucket, `p.k${i}`, bytes("w"), i % 2 === 0 ? rev! : 0).result
        ),
      );
      again.forEach((rev, i) => assert.equal(rev === null, i % 2 === 1, `key ${i}`));
      assert.equal(bus.writes.waiting, 0);
    }),
});

Deno.test({
  name: "KvWrites: a bucket that does not exist, cancelled writes and a closed connection",
  ignore,
  fn: () =>
    withBucket(async (bus, bucket) => {
      await assert.rejects(
        bus.writes.put(bus.bucketName("nothing-here"), "s.a", bytes("x"), 0).result,
        (err) => err instanceof BusUnavailableError && /no stream/.test(err.message),
      );
      // Given up on before the turn ended: never sent.
      const unsent = bus.writes.put(bucket, "s.u", bytes("x"), 0);
      unsent.cancel();
      assert.equal(bus.writes.waiting, 0, "forgotten at once");
      // Given up on once sent: its reply, when it comes, is ignored; the write itself lands.
      const cancelled = bus.writes.put(bucket, "s.c", bytes("x"), 0);
      await new Promise((r) => setImmediate(r));
      cancelled.cancel();
      assert.equal(bus.writes.waiting, 0, "forgotten at once");
      const kv = await bus.kv("cells");
      for (let i = 0; i < 50 && (await kv.get("s.c")) === null; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(await kv.get("s.c"), "the write sent was made");
      assert.equal(await kv.get("s.u"), null, "the write given up on before it was sent was not");
      await bus.nc.close();
      await assert.rejects(
        bus.writes.put(bucket, "s.d", bytes("x"), 0).result,
        (err) => err instanceof BusUnavailableError && /could not take a write/.test(err.message),
      );
      assert.equal(bus.writes.waiting, 0);
    }),
});

Deno.test({
  name: "KvWrites: writes are answered again after the connection came back",
  ignore,
  fn: async () => {
    const proxy = new TcpProxy(url!);
    const prefix = `kvw${crypto.getRandomValues(new Uint8Array(4)).toHex()}`;
    const bus = await NatsBus.connect({ servers: [proxy.url], nodeId: "kv-writes-reconnect", prefix });
    try {
      await bus.kv("cells", { history: 1 });
      const bucket = bus.bucketName("cells");
      const first = await bus.writes.put(bucket, "s.a", bytes("one"), 0).result;
      assert.ok(first !== null && first > 0);
      const down = new Promise<void>((resolve) => {
        const stop = bus.onConnection((up) => {
          if (!up) (stop(), resolve());
        });
      });
      await proxy.cut();
      await down;
      // Sent while down: given up on by its caller (KvCells does after its timeout).
      const lost = bus.writes.put(bucket, "s.b", bytes("lost"), 0);
      lost.cancel();
      const back = new Promise<void>((resolve) => {
        const stop = bus.onConnection((up) => {
          if (up) (stop(), resolve());
        });
      });
      proxy.restore();
      await back;
      // The reply subscription was made again on the new connection: its answers come.
      const second = await bus.writes.put(bucket, "s.a", bytes("two"), first).result;
      assert.ok(second !== null && second > first);
      assert.equal(await bus.writes.put(bucket, "s.a", bytes("stale"), first).result, null);
      assert.equal(bus.writes.waiting, 0);
    } finally {
      const cleaner = await NatsBus.connect({ servers: [url!], nodeId: "kv-writes-cleaner", prefix });
      await (await cleaner.kv("cells")).destroy().catch(() => {});
      await cleaner.close();
      await bus.close();
      await proxy.close();
    }
  },
});

Deno.test({
  name: "KvWrites: an answer of an unexpected form fails its write and leaves the connection reading",
  ignore,
  fn: () =>
    withBucket(async (bus, bucket) => {
      // Something other than JetStream answers on a bucket's subject (JetStream itself never sends these).
      const other = await NatsBus.connect({
        servers: [url!],
        nodeId: "kv-writes-impostor",
        prefix: bus.prefix,
      });
      const odd = bus.bucketName("odd");
      const answers = ['{"error":null}', '{"error":null,"seq":7}'];
      let n = 0;
      other.nc.subscribe(`$KV.${odd}.>`, {
        callback: (_err, msg) => void msg.respond(answers[n++ % answers.length]),
      });
      await other.nc.flush();
      try {
        for (let i = 0; i < answers.length; i++) {
          const write = bus.writes.put(odd, "s.a", bytes("x"), 0);
          await assert.rejects(within(2000, write.result), BusUnavailableError);
          write.cancel();
        }
        assert.equal(bus.writes.waiting, 0);
        // The connection still reads what the server sends: a round trip, and a real write's answer.
        await within(2000, bus.nc.flush());
        const real = bus.writes.put(bucket, "s.a", bytes("one"), 0);
        try {
          assert.ok(await within(2000, real.result));
        } finally {
          real.cancel();
        }
      } finally {
        await other.close();
      }
    }),
});

/** A connection that records what is published, for the order and timing of sends (no server). */
function recordingConnection(fail: (subject: string) => boolean = () => false) {
  const published: string[] = [];
  const nc = {
    subscribe: () => ({ unsubscribe() {} }),
    publish: (subject: string) => {
      if (fail(subject)) throw new Error("connection closed");
      published.push(subject);
    },
  } as unknown as NatsConnection;
  return { nc, published };
}

Deno.test("KvWrites sends the writes asked in one turn together at its end, in order, not those given up on", async () => {
  const { nc, published } = recordingConnection();
  const writes = new KvWrites(nc);
  const a = writes.put("b", "s.a", bytes("1"), 0);
  const given = writes.put("b", "s.given-up", bytes("2"), 0);
  const c = writes.put("b", "a.c", bytes("3"), 4);
  given.cancel();
  assert.deepEqual(published, [], "nothing sent during the turn");
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(published, ["$KV.b.s.a", "$KV.b.a.c"]);
  assert.equal(writes.waiting, 2, "the two sent wait for their answers");
  a.cancel();
  c.cancel();
});

Deno.test("KvWrites: a write the connection refuses fails alone; the others of its turn are sent", async () => {
  const { nc, published } = recordingConnection((subject) => subject.endsWith(".bad"));
  const writes = new KvWrites(nc);
  const good = writes.put("b", "s.good", bytes("1"), 0);
  const bad = writes.put("b", "s.bad", bytes("2"), 0);
  await assert.rejects(
    bad.result,
    (err) => err instanceof BusUnavailableError && /could not take a write of s\.bad/.test(err.message),
  );
  assert.deepEqual(published, ["$KV.b.s.good"]);
  good.cancel();
  assert.equal(writes.waiting, 0);
});
