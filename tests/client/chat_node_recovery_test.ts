import assert from "node:assert/strict";
import { PeerKeyChangedError } from "../../lib/client/chat_node.ts";
import { encodeHs1 } from "../../lib/codec/datagram.ts";
import { generateEphemeral } from "../../lib/crypto/peer_session.ts";
import { encodeBase64 } from "../../lib/codec/base64.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { UdpCapture } from "../e2e/_udp_capture.ts";
import { prng } from "../transport/_lossy_link.ts";
import { LossyUdpProxy, until, withChat, withWatchedPair } from "./_chat_kit.ts";

Deno.test("ChatNode moves to the peer's remaining session when the one it was talking to ends", async () => {
  await withChat(async (kit) => {
    const laptop = await kit.join("bob");
    const alice = await kit.join("alice", { sendTimeoutMs: 8000 });
    const phone = await kit.join("bob", { register: false });
    await alice.node.send("bob", "one");
    assert.deepEqual(phone.messages.map((m) => m.text), ["one"], "the newest session gets messages");
    // The phone goes; bob stays online on the laptop, so no presence notice tells alice anything.
    await phone.node.close();
    await phone.client.close();
    const started = Date.now();
    await alice.node.send("bob", "two");
    assert.ok(Date.now() - started < 8000);
    await alice.node.send("bob", "three");
    assert.deepEqual(laptop.messages.map((m) => m.text), ["two", "three"]);
    assert.deepEqual(phone.messages.map((m) => m.text), ["one"]);
  });
});

Deno.test("ChatNode gives up a link whose send timed out: the message never arrives later, the next send works", async () => {
  await withChat(async (kit) => {
    const proxy = new LossyUdpProxy({ drop: 0, duplicate: 0, maxDelayMs: 0 }, 1);
    try {
      // The direct path only: the relay would carry the messages past the outage.
      const options = { directTimeoutMs: 1e9, sendTimeoutMs: 1200 };
      const bob = await kit.join("bob", { ...options, wrapPeer: proxy.wrapFor("bob") });
      const alice = await kit.join("alice", { ...options, wrapPeer: proxy.wrapFor("alice") });
      await alice.node.send("bob", "before");
      proxy.conditions.drop = 1;
      const lost = alice.node.send("bob", "during the outage");
      const behind = alice.node.send("bob", "right behind it");
      await assert.rejects(lost, /^Error: Not delivered within 1\.2 s: bob did not acknowledge it$/);
      await assert.rejects(behind, /^Error: Not delivered: an earlier message to bob was not acknowledged/);
      proxy.conditions.drop = 0;
      const outageEnded = proxy.stats.toBob;
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(proxy.stats.toBob, outageEnded, "nothing more was sent for the failed messages");
      await alice.node.send("bob", "after");
      assert.deepEqual(bob.messages.map((m) => m.text), ["before", "after"]);
    } finally {
      await proxy.close();
    }
  });
});

Deno.test("ChatNode drops floods for a live link beyond a bound, forged DATA and HS1s alike, and keeps delivering", async () => {
  await withChat((kit) =>
    withWatchedPair(kit, async ({ bob, alice, proxy, toBob }) => {
      let data: Uint8Array | null = null;
      proxy.tap = (direction, bytes) => {
        if (direction === "toBob" && bytes[2] === 0x20) data ??= bytes.slice();
        return true;
      };
      await alice.node.send("bob", "first");
      // The session id travels in clear: anyone on the path can aim forged DATA at the live session (each
      // fresh counter costs a decryption); anyone at all can send HS1s in alice's name (each costs a
      // signature check, which takes longer than reading a datagram, so they pile up).
      const forgedData = new Uint8Array(1135);
      forgedData.set(data!.subarray(0, 19));
      const view = new DataView(forgedData.buffer);
      const eph = (await generateEphemeral()).publicKey;
      const flood = 4000;
      const sends: Promise<number>[] = [];
      for (let i = 0; i < flood; i++) {
        view.setUint32(15, 1000 + i);
        sends.push(toBob(forgedData.slice()));
        const sig = crypto.getRandomValues(new Uint8Array(64));
        sends.push(toBob(encodeHs1({ from: "alice", to: "bob", eph, sig })));
      }
      await Promise.all(sends);
      await alice.node.send("bob", "during the flood");
      // Settled: what the kernel did not drop was either checked or dropped unread.
      let last = "";
      await until(() => last === (last = JSON.stringify(bob.node.stats)), "bob's counters to settle", 10_000);
      const { forged, badSignature, overloaded } = bob.node.stats;
      assert.ok(overloaded > 0, `some of the flood was dropped unread (${forged} + ${badSignature} checked)`);
      assert.ok(forged + badSignature + overloaded <= 2 * flood);
      assert.deepEqual(bob.messages.map((m) => m.text), ["first", "during the flood"]);
    })
  );
});

