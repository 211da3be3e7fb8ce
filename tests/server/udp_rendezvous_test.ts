import assert from "node:assert/strict";
import {
  decodeDatagram,
  encodeData,
  encodeDataHeader,
  encodeHs1,
  encodeRdv,
  encodeRdvAck,
  encodeRelay,
  encodeRelayed,
} from "../../lib/codec/datagram.ts";
import type { RdvAckDatagram, RelayedDatagram } from "../../lib/codec/datagram.ts";
import { importUdpKey, tagDatagram, verifyDatagram } from "../../lib/crypto/datagram_tag.ts";
import { MAX_CHECKING, MAX_CHECKING_PER_SESSION, Rendezvous } from "../../lib/server/udp_rendezvous.ts";
import type { RendezvousStats, Source } from "../../lib/server/udp_rendezvous.ts";
import { registerClient } from "./_rendezvous_client.ts";

const ZERO_STATS: RendezvousStats = {
  rendezvous: 0,
  relayed: 0,
  malformed: 0,
  unknownHandle: 0,
  badTag: 0,
  replayed: 0,
  rateLimited: 0,
  noRecipient: 0,
  forwarded: 0,
  noRelayId: 0,
  overloaded: 0,
};

function stats(changes: Partial<RendezvousStats>): RendezvousStats {
  return { ...ZERO_STATS, ...changes };
}

const INNER = encodeData(encodeDataHeader(new Uint8Array(8).fill(4), 9), new Uint8Array(40).fill(0xee));

Deno.test("Rendezvous.register gives a 16-byte handle and the session id as relay id", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const a = await registerClient(rendezvous, 7, "alice");
  const b = await registerClient(rendezvous, 8, "alice");
  assert.equal(a.handle.length, 16);
  assert.equal(a.relayId, 7);
  assert.notDeepEqual(a.handle, b.handle);
  assert.equal(rendezvous.endpointOf("alice"), null, "nobody has proven an address yet");
});

Deno.test("Rendezvous answers an RDV with a good tag with an RDV_ACK to the observed address", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const out = await alice.rdv();
  assert.equal(out.length, 1);
  assert.equal(out[0]!.hostname, alice.from.hostname);
  assert.equal(out[0]!.port, alice.from.port);
  const ack = decodeDatagram(out[0]!.bytes) as RdvAckDatagram;
  assert.equal(ack.type, "RDV_ACK");
  assert.deepEqual(ack.handle, alice.handle);
  assert.equal(ack.counter, 0);
  assert.equal(ack.observed, `203.0.113.5:${alice.from.port}`);
  assert.equal(await verifyDatagram(alice.key, ack), true, "tagged with the session's key");
  const other = await importUdpKey(new Uint8Array(32));
  assert.equal(await verifyDatagram(other, ack), false);
  assert.deepEqual(rendezvous.endpointOf("alice"), {
    relayId: 1,
    hostname: "203.0.113.5",
    port: alice.from.port,
  });
  assert.deepEqual(rendezvous.stats, stats({ rendezvous: 1 }));
});

Deno.test("Rendezvous writes an IPv6 observed address in brackets", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const [out] = await alice.rdv(1000, { hostname: "2001:db8::1", port: 5353 });
  assert.ok(out);
  assert.equal((decodeDatagram(out.bytes) as RdvAckDatagram).observed, "[2001:db8::1]:5353");
  assert.deepEqual(rendezvous.endpointOf("alice"), { relayId: 1, hostname: "2001:db8::1", port: 5353 });
});

Deno.test("Rendezvous drops an RDV with a bad tag and counts it", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const forged = await tagDatagram(
    await importUdpKey(new Uint8Array(32)),
    encodeRdv({ handle: alice.handle, counter: 0 }),
  );
  assert.deepEqual(await rendezvous.receive(forged, alice.from, 1000), []);
  const flipped = await tagDatagram(alice.key, encodeRdv({ handle: alice.handle, counter: 1 }));
  flipped[flipped.length - 1]! ^= 1;
  assert.deepEqual(await rendezvous.receive(flipped, alice.from, 1000), []);
  assert.deepEqual(rendezvous.stats, stats({ badTag: 2 }));
  assert.equal(rendezvous.endpointOf("alice"), null);
  // A forged datagram does not use up its counter: the real one with that counter still works.
  const real = await tagDatagram(alice.key, encodeRdv({ handle: alice.handle, counter: 0 }));
  assert.equal((await rendezvous.receive(real, alice.from, 1000)).length, 1);
});

