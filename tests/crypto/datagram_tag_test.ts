import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import fc from "fast-check";
import {
  type Datagram,
  decodeDatagram,
  encodeData,
  encodeDataHeader,
  encodeHs1,
  encodeRdv,
  encodeRdvAck,
  encodeRelay,
  encodeRelayed,
  joinTag,
  type MacDatagram,
} from "../../lib/codec/datagram.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { importUdpKey, tagDatagram, UDP_KEY_BYTES, verifyDatagram } from "../../lib/crypto/datagram_tag.ts";
import { assertBytesEqual, filled } from "../_bytes.ts";

const RAW_KEY = new Uint8Array(32).map((_, i) => i + 1);
const KEY = await importUdpKey(RAW_KEY);
const OTHER_KEY = await importUdpKey(new Uint8Array(32).fill(0xee));

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The tag by another implementation (node:crypto, not WebCrypto): HMAC-SHA-256, first 16 bytes. */
function referenceTag(macInput: Uint8Array, raw: Uint8Array = RAW_KEY): Uint8Array {
  return createHmac("sha256", raw).update(macInput).digest().subarray(0, 16);
}

const HANDLE = filled(16, 0x40);
const DATA = encodeData(encodeDataHeader(filled(8, 0x80), 5), filled(16, 0xc0));
const HS1 = encodeHs1({ from: "ann", to: "bob", eph: filled(32, 1), sig: filled(64, 7) });

/** The bytes each server kind's tag covers, from the codec. */
const MAC_INPUTS: Record<MacDatagram["type"], Uint8Array<ArrayBuffer>> = {
  RDV: encodeRdv({ handle: HANDLE, counter: 1 }),
  RDV_ACK: encodeRdvAck({ handle: HANDLE, counter: 2, observed: "192.0.2.1:5000" }),
  RELAY: encodeRelay({ handle: HANDLE, counter: 3, to: 0xdeadbeef, inner: DATA }),
  RELAYED: encodeRelayed({ from: 77, inner: HS1 }),
};
const KINDS = Object.keys(MAC_INPUTS) as MacDatagram["type"][];

/**
 * Known answers: the datagrams the codec made when it tagged them itself (before the tag moved to
 * lib/crypto), with this key and these fields. The wire must not change (docs/PROTOCOL.md, sections 15-16).
 */
const KNOWN: Record<MacDatagram["type"], string> = {
  RDV: "ac0101404142434445464748494a4b4c4d4e4f0000000000000001" + "92997939f82151965d5a6b182c4dfa21",
  RDV_ACK: "ac0102404142434445464748494a4b4c4d4e4f00000000000000020e3139322e302e322e313a35303030" +
    "79f8c4fba96918255c2018f1a9bfcb21",
  RELAY: "ac0103404142434445464748494a4b4c4d4e4f0000000000000003deadbeef" +
    "ac012080818283848586870000000000000005c0c1c2c3c4c5c6c7c8c9cacbcccdcecf" +
    "11d3855947612bf0a7fe5fed36eea0cd",
  RELAYED: "ac01040000004d" +
    "ac011003616e6e03626f620102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" +
    "0708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637" +
    "38393a3b3c3d3e3f40414243444546" +
    "e509fc1c7a6942149cdfc1f80f81c74d",
};

async function tagged(kind: MacDatagram["type"]): Promise<Uint8Array<ArrayBuffer>> {
  return await tagDatagram(KEY, MAC_INPUTS[kind]);
}

Deno.test("tagDatagram gives the same bytes as before the tag left the codec (known answers)", async () => {
  for (const kind of KINDS) assert.equal(hex(await tagged(kind)), KNOWN[kind], kind);
});

Deno.test("tagDatagram appends HMAC-SHA-256 over every byte before it, truncated to 16 bytes", async () => {
  for (const kind of KINDS) {
    const macInput = MAC_INPUTS[kind];
    const before = macInput.slice();
    const bytes = await tagged(kind);
    assertBytesEqual(bytes.subarray(0, -16), macInput, kind);
    assertBytesEqual(bytes.subarray(-16), referenceTag(macInput), kind);
    assertBytesEqual(macInput, before, `${kind} input unchanged`);
  }
});

