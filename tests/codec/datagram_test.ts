import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DATA_HEADER_BYTES,
  type Datagram,
  DATAGRAM_VERSION,
  decodeDatagram,
  encodeData,
  encodeDataHeader,
  encodeHs1,
  encodeHs2,
  encodeRdv,
  encodeRdvAck,
  encodeRelay,
  encodeRelayed,
  hs1SignedBytes,
  hs2SignedBytes,
  joinTag,
  MAGIC,
  MAX_DATAGRAM,
  MAX_PEER_DATAGRAM,
  TAG_BYTES,
} from "../../lib/codec/datagram.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { assertBytesEqual, assertDeepEqualBytes, concat, filled } from "../_bytes.ts";

const utf8 = new TextEncoder();

/** A big-endian u64 built by hand, not by the code under test. */
function u64(value: bigint): number[] {
  return Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(56 - 8 * i)) & 0xffn));
}

/**
 * A stand-in tag: the codec only places and splits the tag, whatever its value (tests/crypto/datagram_tag_test.ts
 * checks real ones).
 */
const TAG = filled(16, 0xf0);

function assertBad(bytes: Uint8Array, message?: RegExp): void {
  assert.throws(() => decodeDatagram(bytes), (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `threw ${String(err)}`);
    assert.equal(err.code, "BAD_DATAGRAM");
    if (message) assert.match(err.message, message);
    return true;
  });
}

const HANDLE = filled(16, 0x40);
const SESSION = filled(8, 0x80);
const EPH = filled(32, 1);
const EPH2 = filled(32, 100);
const SIG = filled(64, 7);
const DATA = encodeData(encodeDataHeader(SESSION, 5), filled(16, 0xc0));
const HS1 = encodeHs1({ from: "ann", to: "bob", eph: EPH, sig: SIG });
const HS2 = encodeHs2({ from: "bob", to: "ann", ephInit: EPH, ephResp: EPH2, sig: SIG });

/** One valid, minimal datagram of each kind, so that every truncation is invalid. */
const SAMPLES: Record<Datagram["type"], Uint8Array<ArrayBuffer>> = {
  RDV: joinTag(encodeRdv({ handle: HANDLE, counter: 1 }), TAG),
  RDV_ACK: joinTag(encodeRdvAck({ handle: HANDLE, counter: 2, observed: "192.0.2.1:5000" }), TAG),
  RELAY: joinTag(encodeRelay({ handle: HANDLE, counter: 3, to: 0xdeadbeef, inner: DATA }), TAG),
  RELAYED: joinTag(encodeRelayed({ from: 77, inner: HS1 }), TAG),
  HS1,
  HS2,
  DATA,
};
const MAC_KINDS = ["RDV", "RDV_ACK", "RELAY", "RELAYED"] as const;

Deno.test("encodeRdv lays out prefix, handle and counter: the bytes the tag covers", () => {
  assertBytesEqual(
    encodeRdv({ handle: HANDLE, counter: 1 }),
    concat([MAGIC, DATAGRAM_VERSION, 0x01], HANDLE, u64(1n)),
  );
});

Deno.test("encodeRdvAck, encodeRelay and encodeRelayed lay out their fields, and joinTag appends the tag", () => {
  const ack = concat([0xac, 1, 0x02], HANDLE, u64(2n), [14], utf8.encode("192.0.2.1:5000"));
  assertBytesEqual(encodeRdvAck({ handle: HANDLE, counter: 2, observed: "192.0.2.1:5000" }), ack);
  assertBytesEqual(SAMPLES.RDV_ACK, concat(ack, TAG));
  const relay = concat([0xac, 1, 0x03], HANDLE, u64(3n), [0xde, 0xad, 0xbe, 0xef], DATA);
  assertBytesEqual(encodeRelay({ handle: HANDLE, counter: 3, to: 0xdeadbeef, inner: DATA }), relay);
  assertBytesEqual(SAMPLES.RELAY, concat(relay, TAG));
  const relayed = concat([0xac, 1, 0x04], [0, 0, 0, 77], HS1);
  assertBytesEqual(encodeRelayed({ from: 77, inner: HS1 }), relayed);
  assertBytesEqual(SAMPLES.RELAYED, concat(relayed, TAG));
  assertBytesEqual(SAMPLES.RDV, concat([0xac, 1, 0x01], HANDLE, u64(1n), TAG));
  assert.equal(TAG_BYTES, 16);
});

