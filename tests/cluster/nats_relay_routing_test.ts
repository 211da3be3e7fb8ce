import assert from "node:assert/strict";
import { NatsBus } from "../../lib/cluster/nats_bus.ts";
import { NatsRelayRouting } from "../../lib/cluster/nats_relay_routing.ts";
import { IDS_PER_SLOT, relayIdIn, slotOf } from "../../lib/cluster/relay_slots.ts";
import type { LeaseTiming } from "../../lib/cluster/relay_slots.ts";
import { encodeForward, encodeSlotClaim } from "../../lib/cluster/_relay_wire.ts";
import type { ForwardedDatagram, RoutedEndpoint } from "../../lib/server/relay_routing.ts";
import { Rendezvous } from "../../lib/server/udp_rendezvous.ts";
import type { Outgoing } from "../../lib/server/udp_rendezvous.ts";
import { decodeDatagram, encodeData, encodeDataHeader } from "../../lib/codec/datagram.ts";
import type { RelayedDatagram } from "../../lib/codec/datagram.ts";
import { verifyDatagram } from "../../lib/crypto/datagram_tag.ts";
import { TcpProxy } from "../_tcp_proxy.ts";
import { registerClient } from "../server/_rendezvous_client.ts";
import { natsUrlOrSkip } from "../_cluster_services.ts";

const NATS = natsUrlOrSkip();

/** Short leases, so a lapse takes about a second. */
const TIMING: LeaseTiming = { ttlMs: 1500, renewMs: 250, marginMs: 400, deadAfterMs: 900 };

/** Nodes of one cluster (their own bucket prefix), cleaned up together. */
class Cluster implements AsyncDisposable {
  readonly prefix = `relaytest${crypto.randomUUID().slice(0, 8)}`;
  buses: NatsBus[] = [];
  routings: NatsRelayRouting[] = [];
  proxies: TcpProxy[] = [];

  async bus(nodeId: string, url = NATS!): Promise<NatsBus> {
    const bus = await NatsBus.connect({ servers: [url], nodeId, prefix: this.prefix });
    this.buses.push(bus);
    return bus;
  }

  async node(nodeId: string, options: { proxied?: boolean } = {}): Promise<Node> {
    let proxy: TcpProxy | undefined;
    if (options.proxied) {
      proxy = new TcpProxy(NATS!);
      this.proxies.push(proxy);
    }
    const bus = await this.bus(nodeId, proxy?.url);
    const routing = await NatsRelayRouting.start(bus, { timing: TIMING });
    this.routings.push(routing);
    const node: Node = { id: nodeId, bus, routing, delivered: [], reassigned: [], proxy };
    routing.serve({
      deliver: (d) => node.delivered.push(d),
      reassign: () => node.reassigned.push({ at: performance.now(), id: routing.allocate(0) }),
    });
    return node;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const proxy of this.proxies) proxy.resume();
    for (const routing of this.routings) await routing.close(500);
    const [first] = this.buses;
    if (first?.connected) {
      for (const name of ["relay_slots", "relay_endpoints"]) {
        await (await first.kv(name)).destroy().catch(() => {});
      }
    }
    for (const bus of this.buses) await bus.close();
    for (const proxy of this.proxies) await proxy.close();
  }
}

interface Node {
  id: string;
  bus: NatsBus;
  routing: NatsRelayRouting;
  delivered: ForwardedDatagram[];
  reassigned: { at: number; id: number | null }[];
  proxy: TcpProxy | undefined;
}

async function eventually<T>(what: string, probe: () => T | null | undefined, timeoutMs = 5000): Promise<T> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== null && value !== undefined && value !== false) return value;
    if (performance.now() > until) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const INNER = new Uint8Array([0xac, 1, 0x20, ...new Uint8Array(40).fill(3)]);
const INNER_DATA = encodeData(encodeDataHeader(new Uint8Array(8).fill(6), 2), new Uint8Array(32).fill(0xcd));

function endpoint(relayId: number, since: number, port: number): RoutedEndpoint {
  return { relayId, hostname: "198.51.100.20", port, since };
}

Deno.test({
  name: "NatsRelayRouting gives each node a slot of its own, and relay ids only in it",
  ignore: !NATS,
  async fn() {
    await using cluster = new Cluster();
    const nodes = [await cluster.node("n1"), await cluster.node("n2"), await cluster.node("n3")];
    const slots = nodes.map((n) => n.routing.slot!);
    assert.equal(new Set(slots).size, 3, `distinct slots: ${slots}`);
    const ids = new Set<number>();
    for (const [i, node] of nodes.entries()) {
      for (let s = 0; s < 50; s++) {
        const id = node.routing.allocate(s)!;
        assert.equal(slotOf(id), slots[i]);
        ids.add(id);
      }
    }
    assert.equal(ids.size, 150, "no id twice across the nodes");
  },
});