Deno.test("verifyDatagram accepts each kind's tag as the codec splits it off", async () => {
  for (const kind of KINDS) {
    const d = decodeDatagram(await tagged(kind));
    assert.ok(d.type === kind && "tag" in d);
    assert.equal(await verifyDatagram(KEY, d), true, kind);
  }
});

Deno.test("verifyDatagram refuses every flipped bit and a wrong key", async () => {
  for (const kind of KINDS) {
    const bytesOk = await tagged(kind);
    const good = decodeDatagram(bytesOk);
    assert.ok("tag" in good);
    assert.equal(await verifyDatagram(OTHER_KEY, good), false, `${kind} under another key`);
    for (let bit = 0; bit < bytesOk.length * 8; bit++) {
      const bytes = bytesOk.slice();
      bytes[bit >> 3]! ^= 1 << (bit & 7);
      let d: Datagram;
      try {
        d = decodeDatagram(bytes);
      } catch (err) {
        assert.ok(err instanceof ProtocolError && err.code === "BAD_DATAGRAM");
        continue;
      }
      assert.ok("tag" in d, `${kind} bit ${bit} changed the kind`);
      assert.equal(await verifyDatagram(KEY, d), false, `${kind} bit ${bit}`);
    }
  }
});

Deno.test("verifyDatagram refuses a tag of the wrong length, even a prefix of the right one", async () => {
  const d = decodeDatagram(await tagged("RDV"));
  assert.ok(d.type === "RDV");
  for (const n of [0, 1, 15]) {
    assert.equal(
      await verifyDatagram(KEY, { macInput: d.macInput, tag: d.tag.subarray(0, n) }),
      false,
      `${n}`,
    );
  }
  const full = createHmac("sha256", RAW_KEY).update(d.macInput).digest();
  assert.equal(
    await verifyDatagram(KEY, { macInput: d.macInput, tag: new Uint8Array(full) }),
    false,
    "32 bytes",
  );
});

Deno.test("verifyDatagram refuses a datagram tagged by hand with another key", async () => {
  const macInput = MAC_INPUTS.RELAY;
  const forged = decodeDatagram(joinTag(macInput, referenceTag(macInput, new Uint8Array(32).fill(0xee))));
  assert.ok(forged.type === "RELAY");
  assert.equal(await verifyDatagram(KEY, forged), false);
  assert.equal(await verifyDatagram(OTHER_KEY, forged), true, "the same tag under its own key");
});

Deno.test("importUdpKey makes an HMAC SHA-256 key from 32 bytes, whose bytes it does not show", async () => {
  assert.equal(UDP_KEY_BYTES, 32);
  const data = filled(300, 7);
  assert.deepEqual(KEY.mac(data), new Uint8Array(createHmac("sha256", RAW_KEY).update(data).digest()));
  assert.deepEqual(Object.keys(KEY), ["mac"], "nothing but the MAC function");
  await assert.rejects(importUdpKey(new Uint8Array(31)), RangeError);
  await assert.rejects(importUdpKey(new Uint8Array(33)), RangeError);
});

Deno.test("importUdpKey copies the key bytes: changing them afterwards changes no tag", async () => {
  const raw = RAW_KEY.slice();
  const key = await importUdpKey(raw);
  raw.fill(0);
  assertBytesEqual(await tagDatagram(key, MAC_INPUTS.RDV), await tagged("RDV"));
});

Deno.test("tagDatagram and verifyDatagram agree with the reference for any key and fields (property)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.maxSafeNat(),
      fc.integer({ min: 0, max: 0xffffffff }),
      async (raw, handle, counter, to) => {
        const key = await importUdpKey(raw);
        for (
          const macInput of [
            encodeRdv({ handle, counter }),
            encodeRelay({ handle, counter, to, inner: DATA }),
          ]
        ) {
          const bytes = await tagDatagram(key, macInput);
          assertBytesEqual(bytes.subarray(-16), referenceTag(macInput, raw));
          const d = decodeDatagram(bytes);
          assert.ok("tag" in d);
          assert.equal(await verifyDatagram(key, d), true);
        }
      },
    ),
    { numRuns: 100 },
  );
});