Deno.test("joinTag refuses a tag of the wrong length and a datagram over MAX_DATAGRAM", () => {
  const rdv = encodeRdv({ handle: HANDLE, counter: 0 });
  for (const n of [0, 15, 17, 32]) assert.throws(() => joinTag(rdv, new Uint8Array(n)), RangeError, `${n}`);
  assert.equal(joinTag(new Uint8Array(1200 - 16), TAG).length, 1200);
  assert.throws(() => joinTag(new Uint8Array(1200 - 15), TAG), /Datagram too large: 1201 bytes/);
});

Deno.test("joinTag copies: the datagram does not change with the buffers it was made from", () => {
  const macInput = encodeRdv({ handle: HANDLE, counter: 0 });
  const tag = TAG.slice();
  const bytes = joinTag(macInput, tag);
  macInput.fill(0);
  tag.fill(0);
  assertBytesEqual(bytes, concat([0xac, 1, 0x01], HANDLE, u64(0n), TAG));
});

Deno.test("encodeHs1, encodeHs2 and encodeData lay out their fields", () => {
  assertBytesEqual(HS1, concat([0xac, 1, 0x10, 3], utf8.encode("ann"), [3], utf8.encode("bob"), EPH, SIG));
  assertBytesEqual(
    HS2,
    concat([0xac, 1, 0x11, 3], utf8.encode("bob"), [3], utf8.encode("ann"), EPH, EPH2, SIG),
  );
  assertBytesEqual(DATA, concat([0xac, 1, 0x20], SESSION, u64(5n), filled(16, 0xc0)));
  assert.deepEqual(
    encodeDataHeader(SESSION, 2 ** 53 - 1),
    concat([0xac, 1, 0x20], SESSION, u64(2n ** 53n - 1n)),
  );
  assert.equal(DATA_HEADER_BYTES, 19);
});

Deno.test("decodeDatagram round-trips every kind with macInput and tag split off", () => {
  const rdv = decodeDatagram(SAMPLES.RDV);
  assert.deepEqual(rdv, {
    type: "RDV",
    handle: HANDLE,
    counter: 1,
    macInput: SAMPLES.RDV.subarray(0, 27),
    tag: SAMPLES.RDV.subarray(27),
  });
  const ack = decodeDatagram(SAMPLES.RDV_ACK);
  assert.ok(ack.type === "RDV_ACK");
  assert.deepEqual([ack.handle, ack.counter, ack.observed], [HANDLE, 2, "192.0.2.1:5000"]);
  const relay = decodeDatagram(SAMPLES.RELAY);
  assert.ok(relay.type === "RELAY");
  assert.deepEqual([relay.handle, relay.counter, relay.to, relay.inner], [HANDLE, 3, 0xdeadbeef, DATA]);
  assert.deepEqual(relay.peer, decodeDatagram(DATA));
  const relayed = decodeDatagram(SAMPLES.RELAYED);
  assert.ok(relayed.type === "RELAYED");
  assert.deepEqual([relayed.from, relayed.inner, relayed.peer], [77, HS1, decodeDatagram(HS1)]);
  for (const kind of MAC_KINDS) {
    const d = decodeDatagram(SAMPLES[kind]);
    assert.ok(d.type === kind && "tag" in d);
    assertBytesEqual(d.macInput, SAMPLES[kind].subarray(0, -16), kind);
    assertBytesEqual(d.tag, TAG, kind);
  }
  assert.deepEqual(decodeDatagram(HS1), { type: "HS1", from: "ann", to: "bob", eph: EPH, sig: SIG });
  assert.deepEqual(decodeDatagram(HS2), {
    type: "HS2",
    from: "bob",
    to: "ann",
    ephInit: EPH,
    ephResp: EPH2,
    sig: SIG,
  });
  assert.deepEqual(decodeDatagram(DATA), {
    type: "DATA",
    session: SESSION,
    counter: 5,
    header: DATA.subarray(0, 19),
    ciphertext: filled(16, 0xc0),
  });
});

