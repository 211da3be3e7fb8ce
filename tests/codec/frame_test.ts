import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, MAX_FRAME_BYTES } from "../../lib/codec/frame.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import { assertByteArraysEqual, assertBytesEqual } from "../_bytes.ts";

/** A 4-byte big-endian length header, built by hand rather than by the code under test. */
function header(length: number): Uint8Array {
  return new Uint8Array([
    (length >>> 24) & 0xff,
    (length >>> 16) & 0xff,
    (length >>> 8) & 0xff,
    length & 0xff,
  ]);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

/** Payloads of every interesting size: empty, tiny, and one byte over a header. */
const SAMPLE_PAYLOADS = [
  bytes(1, 2, 3),
  new Uint8Array(0),
  bytes(0xff),
  new Uint8Array(0),
  bytes(9, 8, 7, 6, 5),
];
const SAMPLE_STREAM = concat(...SAMPLE_PAYLOADS.map((p) => concat(header(p.length), p)));

Deno.test("encodeFrame writes a big-endian length header before the payload", () => {
  const payload = new Uint8Array(0x0102).fill(7);
  const frame = encodeFrame(payload);
  assert.deepEqual([...frame.subarray(0, 4)], [0, 0, 1, 2]);
  assert.equal(frame.length, 4 + 0x0102);
  assertBytesEqual(frame.subarray(4), payload);
  assert.equal(FRAME_HEADER_BYTES, 4);
});

Deno.test("encodeFrame accepts exactly 64 KiB and refuses one byte more with a RangeError", () => {
  assert.equal(MAX_FRAME_BYTES, 65536);
  const frame = encodeFrame(new Uint8Array(65536));
  assert.deepEqual([...frame.subarray(0, 4)], [0, 1, 0, 0]);
  assert.throws(() => encodeFrame(new Uint8Array(65537)), {
    name: "RangeError",
    message: "Frame too large: 65537 bytes exceeds 65536",
  });
});

Deno.test("FrameDecoder round-trips a frame pushed in one chunk", () => {
  const decoder = new FrameDecoder();
  const frames = decoder.push(encodeFrame(bytes(10, 20, 30)));
  assert.deepEqual(frames, [bytes(10, 20, 30)]);
  assert.equal(decoder.error, null);
  assert.equal(decoder.pendingBytes, 0);
  assert.equal(decoder.end(), null);
});

Deno.test("FrameDecoder returns every frame of one chunk in order", () => {
  const decoder = new FrameDecoder();
  assertByteArraysEqual(decoder.push(SAMPLE_STREAM), SAMPLE_PAYLOADS);
  assert.equal(decoder.error, null);
});

Deno.test("FrameDecoder returns payloads that do not alias the input chunk", () => {
  const chunk = concat(header(3), bytes(1, 2, 3));
  const [frame] = new FrameDecoder().push(chunk);
  chunk.fill(0);
  assert.deepEqual(frame, bytes(1, 2, 3), "a caller may reuse its read buffer");
});

Deno.test("FrameDecoder returns zero-length frames as empty arrays, even several in a row", () => {
  const decoder = new FrameDecoder();
  const frames = decoder.push(concat(header(0), header(0), header(0)));
  assert.equal(frames.length, 3);
  for (const f of frames) assert.equal(f.length, 0);
  assert.equal(decoder.pendingBytes, 0);
});

Deno.test("FrameDecoder gives the same frames when the stream is split at every byte boundary", () => {
  for (let cut = 0; cut <= SAMPLE_STREAM.length; cut++) {
    const decoder = new FrameDecoder();
    const frames = [
      ...decoder.push(SAMPLE_STREAM.subarray(0, cut)),
      ...decoder.push(SAMPLE_STREAM.subarray(cut)),
    ];
    assertByteArraysEqual(frames, SAMPLE_PAYLOADS, `split at ${cut}`);
    assert.equal(decoder.end(), null, `split at ${cut}`);
  }
});

Deno.test("FrameDecoder gives the same frames when fed one byte at a time", () => {
  const decoder = new FrameDecoder();
  const frames: Uint8Array[] = [];
  for (let i = 0; i < SAMPLE_STREAM.length; i++) {
    frames.push(...decoder.push(SAMPLE_STREAM.subarray(i, i + 1)));
  }
  assertByteArraysEqual(frames, SAMPLE_PAYLOADS);
  assert.equal(decoder.end(), null);
});

Deno.test("FrameDecoder sets FRAME_TOO_LARGE for a 70000-byte header and still returns earlier frames", () => {
  const decoder = new FrameDecoder();
  const chunk = concat(header(2), bytes(1, 2), header(1), bytes(3), header(70000), new Uint8Array(100));
  const frames = decoder.push(chunk);
  assert.deepEqual(frames, [bytes(1, 2), bytes(3)]);
  const err = decoder.error;
  assert.ok(err instanceof ProtocolError);
  assert.equal(err.code, "FRAME_TOO_LARGE");
  assert.equal(err.message, "Frame too large: 70000 bytes exceeds 65536");
  assert.equal(err.details.fatal, true);
});

Deno.test("FrameDecoder refuses a header announcing more than 64 KiB before allocating", () => {
  const decoder = new FrameDecoder();
  // Only the header arrives: the error must be known without any payload byte.
  assert.deepEqual(decoder.push(header(0xffffffff)), []);
  assert.equal(decoder.error?.code, "FRAME_TOO_LARGE");
  assert.equal(decoder.error?.message, "Frame too large: 4294967295 bytes exceeds 65536");
  assert.ok(decoder.pendingBytes <= FRAME_HEADER_BYTES);
});

Deno.test("FrameDecoder accepts a 65536-byte header and refuses 65537", () => {
  const ok = new FrameDecoder();
  const payload = new Uint8Array(65536).fill(0xab);
  assertByteArraysEqual(ok.push(concat(header(65536), payload)), [payload]);
  assert.equal(ok.error, null);
  const tooBig = new FrameDecoder();
  tooBig.push(header(65537));
  assert.equal(tooBig.error?.code, "FRAME_TOO_LARGE");
});

Deno.test("FrameDecoder honours a smaller cap given to its constructor", () => {
  const decoder = new FrameDecoder(10);
  assert.deepEqual(decoder.push(concat(header(10), new Uint8Array(10))), [new Uint8Array(10)]);
  decoder.push(header(11));
  assert.equal(decoder.error?.message, "Frame too large: 11 bytes exceeds 10");
});

Deno.test("FrameDecoder ignores all input after an error", () => {
  const decoder = new FrameDecoder();
  decoder.push(header(70000));
  const err = decoder.error;
  assert.ok(err);
  assert.deepEqual(decoder.push(encodeFrame(bytes(1, 2, 3))), []);
  assert.deepEqual(decoder.push(header(0)), []);
  assert.equal(decoder.error, err);
  assert.equal(decoder.end(), err);
});

Deno.test("FrameDecoder.end inside a payload reports a truncated BAD_FRAME", () => {
  const decoder = new FrameDecoder();
  assert.deepEqual(decoder.push(concat(header(5), bytes(1, 2))), []);
  const err = decoder.end();
  assert.ok(err instanceof ProtocolError);
  assert.equal(err.code, "BAD_FRAME");
  assert.equal(err.message, "Truncated frame: stream ended after 2 of 5 payload bytes");
  assert.equal(err.details.fatal, true);
  assert.equal(decoder.error, err);
  assert.deepEqual(decoder.push(bytes(3, 4, 5)), [], "input after end is ignored");
});

Deno.test("FrameDecoder.end inside a header reports a truncated BAD_FRAME", () => {
  const decoder = new FrameDecoder();
  decoder.push(bytes(0, 0));
  const err = decoder.end();
  assert.equal(err?.code, "BAD_FRAME");
  assert.equal(err?.message, "Truncated frame: stream ended after 2 of 4 header bytes");
});

Deno.test("FrameDecoder.end after whole frames returns null", () => {
  const decoder = new FrameDecoder();
  decoder.push(SAMPLE_STREAM);
  assert.equal(decoder.end(), null);
  assert.equal(decoder.error, null);
  assert.equal(new FrameDecoder().end(), null, "an empty stream ends cleanly");
});

Deno.test("FrameDecoder.pendingBytes counts a partial frame and never exceeds header plus 64 KiB", () => {
  const decoder = new FrameDecoder();
  const stream = encodeFrame(new Uint8Array(65536).fill(1));
  let max = 0;
  let frames = 0;
  for (let at = 0; at < stream.length; at += 4093) {
    frames += decoder.push(stream.subarray(at, at + 4093)).length;
    max = Math.max(max, decoder.pendingBytes);
    assert.ok(decoder.pendingBytes <= 65540);
  }
  assert.equal(frames, 1);
  assert.equal(decoder.pendingBytes, 0);
  assert.ok(max > 60000, "the partial frame was counted");
  decoder.push(bytes(0, 0, 0));
  assert.equal(decoder.pendingBytes, 3);
});

/** Payload sizes from empty to the full 64 KiB; big ones filled from a seed to keep generation fast. */
const payloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.record({
    length: fc.oneof(
      fc.integer({ min: 0, max: MAX_FRAME_BYTES }),
      fc.constantFrom(0, 65535, MAX_FRAME_BYTES),
    ),
    seed: fc.integer({ min: 0, max: 255 }),
  })
    .map(({ length, seed }) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff)),
);

