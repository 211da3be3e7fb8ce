import assert from "node:assert/strict";
import { NatsBus } from "../../lib/cluster/nats_bus.ts";
import { natsUrl } from "./_nats_kit.ts";

const url = natsUrl();
const ignore = url === undefined;

function freshPrefix(): string {
  return `bkt${crypto.getRandomValues(new Uint8Array(4)).toHex()}`;
}

/** A JetStream API request by hand (the tests have no JetStream manager), its answer as JSON. */
async function jsApi(
  bus: NatsBus,
  subject: string,
  body: unknown,
): Promise<{ error?: { err_code: number } }> {
  const reply = await bus.nc.request(`$JS.API.${subject}`, JSON.stringify(body), { timeout: 5000 });
  return reply.json();
}

Deno.test({
  name: "NatsBus.kv: nodes starting together on a fresh NATS all open the same new bucket",
  ignore,
  fn: async () => {
    for (let round = 0; round < 5; round++) {
      const prefix = freshPrefix();
      const buses = await Promise.all(
        Array.from({ length: 6 }, (_, i) => NatsBus.connect({ servers: [url!], nodeId: `n${i}`, prefix })),
      );
      try {
        const kvs = await Promise.all(buses.map((bus) => bus.kv("together", { ttlMs: 60_000, history: 1 })));
        // One bucket: what one node writes, another reads.
        await kvs[0]!.put("k", new TextEncoder().encode("v"));
        assert.equal(new TextDecoder().decode((await kvs[5]!.get("k"))!.value), "v");
        await kvs[0]!.destroy();
      } finally {
        await Promise.all(buses.map((bus) => bus.close()));
      }
    }
  },
});

Deno.test({
  name: "NatsBus.kv: a bucket JetStream refuses for a moment as overlapping (another node making it) opens",
  ignore,
  fn: async () => {
    const prefix = freshPrefix();
    const bus = await NatsBus.connect({ servers: [url!], nodeId: "n1", prefix });
    const blocker = `${prefix}_blocker`;
    try {
      // Another stream on the bucket's subjects, as a bucket half made by another node looks to JetStream.
      const made = await jsApi(bus, `STREAM.CREATE.${blocker}`, {
        name: blocker,
        subjects: [`$KV.${bus.bucketName("racy")}.>`],
        storage: "memory",
      });
      assert.equal(made.error, undefined, JSON.stringify(made));
      const opening = bus.kv("racy", { history: 1 });
      await new Promise((resolve) => setTimeout(resolve, 30));
      assert.equal((await jsApi(bus, `STREAM.DELETE.${blocker}`, {})).error, undefined);
      const kv = await opening;
      await kv.put("k", new Uint8Array([1]));
      assert.equal((await kv.get("k"))?.value[0], 1);
      await kv.destroy();
    } finally {
      await jsApi(bus, `STREAM.DELETE.${blocker}`, {}).catch(() => {});
      await bus.close();
    }
  },
});