Deno.test("decodeDatagram copies its input so the caller may reuse the buffer", () => {
  const buf = SAMPLES.HS2.slice();
  const d = decodeDatagram(buf);
  buf.fill(0);
  assert.ok(d.type === "HS2");
  assert.deepEqual(d.ephResp, EPH2);
  assert.equal(d.from, "bob");
});

Deno.test("decodeDatagram rejects every truncation of every kind", () => {
  for (const [kind, bytes] of Object.entries(SAMPLES)) {
    for (let n = 0; n < bytes.length; n++) {
      assert.throws(() => decodeDatagram(bytes.subarray(0, n)), (err: unknown) => {
        assert.ok(err instanceof ProtocolError && err.code === "BAD_DATAGRAM", `${kind} cut at ${n}`);
        return true;
      });
    }
  }
});

Deno.test("decodeDatagram rejects trailing bytes after fixed layouts", () => {
  for (const bytes of [SAMPLES.RDV, SAMPLES.RDV_ACK, HS1, HS2]) assertBad(concat(bytes, [0]), /trailing/);
  // RELAY and RELAYED end in a tag, so an extra byte lands at the end of the inner datagram.
  const relay = concat([0xac, 1, 0x03], HANDLE, u64(0n), [0, 0, 0, 1], HS1, [0]);
  assertBad(concat(relay, TAG), /trailing bytes after HS1/);
  const relayed = concat([0xac, 1, 0x04, 0, 0, 0, 1], HS1, [0]);
  assertBad(concat(relayed, TAG), /trailing bytes after HS1/);
});

Deno.test("decodeDatagram rejects a bad magic, version or type byte", () => {
  assertBad(concat([0xad], SAMPLES.RDV.subarray(1)), /magic 0xad/);
  assertBad(concat([0xac, 2], SAMPLES.RDV.subarray(2)), /version 2/);
  assertBad(concat([0xac, 0], SAMPLES.RDV.subarray(2)), /version 0/);
  const known = new Set([0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x20]);
  for (let type = 0; type < 256; type++) {
    if (!known.has(type)) assertBad(concat([0xac, 1, type], SAMPLES.RDV.subarray(3)), /unknown type/);
  }
});

Deno.test("decodeDatagram rejects invalid UTF-8 and empty strings", () => {
  const invalid = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80]];
  for (const raw of invalid) {
    assertBad(concat([0xac, 1, 0x10, raw.length], raw, [1, 0x61], EPH, SIG), /HS1 from is not valid UTF-8/);
    assertBad(concat([0xac, 1, 0x11, 1, 0x61, raw.length], raw, EPH, EPH2, SIG), /HS2 to is not valid/);
    const ack = concat([0xac, 1, 0x02], HANDLE, u64(0n), [raw.length], raw);
    assertBad(concat(ack, TAG), /observed address is not valid UTF-8/);
  }
  assertBad(concat([0xac, 1, 0x10, 0, 1, 0x61], EPH, SIG), /HS1 from is empty/);
  assertBad(concat([0xac, 1, 0x11, 1, 0x61, 0], EPH, EPH2, SIG), /HS2 to is empty/);
  const ack = concat([0xac, 1, 0x02], HANDLE, u64(0n), [0]);
  assertBad(concat(ack, TAG), /observed address is empty/);
});

