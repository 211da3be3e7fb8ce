import assert from "node:assert/strict";
import {
  decodeDatagram,
  encodeHs1,
  encodeHs2,
  hs1SignedBytes,
  hs2SignedBytes,
} from "../../lib/codec/datagram.ts";
import { generateIdentity, signWith } from "../../lib/crypto/identity_key.ts";
import { generateEphemeral } from "../../lib/crypto/peer_session.ts";
import { DeliveryLog } from "../../lib/client/_delivery_log.ts";
import { ADDRESS, PeerSim } from "./_peer_sim.ts";
import { assertByteArraysEqual } from "../_bytes.ts";

/** Alice says hello and bob acknowledges it: one session each way of the handshake. */
async function connected(sim: PeerSim): Promise<void> {
  sim.send("alice", "hello", 1);
  await sim.run(() => sim.ends.bob.delivered.length === 1 && sim.ends.alice.acked.includes(1));
}

function texts(prefix: string, count: number): string[] {
  return Array.from(
    { length: count },
    (_, i) =>
      i % 7 === 0
        ? ""
        : i % 10 === 3
        ? `${prefix}${i} ${"é✓😀".repeat(900)}`
        : i % 13 === 5
        ? "x".repeat(1094 * 3)
        : `${prefix}${i} übermäßig ✓`,
  );
}

Deno.test("PeerLink handshakes and carries a message each way, each acknowledged", async () => {
  const sim = await PeerSim.create();
  const { alice, bob } = sim.ends;
  assert.equal(alice.link.nextWakeup(), null, "an idle link sleeps");
  await connected(sim);
  assert.deepEqual(bob.delivered, ["hello"]);
  sim.send("bob", "hi alice", 7);
  await sim.run(() => alice.delivered.length === 1 && bob.acked.includes(7));
  assert.deepEqual(alice.delivered, ["hi alice"]);
  assert.deepEqual(alice.acked, [1]);
  assert.deepEqual(bob.acked, [7]);
  assert.equal(alice.link.stats.handshakes, 1);
  assert.deepEqual(alice.link.path, { kind: "direct", hostname: "198.51.100.2", port: 4002 });
  assert.deepEqual(bob.link.path, { kind: "direct", hostname: "198.51.100.1", port: 4001 });
  await sim.run(() => alice.link.nextWakeup() === null && bob.link.nextWakeup() === null);
});

Deno.test("PeerLink delivers in order, exactly once, over a link that drops, duplicates and reorders", async () => {
  const sim = await PeerSim.create({}, 7);
  sim.conditions = { drop: 0.2, duplicate: 0.1, maxDelayMs: 30 };
  const { alice, bob } = sim.ends;
  const toBob = texts("a", 150);
  const toAlice = texts("b", 120);
  toBob.forEach((t, i) => sim.send("alice", t, i));
  toAlice.forEach((t, i) => sim.send("bob", t, 1000 + i));
  await sim.run(() => alice.acked.length === toBob.length && bob.acked.length === toAlice.length);
  assert.deepEqual(bob.delivered, toBob);
  assert.deepEqual(alice.delivered, toAlice);
  assert.deepEqual(alice.acked.toSorted((x, y) => x - y), toBob.map((_, i) => i));
  assert.deepEqual(bob.acked.toSorted((x, y) => x - y), toAlice.map((_, i) => 1000 + i));
  assert.ok(alice.link.stats.replayed + bob.link.stats.replayed > 0, "duplicated datagrams were refused");
  assert.equal(alice.link.stats.forged + bob.link.stats.forged, 0);
});

