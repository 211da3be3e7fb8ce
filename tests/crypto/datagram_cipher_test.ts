import assert from "node:assert/strict";
import type { DataDatagram } from "../../lib/codec/datagram.ts";
import { DatagramCipher, type DatagramCipherOptions } from "../../lib/crypto/datagram_cipher.ts";
import { deriveSessionKeys, generateEphemeral, type SessionKeys } from "../../lib/crypto/peer_session.ts";

const utf8 = new TextEncoder();
const text = new TextDecoder();

async function sessionKeys(): Promise<[SessionKeys, SessionKeys]> {
  const a = await generateEphemeral();
  const b = await generateEphemeral();
  const common = { initiator: "alice", responder: "bob", ephInit: a.publicKey, ephResp: b.publicKey };
  return [
    await deriveSessionKeys({
      ...common,
      ephemeralPrivate: a.privateKey,
      peerEphemeral: b.publicKey,
      role: "initiator",
    }),
    await deriveSessionKeys({
      ...common,
      ephemeralPrivate: b.privateKey,
      peerEphemeral: a.publicKey,
      role: "responder",
    }),
  ];
}

async function pair(options: DatagramCipherOptions = {}): Promise<[DatagramCipher, DatagramCipher]> {
  const [a, b] = await sessionKeys();
  return [new DatagramCipher(a, options), new DatagramCipher(b)];
}

/** What the codec's decoder returns, built by slicing (the header is the first 19 bytes). */
function decode(bytes: Uint8Array): DataDatagram {
  return {
    type: "DATA",
    session: bytes.slice(3, 11),
    counter: Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(11)),
    header: bytes.slice(0, 19),
    ciphertext: bytes.slice(19),
  };
}

function flipped(bytes: Uint8Array, i: number): Uint8Array {
  const copy = bytes.slice();
  copy[i]! ^= 0x01;
  return copy;
}

Deno.test("DatagramCipher round-trips in both directions with counters 0, 1, 2 in the header", async () => {
  const [alice, bob] = await pair();
  assert.deepEqual(alice.sessionId, bob.sessionId);
  for (let i = 0; i < 3; i++) {
    const bytes = await alice.seal(utf8.encode(`message ${i}`));
    assert.deepEqual([...bytes.subarray(0, 3)], [0xac, 1, 0x20]);
    assert.deepEqual(bytes.subarray(3, 11), alice.sessionId);
    assert.equal(decode(bytes).counter, i);
    assert.equal(bytes.length, 19 + `message ${i}`.length + 16);
    assert.equal(text.decode((await bob.open(decode(bytes)))!), `message ${i}`);
  }
  assert.equal(alice.nextCounter, 3);
  const empty = await bob.seal(new Uint8Array(0));
  assert.equal(empty.length, 35);
  assert.deepEqual(await alice.open(decode(empty)), new Uint8Array(0));
  assert.deepEqual(bob.stats, { replayed: 0, forged: 0 });
});

Deno.test("DatagramCipher encrypts with nonce 0^4 ‖ counter and the header as associated data", async () => {
  const raw = new Uint8Array(32).fill(7);
  const aes = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  const sessionId = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
  const cipher = new DatagramCipher({ sessionId, sendKey: raw, receiveKey: raw }, {
    startCounter: 0x01020304,
  });
  const bytes = await cipher.seal(utf8.encode("vector"));
  const iv = new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
  const expected = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: bytes.slice(0, 19) },
      aes,
      utf8.encode("vector"),
    ),
  );
  assert.deepEqual(bytes.subarray(19), expected);
  assert.deepEqual([...bytes.subarray(0, 19)], [
    0xac,
    1,
    0x20,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    0,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
  ]);
});

Deno.test("DatagramCipher.open refuses every single-byte tampering as forged, and the genuine one still opens", async () => {
  const [alice, bob] = await pair();
  const bytes = await alice.seal(utf8.encode("attack at dawn"));
  for (let i = 0; i < bytes.length; i++) {
    assert.equal(await bob.open(decode(flipped(bytes, i))), null, `byte ${i}`);
  }
  assert.deepEqual(bob.stats, { replayed: 0, forged: bytes.length });
  const truncated = decode(bytes);
  truncated.ciphertext = truncated.ciphertext.slice(0, -1);
  assert.equal(await bob.open(truncated), null);
  assert.equal(text.decode((await bob.open(decode(bytes)))!), "attack at dawn");
  assert.deepEqual(bob.stats, { replayed: 0, forged: bytes.length + 1 });
});

Deno.test("DatagramCipher.open refuses a replay before decrypting it", async () => {
  const [alice, bob] = await pair();
  const bytes = await alice.seal(utf8.encode("once"));
  assert.notEqual(await bob.open(decode(bytes)), null);
  assert.equal(await bob.open(decode(bytes)), null);
  assert.deepEqual(bob.stats, { replayed: 1, forged: 0 });
  // A tampered copy of a used counter counts as replayed, not forged: the tag was never checked.
  assert.equal(await bob.open(decode(flipped(bytes, bytes.length - 1))), null);
  assert.deepEqual(bob.stats, { replayed: 2, forged: 0 });
});

