import assert from "node:assert/strict";
import type { NatsAbuseLimits } from "../../lib/cluster/nats_abuse_limits.ts";
import type { NatsBus } from "../../lib/cluster/nats_bus.ts";
import { limitNodes, natsUrl } from "./_limit_nodes.ts";

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
      // Module doc of nats_abuse_limits.ts: a compare-and-swap write of each of the three keys, which
      // counts the proof, spends the budgets and marks the pair; the first time, the keys this node had not
      // seen are read at LOGIN.
      assert.ok(first <= 6, `first login: ${first} requests`);
      assert.ok(again <= 3, `repeated login: ${again} requests`);
    } finally {
      await nodes.close();
    }
  },
});
