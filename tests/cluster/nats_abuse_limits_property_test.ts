import assert from "node:assert/strict";
import fc from "fast-check";
import { NatsAbuseLimits } from "../../lib/cluster/nats_abuse_limits.ts";
import { NatsBus } from "../../lib/cluster/nats_bus.ts";
import type { LimitSettings } from "../../lib/server/local_parts.ts";
import { localLimitParts } from "../../lib/server/local_parts.ts";
import { LocalAbuseLimits } from "../../lib/server/shared_parts.ts";
import type { AbuseLimits } from "../../lib/server/shared_parts.ts";
import { natsUrl } from "./_limit_nodes.ts";

const url = natsUrl();

/** Small limits, so random sequences reach every one of them: backoff, parallel bound, budgets. */
const SETTINGS: LimitSettings = {
  failures_before_backoff: 2,
  backoff_base: 1,
  backoff_max: 8,
  max_unauthenticated_per_ip: 2,
  registrations_per_minute: 2,
  logins_per_minute_per_account: 2,
  logins_per_minute_per_source: 3,
};

// Few sources and accounts, so counters meet: two of the addresses are one IPv6 /64.
const address = fc.constantFrom("10.0.0.1", "2001:db8::1", "2001:db8::2");
const account = fc.constantFrom("alice", "bob");
// Most attempts without a device token (the counters of pairs, sources and accounts), some with one.
const token = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constantFrom("t1", "t2") },
);
// Mostly moments apart, now and then a budget's minute (the whole run stays well within the forget time).
const dt = fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 3000 }) }, fc.constant(60_000));

// How an attempt ends: alone, or as a LOGIN's proof that spends the budgets in the same step (with or
// without a device token shown).
const spend = fc.option(fc.record({ deviceToken: fc.boolean() }), { nil: undefined });

const step = fc.oneof(
  fc.record({
    op: fc.constant("attempt" as const),
    address,
    account,
    token,
    correct: fc.boolean(),
    spend,
    dt,
  }),
  fc.record({ op: fc.constant("retry" as const), address, account, token, dt }),
  fc.record({ op: fc.constant("register" as const), address, dt }),
  fc.record({ op: fc.constant("check" as const), address, account, deviceToken: fc.boolean(), dt }),
  fc.record({ op: fc.constant("spend" as const), address, account, deviceToken: fc.boolean(), dt }),
  fc.record({ op: fc.constant("gate" as const), address, account, dt }),
);
type Step = typeof step extends fc.Arbitrary<infer S> ? S : never;

/** An attempt begun and ended at once, as one answer: the wait (at its start or its end), or its end's. */
async function attempt(
  limits: AbuseLimits,
  s: Extract<Step, { op: "attempt" }>,
  now: number,
): Promise<{ waitMs: number } | { ended: unknown }> {
  const options = s.token === undefined ? {} : { deviceToken: s.token };
  const waitMs = await limits.beginProof(s.address, s.account, now, options);
  if (waitMs > 0) return { waitMs };
  const ended = await limits.endProof(s.address, s.account, now, s.correct, options, s.spend);
  return ended?.of === "backoff" ? { waitMs: ended.waitMs } : { ended };
}

/**
 * Run the steps on the in-process limits and on the shared ones (each step on the node it names); every
 * answer must be the same. On one node, step by step. On several, each node starts a proof on what it has
 * seen (and its own proofs under way), and the count that decides is made as the proof ends (see the module
 * doc of nats_abuse_limits.ts): so an attempt is compared as one answer, and a `LOGIN`'s gate may let
 * through what records it has not seen would not (the proof's end decides), but any wait it gives is the
 * one the in-process limits give. Proofs under way at once are tested apart (nats_abuse_limits_test.ts):
 * there the end is stricter than one node's, by design.
 */
async function compare(
  steps: { step: Step; node: number }[],
  nodes: AbuseLimits[],
  local: AbuseLimits,
): Promise<void> {
  let now = 1_700_000_000_000;
  const alone = nodes.length === 1;
  for (const [i, { step: s, node: n }] of steps.entries()) {
    now += s.dt;
    const node = n % nodes.length;
    const where = (on: number) => `step ${i} on node ${on}: ${JSON.stringify(s)}`;
    const both = async <T>(ask: (l: AbuseLimits) => Promise<T>, on = node) => {
      const expected = await ask(local);
      assert.deepEqual(await ask(nodes[on]!), expected, where(on));
      return expected;
    };
    switch (s.op) {
      case "attempt": {
        if (!alone) {
          await both((l) => attempt(l, s, now));
          break;
        }
        const options = s.token === undefined ? {} : { deviceToken: s.token };
        const wait = await both((l) => l.beginProof(s.address, s.account, now, options));
        if (wait === 0) await both((l) => l.endProof(s.address, s.account, now, s.correct, options, s.spend));
        break;
      }
      case "retry": {
        const options = s.token === undefined ? {} : { deviceToken: s.token };
        await both((l) => l.retryAfter(s.address, s.account, now, options));
        break;
      }
      case "register":
        await both((l) => l.takeRegistration(s.address, now));
        break;
      case "check":
        await both((l) => l.checkLogin(s.address, s.account, now, { deviceToken: s.deviceToken }));
        break;
      case "spend":
        await both((l) => l.spendLogin(s.address, s.account, now, { deviceToken: s.deviceToken }));
        break;
      case "gate": {
        if (alone) {
          await both((l) => l.loginGate(s.address, s.account, now));
          break;
        }
        const expected = await local.loginGate(s.address, s.account, now);
        const got = await nodes[node]!.loginGate(s.address, s.account, now);
        if (got.refusal !== null || got.waitMs > 0) assert.deepEqual(got, expected, where(node));
        break;
      }
    }
  }
}

const steps = fc.array(fc.record({ step, node: fc.nat(2) }), { minLength: 1, maxLength: 60, size: "max" });

/** Check the property on `count` nodes, each run on a bucket of its own. */
async function check(count: number, numRuns: number): Promise<void> {
  const prefix = `prop${count}${Date.now().toString(36)}`;
  const buses: NatsBus[] = [];
  let run = 0;
  try {
    for (let i = 0; i < count; i++) {
      buses.push(await NatsBus.connect({ servers: [url!], nodeId: `property-${i}`, prefix }));
    }
    await fc.assert(
      fc.asyncProperty(steps, async (sequence) => {
        const bucket = `run${run++}`;
        const nodes = buses.map((bus) => new NatsAbuseLimits(bus, SETTINGS, { bucket }));
        try {
          await compare(sequence, nodes, new LocalAbuseLimits(localLimitParts(SETTINGS)));
        } finally {
          for (const node of nodes) await node.close();
          await (await buses[0]!.kv(bucket)).destroy();
        }
      }),
      { numRuns },
    );
  } finally {
    for (const bus of buses) await bus.close();
  }
}

Deno.test({
  name: "NatsAbuseLimits answers random sequences exactly as the in-process limits",
  ignore: url === undefined,
  fn: () => check(1, 100),
});

Deno.test({
  name: "NatsAbuseLimits on three nodes answers random sequences spread over them as the in-process limits",
  ignore: url === undefined,
  fn: () => check(3, 60),
});
