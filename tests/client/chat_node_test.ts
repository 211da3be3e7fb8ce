import assert from "node:assert/strict";
import { PeerKeyChangedError } from "../../lib/client/chat_node.ts";
import {
  decodeDatagram,
  encodeHs1,
  encodeRdv,
  encodeRelayed,
  hs1SignedBytes,
} from "../../lib/codec/datagram.ts";
import { importUdpKey, tagDatagram } from "../../lib/crypto/datagram_tag.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { generateIdentity, signWith } from "../../lib/crypto/identity_key.ts";
import { generateEphemeral } from "../../lib/crypto/peer_session.ts";
import { prng } from "../transport/_lossy_link.ts";
import { LossyUdpProxy, until, withChat, withWatchedPair } from "./_chat_kit.ts";

const encoder = new TextEncoder();
const ALPHABET = ["a", "Z", " ", "é", "ß", "✓", "漢", "😀", "\n", "\u0000", "ﬃ", "€"];

/** Exactly `bytes` bytes of UTF-8: mixed characters, padded with ASCII. */
function ofBytes(bytes: number, random: () => number): string {
  let text = "";
  let length = 0;
  for (;;) {
    const c = ALPHABET[Math.floor(random() * ALPHABET.length)]!;
    const n = encoder.encode(c).length;
    if (length + n > bytes - 4) break;
    text += c;
    length += n;
  }
  return text + "x".repeat(bytes - length);
}

/** 1,000 messages: eight of exactly 64 KiB, empty and one-character ones, multi-byte UTF-8 throughout. */
function thousandMessages(): string[] {
  const random = prng(1000);
  return Array.from({ length: 1000 }, (_, i) => {
    if (i % 125 === 60) return ofBytes(65536, random);
    if (i % 100 === 1) return "";
    if (i % 100 === 2) return i % 200 === 2 ? "a" : "😀";
    return `${i}: ${ofBytes(Math.floor(random() * 400), random)}`;
  });
}

function code(name: string): (err: unknown) => boolean {
  return (err) => err instanceof ProtocolError && err.code === name;
}

Deno.test("ChatNode delivers 1,000 messages in order and intact through a proxy that drops, duplicates and reorders", async () => {
  await withChat(async (kit) => {
    const proxy = new LossyUdpProxy({ drop: 0.2, duplicate: 0.1, maxDelayMs: 30 }, 2024);
    try {
      const direct = { directTimeoutMs: 1e9, sendTimeoutMs: 120_000 };
      const bob = await kit.join("bob", { ...direct, wrapPeer: proxy.wrapFor("bob") });
      const alice = await kit.join("alice", { ...direct, wrapPeer: proxy.wrapFor("alice") });
      const texts = thousandMessages();
      assert.equal(texts.filter((t) => encoder.encode(t).length === 65536).length, 8);
      const sent = await Promise.allSettled(texts.map((t) => alice.node.send("bob", t)));
      assert.deepEqual(sent.filter((r) => r.status === "rejected"), [], "every send resolved");
      await until(() => bob.messages.length >= texts.length, "bob's messages");
      assert.equal(bob.messages.length, texts.length);
      for (let i = 0; i < texts.length; i++) {
        assert.ok(bob.messages[i]!.from === "alice" && bob.messages[i]!.text === texts[i], `message ${i}`);
      }
      assert.equal(bob.node.stats.delivered, texts.length);
      assert.equal(kit.server.rendezvous!.stats.relayed, 0, "the relay was never used");
      assert.ok(proxy.stats.toBob > 1000 && proxy.stats.toAlice > 0, "everything went through the proxy");
      assert.ok(proxy.stats.dropped > 100 && proxy.stats.duplicated > 50);
      assert.ok(bob.node.stats.replayed > 0, "duplicates were refused by the replay window");
    } finally {
      await proxy.close();
    }
  });
});

