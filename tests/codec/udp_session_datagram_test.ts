import assert from "node:assert/strict";
import fc from "fast-check";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import {
  type AcceptBody,
  acceptSignedBytes,
  decodeAcceptBody,
  decodeAcceptFragment,
  decodeFinish,
  decodeRecord,
  encodeAccept,
  encodeFinish,
  encodeRecordHeader,
  initTranscriptBytes,
  MAX_ACCEPT_BODY,
  MAX_RECORD_PAYLOAD,
} from "../../lib/codec/udp_session_datagram.ts";
import { assertBytesEqual, concat, filled } from "../_bytes.ts";

function assertBad(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => err instanceof ProtocolError && err.code === "BAD_DATAGRAM");
}

function body(certLength: number, sigLength: number): AcceptBody {
  return {
    serverRandom: filled(32, 1),
    serverShare: filled(32, 2),
    connectionId: filled(8, 3),
    algorithm: "rsa-pss-sha256",
    certificate: filled(certLength, 4),
    signature: filled(sigLength, 5),
  };
}

function reassemble(datagrams: Uint8Array[]): Uint8Array<ArrayBuffer> {
  return concat(...datagrams.map((d) => decodeAcceptFragment(d).chunk));
}

Deno.test("initTranscriptBytes is version, client_random and client_share in order", () => {
  assertBytesEqual(
    initTranscriptBytes(1, filled(32, 10), filled(32, 50)),
    concat([1], filled(32, 10), filled(32, 50)),
  );
  assert.throws(() => initTranscriptBytes(1, filled(31), filled(32)), RangeError);
});

Deno.test("encodeAccept lays out one fragment byte for byte", () => {
  const b = { ...body(5, 3), algorithm: "ecdsa-p256-sha256" as const };
  const [only, ...rest] = encodeAccept(b);
  assert.equal(rest.length, 0);
  const expectedSigned = concat(filled(32, 1), filled(32, 2), filled(8, 3), [0x01], [0, 5], filled(5, 4));
  assertBytesEqual(acceptSignedBytes(b), expectedSigned);
  assertBytesEqual(
    only!,
    concat([0xac, 0x01, 0x32], filled(8, 3), [0, 1], expectedSigned, [0, 3], filled(3, 5)),
  );
});

Deno.test("encodeAccept lays out a delegated ACCEPT byte for byte: the credential after the certificate", () => {
  const b = { ...body(5, 3), algorithm: "ed25519-delegated" as const, credential: filled(4, 6) };
  const [only] = encodeAccept(b);
  const expectedSigned = concat(
    filled(32, 1),
    filled(32, 2),
    filled(8, 3),
    [0x03],
    [0, 5],
    filled(5, 4),
    [0, 4],
    filled(4, 6),
  );
  assertBytesEqual(acceptSignedBytes(b), expectedSigned);
  assertBytesEqual(
    only!,
    concat([0xac, 0x01, 0x32], filled(8, 3), [0, 1], expectedSigned, [0, 3], filled(3, 5)),
  );
  const decoded = decodeAcceptBody(decodeAcceptFragment(only!).chunk);
  assert.equal(decoded.algorithm, "ed25519-delegated");
  assertBytesEqual(decoded.credential!, filled(4, 6));
  assertBytesEqual(decoded.signedBytes, expectedSigned);
  // A credential goes with that algorithm and only with it; an empty one is malformed.
  assert.throws(() => encodeAccept({ ...b, algorithm: "ecdsa-p256-sha256" }), RangeError);
  const { credential: _, ...bare } = b;
  assert.throws(() => encodeAccept(bare), RangeError);
  const whole = decodeAcceptFragment(only!).chunk;
  for (let n = 0; n < whole.length; n++) assertBad(() => decodeAcceptBody(whole.subarray(0, n)));
  assertBad(() => decodeAcceptBody(concat(whole.subarray(0, 80), [0, 0], [0, 3], filled(3, 5))));
  assert.equal(
    decodeAcceptBody(decodeAcceptFragment(encodeAccept(body(5, 3))[0]!).chunk).credential,
    undefined,
  );
});

Deno.test("encodeAccept splits a large body over at most 3 datagrams of at most 1200 bytes", () => {
  // An RSA-3072 certificate is about 1100 bytes and its signature 384.
  const datagrams = encodeAccept(body(1100, 384));
  assert.equal(datagrams.length, 2);
  for (const [i, d] of datagrams.entries()) {
    assert.ok(d.length <= 1200);
    const f = decodeAcceptFragment(d);
    assert.deepEqual([f.index, f.count], [i, 2]);
  }
  const decoded = decodeAcceptBody(reassemble(datagrams));
  assertBytesEqual(decoded.certificate, filled(1100, 4));
  assertBytesEqual(decoded.signature, filled(384, 5));
  assert.equal(decoded.algorithm, "rsa-pss-sha256");
  const total = datagrams.reduce((n, d) => n + d.length, 0);
  assert.ok(total <= 3 * 1200);
  // Exactly three datagrams' room, and no more.
  const overhead = 32 + 32 + 8 + 1 + 2 + 2;
  assert.equal(encodeAccept(body(MAX_ACCEPT_BODY - overhead - 100, 100)).length, 3);
  assert.throws(() => encodeAccept(body(MAX_ACCEPT_BODY - overhead - 99, 100)), RangeError);
  assert.throws(() => encodeAccept(body(0, 10)), RangeError);
  assert.throws(() => encodeAccept(body(10, 0)), RangeError);
});

