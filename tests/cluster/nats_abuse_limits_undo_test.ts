/**
 * NatsAbuseLimits when a proof's end is refused after some of its keys were written (another node counted
 * meanwhile): what it wrote is taken back, and nothing of it may show, to the attacker or to the counts.
 */
import assert from "node:assert/strict";
import { limitNodes, natsUrl, SETTINGS } from "./_limit_nodes.ts";

const ignore = natsUrl() === undefined;

Deno.test({
  name:
    "NatsAbuseLimits leaves no trace of a correct proof refused at its end: LOGIN answers as after a wrong one",
  ignore,
  fn: async () => {
    const nodes = await limitNodes(2);
    const [a, b] = nodes.limits as [typeof nodes.limits[0], typeof nodes.limits[0]];
    try {
      const t0 = 70_000_000;
      // The same steps for a right and for a wrong guess, each on a pair of its own.
      const probe = async (source: string, account: string, correct: boolean) => {
        // An earlier wrong guess, seen by node a; then node b counts the source's failures on other accounts
        // up to its backoff, which node a has not seen.
        assert.equal(await a.beginProof(source, account, t0), 0);
        assert.equal(await a.endProof(source, account, t0, false), null);
        for (const other of ["x1", "x2"]) {
          assert.equal(await b.beginProof(source, other, t0), 0);
          assert.equal(await b.endProof(source, other, t0, false), null);
        }
        // The guess begins on what node a has seen, and is refused as it ends: its outcome is not told.
        assert.equal(await a.beginProof(source, account, t0), 0);
        const ended = await a.endProof(source, account, t0, correct, {}, correct ? {} : undefined);
        assert.deepEqual(ended, { of: "backoff", waitMs: 1000 }, `refused (${correct ? "right" : "wrong"})`);
        // The account's owner logs in from elsewhere as often as its budget allows.
        for (let i = 0; i < SETTINGS.logins_per_minute_per_account; i++) {
          assert.equal(await b.spendLogin(`10.20.${correct ? 1 : 2}.${i}`, account, t0), null);
        }
        // Once the backoff is over, the guesser's next LOGIN.
        return await b.loginGate(source, account, t0 + 1000);
      };
      const afterWrong = await probe("203.0.113.101", "vic-wrong", false);
      const afterRight = await probe("203.0.113.102", "vic-right", true);
      assert.deepEqual(
        afterWrong,
        { refusal: null, waitMs: 0 },
        "a stranger is not told the account's budget",
      );
      assert.deepEqual(afterRight, afterWrong, "a refused right guess must look like a refused wrong one");
    } finally {
      await nodes.close();
    }
  },
});