Deno.test("Rendezvous drops an RDV with an unknown handle and counts it", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const stranger = await tagDatagram(
    alice.key,
    encodeRdv({ handle: new Uint8Array(16).fill(1), counter: 0 }),
  );
  assert.deepEqual(await rendezvous.receive(stranger, alice.from, 1000), []);
  assert.deepEqual(rendezvous.stats, stats({ unknownHandle: 1 }));
});

Deno.test("Rendezvous drops malformed bytes and counts them", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const good = await tagDatagram(alice.key, encodeRdv({ handle: alice.handle, counter: 0 }));
  const cases = [
    new Uint8Array(0),
    new Uint8Array([0xac]),
    new Uint8Array([0xac, 1, 0x01]),
    good.subarray(0, good.length - 1),
    new Uint8Array([...good, 0]),
    new Uint8Array([0xab, ...good.subarray(1)]),
    new Uint8Array([0xac, 2, ...good.subarray(2)]),
    new Uint8Array([0xac, 1, 0x7f, ...good.subarray(3)]),
    new TextEncoder().encode('{"op":"HELLO","version":1}'),
    new Uint8Array(1300).fill(0xac),
  ];
  for (const bytes of cases) assert.deepEqual(await rendezvous.receive(bytes, alice.from, 1000), []);
  assert.deepEqual(rendezvous.stats, stats({ malformed: cases.length }));
  assert.equal(rendezvous.endpointOf("alice"), null);
});

Deno.test("Rendezvous drops a replayed or too old counter and counts it", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const first = await tagDatagram(alice.key, encodeRdv({ handle: alice.handle, counter: 5 }));
  assert.equal((await rendezvous.receive(first, alice.from, 1000)).length, 1);
  assert.deepEqual(await rendezvous.receive(first, alice.from, 1000), []);
  const late = await tagDatagram(alice.key, encodeRdv({ handle: alice.handle, counter: 3 }));
  assert.equal((await rendezvous.receive(late, alice.from, 1000)).length, 1, "out of order but new");
  const jump = await tagDatagram(alice.key, encodeRdv({ handle: alice.handle, counter: 500 }));
  assert.equal((await rendezvous.receive(jump, alice.from, 1000)).length, 1);
  const ancient = await tagDatagram(alice.key, encodeRdv({ handle: alice.handle, counter: 6 }));
  assert.deepEqual(await rendezvous.receive(ancient, alice.from, 1000), [], "behind the window");
  assert.deepEqual(rendezvous.stats, stats({ rendezvous: 3, replayed: 2 }));
});

Deno.test("Rendezvous answers one of two copies of an RDV that arrive together", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const bytes = await tagDatagram(alice.key, encodeRdv({ handle: alice.handle, counter: 0 }));
  const outs = await Promise.all([1, 2, 3].map(() => rendezvous.receive(bytes, alice.from, 1000)));
  assert.equal(outs.flat().length, 1);
  assert.equal(rendezvous.stats.rendezvous, 1);
});

Deno.test("Rendezvous drops server-to-client and peer datagrams sent to it as malformed", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const kinds = [
    await tagDatagram(alice.key, encodeRdvAck({ handle: alice.handle, counter: 0, observed: "1.2.3.4:5" })),
    await tagDatagram(alice.key, encodeRelayed({ from: 1, inner: INNER })),
    encodeHs1({ from: "alice", to: "bob", eph: new Uint8Array(32), sig: new Uint8Array(64) }),
    INNER,
  ];
  for (const bytes of kinds) assert.deepEqual(await rendezvous.receive(bytes, alice.from, 1000), []);
  assert.deepEqual(rendezvous.stats, stats({ malformed: kinds.length }));
});

Deno.test("Rendezvous relays between two proven sessions, re-tagged for the recipient, inner bytes unchanged", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const bob = await registerClient(rendezvous, 2, "bob");
  await alice.rdv();
  await bob.rdv();
  const out = await alice.relay(bob.relayId, INNER);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.hostname, bob.from.hostname);
  assert.equal(out[0]!.port, bob.from.port);
  const relayed = decodeDatagram(out[0]!.bytes) as RelayedDatagram;
  assert.equal(relayed.type, "RELAYED");
  assert.equal(relayed.from, alice.relayId);
  assert.deepEqual(relayed.inner, INNER);
  assert.equal(relayed.peer.type, "DATA");
  assert.equal(await verifyDatagram(bob.key, relayed), true);
  assert.equal(await verifyDatagram(alice.key, relayed), false, "never tagged with the sender's key");
  const back = await bob.relay(alice.relayId, INNER);
  assert.equal(back[0]?.port, alice.from.port);
  assert.equal((decodeDatagram(back[0]!.bytes) as RelayedDatagram).from, bob.relayId);
  assert.deepEqual(rendezvous.stats, stats({ rendezvous: 2, relayed: 2 }));
});