Deno.test("ACCEPT fields round-trip through fragments (property)", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 2500 }),
    fc.integer({ min: 1, max: 800 }),
    fc.constantFrom("ecdsa-p256-sha256" as const, "rsa-pss-sha256" as const),
    (certLength, sigLength, algorithm) => {
      const b = { ...body(certLength, sigLength), algorithm };
      let datagrams;
      try {
        datagrams = encodeAccept(b);
      } catch (err) {
        assert.ok(err instanceof RangeError);
        assert.ok(certLength + sigLength + 77 > MAX_ACCEPT_BODY);
        return;
      }
      const d = decodeAcceptBody(reassemble(datagrams));
      assert.equal(d.algorithm, algorithm);
      assertBytesEqual(d.certificate, b.certificate);
      assertBytesEqual(d.signature, b.signature);
      assertBytesEqual(d.connectionId, b.connectionId);
      assertBytesEqual(d.signedBytes, acceptSignedBytes(b));
    },
  ));
});

Deno.test("decodeAcceptFragment refuses bad counts, indexes, empty chunks and oversize datagrams", () => {
  const head = concat([0xac, 0x01, 0x32], filled(8));
  decodeAcceptFragment(concat(head, [2, 3], [9]));
  assertBad(() => decodeAcceptFragment(concat(head, [0, 0], [9])));
  assertBad(() => decodeAcceptFragment(concat(head, [0, 4], [9])));
  assertBad(() => decodeAcceptFragment(concat(head, [3, 3], [9])));
  assertBad(() => decodeAcceptFragment(concat(head, [0, 1])));
  assertBad(() => decodeAcceptFragment(concat(head, [0, 1], new Uint8Array(1200))));
  assertBad(() => decodeAcceptFragment(concat([0xac, 0x02, 0x32], filled(8), [0, 1], [9])));
  assertBad(() => decodeAcceptFragment(concat([0xac, 0x01, 0x33], filled(8), [0, 1], [9])));
});

Deno.test("decodeAcceptBody refuses every truncation, trailing bytes and an unknown algorithm", () => {
  const [d] = encodeAccept(body(40, 20));
  const whole = decodeAcceptFragment(d!).chunk;
  for (let n = 0; n < whole.length; n++) assertBad(() => decodeAcceptBody(whole.subarray(0, n)));
  assertBad(() => decodeAcceptBody(concat(whole, [0])));
  const badAlg = whole.slice();
  badAlg[72] = 0x04;
  assertBad(() => decodeAcceptBody(badAlg));
  const emptyCert = concat(whole.subarray(0, 73), [0, 0], [0, 1], [7]);
  assertBad(() => decodeAcceptBody(emptyCert));
});

Deno.test("FINISH is prefix, connection id and verify_data, nothing else", () => {
  const bytes = encodeFinish(filled(8, 1), filled(32, 9));
  assertBytesEqual(bytes, concat([0xac, 0x01, 0x33], filled(8, 1), filled(32, 9)));
  const f = decodeFinish(bytes);
  assertBytesEqual(f.verifyData, filled(32, 9));
  for (let n = 0; n < bytes.length; n++) assertBad(() => decodeFinish(bytes.subarray(0, n)));
  assertBad(() => decodeFinish(concat(bytes, [0])));
  assert.throws(() => encodeFinish(filled(7), filled(32)), RangeError);
});

Deno.test("RECORD header is prefix, connection id and a big-endian u64 counter", () => {
  const header = encodeRecordHeader(filled(8, 1), 2 ** 40 + 258);
  assertBytesEqual(header, concat([0xac, 0x01, 0x34], filled(8, 1), [0, 0, 1, 0, 0, 0, 1, 2]));
  const d = decodeRecord(concat(header, filled(16)));
  assert.equal(d.counter, 2 ** 40 + 258);
  assertBytesEqual(d.header, header);
  assertBad(() => decodeRecord(concat(header, filled(15))));
  assertBad(() => decodeRecord(concat(header, filled(MAX_RECORD_PAYLOAD + 17))));
  decodeRecord(concat(header, filled(MAX_RECORD_PAYLOAD + 16)));
  // A counter past 2^53 - 1 cannot be a real one.
  assertBad(() =>
    decodeRecord(concat([0xac, 0x01, 0x34], filled(8), [0xff, 0, 0, 0, 0, 0, 0, 0], filled(16)))
  );
});

Deno.test("Session datagram decoders throw only BAD_DATAGRAM on arbitrary bytes (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1300 }), fc.constantFrom(0x32, 0x33, 0x34), (tail, type) => {
      const bytes = concat([0xac, 0x01, type], tail);
      for (const decode of [decodeAcceptFragment, decodeFinish, decodeRecord, decodeAcceptBody]) {
        try {
          decode(bytes);
        } catch (err) {
          assert.ok(err instanceof ProtocolError && err.code === "BAD_DATAGRAM", String(err));
        }
      }
    }),
  );
});