Deno.test("ChatNode drops and counts forged, replayed and garbage datagrams from a third party", async () => {
  await withChat((kit) =>
    withWatchedPair(kit, async ({ bob, alice, proxy, toBob }) => {
      const captured: Uint8Array[] = [];
      const handshakes: number[] = [];
      proxy.tap = (direction, bytes) => {
        if (direction === "toBob" && bytes[2] === 0x20) captured.push(bytes);
        if (bytes[2] === 0x10 || bytes[2] === 0x11) handshakes.push(bytes[2]);
        return true;
      };
      await alice.node.send("bob", "first");
      assert.deepEqual(handshakes, [0x10, 0x11]);
      const before = bob.node.stats;
      const endpoint = kit.server.rendezvous!.endpointOf("bob")!;

      const data = captured[0]!;
      const d = decodeDatagram(data);
      assert.equal(d.type, "DATA");
      const tampered = data.slice();
      tampered[18] = (tampered[18]! + 100) & 0xff; // a counter bob has not seen yet
      tampered[tampered.length - 1]! ^= 0x80;
      await toBob(tampered);
      await toBob(data);
      const stranger = data.slice();
      stranger.set(crypto.getRandomValues(new Uint8Array(8)), 3);
      await toBob(stranger);
      const mallory = await generateIdentity();
      const eph = (await generateEphemeral()).publicKey;
      const sig = await signWith(mallory, hs1SignedBytes("alice", "bob", eph));
      await toBob(encodeHs1({ from: "alice", to: "bob", eph, sig }));
      await toBob(crypto.getRandomValues(new Uint8Array(64)));
      await toBob(
        await tagDatagram(
          await importUdpKey(new Uint8Array(32)),
          encodeRdv({ handle: new Uint8Array(16), counter: 1 }),
        ),
      );
      const wrongKey = await importUdpKey(crypto.getRandomValues(new Uint8Array(32)));
      await toBob(await tagDatagram(wrongKey, encodeRelayed({ from: endpoint.relayId, inner: data })));

      const expected = {
        ...before,
        forged: before.forged + 1,
        replayed: before.replayed + 1,
        unknownSession: before.unknownSession + 1,
        badSignature: before.badSignature + 1,
        malformed: before.malformed + 2,
        badServerTag: before.badServerTag + 1,
      };
      await until(() => JSON.stringify(bob.node.stats) === JSON.stringify(expected), "bob's counters");
      assert.deepEqual(bob.node.stats, expected);
      await alice.node.send("bob", "after the attacks");
      assert.deepEqual(bob.messages.map((m) => m.text), ["first", "after the attacks"]);
      assert.deepEqual(handshakes, [0x10, 0x11], "the session went on: no new handshake");
      assert.deepEqual(bob.warnings, []);
    })
  );
});

Deno.test("ChatNode with relayOnly sends through the server's relay, both ways", async () => {
  await withChat(async (kit) => {
    const bob = await kit.join("bob", { relayOnly: true });
    const alice = await kit.join("alice");
    await alice.node.send("bob", "to bob via the relay");
    await bob.node.send("alice", "to alice via the relay");
    await alice.node.send("bob", "again");
    assert.deepEqual(bob.messages.map((m) => m.text), ["to bob via the relay", "again"]);
    assert.deepEqual(alice.messages, [{ from: "bob", text: "to alice via the relay" }]);
    assert.ok(kit.server.rendezvous!.stats.relayed >= 6, `${kit.server.rendezvous!.stats.relayed} relayed`);
  });
});

Deno.test("ChatNode falls back to the server's relay when direct datagrams are lost", async () => {
  await withChat(async (kit) => {
    const proxy = new LossyUdpProxy({ drop: 1, duplicate: 0, maxDelayMs: 0 }, 1);
    try {
      const bob = await kit.join("bob", { wrapPeer: proxy.wrapFor("bob"), directTimeoutMs: 300 });
      const alice = await kit.join("alice", { wrapPeer: proxy.wrapFor("alice"), directTimeoutMs: 300 });
      await alice.node.send("bob", "through the relay");
      await bob.node.send("alice", "and back");
      assert.deepEqual(bob.messages.map((m) => m.text), ["through the relay"]);
      assert.deepEqual(alice.messages.map((m) => m.text), ["and back"]);
      assert.ok(proxy.stats.dropped > 0, "direct datagrams were tried");
      assert.ok(kit.server.rendezvous!.stats.relayed > 0);
    } finally {
      await proxy.close();
    }
  });
});

Deno.test("ChatNode.send fails with USER_OFFLINE and UNKNOWN_USER, and works once the user logs in", async () => {
  await withChat(async (kit) => {
    const alice = await kit.join("alice");
    await kit.register("carol");
    await assert.rejects(alice.node.send("carol", "are you there?"), code("USER_OFFLINE"));
    await assert.rejects(alice.node.send("nobody", "hello?"), code("UNKNOWN_USER"));
    await assert.rejects(alice.node.send("carol", "still not?"), code("USER_OFFLINE"));
    const carol = await kit.join("carol", { register: false });
    await alice.node.send("Carol", "welcome");
    await carol.node.send("alice", "thanks");
    assert.deepEqual(carol.messages, [{ from: "alice", text: "welcome" }]);
    assert.deepEqual(alice.messages, [{ from: "carol", text: "thanks" }]);
  });
});

Deno.test("ChatNode.send refuses a peer whose key differs from the pinned one until the new key is pinned", async () => {
  await withChat(async (kit) => {
    const bob = await kit.join("bob");
    const alice = await kit.join("alice");
    await alice.knownPeers.pin(kit.serverName, "bob", new Uint8Array(32).fill(7));
    await assert.rejects(alice.node.send("bob", "secret"), PeerKeyChangedError);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await bob.knownPeers.pinned(kit.serverName, "alice"), undefined, "nothing reached bob");
    assert.ok(Object.values(bob.node.stats).every((n) => n === 0), "bob's node saw no datagram from alice");
    assert.equal(kit.server.rendezvous!.stats.relayed, 0);
    await alice.knownPeers.pin(kit.serverName, "bob", bob.client.chat!.identity!.publicKey);
    await alice.node.send("bob", "now it is you");
    assert.deepEqual(bob.messages, [{ from: "alice", text: "now it is you" }]);
    assert.deepEqual(
      await bob.knownPeers.pinned(kit.serverName, "alice"),
      alice.client.chat!.identity!.publicKey,
    );
  });
});