Deno.test("Rendezvous drops a RELAY to an unknown or unproven recipient", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const bob = await registerClient(rendezvous, 2, "bob");
  await alice.rdv();
  assert.deepEqual(await alice.relay(99, INNER), []);
  assert.deepEqual(await alice.relay(bob.relayId, INNER), [], "bob never sent an RDV");
  assert.deepEqual(rendezvous.stats, stats({ rendezvous: 1, noRecipient: 2 }));
});

Deno.test("Rendezvous drops a RELAY with a bad tag without relaying", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const bob = await registerClient(rendezvous, 2, "bob");
  await bob.rdv();
  const forged = await tagDatagram(
    bob.key,
    encodeRelay({ handle: alice.handle, counter: 0, to: bob.relayId, inner: INNER }),
  );
  assert.deepEqual(await rendezvous.receive(forged, alice.from, 1000), []);
  assert.deepEqual(rendezvous.stats, stats({ rendezvous: 1, badTag: 1 }));
});

Deno.test("Rendezvous drops an RDV or RELAY sent as the codec encodes it, without its tag", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const bob = await registerClient(rendezvous, 2, "bob");
  await bob.rdv();
  const rdv = encodeRdv({ handle: alice.handle, counter: 0 });
  assert.deepEqual(await rendezvous.receive(rdv, alice.from, 1000), []);
  // Without a tag, the RELAY's last 16 bytes (the end of INNER's ciphertext) are read as one: a bad one.
  const relay = encodeRelay({ handle: alice.handle, counter: 1, to: bob.relayId, inner: INNER });
  assert.deepEqual(await rendezvous.receive(relay, alice.from, 1000), []);
  assert.deepEqual(rendezvous.stats, stats({ rendezvous: 1, malformed: 1, badTag: 1 }));
  assert.equal(rendezvous.endpointOf("alice"), null);
  assert.equal((await alice.rdv()).length, 1, "tagged, the same counter is still good");
});

Deno.test("Rendezvous rate-limits each user's relays and allows them again as time passes", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 5 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const bob = await registerClient(rendezvous, 2, "bob");
  await alice.rdv();
  await bob.rdv();
  for (let i = 0; i < 5; i++) assert.equal((await alice.relay(bob.relayId, INNER, 5000)).length, 1, `#${i}`);
  assert.deepEqual(await alice.relay(bob.relayId, INNER, 5000), [], "the sixth in the same ms");
  assert.equal(
    (await bob.relay(alice.relayId, INNER, 5000)).length,
    1,
    "another user has a budget of their own",
  );
  assert.deepEqual(await alice.relay(bob.relayId, INNER, 5100), [], "half a token is not enough");
  assert.equal((await alice.relay(bob.relayId, INNER, 5300)).length, 1, "one token back after 200 ms");
  assert.deepEqual(await alice.relay(bob.relayId, INNER, 5300), []);
  assert.deepEqual(rendezvous.stats, stats({ rendezvous: 2, relayed: 7, rateLimited: 3 }));
});

Deno.test("Rendezvous shares one relay budget between the sessions of a user", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 2 });
  const a1 = await registerClient(rendezvous, 1, "alice");
  const a2 = await registerClient(rendezvous, 2, "alice");
  const bob = await registerClient(rendezvous, 3, "bob");
  await bob.rdv();
  assert.equal((await a1.relay(bob.relayId, INNER)).length, 1);
  assert.equal((await a2.relay(bob.relayId, INNER)).length, 1);
  assert.deepEqual(await a2.relay(bob.relayId, INNER), []);
  assert.equal(rendezvous.stats.rateLimited, 1);
});