Deno.test("ChatNode carries messages up to 64 KiB through the relay when a tenth of the datagrams to and from the server are lost", async () => {
  await withChat(async (kit) => {
    const random = prng(77);
    const lossy = new UdpCapture(kit.server.rendezvous!.port, { drop: () => random() < 0.1 });
    try {
      const options = { relayOnly: true, serverUdpPort: lossy.port, sendTimeoutMs: 60_000 };
      const bob = await kit.join("bob", options);
      const alice = await kit.join("alice", options);
      const texts = Array.from(
        { length: 30 },
        (_, i) => i % 10 === 3 ? `${i}`.padEnd(65536, "z") : `${i}: hi`,
      );
      await Promise.all(texts.map((t) => alice.node.send("bob", t)));
      await bob.node.send("alice", "got them");
      assert.deepEqual(bob.messages.map((m) => m.text), texts);
      assert.deepEqual(alice.messages.map((m) => m.text), ["got them"]);
      assert.ok(kit.server.rendezvous!.stats.relayed > 3 * 60, "the 64 KiB messages went through the relay");
    } finally {
      await lossy.close();
    }
  });
});

Deno.test("ChatNode asks the server again when sends stall: a changed key fails them at once, not-yet-reachable waits", async () => {
  await withChat(async (kit) => {
    const proxy = new LossyUdpProxy({ drop: 0, duplicate: 0, maxDelayMs: 0 }, 1);
    try {
      let answer: "real" | "new key" | "not yet" = "real";
      const lookups: string[] = [];
      const viaProxy = proxy.wrapFor("alice");
      const options = { directTimeoutMs: 1e9, sendTimeoutMs: 8000 };
      const bob = await kit.join("bob", { ...options, wrapPeer: proxy.wrapFor("bob") });
      const alice = await kit.join("alice", {
        ...options,
        wrapPeer: (peer) => async (user) => {
          lookups.push(answer);
          const info = await viaProxy(peer)(user);
          if (answer === "new key") return { ...info, key: encodeBase64(new Uint8Array(32).fill(5)) };
          if (answer === "not yet") {
            throw new ProtocolError("USER_OFFLINE", `User is online but not reachable over UDP: ${user}`);
          }
          return info;
        },
      });
      await alice.node.send("bob", "one");

      // Online but not reachable yet (a new session's rendezvous under way): the link stays.
      proxy.conditions.drop = 1;
      answer = "not yet";
      const waiting = alice.node.send("bob", "two");
      await until(() => lookups.includes("not yet"), "a second lookup", 5000);
      proxy.conditions.drop = 0;
      await waiting;
      assert.deepEqual(bob.messages.map((m) => m.text), ["one", "two"]);

      // A new identity key behind the same name: the stalled sends fail at once, long before the timeout.
      proxy.conditions.drop = 1;
      answer = "new key";
      const started = Date.now();
      await assert.rejects(
        alice.node.send("bob", "three"),
        /^Error: Not delivered: the identity key of bob changed$/,
      );
      assert.ok(Date.now() - started < 5000, `failed after ${Date.now() - started} ms`);
      // And the next send is refused by the pin, with the loud warning.
      await assert.rejects(alice.node.send("bob", "four"), PeerKeyChangedError);
      assert.deepEqual(bob.messages.map((m) => m.text), ["one", "two"]);
    } finally {
      await proxy.close();
    }
  });
});

Deno.test("ChatNode keeps sends under way when the peer is announced online again, and asks the server at once", async () => {
  await withChat(async (kit) => {
    const proxy = new LossyUdpProxy({ drop: 0, duplicate: 0, maxDelayMs: 0 }, 1);
    try {
      let lookups = 0;
      const viaProxy = proxy.wrapFor("alice");
      const options = { directTimeoutMs: 1e9, sendTimeoutMs: 8000 };
      const bob = await kit.join("bob", { ...options, wrapPeer: proxy.wrapFor("bob") });
      const alice = await kit.join("alice", {
        ...options,
        wrapPeer: (peer) => (user) => {
          lookups++;
          return viaProxy(peer)(user);
        },
      });
      await alice.node.send("bob", "one");
      assert.equal(lookups, 1);
      // A message in flight when a (late, coalesced) notice says bob is online: it is not reported lost.
      proxy.conditions.drop = 1;
      const waiting = alice.node.send("bob", "two");
      await new Promise((r) => setTimeout(r, 100));
      alice.node.refresh("bob");
      await until(() => lookups === 2, "a lookup right after the notice", 1000);
      proxy.conditions.drop = 0;
      await waiting;
      assert.deepEqual(bob.messages.map((m) => m.text), ["one", "two"]);
      // An idle link is forgotten: the next send looks bob up again, also one already started.
      const next = alice.node.send("bob", "three");
      alice.node.refresh("bob");
      await next;
      assert.equal(lookups, 3);
      assert.deepEqual(bob.messages.map((m) => m.text), ["one", "two", "three"]);
    } finally {
      await proxy.close();
    }
  });
});
