import assert from "node:assert/strict";
import { decodeDatagram, encodeData, encodeDataHeader } from "../../lib/codec/datagram.ts";
import type { RelayedDatagram } from "../../lib/codec/datagram.ts";
import { verifyDatagram } from "../../lib/crypto/datagram_tag.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import type {
  ForwardedDatagram,
  RelayHandlers,
  RelayRouting,
  RoutedEndpoint,
} from "../../lib/server/relay_routing.ts";
import { Rendezvous } from "../../lib/server/udp_rendezvous.ts";
import { registerClient } from "./_rendezvous_client.ts";
import type { RendezvousClient } from "./_rendezvous_client.ts";

/** A routing that records what the rendezvous asks of it, with ids from 1000 up and other nodes made up. */
class RecordingRouting implements RelayRouting {
  next = 1000;
  /** `null`: no ids to give. */
  giving = true;
  live = new Set<number>();
  released: number[] = [];
  announced: [string, RoutedEndpoint | null][] = [];
  forwarded: ForwardedDatagram[] = [];
  /** Relay ids another node holds. */
  elsewhereIds = new Set<number>();
  elsewhere = new Map<string, RoutedEndpoint>();
  handlers: RelayHandlers | null = null;

  allocate(): number | null {
    if (!this.giving) return null;
    const id = this.next++;
    this.live.add(id);
    return id;
  }
  release(relayId: number): void {
    this.released.push(relayId);
    this.live.delete(relayId);
  }
  announce(user: string, endpoint: RoutedEndpoint | null): void {
    this.announced.push([user, endpoint]);
  }
  endpointElsewhere(user: string): RoutedEndpoint | null {
    return this.elsewhere.get(user) ?? null;
  }
  forward(datagram: ForwardedDatagram): boolean {
    if (!this.elsewhereIds.has(datagram.to)) return false;
    this.forwarded.push(datagram);
    return true;
  }
  serve(handlers: RelayHandlers): void {
    this.handlers = handlers;
  }
}

function lastAnnounced(routing: RecordingRouting): RoutedEndpoint | null | undefined {
  return routing.announced.at(-1)?.[1];
}

let nextPort = 41_000;

/** A registered session's client, from 198.51.100.9 (the address the routing is told). */
function register(rendezvous: Rendezvous, sessionId: number, user: string): Promise<RendezvousClient> {
  return registerClient(rendezvous, sessionId, user, {
    from: { hostname: "198.51.100.9", port: nextPort++ },
  });
}

function clock(start = 50_000): () => number {
  let t = start;
  return () => t++;
}

const INNER = encodeData(encodeDataHeader(new Uint8Array(8).fill(2), 1), new Uint8Array(24).fill(0xab));

Deno.test("Rendezvous takes relay ids from its routing and gives them back when a session ends", async () => {
  const routing = new RecordingRouting();
  const rendezvous = new Rendezvous({ relayPerSecond: 10, routing });
  const alice = await register(rendezvous, 1, "alice");
  const bob = await register(rendezvous, 2, "bob");
  assert.deepEqual([alice.relayId, bob.relayId], [1000, 1001]);
  await alice.rdv();
  await bob.rdv();
  const out = await alice.relay(bob.relayId, INNER);
  assert.equal((decodeDatagram(out[0]!.bytes) as RelayedDatagram).from, 1000, "RELAYED names the relay id");
  assert.deepEqual(await alice.relay(2, INNER), [], "a session id is not a relay id");
  rendezvous.unregister(bob.sessionId);
  assert.deepEqual(routing.released, [1001]);
  assert.deepEqual(await alice.relay(bob.relayId, INNER), []);
  assert.equal(rendezvous.stats.noRecipient, 2);
});

Deno.test("Rendezvous.register fails with UNAVAILABLE when the routing has no relay id to give", async () => {
  const routing = new RecordingRouting();
  routing.giving = false;
  const rendezvous = new Rendezvous({ relayPerSecond: 10, routing });
  await assert.rejects(
    rendezvous.register(1, "alice", new Uint8Array(32)),
    (err) => err instanceof ProtocolError && err.code === "UNAVAILABLE",
  );
  assert.equal(rendezvous.endpointOf("alice"), null);
});

Deno.test("Rendezvous forwards a RELAY for another node's relay id, ciphertext unchanged, the sender's budget spent first", async () => {
  const routing = new RecordingRouting();
  routing.elsewhereIds.add(77);
  const rendezvous = new Rendezvous({ relayPerSecond: 2, routing });
  const alice = await register(rendezvous, 1, "alice");
  assert.deepEqual(await alice.relay(78, INNER), [], "an id nobody holds");
  assert.deepEqual(routing.forwarded, []);
  assert.deepEqual(await alice.relay(77, INNER), [], "nothing is sent from this node");
  assert.deepEqual(routing.forwarded, [{ to: 77, from: alice.relayId, inner: INNER }]);
  assert.deepEqual(await alice.relay(77, INNER), []);
  assert.equal(routing.forwarded.length, 1, "the third is over alice's budget and never leaves");
  const stats = rendezvous.stats;
  assert.deepEqual([stats.forwarded, stats.rateLimited, stats.noRecipient, stats.relayed], [1, 1, 1, 0]);
});