Deno.test("PeerLink drops and counts forged, replayed and misdirected datagrams without disturbing the session", async () => {
  const sim = await PeerSim.create();
  const { alice, bob } = sim.ends;
  await connected(sim);
  const before = { alice: alice.link.stats, bob: bob.link.stats, sessions: bob.sessionEvents.length };
  // Hold back alice's next DATA: tampered, it must be refused; intact, accepted once; again, refused.
  sim.filter = (from, out) => from === "alice" ? null : out.bytes;
  sim.send("alice", "secret", 2);
  await sim.pollAll();
  sim.filter = null;
  const data = sim.captured.at(-1)!.out.bytes;
  const tampered = data.slice();
  tampered[tampered.length - 20]! ^= 0x01;
  await sim.inject("bob", tampered);
  assert.equal(bob.link.stats.forged, 1);
  assert.deepEqual(bob.delivered, ["hello"]);
  await sim.inject("bob", data);
  assert.deepEqual(bob.delivered, ["hello", "secret"]);
  await sim.inject("bob", data);
  assert.equal(bob.link.stats.replayed, 1);

  const stranger = data.slice();
  stranger.set(crypto.getRandomValues(new Uint8Array(8)), 3);
  await sim.inject("bob", stranger);
  assert.equal(bob.link.stats.unexpected, before.bob.unexpected + 1);

  const mallory = await generateIdentity();
  const eph = (await generateEphemeral()).publicKey;
  const sig = await signWith(mallory, hs1SignedBytes("alice", "bob", eph));
  await sim.inject("bob", encodeHs1({ from: "alice", to: "bob", eph, sig }));
  assert.equal(bob.link.stats.badSignature, 1);
  const toCarol = await signWith(alice.identity, hs1SignedBytes("alice", "carol", eph));
  await sim.inject("bob", encodeHs1({ from: "alice", to: "carol", eph, sig: toCarol }));
  assert.equal(bob.link.stats.unexpected, before.bob.unexpected + 2);

  // Properly signed by bob, but not an answer to any HS1 of alice's.
  const ephResp = (await generateEphemeral()).publicKey;
  const hs2Sig = await signWith(bob.identity, hs2SignedBytes("bob", "alice", eph, ephResp));
  await sim.inject("alice", encodeHs2({ from: "bob", to: "alice", ephInit: eph, ephResp, sig: hs2Sig }));
  assert.equal(alice.link.stats.unexpected, before.alice.unexpected + 1);

  assert.deepEqual(bob.delivered, ["hello", "secret"], "nothing forged was delivered");
  sim.send("alice", "still here", 4);
  sim.send("bob", "me too", 3);
  await sim.run(() => bob.delivered.length === 3 && alice.delivered.length === 1 && alice.acked.includes(4));
  assert.deepEqual(bob.delivered, ["hello", "secret", "still here"]);
  assert.ok(alice.acked.includes(2));
  assert.deepEqual(alice.delivered, ["me too"]);
  assert.equal(alice.link.stats.handshakes, before.alice.handshakes, "no new handshake by alice");
  assert.equal(bob.sessionEvents.length, before.sessions, "bob answered on the same session");
  assert.equal(bob.link.stats.handshakes, before.bob.handshakes);
  assert.equal(bob.link.stats.forged, 1);
  assert.equal(bob.link.stats.replayed, 1);
});

Deno.test("PeerLink answers a replayed HS1 with the cached HS2 and makes no new session", async () => {
  const sim = await PeerSim.create();
  const { alice, bob } = sim.ends;
  await connected(sim);
  const hs1 = sim.capturedOf("alice", "HS1")[0]!.bytes;
  const hs2 = sim.capturedOf("bob", "HS2")[0]!.bytes;
  const sessions = bob.sessionEvents.length;
  await sim.inject("bob", hs1);
  await sim.inject("bob", hs1);
  const replies = await bob.link.poll(sim.now);
  assertByteArraysEqual(replies.map((r) => r.bytes), [hs2, hs2]);
  assert.equal(bob.link.stats.handshakes, 1);
  assert.equal(bob.sessionEvents.length, sessions);
  // Alice has no handshake in progress: the old HS2 is refused, and the session carries on.
  await sim.inject("alice", hs2);
  assert.equal(alice.link.stats.unexpected, 1);
  sim.send("alice", "again", 2);
  await sim.run(() => alice.acked.includes(2));
  assert.deepEqual(bob.delivered, ["hello", "again"]);
  assert.equal(alice.link.stats.handshakes, 1);
});