Deno.test("Rendezvous.unregister stops everything for that session's handle", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const bob = await registerClient(rendezvous, 2, "bob");
  await alice.rdv();
  await bob.rdv();
  rendezvous.unregister(alice.sessionId);
  rendezvous.unregister(alice.sessionId);
  assert.equal(rendezvous.endpointOf("alice"), null);
  assert.deepEqual(await alice.rdv(), []);
  assert.deepEqual(await alice.relay(bob.relayId, INNER), []);
  assert.deepEqual(await bob.relay(alice.relayId, INNER), []);
  assert.deepEqual(rendezvous.stats, stats({ rendezvous: 2, unknownHandle: 2, noRecipient: 1 }));
});

Deno.test("Rendezvous.register again for a session replaces its handle", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const old = await registerClient(rendezvous, 1, "alice");
  await old.rdv();
  const fresh = await registerClient(rendezvous, 1, "alice");
  assert.equal(rendezvous.endpointOf("alice"), null, "the new registration has proven nothing yet");
  assert.deepEqual(await old.rdv(), []);
  assert.equal((await fresh.rdv()).length, 1);
  assert.equal(rendezvous.stats.unknownHandle, 1);
});

Deno.test("Rendezvous.endpointOf names the newest proven session of a user, whichever refreshed last", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const laptop = await registerClient(rendezvous, 1, "alice");
  const phone = await registerClient(rendezvous, 2, "alice");
  await laptop.rdv(100);
  assert.equal(rendezvous.endpointOf("alice")?.relayId, 1, "the only proven session");
  await phone.rdv(200);
  assert.deepEqual(rendezvous.endpointOf("alice"), {
    relayId: 2,
    hostname: "203.0.113.5",
    port: phone.from.port,
  });
  // The laptop's refresh (from a new address) does not make it the target: peers would flip between them.
  await laptop.rdv(300, { hostname: "198.51.100.7", port: 6000 });
  assert.equal(rendezvous.endpointOf("alice")?.relayId, 2);
  rendezvous.unregister(phone.sessionId);
  assert.deepEqual(rendezvous.endpointOf("alice"), { relayId: 1, hostname: "198.51.100.7", port: 6000 });
  assert.equal(rendezvous.endpointOf("bob"), null);
});

Deno.test("Rendezvous checks at most MAX_CHECKING_PER_SESSION tags of one handle at once, others still served", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const alice = await registerClient(rendezvous, 1, "alice");
  const bob = await registerClient(rendezvous, 2, "bob");
  const wrongKey = await importUdpKey(new Uint8Array(32).fill(9));
  const forged: Uint8Array[] = [];
  for (let i = 0; i < MAX_CHECKING_PER_SESSION + 36; i++) {
    forged.push(await tagDatagram(wrongKey, encodeRdv({ handle: alice.handle, counter: i })));
  }
  const bobRdv = await tagDatagram(bob.key, encodeRdv({ handle: bob.handle, counter: 0 }));
  // All handed over before any check completes, as a burst read from the socket would be.
  const flood = forged.map((bytes) => rendezvous.receive(bytes, alice.from, 1000));
  const answer = rendezvous.receive(bobRdv, bob.from, 1000);
  assert.ok((await Promise.all(flood)).every((r) => r.length === 0));
  assert.equal((await answer).length, 1, "bob's session is answered during alice's flood");
  assert.deepEqual(
    rendezvous.stats,
    stats({ badTag: MAX_CHECKING_PER_SESSION, overloaded: 36, rendezvous: 1 }),
  );
  // Once the checks are done, the flooded session's own datagrams are handled again.
  alice.counter = 1000;
  assert.equal((await alice.rdv()).length, 1);
});

Deno.test("Rendezvous checks at most MAX_CHECKING tags at once over all sessions", async () => {
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  const wrongKey = await importUdpKey(new Uint8Array(32).fill(9));
  const forged: [Uint8Array, Source][] = [];
  const sessions = Math.ceil(MAX_CHECKING / MAX_CHECKING_PER_SESSION) + 2;
  for (let s = 0; s < sessions; s++) {
    const c = await registerClient(rendezvous, s + 1, `user${s}`);
    for (let i = 0; i < MAX_CHECKING_PER_SESSION; i++) {
      forged.push([await tagDatagram(wrongKey, encodeRdv({ handle: c.handle, counter: i })), c.from]);
    }
  }
  await Promise.all(forged.map(([bytes, from]) => rendezvous.receive(bytes, from, 1000)));
  assert.deepEqual(
    rendezvous.stats,
    stats({ badTag: MAX_CHECKING, overloaded: sessions * MAX_CHECKING_PER_SESSION - MAX_CHECKING }),
  );
});