Deno.test("DatagramCipher.open does not let a forgery advance or spend the window", async () => {
  const [alice, bob] = await pair();
  const sealed = [];
  for (let i = 0; i < 100; i++) sealed.push(await alice.seal(utf8.encode(`m${i}`)));
  // A forged copy of counter 99 would push counter 0 out of the window if it were accepted.
  assert.equal(await bob.open(decode(flipped(sealed[99]!, 30))), null);
  // A forged copy of counter 1 must not mark counter 1 as used.
  assert.equal(await bob.open(decode(flipped(sealed[1]!, 20))), null);
  assert.deepEqual(bob.stats, { replayed: 0, forged: 2 });
  assert.equal(text.decode((await bob.open(decode(sealed[0]!)))!), "m0");
  assert.equal(text.decode((await bob.open(decode(sealed[1]!)))!), "m1");
  assert.equal(text.decode((await bob.open(decode(sealed[99]!)))!), "m99");
});

Deno.test("DatagramCipher.open accepts reordering within 64 and refuses older counters", async () => {
  const [alice, bob] = await pair();
  const sealed = [];
  for (let i = 0; i < 70; i++) sealed.push(await alice.seal(utf8.encode(`m${i}`)));
  assert.notEqual(await bob.open(decode(sealed[69]!)), null);
  for (let i = 68; i >= 6; i--) assert.notEqual(await bob.open(decode(sealed[i]!)), null, `counter ${i}`);
  for (const i of [5, 0]) assert.equal(await bob.open(decode(sealed[i]!)), null, `counter ${i}`);
  assert.deepEqual(bob.stats, { replayed: 2, forged: 0 });
});

Deno.test("DatagramCipher.open delivers a datagram once when opened concurrently", async () => {
  const [alice, bob] = await pair();
  const d = decode(await alice.seal(utf8.encode("race")));
  const results = await Promise.all([bob.open(d), bob.open(d), bob.open(d)]);
  assert.equal(results.filter((r) => r !== null).length, 1);
  assert.deepEqual(bob.stats, { replayed: 2, forged: 0 });
});

Deno.test("DatagramCipher.seal gives concurrent calls distinct counters", async () => {
  const [alice] = await pair();
  const all = await Promise.all(Array.from({ length: 10 }, () => alice.seal(utf8.encode("x"))));
  assert.deepEqual(all.map((b) => decode(b).counter).sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

Deno.test("DatagramCipher.open refuses datagrams of another session or an impossible counter as forged", async () => {
  const [alice] = await pair();
  const [, other] = await pair();
  assert.equal(await other.open(decode(await alice.seal(utf8.encode("x")))), null);
  const [carol, dave] = await pair({ startCounter: 2 ** 32 - 1 });
  const d = decode(await carol.seal(utf8.encode("x")));
  for (const counter of [2 ** 32, -1, 0.5, 2 ** 53]) {
    assert.equal(await dave.open({ ...d, counter }), null, String(counter));
  }
  assert.deepEqual(other.stats, { replayed: 0, forged: 1 });
  assert.deepEqual(dave.stats, { replayed: 0, forged: 4 });
  assert.notEqual(await dave.open(d), null);
});

Deno.test("DatagramCipher.needsRekey turns true at rekeyAfter and seal keeps working", async () => {
  const [alice, bob] = await pair({ rekeyAfter: 3 });
  for (let i = 0; i < 3; i++) {
    assert.equal(alice.needsRekey, false, `before ${i}`);
    await alice.seal(new Uint8Array(1));
  }
  assert.equal(alice.needsRekey, true);
  assert.notEqual(await bob.open(decode(await alice.seal(new Uint8Array(1)))), null);
  assert.equal(alice.needsRekey, true);
  assert.equal(bob.needsRekey, false);
});

Deno.test("DatagramCipher.seal throws RangeError once the counter reaches 2^32", async () => {
  const [alice, bob] = await pair({ startCounter: 2 ** 32 - 1 });
  assert.equal(alice.needsRekey, true, "the default threshold is below 2^32");
  const last = await alice.seal(utf8.encode("last"));
  assert.equal(decode(last).counter, 2 ** 32 - 1);
  assert.equal(text.decode((await bob.open(decode(last)))!), "last");
  await assert.rejects(alice.seal(utf8.encode("one too many")), RangeError);
  await assert.rejects(alice.seal(utf8.encode("still")), RangeError);
  assert.equal(alice.nextCounter, 2 ** 32);
  const [fresh] = await pair({ startCounter: 2 ** 32 - 2 ** 16 - 1 });
  assert.equal(fresh.needsRekey, false);
  await fresh.seal(new Uint8Array(0));
  assert.equal(fresh.needsRekey, true);
});

Deno.test("DatagramCipher throws RangeError for options out of bounds", async () => {
  const [keys] = await sessionKeys();
  const bad: DatagramCipherOptions[] = [
    { rekeyAfter: 0 },
    { rekeyAfter: 2 ** 32 + 1 },
    { rekeyAfter: 1.5 },
    { startCounter: -1 },
    { startCounter: 2 ** 32 + 1 },
    { startCounter: NaN },
  ];
  for (const options of bad) assert.throws(() => new DatagramCipher(keys, options), RangeError);
  assert.equal(new DatagramCipher(keys, { rekeyAfter: 2 ** 32, startCounter: 2 ** 32 }).needsRekey, true);
});