Deno.test("PeerLink refuses a correctly signed HS2 answering an older HS1 of its own while a newer handshake is pending", async () => {
  const sim = await PeerSim.create({ rehandshakeMs: 1000 });
  const { alice, bob } = sim.ends;
  await connected(sim);
  const oldHs2 = sim.capturedOf("bob", "HS2")[0]!.bytes;
  // Bob's datagrams stop arriving: alice, with a message outstanding, starts a new handshake.
  sim.filter = (from, out) => from === "bob" ? null : out.bytes;
  sim.send("alice", "are you there", 2);
  await sim.run(() => sim.capturedOf("alice", "HS1").length === 2);
  const before = alice.link.stats;
  // Bob's genuine answer to alice's first HS1, signed by bob's key, arrives late (or is replayed).
  await sim.inject("alice", oldHs2);
  assert.equal(alice.link.stats.unexpected, before.unexpected + 1, "refused as an answer to another HS1");
  assert.equal(alice.link.stats.badSignature, before.badSignature, "its signature is good");
  assert.equal(alice.link.stats.handshakes, before.handshakes, "no session from it");
  // The pending handshake is untouched: once bob is heard again, it completes and the message is acked.
  sim.filter = null;
  await sim.run(() => alice.acked.includes(2));
  assert.equal(alice.link.stats.handshakes, before.handshakes + 1);
  assert.equal(alice.link.stats.forged + bob.link.stats.forged, 0, "both ends derived the same keys");
  assert.deepEqual(bob.delivered, ["hello", "are you there"]);
});

Deno.test("PeerLink falls back to the relay when the direct path drops everything", async () => {
  const sim = await PeerSim.create({ directTimeoutMs: 800 });
  const { alice, bob } = sim.ends;
  const start = sim.now;
  let firstRelayAt: number | null = null;
  sim.filter = (_from, out) => {
    if (out.path.kind === "direct") return null;
    firstRelayAt ??= sim.now;
    return out.bytes;
  };
  sim.send("alice", "over the relay", 1);
  await sim.run(() => bob.delivered.length === 1 && alice.acked.includes(1));
  assert.deepEqual(alice.link.path, { kind: "relay", relayId: ADDRESS.bob.relayId });
  assert.equal(alice.link.stats.relayFallbacks, 1);
  assert.ok(
    firstRelayAt !== null && firstRelayAt - start >= 800,
    `relay used after ${firstRelayAt! - start} ms`,
  );
  // Bob answers the way alice's datagrams came.
  assert.deepEqual(bob.link.path, { kind: "relay", relayId: ADDRESS.alice.relayId });
  sim.send("bob", "back", 2);
  sim.send("alice", "more", 3);
  await sim.run(() => alice.delivered.length === 1 && bob.delivered.length === 2 && alice.acked.includes(3));
  assert.deepEqual(alice.delivered, ["back"]);
  assert.deepEqual(bob.delivered, ["over the relay", "more"]);
  assert.ok(sim.captured.every((c) => c.out.path.kind === "relay" || c.from === "alice"));
});

Deno.test("PeerLink rekeys with a new handshake and keeps messages in order over a lossy link", async () => {
  const sim = await PeerSim.create({ rekeyAfter: 24 }, 3);
  sim.conditions = { drop: 0.1, duplicate: 0.05, maxDelayMs: 20 };
  const { alice, bob } = sim.ends;
  const toBob = texts("a", 120);
  const toAlice = texts("b", 40);
  // In batches, without waiting for acknowledgements, so messages are in flight across every rekey.
  for (let batch = 0; batch < 12; batch++) {
    for (let i = batch * 10; i < batch * 10 + 10; i++) sim.send("alice", toBob[i]!, i);
    if (batch % 3 === 0) {
      for (let i = 0; i < 10; i++) sim.send("bob", toAlice[batch / 3 * 10 + i]!, 1000 + batch / 3 * 10 + i);
    }
    await sim.run(() => false, 60_000, sim.now + 40);
  }
  await sim.run(() => alice.acked.length === toBob.length && bob.acked.length === toAlice.length);
  assert.deepEqual(bob.delivered, toBob);
  assert.deepEqual(alice.delivered, toAlice);
  assert.ok(alice.link.stats.handshakes >= 4, `${alice.link.stats.handshakes} handshakes`);
});