Deno.test({
  name:
    "NatsRelayRouting answers for a user's newest session on the other nodes, and forgets it when it goes",
  ignore: !NATS,
  async fn() {
    await using cluster = new Cluster();
    const [n1, n2, n3] = [await cluster.node("n1"), await cluster.node("n2"), await cluster.node("n3")];
    const a = n1.routing.allocate(1)!;
    const b = n2.routing.allocate(1)!;
    n1.routing.announce("alice", endpoint(a, 100, 4001));
    assert.equal(n1.routing.endpointElsewhere("alice"), null, "a node does not answer for itself");
    await eventually("n3 to see alice on n1", () => n3.routing.endpointElsewhere("alice")?.port === 4001);
    n2.routing.announce("alice", endpoint(b, 200, 4002));
    await eventually(
      "alice's newer session on n2",
      () => n3.routing.endpointElsewhere("alice")?.port === 4002,
    );
    assert.deepEqual(n3.routing.endpointElsewhere("alice"), endpoint(b, 200, 4002));
    assert.equal(n1.routing.endpointElsewhere("alice")?.port, 4002);
    assert.equal(n2.routing.endpointElsewhere("alice")?.port, 4001, "n2 sees only n1's session elsewhere");
    n2.routing.announce("alice", null);
    await eventually("n2's session to go", () => n3.routing.endpointElsewhere("alice")?.port === 4001);
    n1.routing.announce("alice", endpoint(a, 100, 4011));
    await eventually("alice's new address", () => n3.routing.endpointElsewhere("alice")?.port === 4011);
    n1.routing.announce("alice", null);
    await eventually("alice to be gone", () => n3.routing.endpointElsewhere("alice") === null);
    await eventually("the writes", () => n1.routing.settled && n2.routing.settled);
  },
});

Deno.test({
  name: "NatsRelayRouting carries a datagram to the node holding its recipient, and only under that hold",
  ignore: !NATS,
  async fn() {
    await using cluster = new Cluster();
    const [n1, n2] = [await cluster.node("n1"), await cluster.node("n2")];
    const from = n1.routing.allocate(1)!;
    const to = n2.routing.allocate(1)!;
    await eventually("n1 to see n2's slot", () => n1.routing.forward({ to, from, inner: INNER }));
    await eventually("the datagram at n2", () => n2.delivered.length >= 1);
    assert.deepEqual(n2.delivered[0], { to, from, inner: INNER });
    assert.equal(n1.delivered.length, 0);
    assert.equal(
      n1.routing.forward({ to: from, from, inner: INNER }),
      false,
      "its own slot is not forwarded",
    );
    const nobody = relayIdIn([0, 1, 2].find((s) => s !== n1.routing.slot && s !== n2.routing.slot)!, 5);
    assert.equal(n1.routing.forward({ to: nobody, from, inner: INNER }), false, "a slot nobody holds");
    // A datagram sent under another hold of n2's slot (an earlier one, or a forged claim) is dropped.
    const stale = encodeForward({ claim: "0123456789abcdef", to, from, inner: INNER });
    n1.bus.nc.publish(n1.bus.subject("relay", String(n2.routing.slot)), stale);
    n1.bus.nc.publish(n1.bus.subject("relay", String(n2.routing.slot)), new Uint8Array([1, 2, 3]));
    await eventually("both dropped", () => n2.routing.stats.arrivedDropped === 2);
    assert.equal(n2.delivered.length, 1);
    assert.equal(n2.routing.stats.arrived, 1);
    assert.equal(n1.routing.stats.forwarded, n2.routing.stats.arrived);
  },
});

Deno.test({
  name: "NatsRelayRouting stops naming a node that stopped renewing its slot (killed) within deadAfterMs",
  ignore: !NATS,
  async fn() {
    await using cluster = new Cluster();
    const n1 = await cluster.node("n1");
    const n2 = await cluster.node("n2", { proxied: true });
    const b = n2.routing.allocate(1)!;
    n2.routing.announce("bob", endpoint(b, 1, 4002));
    await eventually("n1 to see bob", () => n1.routing.endpointElsewhere("bob"));
    n2.proxy!.pause();
    const cutAt = performance.now();
    await eventually("bob to be gone", () => n1.routing.endpointElsewhere("bob") === null, 5000);
    const gone = performance.now() - cutAt;
    assert.ok(gone <= TIMING.deadAfterMs + 500, `gone after ${Math.round(gone)} ms`);
    assert.equal(n1.routing.forward({ to: b, from: n1.routing.allocate(1)!, inner: INNER }), false);
  },
});

