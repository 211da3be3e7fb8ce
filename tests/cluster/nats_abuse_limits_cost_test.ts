import assert from "node:assert/strict";
import type { NatsAbuseLimits } from "../../lib/cluster/nats_abuse_limits.ts";
import type { NatsBus } from "../../lib/cluster/nats_bus.ts";
import { limitOptions } from "../../lib/server/local_parts.ts";
import { limitNodes, natsUrl, SETTINGS } from "./_limit_nodes.ts";

const ignore = natsUrl() === undefined;

/** The limit calls of one password LOGIN and its correct PROOF, in the order a session makes them. */
async function passwordLogin(limits: NatsAbuseLimits, address: string, account: string, now: number) {
  const gate = await limits.loginGate(address, account, now);
  assert.equal(gate.refusal, null);
  assert.equal(gate.waitMs, 0);
  assert.equal(await limits.beginProof(address, account, now), 0);
  assert.equal(await limits.endProof(address, account, now, true, {}, {}), null);
}

/** Messages this node sent to NATS while `fn` ran (each KV read or write is one request). */
async function sent(bus: NatsBus, fn: () => Promise<void>): Promise<number> {
  const before = bus.nc.stats().outMsgs;
  await fn();
  return bus.nc.stats().outMsgs - before;
}

Deno.test({
  name: "NatsAbuseLimits: a password login's requests to NATS, counted (the first and a repeated one)",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(1);
    try {
      const [limits] = nodes.limits;
      const [bus] = nodes.buses;
      await limits!.ready();
      const now = 1_000_000;
      const first = await sent(bus!, () => passwordLogin(limits!, "203.0.113.90", "pat", now));
      const again = await sent(bus!, () => passwordLogin(limits!, "203.0.113.90", "pat", now + 1));
      console.log(`requests per password login: first ${first}, again ${again}`);
      // Module doc of nats_abuse_limits.ts, "Cost": the first time, the keys this node had not seen are
      // read at LOGIN, and each of the three written by compare-and-swap (counting the proof, spending the
      // budgets, marking the pair); again, the pair clean and its mark recent, only the source's and the
      // account's.
      assert.ok(first <= 6, `first login: ${first} requests`);
      assert.equal(again, 2, `repeated login: ${again} requests`);
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name: "NatsAbuseLimits: a login writes its pair again when its source has failures, or its mark is old",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(1);
    try {
      const [limits] = nodes.limits;
      const [bus] = nodes.buses;
      await limits!.ready();
      const address = "203.0.113.91";
      const now = 2_000_000;
      await passwordLogin(limits!, address, "ria", now);
      assert.equal(await sent(bus!, () => passwordLogin(limits!, address, "ria", now + 1)), 2);
      // The pair's mark older than half its time (it lasts as long as failures are remembered): renewed.
      const later = now + 1 + limitOptions(SETTINGS).limiter.forgetAfterMs / 2 + 1;
      assert.equal(
        await sent(bus!, () => passwordLogin(limits!, address, "ria", later)),
        3,
        "the mark is renewed",
      );
      assert.equal(await sent(bus!, () => passwordLogin(limits!, address, "ria", later + 1)), 2);
      // A wrong password from the same source, on another account: the source has a failure now.
      assert.equal(await limits!.beginProof(address, "other", later + 2), 0);
      assert.equal(await limits!.endProof(address, "other", later + 2, false), null);
      assert.equal(
        await sent(bus!, () => passwordLogin(limits!, address, "ria", later + 3)),
        3,
        "the source has failures: its pair is written too",
      );
    } finally {
      await nodes.close();
    }
  },
});
