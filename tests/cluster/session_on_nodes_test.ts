import assert from "node:assert/strict";
import type { ServerMessage } from "../../lib/codec/messages.ts";
import type { LimitSettings } from "../../lib/server/local_parts.ts";
import type { SessionContext } from "../../lib/server/session_context.ts";
import { makeKit, TestConnection } from "../server/_session_kit.ts";
import type { Kit } from "../server/_session_kit.ts";
import { limitNodes, natsUrl } from "./_limit_nodes.ts";

const ignore = natsUrl() === undefined;

/** What the session kit's in-process limits are set to, as configuration settings. */
const KIT_SETTINGS: LimitSettings = {
  failures_before_backoff: 3,
  backoff_base: 1,
  backoff_max: 60,
  max_unauthenticated_per_ip: 100,
  registrations_per_minute: 1000,
  logins_per_minute_per_account: 10_000,
  logins_per_minute_per_source: 10_000,
};

const PASSWORD = "violet harbor engine 42";

function outcome(msg: ServerMessage): string {
  return msg.op === "ERROR"
    ? `${msg.code}${msg.retry_after_ms === undefined ? "" : ` ${msg.retry_after_ms}`}`
    : msg.op;
}

/** Three nodes on one store, each with its own limits on NATS (the store and clock are the kit's). */
function nodeContexts(kit: Kit, limits: SessionContext["limits"][]): SessionContext[] {
  return limits.map((l) => ({ ...kit.ctx, limits: l }));
}

function connect(ctx: SessionContext, peerAddress: string): TestConnection {
  return new TestConnection(ctx, { peerAddress, transport: "tcp", confidential: false });
}

/** 30 wrong passwords for bob from one address, each sent when the last reply allows, on the nodes given. */
async function guess(kit: Kit, contexts: SessionContext[]): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 30; i++) {
    const ctx = contexts[i % contexts.length]!;
    let { reply } = await connect(ctx, "203.0.113.77").scram("LOGIN", "bob", `wrong guess ${i} aaaa`);
    seen.push(outcome(reply));
    if (reply.op === "ERROR" && reply.code === "RATE_LIMITED") {
      kit.clock.now += reply.retry_after_ms!;
      reply = (await connect(ctx, "203.0.113.77").scram("LOGIN", "bob", `wrong guess ${i} aaaa`)).reply;
      seen.push(outcome(reply));
    }
  }
  const last = await connect(contexts[0]!, "203.0.113.77").scram("LOGIN", "bob", PASSWORD);
  seen.push(outcome(last.reply));
  return seen;
}

Deno.test({
  name: "Sessions on three nodes back off 30 wrong passwords for bob exactly as one node does",
  ignore,
  fn: async () => {
    await using single = await makeKit({ freeFailures: 3 });
    await using shared = await makeKit({ freeFailures: 3 });
    const nodes = await limitNodes(3, { settings: KIT_SETTINGS });
    try {
      await single.addUser("bob", PASSWORD);
      await shared.addUser("bob", PASSWORD);
      const alone = await guess(single, [single.ctx]);
      const spread = await guess(shared, nodeContexts(shared, nodes.limits));
      assert.deepEqual(spread, alone);
      assert.equal(alone.filter((o) => o === "AUTH_FAILED").length, 30);
      assert.equal(
        alone.at(-1),
        "RATE_LIMITED 60000",
        "the backoff is at backoff_max, even for the password",
      );
    } finally {
      await nodes.close();
    }
  },
});

Deno.test({
  name: "Sessions on three nodes check no more proofs sent at once than one node would",
  ignore,
  fn: async () => {
    await using kit = await makeKit({ freeFailures: 3 });
    const nodes = await limitNodes(3, { settings: KIT_SETTINGS });
    try {
      await kit.addUser("victim", PASSWORD);
      const contexts = nodeContexts(kit, nodes.limits);
      const pending = [];
      for (let i = 0; i < 12; i++) {
        const conn = connect(contexts[i % 3]!, "203.0.113.5");
        pending.push({ conn, final: await conn.heldProof("LOGIN", "victim", `guess ${i} aaaa`) });
      }
      // Every proof at once, four to each node.
      const replies = await Promise.all(
        pending.map(({ conn, final }) => conn.send({ op: "PROOF", data: final })),
      );
      const codes = replies.map(outcome);
      assert.equal(codes.filter((c) => c === "AUTH_FAILED").length, 3, codes.join(","));
      assert.equal(codes.filter((c) => c.startsWith("RATE_LIMITED")).length, 9, codes.join(","));
    } finally {
      await nodes.close();
    }
  },
});