Deno.test("ChatNode does not pin or warn about a user on a forged HS1 from them", async () => {
  await withChat(async (kit) => {
    const alice = await kit.join("alice");
    const bob = await kit.join("bob");
    const endpoint = kit.server.rendezvous!.endpointOf("bob")!;
    const attacker = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    try {
      const eph = (await generateEphemeral()).publicKey;
      const sig = await signWith(await generateIdentity(), hs1SignedBytes("alice", "bob", eph));
      const to = { transport: "udp" as const, hostname: endpoint.hostname, port: endpoint.port };
      await attacker.send(encodeHs1({ from: "alice", to: "bob", eph, sig }), to);
      const upper = await signWith(alice.client.chat!.identity!, hs1SignedBytes("Alice", "bob", eph));
      await attacker.send(encodeHs1({ from: "Alice", to: "bob", eph, sig: upper }), to);
      await until(() => bob.node.stats.badSignature === 1 && bob.node.stats.unknownSender === 1, "counters");
      assert.equal(await bob.knownPeers.pinned(kit.serverName, "alice"), undefined);
      assert.equal(await bob.knownPeers.pinned(kit.serverName, "Alice"), undefined);
      await alice.node.send("bob", "the real alice");
      assert.deepEqual(bob.messages.map((m) => m.text), ["the real alice"]);
    } finally {
      attacker.close();
    }
  });
});

Deno.test("ChatNode refuses, with one warning, a handshake from a user whose key differs from the pinned one", async () => {
  await withChat(async (kit) => {
    const bob = await kit.join("bob");
    const alice = await kit.join("alice", { sendTimeoutMs: 2000 });
    await bob.knownPeers.pin(kit.serverName, "alice", new Uint8Array(32).fill(7));
    await assert.rejects(alice.node.send("bob", "hello?"), /Not delivered within 2 s/);
    assert.deepEqual(bob.messages, []);
    assert.equal(bob.warnings.length, 1);
    assert.match(bob.warnings[0]!, /identity key of alice has CHANGED/);
    assert.ok(bob.node.stats.unknownSender > 1, "every try was refused");
  });
});

Deno.test("ChatNode bounds the server lookups that forged HS1s from users without a link can cause", async () => {
  await withChat(async (kit) => {
    const calls = new Map<string, number>();
    let release: () => void = () => {};
    let gate: Promise<void> | null = null;
    const bob = await kit.join("bob", {
      wrapPeer: (peer) => async (user) => {
        calls.set(user, (calls.get(user) ?? 0) + 1);
        if (gate) await gate;
        return await peer(user);
      },
    });
    const alice = await kit.join("alice");
    const endpoint = kit.server.rendezvous!.endpointOf("bob")!;
    const attacker = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    const mallory = await generateIdentity();
    const forgedHs1 = async (from: string) => {
      const eph = (await generateEphemeral()).publicKey;
      const sig = await signWith(mallory, hs1SignedBytes(from, "bob", eph));
      const to = { transport: "udp" as const, hostname: endpoint.hostname, port: endpoint.port };
      await attacker.send(encodeHs1({ from, to: "bob", eph, sig }), to);
    };
    try {
      // A name the server does not know: asked once, then remembered as failed.
      for (let i = 0; i < 30; i++) await forgedHs1("ghost");
      await until(() => bob.node.stats.unknownSender === 30, "ghost's HS1s refused");
      assert.equal(calls.get("ghost"), 1);

      // A real user's name: the key found checks the next forged HS1s without asking again, and the real
      // user's handshake is not held up by them.
      for (let i = 0; i < 20; i++) await forgedHs1("alice");
      await until(() => bob.node.stats.badSignature === 20, "alice's forged HS1s refused");
      assert.equal(calls.get("alice"), 1);
      await alice.node.send("bob", "the real alice");
      assert.deepEqual(bob.messages.map((m) => m.text), ["the real alice"]);
      assert.equal(calls.get("alice"), 1);

      // Many names at once while the server is slow: at most four lookups are under way.
      gate = new Promise((resolve) => release = resolve);
      for (let i = 0; i < 20; i++) await forgedHs1(`spoof${i}`);
      await until(() => bob.node.stats.lookupsBusy === 16, "HS1s dropped unchecked");
      const spoofCalls = () => [...calls].filter(([name]) => name.startsWith("spoof")).length;
      assert.equal(spoofCalls(), 4);
      release();
      await until(() => bob.node.stats.unknownSender === 34, "the four lookups failed");
      assert.equal(spoofCalls(), 4);
      assert.deepEqual(bob.warnings, []);
    } finally {
      release();
      attacker.close();
    }
  });
});
