/**
 * A LOGIN for a name nobody has must do the work of a LOGIN for an account, in the same order, or the time
 * of its CHALLENGE tells which names exist (issue 9, item 2). Checked without a clock: every step the
 * exchange reports to `ctx.trace`, and every call it makes on the server's shared parts (store, limits,
 * registry, presence, log, clock), is recorded and the lists compared. `deno task bench` measures the
 * same thing in time (`login_known_unknown_z`).
 */

import assert from "node:assert/strict";
import type { SessionContext } from "../../lib/server/session_context.ts";
import { makeKit, testIdentity, verifierFor } from "./_session_kit.ts";
import type { Kit, Reply } from "./_session_kit.ts";

const PASSWORD = "correct horse battery";

/** The parts of the context a session calls, each wrapped so every method call is recorded. */
const PARTS = ["store", "limits", "sessions", "registry", "presence", "rendezvous", "log"] as const;

function recording<T extends object>(target: T, name: string, steps: string[]): T {
  return new Proxy(target, {
    get(t, prop) {
      const value = Reflect.get(t, prop, t);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        steps.push(`call ${name}.${String(prop)}`);
        return value.apply(t, args);
      };
    },
  });
}

/** Record, from now on, every step and every call on a shared part into one list. */
function record(ctx: SessionContext): string[] {
  const steps: string[] = [];
  ctx.trace = (step) => steps.push(step);
  for (const part of PARTS) {
    const value = ctx[part];
    if (value !== null) (ctx as unknown as Record<string, object>)[part] = recording(value, part, steps);
  }
  const now = ctx.now;
  ctx.now = () => {
    steps.push("now");
    return now();
  };
  return steps;
}

/** What a LOGIN for `user` did, from the request to its CHALLENGE, and the CHALLENGE. */
async function loginSteps(
  kit: Kit,
  steps: string[],
  user: string,
): Promise<{ steps: string[]; reply: Reply }> {
  const conn = kit.connect();
  await conn.sayHello();
  steps.length = 0;
  const reply = await conn.send({
    op: "LOGIN",
    mechanism: "SCRAM-SHA-256",
    data: `n,,n=${user},r=${"N".repeat(24)}`,
  });
  const taken = [...steps];
  conn.session.disconnected("test");
  return { steps: taken, reply };
}

async function accounts(kit: Kit): Promise<void> {
  await kit.addUser(
    "alice",
    PASSWORD,
    (() => {
      const id = testIdentity();
      return { key: id.raw, backup: JSON.stringify(id.backup) };
    })(),
  );
  await kit.addUser("bob", PASSWORD);
  await kit.store.createUser({
    name: "carol",
    nameKey: "carol",
    verifier: await verifierFor(PASSWORD),
    now: 0,
    mustChangePassword: true,
  });
}

Deno.test("LOGIN takes the same steps for an account (with or without identity key, flagged or not) and for a name nobody has", async () => {
  await using kit = await makeKit();
  await accounts(kit);
  const steps = record(kit.ctx);
  const paths = new Map<string, { steps: string[]; reply: Reply }>();
  for (const user of ["alice", "bob", "carol", "nobody", "Nobody2"]) {
    paths.set(user, await loginSteps(kit, steps, user));
  }
  const reference = paths.get("alice")!;
  assert.equal(reference.reply.op, "CHALLENGE");
  // The steps a LOGIN must take: if one is gone, the trace lost track of the path.
  for (
    const step of [
      "limits.retryAfter",
      "mockVerifier",
      "store.findCredentials",
      "parseVerifier",
      "scram.begin",
    ]
  ) {
    assert.ok(reference.steps.includes(step), `${step} in ${reference.steps.join(", ")}`);
  }
  for (const [user, path] of paths) {
    assert.deepEqual(path.steps, reference.steps, `the steps of ${user}'s LOGIN`);
    assert.equal(path.reply.op, "CHALLENGE", user);
    const data = (path.reply as { data: string }).data;
    assert.equal(
      data.length,
      (reference.reply as { data: string }).data.length,
      `${user}: a challenge of one size`,
    );
    assert.match(data, /,i=4096$/, `${user}: the iteration count accounts have`);
  }
});

Deno.test("LOGIN reads the identity key only once the proof is correct", async () => {
  await using kit = await makeKit();
  await accounts(kit);
  const steps = record(kit.ctx);
  const { steps: taken } = await loginSteps(kit, steps, "alice");
  assert.ok(!taken.includes("store.findUser"), `no findUser before the proof: ${taken.join(", ")}`);
  const conn = kit.connect();
  const login = await conn.login("alice", PASSWORD);
  assert.ok(login.reply.identity, "the LOGIN reply carries the identity read when the login was recorded");
});

Deno.test("LOGIN of an account whose stored verifier is damaged fails like an unknown name and is logged", async () => {
  await using kit = await makeKit();
  await kit.store.createUser({
    name: "dave",
    nameKey: "dave",
    verifier: "SCRAM-SHA-256$4096:!!$x:y",
    now: 0,
  });
  const conn = kit.connect();
  const failed = await conn.scram("LOGIN", "dave", PASSWORD);
  assert.equal(failed.challenge.op, "CHALLENGE");
  assert.equal((failed.reply as { code: string }).code, "AUTH_FAILED");
  assert.ok(kit.logs.some((l) => l.includes("bad_verifier") && l.includes("dave")));
});
