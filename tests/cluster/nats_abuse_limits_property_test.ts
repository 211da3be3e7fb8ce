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

const step = fc.oneof(
  fc.record({
    op: fc.constant("attempt" as const),
    address,
    account,
    token,
    hold: fc.boolean(),
    correct: fc.boolean(),
    dt,
  }),
  fc.record({ op: fc.constant("end" as const), correct: fc.boolean(), dt }),
  fc.record({ op: fc.constant("retry" as const), address, account, token, dt }),
  fc.record({ op: fc.constant("register" as const), address, dt }),
  fc.record({ op: fc.constant("check" as const), address, account, deviceToken: fc.boolean(), dt }),
  fc.record({ op: fc.constant("spend" as const), address, account, deviceToken: fc.boolean(), dt }),
);
type Step = typeof step extends fc.Arbitrary<infer S> ? S : never;

interface Open {
  address: string;
  account: string;
  options: { deviceToken?: string };
}

/** Run the steps on both; every answer must be the same. */
async function compare(steps: Step[], shared: AbuseLimits, local: AbuseLimits): Promise<void> {
  let now = 1_700_000_000_000;
  const open: Open[] = [];
  const both = async <T>(what: string, ask: (l: AbuseLimits) => Promise<T>) => {
    const expected = await ask(local);
    assert.deepEqual(await ask(shared), expected, `${what} at ${now}`);
    return expected;
  };
  for (const [i, s] of steps.entries()) {
    now += s.dt;
    const label = `step ${i} ${JSON.stringify(s)}`;
    switch (s.op) {
      case "attempt": {
        const options = s.token === undefined ? {} : { deviceToken: s.token };
        const wait = await both(label, (l) => l.beginProof(s.address, s.account, now, options));
        if (wait > 0) break;
        const attempt = { address: s.address, account: s.account, options };
        if (s.hold) open.push(attempt);
        else await both(label, (l) => l.endProof(s.address, s.account, now, s.correct, options));
        break;
      }
      case "end": {
        const attempt = open.shift();
        if (attempt) {
          await both(
            label,
            (l) => l.endProof(attempt.address, attempt.account, now, s.correct, attempt.options),
          );
        }
        break;
      }
      case "retry": {
        const options = s.token === undefined ? {} : { deviceToken: s.token };
        await both(label, (l) => l.retryAfter(s.address, s.account, now, options));
        break;
      }
      case "register":
        await both(label, (l) => l.takeRegistration(s.address, now));
        break;
      case "check":
        await both(label, (l) => l.checkLogin(s.address, s.account, now, { deviceToken: s.deviceToken }));
        break;
      case "spend":
        await both(label, (l) => l.spendLogin(s.address, s.account, now, { deviceToken: s.deviceToken }));
        break;
    }
  }
  for (const attempt of open) {
    await both("closing", (l) => l.endProof(attempt.address, attempt.account, now, false, attempt.options));
    for (const a of ["alice", "bob"]) {
      await both("after closing", (l) => l.retryAfter(attempt.address, a, now));
    }
  }
}

Deno.test({
  name: "NatsAbuseLimits answers random sequences exactly as the in-process limits",
  ignore: url === undefined,
  fn: async () => {
    const bus = await NatsBus.connect({
      servers: [url!],
      nodeId: "property",
      prefix: `prop${Date.now().toString(36)}`,
    });
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 60, size: "max" }), async (steps) => {
          const bucket = `run${run++}`;
          const shared = new NatsAbuseLimits(bus, SETTINGS, { bucket });
          try {
            await compare(steps, shared, new LocalAbuseLimits(localLimitParts(SETTINGS)));
          } finally {
            await shared.close();
            await (await bus.kv(bucket)).destroy();
          }
        }),
        { numRuns: 100 },
      );
    } finally {
      await bus.close();
    }
  },
});
