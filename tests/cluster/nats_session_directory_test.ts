import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import type { NatsBus } from "../../lib/cluster/nats_bus.ts";
import { LOGIN_REFUSED, UNCONFIRMED } from "../../lib/cluster/nats_session_directory.ts";
import { NodeLiveness } from "../../lib/cluster/node_liveness.ts";
import { eventually, FAST, member, natsUrl, notices, TestCluster, TestNode, user } from "./_nats_kit.ts";

const nats = natsUrl();

Deno.test({
  name: "NatsSessionDirectory ends a user's sessions on every other node before it resolves",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 3);
    const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
    n2.sessionsOf.set("bob", 2);
    n3.sessionsOf.set("bob", 1);
    n3.sessionsOf.set("carol", 1);
    const ended = await n1.sessions.endElsewhere("bob", "PASSWORD_CHANGED", "Password changed: log in again");
    assert.equal(ended, 3);
    assert.deepEqual(n2.ended, ["bob PASSWORD_CHANGED"]);
    assert.deepEqual(n3.ended, ["bob PASSWORD_CHANGED"]);
    assert.deepEqual(n1.ended, [], "its own sessions are the registry's");
    assert.equal(n3.sessionsOf.get("carol"), 1, "nobody else's");
    assert.equal(await n2.sessions.endElsewhere("carol", "ACCOUNT_DELETED", "Account deleted"), 1);
    assert.deepEqual(n3.ended, ["bob PASSWORD_CHANGED", "carol ACCOUNT_DELETED"]);
  },
});

Deno.test({
  name: "NatsSessionDirectory asks a node that started just before, and alone asks nobody",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 1);
    const [n1] = c.nodes as [TestNode];
    assert.equal(await n1.sessions.endElsewhere("bob", "PASSWORD_CHANGED", "x"), 0);
    const late = await c.add("late");
    late.sessionsOf.set("bob", 1);
    // No wait: the request reads the bucket to its end first, so it knows of the node that announced itself.
    assert.equal(await n1.sessions.endElsewhere("bob", "PASSWORD_CHANGED", "x"), 1);
  },
});

Deno.test({
  name: "NatsSessionDirectory ends the sessions of one request once, however often it is repeated",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 1);
    const [n2] = c.nodes as [TestNode];
    n2.sessionsOf.set("bob", 1);
    const request = JSON.stringify({
      id: "r1",
      from: "other",
      user: "bob",
      code: "PASSWORD_CHANGED",
      reason: "Password changed",
    });
    // Sent as another node would (n2 is the only one answering).
    const subject = n2.bus.subject("sessions", "end");
    const first = await n2.bus.nc.request(subject, request);
    // bob logs in again (with the new password) before a late repeat of the same request.
    n2.sessionsOf.set("bob", 1);
    const second = await n2.bus.nc.request(subject, request);
    assert.equal(first.json<{ ended: number }>().ended, 1);
    assert.equal(second.json<{ ended: number }>().ended, 1, "the same answer");
    assert.deepEqual(n2.ended, ["bob PASSWORD_CHANGED"]);
    assert.equal(n2.sessionsOf.get("bob"), 1, "the new session stays");
  },
});

Deno.test({
  name: "NatsSessionDirectory drops malformed requests from the bus and keeps serving",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 2);
    const [n1, n2] = c.nodes as [TestNode, TestNode];
    n2.sessionsOf.set("bob", 1);
    const subject = n1.bus.subject("sessions", "end");
    const bad = [
      "not json",
      "null",
      "[]",
      JSON.stringify({ id: "x", from: "o", user: "bob", code: "SHUTDOWN", reason: "r" }),
      JSON.stringify({ id: "x", from: "o", user: "", code: "PASSWORD_CHANGED", reason: "r" }),
      JSON.stringify({ id: "x", from: "o", user: "b".repeat(5000), code: "PASSWORD_CHANGED", reason: "r" }),
      JSON.stringify({ id: 1, from: "o", user: "bob", code: "PASSWORD_CHANGED", reason: "r" }),
    ];
    // n2's subscription has reached the NATS server (a flush is answered after the SUB before it): a message
    // published before that would find no one listening, and be dropped by NATS, not by n2.
    await n2.bus.nc.flush();
    for (const payload of bad) n1.bus.nc.publish(subject, payload, { reply: "_INBOX.nobody" });
    await n1.bus.nc.flush();
    assert.equal(await n1.sessions.endElsewhere("bob", "PASSWORD_CHANGED", "x"), 1);
    assert.deepEqual(n2.ended, ["bob PASSWORD_CHANGED"], "none of the bad ones ended anything");
    assert.equal(n2.logs.filter((l) => l.includes('"event":"bus_bad_message"')).length, bad.length);
  },
});

Deno.test({
  name: "NatsSessionDirectory waits for a node that does not answer until it is declared dead",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 3);
    const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
    n2.sessionsOf.set("bob", 1);
    // n3 hears nothing more (as a process stopped with SIGSTOP): its subscription and heartbeats stop.
    await n3.kill();
    let gone = false;
    n1.liveness.listen({ nodeGone: (ref) => gone ||= ref.nodeId === "n3" });
    const ended = await n1.sessions.endElsewhere("bob", "PASSWORD_CHANGED", "x");
    assert.equal(gone, true, "resolved only once n3 was gone");
    assert.equal(ended, 1);
    assert.deepEqual(n2.ended, ["bob PASSWORD_CHANGED"]);
  },
});