/** Cut a stream at the given fractions of its length. */
function chunksOf(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * (stream.length + 1))))]
    .filter((p) => p <= stream.length).sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(stream.subarray(from, p));
    from = p;
  }
  chunks.push(stream.subarray(from));
  return chunks;
}

const cutsArb = fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { maxLength: 12 });

Deno.test("FrameDecoder decodes any list of payloads up to 64 KiB cut into any chunks (property)", () => {
  fc.assert(
    fc.property(fc.array(payloadArb, { maxLength: 6 }), cutsArb, (payloads, cuts) => {
      const stream = concat(...payloads.map((p) => encodeFrame(p)));
      const decoder = new FrameDecoder();
      const frames: Uint8Array[] = [];
      for (const chunk of chunksOf(stream, cuts)) {
        frames.push(...decoder.push(chunk));
        assert.ok(decoder.pendingBytes <= 65540);
      }
      assertByteArraysEqual(frames, payloads);
      assert.equal(decoder.error, null);
      assert.equal(decoder.end(), null);
    }),
    { numRuns: 100 },
  );
});

function checkSurvives(stream: Uint8Array, cuts: number[]): void {
  const decoder = new FrameDecoder();
  let out = 0;
  for (const chunk of chunksOf(stream, cuts)) {
    for (const f of decoder.push(chunk)) out += f.length;
    assert.ok(decoder.pendingBytes <= 65540);
  }
  const err = decoder.error;
  assert.ok(err === null || (err instanceof ProtocolError && err.code === "FRAME_TOO_LARGE"));
  assert.ok(out <= stream.length);
  const ended = decoder.end();
  assert.ok(ended === null || ended.code === "FRAME_TOO_LARGE" || ended.code === "BAD_FRAME");
}

Deno.test("FrameDecoder.push never throws on random bytes (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 4096 }), cutsArb, (stream, cuts) => checkSurvives(stream, cuts)),
    { numRuns: 300 },
  );
});

Deno.test("FrameDecoder.push never throws on mutated valid streams (property)", () => {
  const mutation = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
      fc.array(mutation, { minLength: 1, maxLength: 6 }),
      cutsArb,
      (payloads, mutations, cuts) => {
        const stream = concat(...payloads.map((p) => encodeFrame(p)), header(3), bytes(1, 2, 3));
        for (const m of mutations) stream[m.at % stream.length] = m.value;
        checkSurvives(stream, cuts);
      },
    ),
    { numRuns: 300 },
  );
});