Deno.test("decodeDatagram keeps a byte-order mark and non-ASCII names intact", () => {
  const from = "\ufeffÅsa 🦊";
  const d = decodeDatagram(encodeHs1({ from, to: "b", eph: EPH, sig: SIG }));
  assert.ok(d.type === "HS1");
  assert.equal(d.from, from);
});

Deno.test("decodeDatagram accepts counters up to 2^53 - 1 and rejects larger ones", () => {
  for (const [value, ok] of [[2n ** 53n - 1n, true], [2n ** 53n, false], [2n ** 64n - 1n, false]] as const) {
    const data = concat([0xac, 1, 0x20], SESSION, u64(value), filled(16));
    const rdv = concat([0xac, 1, 0x01], HANDLE, u64(value));
    const relay = concat([0xac, 1, 0x03], HANDLE, u64(0n), [0, 0, 0, 1], data);
    const all = [data, concat(rdv, TAG), concat(relay, TAG)];
    if (!ok) {
      for (const bytes of all) assertBad(bytes, /exceeds 2\^53 - 1/);
      continue;
    }
    const [d, r, relayed] = all.map(decodeDatagram);
    assert.ok(d?.type === "DATA" && r?.type === "RDV" && relayed?.type === "RELAY");
    assert.deepEqual([d.counter, r.counter, relayed.peer.type === "DATA" && relayed.peer.counter], [
      2 ** 53 - 1,
      2 ** 53 - 1,
      2 ** 53 - 1,
    ]);
  }
});

Deno.test("decodeDatagram rejects a RELAY or RELAYED whose inner is not a peer datagram", () => {
  for (const inner of [SAMPLES.RDV, SAMPLES.RELAYED, concat([0xad], DATA.subarray(1)), new Uint8Array(0)]) {
    const relay = concat([0xac, 1, 0x03], HANDLE, u64(0n), [0, 0, 0, 1], inner);
    assertBad(concat(relay, TAG));
    const relayed = concat([0xac, 1, 0x04, 0, 0, 0, 1], inner);
    assertBad(concat(relayed, TAG));
  }
  const relay = concat([0xac, 1, 0x03], HANDLE, u64(0n), [0, 0, 0, 1], SAMPLES.RDV);
  assertBad(concat(relay, TAG), /inner type 0x01 is not a peer datagram/);
});

Deno.test("decodeDatagram enforces MAX_DATAGRAM and MAX_PEER_DATAGRAM", () => {
  assert.equal(MAX_DATAGRAM, 1200);
  assert.equal(MAX_PEER_DATAGRAM, 1150);
  const biggest = encodeData(encodeDataHeader(SESSION, 0), new Uint8Array(1150 - 19));
  assert.equal(decodeDatagram(biggest).type, "DATA");
  const relay = joinTag(encodeRelay({ handle: HANDLE, counter: 0, to: 1, inner: biggest }), TAG);
  assert.equal(relay.length, 1197);
  assert.equal(decodeDatagram(relay).type, "RELAY");
  assertBad(concat(biggest, [0]), /peer datagram of 1151 bytes/);
  const relayed = concat([0xac, 1, 0x04, 0, 0, 0, 1], biggest, [0]);
  assertBad(concat(relayed, TAG), /inner datagram of 1151 bytes/);
  assertBad(new Uint8Array(1201), /Datagram too large: 1201 bytes/);
  assertBad(concat(SAMPLES.RDV, new Uint8Array(1201 - SAMPLES.RDV.length)), /too large/);
});