Deno.test("Rendezvous.deliver tags a forwarded datagram for its recipient, from the sender's relay id", async () => {
  const routing = new RecordingRouting();
  const rendezvous = new Rendezvous({ relayPerSecond: 10, routing });
  const bob = await register(rendezvous, 1, "bob");
  assert.deepEqual(await rendezvous.deliver({ to: bob.relayId, from: 5_000_001, inner: INNER }), []);
  assert.equal(rendezvous.stats.noRecipient, 1, "bob has not proven an address yet");
  await bob.rdv();
  const [out] = await rendezvous.deliver({ to: bob.relayId, from: 5_000_001, inner: INNER });
  assert.ok(out);
  assert.deepEqual([out.hostname, out.port], [bob.from.hostname, bob.from.port]);
  const relayed = decodeDatagram(out.bytes) as RelayedDatagram;
  assert.equal(relayed.type, "RELAYED");
  assert.equal(relayed.from, 5_000_001);
  assert.deepEqual(relayed.inner, INNER);
  assert.equal(await verifyDatagram(bob.key, relayed), true);
  assert.deepEqual(await rendezvous.deliver({ to: 4, from: 5, inner: INNER }), [], "nobody's id");
  const notPeer = new Uint8Array([0xac, 1, 0x01, 1, 2, 3]);
  assert.deepEqual(await rendezvous.deliver({ to: bob.relayId, from: 5, inner: notPeer }), []);
  assert.deepEqual(
    [rendezvous.stats.relayed, rendezvous.stats.noRecipient, rendezvous.stats.malformed],
    [1, 2, 1],
  );
});

Deno.test("Rendezvous announces a user's newest proven session here when it changes, and nothing else", async () => {
  const routing = new RecordingRouting();
  const rendezvous = new Rendezvous({ relayPerSecond: 10, routing, now: clock() });
  const laptop = await register(rendezvous, 1, "alice");
  const phone = await register(rendezvous, 2, "alice");
  assert.deepEqual(routing.announced, [], "nothing proven yet");
  await laptop.rdv();
  await laptop.rdv();
  assert.deepEqual(routing.announced, [
    ["alice", { relayId: laptop.relayId, hostname: "198.51.100.9", port: laptop.from.port, since: 50_000 }],
  ], "a refresh from the same address says nothing");
  await phone.rdv();
  const last = lastAnnounced(routing)!;
  assert.deepEqual([last.relayId, last.since], [phone.relayId, 50_001]);
  await laptop.rdv(1000, { hostname: "203.0.113.1", port: 9 });
  assert.equal(routing.announced.length, 2, "the older session moving changes nothing for the others");
  await phone.rdv(1000, { hostname: "203.0.113.2", port: 10 });
  assert.deepEqual(routing.announced.at(-1), [
    "alice",
    { relayId: phone.relayId, hostname: "203.0.113.2", port: 10, since: 50_001 },
  ]);
  rendezvous.unregister(phone.sessionId);
  assert.deepEqual(routing.announced.at(-1), [
    "alice",
    { relayId: laptop.relayId, hostname: "203.0.113.1", port: 9, since: 50_000 },
  ]);
  rendezvous.unregister(laptop.sessionId);
  assert.deepEqual(routing.announced.at(-1), ["alice", null]);
  assert.equal(routing.announced.length, 5);
});

Deno.test("Rendezvous.endpointOf names the newest session of a user, here or on another node", async () => {
  const routing = new RecordingRouting();
  const rendezvous = new Rendezvous({ relayPerSecond: 10, routing, now: clock(50_000) });
  const alice = await register(rendezvous, 1, "alice");
  await alice.rdv();
  routing.elsewhere.set("alice", { relayId: 9_000_000, hostname: "192.0.2.4", port: 4000, since: 49_000 });
  assert.equal(rendezvous.endpointOf("alice")?.relayId, alice.relayId, "the session here is newer");
  routing.elsewhere.set("alice", { relayId: 9_000_000, hostname: "192.0.2.4", port: 4000, since: 60_000 });
  assert.deepEqual(rendezvous.endpointOf("alice"), { relayId: 9_000_000, hostname: "192.0.2.4", port: 4000 });
  routing.elsewhere.set("bob", { relayId: 9_000_001, hostname: "192.0.2.5", port: 4001, since: 1 });
  assert.deepEqual(rendezvous.endpointOf("bob"), { relayId: 9_000_001, hostname: "192.0.2.5", port: 4001 });
  assert.equal(rendezvous.endpointOf("carol"), null);
});

Deno.test("Rendezvous.reassign gives every session a new relay id; the old ones name nobody", async () => {
  const routing = new RecordingRouting();
  const rendezvous = new Rendezvous({ relayPerSecond: 100, routing, now: clock() });
  const alice = await register(rendezvous, 1, "alice");
  const bob = await register(rendezvous, 2, "bob");
  await alice.rdv();
  await bob.rdv();
  routing.announced.length = 0;

  // Lost hold of its ids, and none to give yet.
  routing.giving = false;
  rendezvous.reassign();
  assert.equal(rendezvous.endpointOf("alice"), null, "no relay id: PEER cannot name the session");
  assert.deepEqual(await alice.relay(bob.relayId, INNER), []);
  assert.equal(rendezvous.stats.noRelayId, 1);
  assert.deepEqual(await rendezvous.deliver({ to: bob.relayId, from: 3, inner: INNER }), []);

  routing.giving = true;
  rendezvous.reassign();
  const aliceId = rendezvous.endpointOf("alice")!.relayId;
  const bobId = rendezvous.endpointOf("bob")!.relayId;
  assert.ok(![alice.relayId, bob.relayId].includes(aliceId) && ![alice.relayId, bob.relayId].includes(bobId));
  assert.deepEqual(routing.announced.map(([user, e]) => [user, e?.relayId]).sort(), [
    ["alice", aliceId],
    ["bob", bobId],
  ]);
  assert.deepEqual(await alice.relay(bob.relayId, INNER), [], "the old id names nobody now");
  const [out] = await alice.relay(bobId, INNER);
  assert.equal((decodeDatagram(out!.bytes) as RelayedDatagram).from, aliceId);
});