Deno.test("PeerLink delivers its outstanding messages to a restarted peer after a new handshake", async () => {
  const sim = await PeerSim.create({ rehandshakeMs: 1000 });
  await connected(sim);
  sim.restart("bob");
  const { alice, bob } = sim.ends;
  const start = sim.now;
  ["one", "two", "three"].forEach((t, i) => sim.send("alice", t, 10 + i));
  await sim.run(() => [10, 11, 12].every((id) => alice.acked.includes(id)));
  assert.deepEqual(bob.delivered, ["one", "two", "three"]);
  assert.ok(bob.link.stats.unexpected > 0, "the restarted peer dropped DATA of the old session");
  assert.ok(sim.now - start >= 1000, "the new handshake waited for rehandshakeMs of silence");
  assert.equal(alice.link.stats.handshakes, 2);
});

Deno.test("PeerLink reaches a restarted peer that keeps talking to it", async () => {
  const sim = await PeerSim.create({ rehandshakeMs: 1000 });
  await connected(sim);
  sim.restart("bob");
  const { alice, bob } = sim.ends;
  sim.send("alice", "are you there?", 2);
  const deadline = sim.now + 15_000;
  for (let i = 0; !bob.delivered.includes("are you there?"); i++) {
    assert.ok(sim.now < deadline, "alice's message never reached the restarted bob");
    sim.send("bob", `tick ${i}`, 100 + i);
    await sim.run(() => bob.delivered.includes("are you there?"), 60_000, sim.now + 300);
  }
  await sim.run(() => alice.acked.includes(2));
  assert.deepEqual(bob.delivered, ["are you there?"]);
  assert.equal(alice.delivered.filter((t) => t === "tick 0").length, 1);
});

Deno.test("PeerLink.updatePeer with a new relay id drops the sessions and sends unacknowledged messages again", async () => {
  const sim = await PeerSim.create();
  const { alice } = sim.ends;
  await connected(sim);
  sim.filter = (from, out) => from === "alice" ? null : out.bytes;
  sim.send("alice", "lost 1", 2);
  sim.send("alice", "lost 2", 3);
  await sim.run(() => sim.captured.filter((c) => c.from === "alice").length >= 8);
  assert.deepEqual(alice.acked, [1]);
  sim.restart("bob");
  sim.filter = null;
  const events = alice.sessionEvents.length;
  alice.link.updatePeer({ direct: { hostname: "198.51.100.9", port: 4009 }, relayId: 22 });
  assert.equal(alice.link.relayId, 22);
  assert.deepEqual(alice.link.path, { kind: "direct", hostname: "198.51.100.9", port: 4009 });
  assert.ok(alice.sessionEvents.slice(events).every((e) => e.startsWith("-")));
  assert.ok(alice.sessionEvents.length > events, "the old session was dropped");
  const start = sim.now;
  await sim.run(() => alice.acked.includes(2) && alice.acked.includes(3));
  assert.deepEqual(sim.ends.bob.delivered, ["lost 1", "lost 2"]);
  assert.ok(sim.now - start < 1000, "no wait for silence: the new login is known");
  // The same relay id again is not a restart.
  alice.link.updatePeer({ direct: { hostname: "198.51.100.9", port: 4009 }, relayId: 22 });
  sim.send("alice", "same session", 4);
  await sim.run(() => alice.acked.includes(4));
  assert.equal(alice.link.stats.handshakes, 2);
});

Deno.test("PeerLink.send refuses a message over 64 KiB and carries one of exactly 64 KiB", async () => {
  const sim = await PeerSim.create();
  const { alice, bob } = sim.ends;
  assert.throws(() => alice.link.send(new Uint8Array(65537), 1), RangeError);
  assert.equal(alice.link.nextWakeup(), null, "the refused message was not queued");
  sim.send("alice", "x".repeat(65536), 2);
  await sim.run(() => alice.acked.includes(2));
  assert.equal(bob.delivered[0]?.length, 65536);
});

Deno.test("PeerLink sends after a long silence without a spurious handshake or a duplicate", async () => {
  const sim = await PeerSim.create();
  const { alice, bob } = sim.ends;
  await connected(sim);
  sim.idle(10_000);
  sim.send("alice", "after a break", 2);
  await sim.run(() => alice.acked.includes(2));
  await sim.run(() => alice.link.nextWakeup() === null && bob.link.nextWakeup() === null);
  assert.deepEqual(bob.delivered, ["hello", "after a break"]);
  assert.equal(alice.link.stats.handshakes, 1);
});