Deno.test("encoders refuse fields out of range with a RangeError", () => {
  const refused = [
    () => encodeRdv({ handle: new Uint8Array(15), counter: 0 }),
    () => encodeRdv({ handle: HANDLE, counter: -1 }),
    () => encodeRdv({ handle: HANDLE, counter: 1.5 }),
    () => encodeRdv({ handle: HANDLE, counter: 2 ** 53 }),
    () => encodeRdvAck({ handle: HANDLE, counter: 0, observed: "" }),
    () => encodeRdvAck({ handle: HANDLE, counter: 0, observed: "é".repeat(128) }),
    () => encodeRdvAck({ handle: HANDLE, counter: 0, observed: "\ud800" }),
    () => encodeRelay({ handle: HANDLE, counter: 0, to: 2 ** 32, inner: DATA }),
    () => encodeRelay({ handle: HANDLE, counter: 0, to: -1, inner: DATA }),
    () => encodeRelay({ handle: HANDLE, counter: 0, to: 1, inner: SAMPLES.RDV }),
    () => encodeRelay({ handle: HANDLE, counter: 0, to: 1, inner: new Uint8Array(1151) }),
    () => encodeRelayed({ from: 0.5, inner: DATA }),
    () => encodeRelayed({ from: 1, inner: concat(HS1, [0]) }),
  ];
  for (const [i, f] of refused.entries()) assert.throws(f, RangeError, `case ${i}`);
  const throws = [
    () => encodeHs1({ from: "a", to: "b", eph: new Uint8Array(31), sig: SIG }),
    () => encodeHs1({ from: "a", to: "b", eph: EPH, sig: new Uint8Array(65) }),
    () => encodeHs1({ from: "a".repeat(256), to: "b", eph: EPH, sig: SIG }),
    () => encodeHs2({ from: "a", to: "", ephInit: EPH, ephResp: EPH, sig: SIG }),
    () => encodeHs2({ from: "a", to: "b", ephInit: EPH, ephResp: new Uint8Array(0), sig: SIG }),
    () => encodeDataHeader(new Uint8Array(7), 0),
    () => encodeDataHeader(SESSION, 2 ** 53),
    () => encodeData(new Uint8Array(18), filled(16)),
    () => encodeData(encodeDataHeader(SESSION, 0), filled(15)),
    () => encodeData(encodeDataHeader(SESSION, 0), filled(1150 - 18)),
    () => hs1SignedBytes("", "b", EPH),
    () => hs2SignedBytes("a", "b", EPH, new Uint8Array(33)),
  ];
  for (const [i, f] of throws.entries()) assert.throws(f, RangeError, `case ${i}`);
  assert.equal(encodeHs1({ from: "a".repeat(255), to: "b", eph: EPH, sig: SIG }).length, 3 + 256 + 2 + 96);
});

Deno.test("hs1SignedBytes and hs2SignedBytes cover label, length-prefixed names and ephemeral keys", () => {
  const label1 = utf8.encode("authchat-hs1/1");
  const label2 = utf8.encode("authchat-hs2/1");
  assertBytesEqual(
    hs1SignedBytes("ann", "bob", EPH),
    concat(label1, [3], utf8.encode("ann"), [3], utf8.encode("bob"), EPH),
  );
  assertBytesEqual(
    hs2SignedBytes("bob", "ann", EPH, EPH2),
    concat(label2, [3], utf8.encode("bob"), [3], utf8.encode("ann"), EPH, EPH2),
  );
  assert.notDeepEqual(hs1SignedBytes("ab", "c", EPH), hs1SignedBytes("a", "bc", EPH));
});

// ---- properties ----

function onlyBadDatagram(bytes: Uint8Array): void {
  try {
    decodeDatagram(bytes);
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `threw ${String(err)}`);
    assert.equal(err.code, "BAD_DATAGRAM");
  }
}

const bytesOf = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const name = fc.string({ unit: "binary", minLength: 1, maxLength: 60 });
const counter = fc.maxSafeNat();
const u32 = fc.integer({ min: 0, max: 0xffffffff });

