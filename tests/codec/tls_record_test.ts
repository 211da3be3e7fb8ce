import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrame, MAX_FRAME_BYTES } from "../../lib/codec/frame.ts";
import { tlsRecordKind } from "../../lib/codec/tls_record.ts";

const bytes = (...values: number[]) => new Uint8Array(values);

Deno.test("tlsRecordKind recognises the records a TLS peer opens with", () => {
  // A TLS 1.2 server's alert (what a plain TCP client on a TLS port reads first).
  assert.equal(tlsRecordKind(bytes(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32)), "alert");
  // A ClientHello, record version 3.1 as TLS 1.3 clients send it (what a plain port receives).
  assert.equal(tlsRecordKind(bytes(0x16, 0x03, 0x01, 0x02, 0x00, 0x01)), "handshake");
  assert.equal(tlsRecordKind(bytes(0x17, 0x03, 0x03, 0x40, 0x11)), "other");
  assert.equal(tlsRecordKind(bytes(0x14, 0x03, 0x00)), "other", "three bytes decide");
});

Deno.test("tlsRecordKind refuses what is not a TLS record header", () => {
  assert.equal(tlsRecordKind(bytes()), null);
  assert.equal(tlsRecordKind(bytes(0x16, 0x03)), null, "too short to tell");
  assert.equal(tlsRecordKind(bytes(0x19, 0x03, 0x03, 0, 2)), null, "content type 25");
  assert.equal(tlsRecordKind(bytes(0x13, 0x03, 0x03, 0, 2)), null, "content type 19");
  assert.equal(tlsRecordKind(bytes(0x16, 0x02, 0x00, 0, 2)), null, "SSL 2 version");
  assert.equal(tlsRecordKind(bytes(0x16, 0x03, 0x05, 0, 2)), null, "version 3.5");
  assert.equal(tlsRecordKind(bytes(0x16, 0x03, 0x03, 0x48, 0x01)), null, "longer than any record");
  assert.equal(tlsRecordKind(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n")), null);
});

Deno.test("tlsRecordKind never mistakes an authchat frame for a TLS record", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: MAX_FRAME_BYTES }), (length) => {
      const header = encodeFrame(new Uint8Array(length)).subarray(0, 8);
      assert.equal(tlsRecordKind(header), null);
    }),
    { numRuns: 300 },
  );
});