Deno.test({
  name: "NatsSessionDirectory stops waiting for a live node that never answers, failing UNAVAILABLE",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 3);
    const [n1, n2, n3] = c.nodes as [TestNode, TestNode, TestNode];
    n2.sessionsOf.set("bob", 1);
    n3.sessionsOf.set("bob", 1);
    // n3 keeps its heartbeat but no longer hears requests (its subscription is gone).
    n3.sessions.close();
    const started = performance.now();
    let guard: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      n1.sessions.endElsewhere("bob", "PASSWORD_CHANGED", "x").then(
        (ended) => `resolved ${ended}`,
        (err: unknown) => err instanceof ProtocolError ? `${err.code} ${err.message}` : String(err),
      ),
      // A guard against a wait that never ends, not a speed target.
      new Promise<string>((r) => guard = setTimeout(() => r("still waiting"), 20_000)),
    ]);
    clearTimeout(guard);
    assert.equal(outcome, `UNAVAILABLE ${UNCONFIRMED}`);
    assert.ok(performance.now() - started >= FAST.deadAfterMs, "it waited as long as for a dying node");
    assert.deepEqual(n2.ended, ["bob PASSWORD_CHANGED"], "the nodes that answered ended theirs");
    assert.equal(n3.liveness.fenced, false, "n3 is alive all along");
    assert.ok(n1.logs.some((l) => l.includes('"event":"end_elsewhere_unconfirmed"') && l.includes("n3")));
  },
});

Deno.test({
  name: "A node that loses the bus ends its sessions, refuses logins, and comes back as a new incarnation",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 2);
    const [n1, n2] = c.nodes as [TestNode, TestNode];
    const proxy = c.proxy;
    const n3 = await c.add("n3", { via: proxy.url });
    const alice = member();
    n1.presence.join(alice, user("alice"));
    n3.presence.join(member(), user("carol"));
    n3.sessionsOf.set("carol", 1);
    await eventually("carol online", () => notices(alice).includes("carol online"));
    assert.equal(n3.sessions.loginsRefused(), null);
    const before = n3.liveness.incarnation;

    await proxy.cut();
    // n3 fences itself before the others declare it dead: it never serves a session they count as gone.
    let fencedFirst: boolean | undefined;
    n1.liveness.listen({ nodeGone: (ref) => fencedFirst ??= ref.nodeId === "n3" && n3.liveness.fenced });
    const passwd = n1.sessions.endElsewhere("carol", "PASSWORD_CHANGED", "x");
    // Awaited below; a failure before that must not leave its rejection unheard when the nodes stop.
    passwd.catch(() => {});
    await eventually("n3 fenced", () => n3.liveness.fenced);
    // Fenced from the moment its heartbeats went unacknowledged too long; its sessions end at its next check.
    await eventually("n3's sessions ended", () => n3.endAllCalls === 1);
    assert.equal(n3.sessions.loginsRefused(), LOGIN_REFUSED);
    await assert.rejects(
      n3.sessions.endElsewhere("dave", "PASSWORD_CHANGED", "x"),
      (err: unknown) => err instanceof ProtocolError && err.code === "UNAVAILABLE",
    );
    assert.equal(await passwd, 0, "done once n3 was declared dead; it had ended carol itself");
    assert.equal(fencedFirst, true);
    await eventually("carol offline for alice", () => notices(alice).includes("carol offline"));
    await eventually(
      "logged",
      () => n1.logs.concat(n2.logs).some((l) => l.includes('"event":"node_dead"')),
    );

    proxy.restore();
    assert.equal(n3.recheckCalls, 0);
    await eventually("n3 back", () => !n3.liveness.fenced, 15_000);
    assert.equal(n3.recheckCalls, 1, "its sessions are re-checked against the store once it is back");
    assert.notEqual(n3.liveness.incarnation, before);
    assert.equal(n3.sessions.loginsRefused(), null);
    assert.ok(n3.logs.some((l) => l.includes('"event":"bus_back"')));
    n3.presence.join(member(), user("carol"));
    await eventually("carol online again", () => notices(alice).at(-1) === "carol online");
    n3.sessionsOf.set("carol", 1);
    assert.equal(await n1.sessions.endElsewhere("carol", "PASSWORD_CHANGED", "x"), 1);
  },
});

Deno.test({
  name: "NodeLiveness refuses to start a second live node with the same id",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 1);
    await assert.rejects(
      TestNode.start(nats!, c.prefix, "n1"),
      /node_id n1 is in use by another live server/,
    );
    assert.equal(c.nodes[0]!.liveness.fenced, false, "the running one is left alone");
  },
});

Deno.test("NodeLiveness rejects timings where a node would be declared dead before it fences itself", () => {
  const bus = { nodeId: "n1" } as unknown as NatsBus;
  assert.throws(
    () => new NodeLiveness(bus, { timing: { ...FAST, deadAfterMs: FAST.fenceAfterMs } }),
    RangeError,
  );
  assert.throws(
    () => new NodeLiveness(bus, { timing: { ...FAST, fenceAfterMs: FAST.heartbeatMs } }),
    RangeError,
  );
  assert.equal(new NodeLiveness(bus, { timing: FAST }).fenced, false);
});

Deno.test({
  name: "NodeLiveness stops a node whose id another process took over while it ran",
  ignore: !nats,
  async fn() {
    await using c = await TestCluster.start(nats!, 2);
    const [n1, n2] = c.nodes as [TestNode, TestNode];
    n1.sessionsOf.set("alice", 1);
    await n2.liveness.kv.put(`n.${n1.liveness.node}`, JSON.stringify({ node: "n1", inc: "someone-else" }));
    const err = await n1.liveness.conflict;
    assert.match(err.message, /node_id n1 is in use by another live server/);
    assert.equal(n1.liveness.fenced, true);
    assert.equal(n1.endAllCalls, 1, "its sessions ended");
    assert.equal(n1.sessions.loginsRefused(), LOGIN_REFUSED);
    assert.ok(n1.logs.some((l) => l.includes('"event":"node_id_conflict"')));
  },
});
