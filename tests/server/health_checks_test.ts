import assert from "node:assert/strict";
import { formatHealthReport, HealthChecks } from "../../lib/server/health_checks.ts";

Deno.test("HealthChecks reports each check in order, ok only when all answered", async () => {
  const ok = await new HealthChecks([
    { name: "server", check: () => {} },
    { name: "store", check: () => Promise.resolve(3) },
  ]).report();
  assert.deepEqual(ok, {
    ok: true,
    checks: [{ name: "server", ok: true, detail: "ok" }, { name: "store", ok: true, detail: "ok" }],
  });
  assert.equal(formatHealthReport(ok), "ok\nserver: ok\nstore: ok\n");
  const failed = await new HealthChecks([
    { name: "server", check: () => {} },
    {
      name: "store",
      check: () => {
        throw new Error("Database closed");
      },
    },
    { name: "bus", check: () => Promise.reject(new Error("Connection\nrefused")) },
  ]).report();
  assert.equal(failed.ok, false);
  assert.equal(
    formatHealthReport(failed),
    "unhealthy\nserver: ok\nstore: failed: Database closed\nbus: failed: Connection refused\n",
    "one line per check, whatever the error's text",
  );
});

Deno.test("HealthChecks gives up on a check that does not answer in time, and does not ask it again meanwhile", async () => {
  let calls = 0;
  let answer!: () => void;
  const health = new HealthChecks([{
    name: "store",
    check: () => {
      calls++;
      return new Promise<void>((resolve) => answer = resolve);
    },
  }], { timeoutMs: 20, cacheMs: 0 });
  const first = await health.report();
  assert.deepEqual(first.checks, [{ name: "store", ok: false, detail: "failed: no answer within 20 ms" }]);
  const second = await health.report();
  assert.equal(second.checks[0]!.detail, "failed: no answer yet to a check started earlier");
  assert.equal(calls, 1, "a hanging check is not piled up");
  answer();
  await new Promise((r) => setTimeout(r, 0));
  const third = health.report();
  answer();
  assert.equal((await third).ok, true);
  assert.equal(calls, 2);
});

Deno.test("HealthChecks reuses a report within the reuse time, so a flood of requests asks the store once", async () => {
  let calls = 0;
  let now = 0;
  const health = new HealthChecks([{ name: "store", check: () => void calls++ }], {
    cacheMs: 1000,
    now: () => now,
  });
  await Promise.all(Array.from({ length: 100 }, () => health.report()));
  now = 999;
  await health.report();
  assert.equal(calls, 1);
  now = 1000;
  await health.report();
  assert.equal(calls, 2);
});