Deno.test("PeerLink waits for acknowledgements, without asking to be polled in a loop, when its queue is full", async () => {
  const sim = await PeerSim.create();
  sim.conditions = { drop: 0, duplicate: 0, maxDelayMs: 5 };
  const { alice, bob } = sim.ends;
  const big = Array.from({ length: 20 }, (_, i) => String.fromCharCode(97 + i).repeat(65536));
  big.forEach((t, i) => sim.send("alice", t, i));
  await sim.run(() => alice.acked.length === big.length);
  assert.deepEqual(bob.delivered, big);
});

Deno.test("PeerLink stays on the direct path when it sends again after a pause", async () => {
  const sim = await PeerSim.create({}, 11);
  const { alice, bob } = sim.ends;
  sim.conditions = { drop: 0.3, duplicate: 0, maxDelayMs: 10 };
  texts("a", 40).forEach((t, i) => sim.send("alice", t, i));
  await sim.run(() => alice.acked.length === 40);
  sim.conditions = { drop: 0, duplicate: 0, maxDelayMs: 10 };
  sim.idle(2_000);
  sim.send("alice", "after a pause", 100);
  await sim.run(() => alice.acked.includes(100));
  assert.equal(bob.delivered.at(-1), "after a pause");
  assert.equal(alice.link.stats.relayFallbacks, 0);
  assert.equal(alice.link.path?.kind, "direct");
});

Deno.test("PeerLink with relayOnly sends through the relay only, even answering direct datagrams", async () => {
  const sim = await PeerSim.create({ alice: {}, bob: { relayOnly: true } });
  const { alice, bob } = sim.ends;
  assert.deepEqual(bob.link.path, { kind: "relay", relayId: ADDRESS.alice.relayId });
  await connected(sim);
  sim.send("bob", "via the relay", 2);
  await sim.run(() => bob.acked.includes(2));
  assert.deepEqual(alice.delivered, ["via the relay"]);
  const fromBob = sim.captured.filter((c) => c.from === "bob");
  assert.ok(fromBob.length > 0 && fromBob.every((c) => c.out.path.kind === "relay"));
  bob.link.updatePeer({ direct: { hostname: "198.51.100.9", port: 4009 }, relayId: 9 });
  assert.deepEqual(bob.link.path, { kind: "relay", relayId: 9 });
});

Deno.test("PeerLink keeps its sessions working when many old HS1s are replayed to it", async () => {
  const sim = await PeerSim.create();
  const { alice, bob } = sim.ends;
  await connected(sim);
  sim.send("bob", "first", 2);
  await sim.run(() => bob.acked.includes(2));
  const before = bob.sessionEvents.filter((e) => e.startsWith("+")).length;
  // Genuine HS1s of alice's, as an eavesdropper would have collected them over time.
  for (let i = 0; i < 24; i++) {
    const eph = (await generateEphemeral()).publicKey;
    const sig = await signWith(alice.identity, hs1SignedBytes("alice", "bob", eph));
    await sim.inject("bob", encodeHs1({ from: "alice", to: "bob", eph, sig }));
  }
  const alive = new Set<string>();
  for (const e of bob.sessionEvents) e.startsWith("+") ? alive.add(e.slice(1)) : alive.delete(e.slice(1));
  assert.ok(alive.size <= 16, `${alive.size} sessions kept`);
  // Each new one would cost an X25519 exchange: past the handshake budget they get nothing.
  const made = bob.sessionEvents.filter((e) => e.startsWith("+")).length - before;
  assert.ok(made <= 8, `${made} sessions made by replayed HS1s`);
  assert.equal(bob.link.stats.overBudget, 24 - made);
  sim.filter = (_from, out) => out.bytes.length > 3 && out.bytes[2] === 0x11 ? null : out.bytes; // no HS2s
  sim.send("alice", "still fine", 3);
  sim.send("bob", "me too", 4);
  await sim.run(() => alice.acked.includes(3) && bob.acked.includes(4));
  assert.deepEqual(bob.delivered, ["hello", "still fine"]);
  assert.deepEqual(alice.delivered, ["first", "me too"]);
});