Deno.test({
  name:
    "NatsRelayRouting gives its slot up, cut off from NATS, before another node can claim it, then claims another",
  ignore: !NATS,
  async fn() {
    await using cluster = new Cluster();
    const n1 = await cluster.node("n1", { proxied: true });
    const slot = n1.routing.slot!;
    const before = n1.routing.allocate(1)!;
    n1.proxy!.pause();
    // Another node trying all the time to take n1's slot.
    const rival = await cluster.bus("rival");
    const slots = await rival.kv("relay_slots", { ttlMs: TIMING.ttlMs, history: 1 });
    let takenAt = 0;
    while (!takenAt) {
      try {
        await slots.create(String(slot), encodeSlotClaim({ node: "rival", claim: "00000000000000ff" }));
        takenAt = performance.now();
      } catch {
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    assert.equal(n1.reassigned.length, 1, "n1 voided its ids");
    const [lapse] = n1.reassigned;
    assert.equal(lapse!.id, null, "and has none to give while cut off");
    assert.ok(lapse!.at < takenAt, `n1 let go at ${lapse!.at}, the rival took the slot at ${takenAt}`);
    assert.equal(n1.routing.allocate(2), null);
    n1.proxy!.resume();
    await eventually("n1 to hold a slot again", () => n1.reassigned.length >= 2, 10_000);
    const again = n1.reassigned[1]!.id!;
    assert.notEqual(n1.routing.slot, slot, "its old slot is the rival's now");
    assert.equal(slotOf(again), n1.routing.slot);
    assert.notEqual(again, before);
    assert.equal(n1.routing.stats.losses, 1);
  },
});

Deno.test({
  name: "NatsRelayRouting gives its slot up when it finds another node's claim on it",
  ignore: !NATS,
  async fn() {
    await using cluster = new Cluster();
    const n1 = await cluster.node("n1");
    const slot = n1.routing.slot!;
    const rival = await cluster.bus("rival");
    const slots = await rival.kv("relay_slots", { ttlMs: TIMING.ttlMs, history: 1 });
    // As if the bucket had lost the entry and another node had created it (an operator's purge, say).
    await slots.put(String(slot), encodeSlotClaim({ node: "rival", claim: "00000000000000ee" }));
    await eventually("n1 to notice", () => n1.reassigned.length >= 1, 5000);
    await eventually("n1 to claim another", () => n1.reassigned.some((r) => r.id !== null), 5000);
    assert.notEqual(n1.routing.slot, slot);
    assert.ok(n1.reassigned.every((r) => r.id === null || Math.floor(r.id / IDS_PER_SLOT) !== slot));
  },
});

Deno.test({
  name:
    "Rendezvous on two nodes over NATS: PEER names the other node's user, RELAY reaches them there, tagged there",
  ignore: !NATS,
  async fn() {
    await using cluster = new Cluster();
    const sent: { node: string; out: Outgoing }[] = [];
    const nodes = await Promise.all(["n1", "n2"].map(async (id) => {
      const bus = await cluster.bus(id);
      const routing = await NatsRelayRouting.start(bus, { timing: TIMING });
      cluster.routings.push(routing);
      const rendezvous = new Rendezvous({ relayPerSecond: 100, routing });
      routing.serve({
        deliver: (d) =>
          void rendezvous.deliver(d).then((out) => sent.push(...out.map((o) => ({ node: id, out: o })))),
        reassign: () => rendezvous.reassign(),
      });
      return { rendezvous, routing };
    }));
    const [one, two] = nodes as [typeof nodes[0], typeof nodes[0]];
    const alice = await registerClient(one.rendezvous, 1, "alice", {
      from: { hostname: "203.0.113.30", port: 7001 },
    });
    const bob = await registerClient(two.rendezvous, 1, "bob", {
      from: { hostname: "203.0.113.30", port: 7002 },
    });
    assert.notEqual(alice.relayId, bob.relayId, "the same session id on two nodes, two relay ids");
    await alice.rdv();
    await bob.rdv();
    const found = await eventually("n1 to know where bob is", () => one.rendezvous.endpointOf("bob"));
    assert.deepEqual(found, { relayId: bob.relayId, hostname: "203.0.113.30", port: 7002 });
    assert.deepEqual(two.rendezvous.endpointOf("alice"), {
      relayId: alice.relayId,
      hostname: "203.0.113.30",
      port: 7001,
    });

    assert.deepEqual(await alice.relay(bob.relayId, INNER_DATA), [], "n1 sends nothing itself");
    await eventually("n2 to send it", () => sent.length === 1);
    const [{ node, out }] = sent as [{ node: string; out: Outgoing }];
    assert.equal(node, "n2");
    assert.deepEqual([out.hostname, out.port], ["203.0.113.30", 7002]);
    const relayed = decodeDatagram(out.bytes) as RelayedDatagram;
    assert.equal(relayed.type, "RELAYED");
    assert.equal(relayed.from, alice.relayId);
    assert.deepEqual(relayed.inner, INNER_DATA, "the ciphertext as alice sent it");
    assert.equal(await verifyDatagram(bob.key, relayed), true, "tagged with bob's key, on bob's node");

    await bob.relay(relayed.from, INNER_DATA);
    await eventually("the reply at n1", () => sent.length === 2);
    assert.equal(sent[1]!.node, "n1");
    assert.equal((decodeDatagram(sent[1]!.out.bytes) as RelayedDatagram).from, bob.relayId);
    assert.equal(
      await verifyDatagram(alice.key, decodeDatagram(sent[1]!.out.bytes) as RelayedDatagram),
      true,
    );
    assert.deepEqual([one.rendezvous.stats.forwarded, two.rendezvous.stats.forwarded], [1, 1]);

    two.rendezvous.unregister(1);
    await eventually("bob's session to leave n1's answers", () => one.rendezvous.endpointOf("bob") === null);
  },
});

Deno.test({
  name:
    "NatsRelayRouting claims a free slot past those other nodes hold, and refuses to start when none is free",
  ignore: !NATS,
  async fn() {
    await using cluster = new Cluster();
    // Entries that outlive the test's short liveness, so the new node cannot tell them apart from free
    // slots before it tries them.
    const timing: LeaseTiming = { ...TIMING, ttlMs: 8000 };
    const rival = await cluster.bus("rival");
    const slots = await rival.kv("relay_slots", { ttlMs: timing.ttlMs, history: 1 });
    const free = [17, 901];
    const claim = encodeSlotClaim({ node: "rival", claim: "00000000000000dd" });
    await Promise.all(
      [...Array(1024).keys()].filter((s) => !free.includes(s)).map((s) => slots.create(String(s), claim)),
    );
    await new Promise((r) => setTimeout(r, timing.deadAfterMs + 100));
    const one = await NatsRelayRouting.start(await cluster.bus("n1"), { timing });
    cluster.routings.push(one);
    const two = await NatsRelayRouting.start(await cluster.bus("n2"), { timing });
    cluster.routings.push(two);
    assert.deepEqual([one.slot, two.slot].sort((a, b) => a! - b!), free);
    await assert.rejects(
      NatsRelayRouting.start(await cluster.bus("n3"), { timing }),
      (err: Error) => err.name === "BusUnavailableError" && /all 1024 relay slots are held/.test(err.message),
    );
  },
});

Deno.test({
  name: "NatsRelayRouting that lost its slot never writes over the endpoints of the node that holds it next",
  ignore: !NATS,
  async fn() {
    await using cluster = new Cluster();
    const watcher = await cluster.node("n2");
    const n1 = await cluster.node("n1", { proxied: true });
    const slot = n1.routing.slot!;
    n1.routing.announce("bob", endpoint(n1.routing.allocate(1)!, 1, 4001));
    await eventually("n2 to see bob on n1", () => watcher.routing.endpointElsewhere("bob")?.port === 4001);
    n1.proxy!.pause();
    // n1 gives its slot up and withdraws bob: that write waits in the cut-off connection (or fails, to be
    // tried again), and reaches the bucket only once n1 is back.
    await eventually("n1 to give its slot up", () => n1.reassigned.length >= 1 ? true : null);
    const filler = await cluster.bus("filler");
    const slots = await filler.kv("relay_slots", { ttlMs: TIMING.ttlMs, history: 1 });
    const until = performance.now() + 10_000;
    while ((await slots.get(String(slot)))?.operation === "PUT") {
      assert.ok(performance.now() < until, "the slot's entry runs out");
      await new Promise((r) => setTimeout(r, 50));
    }
    // The next node gets n1's old slot (every other one held) and announces bob there too.
    const claim = encodeSlotClaim({ node: "filler", claim: "00000000000000cc" });
    await Promise.allSettled(
      [...Array(1024).keys()].filter((s) => s !== slot).map((s) => slots.create(String(s), claim)),
    );
    const n3 = await cluster.node("n3");
    assert.equal(n3.routing.slot, slot);
    n3.routing.announce("bob", endpoint(n3.routing.allocate(1)!, 2, 4003));
    await eventually("n2 to see bob on n3", () => watcher.routing.endpointElsewhere("bob")?.port === 4003);

    n1.proxy!.resume();
    await eventually("n1 to hold a slot again", () => n1.reassigned.some((r) => r.id !== null), 15_000);
    await eventually("n1's writes made", () => n1.routing.settled, 10_000);
    // Once n2 sees a later write, it has seen every write n1 made before.
    n3.routing.announce("zed", endpoint(n3.routing.allocate(2)!, 3, 4004));
    await eventually("n2 to see zed", () => watcher.routing.endpointElsewhere("zed"));
    assert.equal(watcher.routing.endpointElsewhere("bob")?.port, 4003, "n3's entry for bob stands");
    assert.equal(n1.routing.endpointElsewhere("bob")?.port, 4003);
  },
});