/** A peer datagram's bytes and what decoding must give back. */
const peer = fc.oneof(
  fc.record({ from: name, to: name, eph: bytesOf(32), sig: bytesOf(64) })
    .map((f) => ({ bytes: encodeHs1(f), expected: { type: "HS1", ...f } as Datagram })),
  fc.record({ from: name, to: name, ephInit: bytesOf(32), ephResp: bytesOf(32), sig: bytesOf(64) })
    .map((f) => ({ bytes: encodeHs2(f), expected: { type: "HS2", ...f } as Datagram })),
  fc.record({ session: bytesOf(8), counter, ciphertext: fc.uint8Array({ minLength: 16, maxLength: 1131 }) })
    .map(({ session, counter, ciphertext }) => {
      const header = encodeDataHeader(session, counter);
      const expected = { type: "DATA", session, counter, header, ciphertext } as Datagram;
      return { bytes: encodeData(header, ciphertext), expected };
    }),
);

/** Any datagram: the encoder to run and the expected decoding without macInput and tag. */
const anyDatagram = fc.oneof(
  peer.map((p) => ({ encode: () => p.bytes.slice(), expected: p.expected })),
  fc.record({ handle: bytesOf(16), counter }).map((f) => ({
    encode: () => joinTag(encodeRdv(f), TAG),
    expected: { type: "RDV", ...f },
  })),
  fc.record({ handle: bytesOf(16), counter, observed: name }).map((f) => ({
    encode: () => joinTag(encodeRdvAck(f), TAG),
    expected: { type: "RDV_ACK", ...f },
  })),
  fc.record({ handle: bytesOf(16), counter, to: u32, p: peer }).map(({ p, ...f }) => ({
    encode: () => joinTag(encodeRelay({ ...f, inner: p.bytes }), TAG),
    expected: { type: "RELAY", ...f, inner: p.bytes, peer: p.expected },
  })),
  fc.record({ from: u32, p: peer }).map(({ p, from }) => ({
    encode: () => joinTag(encodeRelayed({ from, inner: p.bytes }), TAG),
    expected: { type: "RELAYED", from, inner: p.bytes, peer: p.expected },
  })),
);

Deno.test("decodeDatagram inverts every encoder (property)", () => {
  fc.assert(
    fc.property(anyDatagram, ({ encode, expected }) => {
      const bytes = encode();
      assert.ok(bytes.length <= MAX_DATAGRAM);
      const d = decodeDatagram(bytes);
      if ("tag" in d) {
        const { macInput, tag, ...rest } = d;
        assertDeepEqualBytes(rest, expected);
        assertBytesEqual(macInput, bytes.subarray(0, -16));
        assertBytesEqual(tag, TAG);
      } else {
        assertDeepEqualBytes(d, expected);
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeDatagram throws only ProtocolError BAD_DATAGRAM for random bytes (property)", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1300 }), onlyBadDatagram), { numRuns: 2000 });
  // Random bytes rarely pass the prefix, so also try every type after a valid prefix.
  const prefixed = fc.tuple(
    fc.constantFrom(0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x20),
    fc.uint8Array({
      maxLength: 1200,
    }),
  );
  fc.assert(
    fc.property(prefixed, ([type, rest]) => onlyBadDatagram(concat([0xac, 1, type], rest))),
    { numRuns: 2000 },
  );
});

Deno.test("decodeDatagram throws only ProtocolError BAD_DATAGRAM for mutated datagrams (property)", () => {
  const edit = fc.tuple(fc.nat(), fc.nat(255), fc.constantFrom("set", "cut", "insert", "delete"));
  fc.assert(
    fc.property(
      anyDatagram,
      fc.array(edit, { minLength: 1, maxLength: 4 }),
      ({ encode }, edits) => {
        let bytes = encode();
        for (const [at, value, op] of edits) {
          const i = at % (bytes.length + 1);
          if (op === "set" && i < bytes.length) bytes[i] = value;
          if (op === "cut") bytes = bytes.slice(0, i);
          if (op === "insert") bytes = concat(bytes.subarray(0, i), [value], bytes.subarray(i));
          if (op === "delete") bytes = concat(bytes.subarray(0, i), bytes.subarray(i + 1));
        }
        onlyBadDatagram(bytes);
      },
    ),
    { numRuns: 1000 },
  );
});