Deno.test("PeerLink sends nothing twice when the peer only seemed silent for longer than rehandshakeMs", async () => {
  const sim = await PeerSim.create({});
  const { alice, bob } = sim.ends;
  await connected(sim);
  const blackoutEnd = sim.now + 4_000;
  sim.filter = (from, out) => from === "bob" && sim.now < blackoutEnd ? null : out.bytes;
  const texts = ["one", "two", "three", "four", "five"];
  texts.forEach((t, i) => sim.send("alice", t, 10 + i));
  await sim.run(() => texts.every((_, i) => alice.acked.includes(10 + i)));
  await sim.run(() => alice.link.nextWakeup() === null && bob.link.nextWakeup() === null);
  assert.deepEqual(bob.delivered, ["hello", ...texts]);
  assert.equal(alice.link.stats.handshakes, 2, "silence led to a new handshake");
});

Deno.test("PeerLink does nothing once closed: a queued authentic HS1 makes no session and poll sends nothing", async () => {
  const sim = await PeerSim.create();
  const { alice, bob } = sim.ends;
  await connected(sim);
  bob.link.close();
  const events = bob.sessionEvents.length;
  const eph = (await generateEphemeral()).publicKey;
  const sig = await signWith(alice.identity, hs1SignedBytes("alice", "bob", eph));
  await sim.inject("bob", encodeHs1({ from: "alice", to: "bob", eph, sig }));
  assert.equal(bob.sessionEvents.length, events, "no session was made");
  assert.deepEqual(await bob.link.poll(sim.now), []);
  assert.equal(bob.link.nextWakeup(), null);
});

Deno.test("PeerLink delivers a message once when its acknowledgements are lost and a new session carries it again", async () => {
  const sim = await PeerSim.create({ rehandshakeMs: 1000 });
  const { alice, bob } = sim.ends;
  await connected(sim);
  const first = decodeDatagram(sim.capturedOf("alice", "DATA")[0]!.bytes);
  assert.equal(first.type, "DATA");
  const old = first.session.toHex();
  // Bob gets alice's messages on the first session, but none of his acknowledgements on it get through: a
  // slow peer whose acknowledgements come too late. Alice's grace period ends and the new session carries
  // the message again.
  sim.filter = (from, out) => {
    const d = decodeDatagram(out.bytes);
    return from === "bob" && d.type === "DATA" && d.session.toHex() === old ? null : out.bytes;
  };
  sim.send("alice", "once", 2);
  sim.send("alice", "twice?", 3);
  await sim.run(() => alice.acked.includes(2) && alice.acked.includes(3));
  await sim.run(() => alice.link.nextWakeup() === null && bob.link.nextWakeup() === null);
  assert.ok(alice.sessionEvents.includes(`-${old}`), "alice retired the silent session");
  assert.equal(alice.link.stats.handshakes, 2);
  assert.deepEqual(bob.delivered, ["hello", "once", "twice?"]);
  assert.equal(bob.link.stats.repeated, 2, "the repeats were dropped and counted");
});

Deno.test("PeerLink made anew with the peer's delivery log drops what the link before it delivered", async () => {
  const log = new DeliveryLog();
  const sim = await PeerSim.create({ alice: { rehandshakeMs: 1000 }, bob: { deliveryLog: log } });
  const { alice } = sim.ends;
  await connected(sim);
  // Bob delivers "once" but alice never hears his acknowledgement; then bob's node forgets the link (a
  // presence notice) and makes a new one when alice handshakes again, carrying "once" on the new session.
  sim.filter = (from, out) => from === "bob" ? null : out.bytes;
  sim.send("alice", "once", 2);
  await sim.run(() => sim.ends.bob.delivered.includes("once"));
  sim.restart("bob");
  sim.filter = null;
  await sim.run(() => alice.acked.includes(2));
  assert.deepEqual(sim.ends.bob.delivered, []);
  assert.equal(sim.ends.bob.link.stats.repeated, 1);
  sim.send("alice", "new", 3);
  await sim.run(() => alice.acked.includes(3));
  assert.deepEqual(sim.ends.bob.delivered, ["new"]);
});
