import assert from "node:assert/strict";
import { encodeFrame } from "../../lib/codec/frame.ts";
import type { ByteStream } from "../../lib/transport/byte_stream.ts";
import { FramedStream } from "../../lib/transport/framed_stream.ts";

/** A byte stream fed from a list of chunks, recording writes (at most `writeMax` bytes per write). */
function fakeStream(chunks: Uint8Array[], writeMax = 3): ByteStream & { written: number[]; closed: boolean } {
  const queue = [...chunks];
  const stream = {
    written: [] as number[],
    closed: false,
    read(buffer: Uint8Array) {
      const chunk = queue.shift();
      if (!chunk) return Promise.resolve(null);
      buffer.set(chunk);
      return Promise.resolve(chunk.length);
    },
    write(data: Uint8Array) {
      const n = Math.min(writeMax, data.length);
      stream.written.push(...data.subarray(0, n));
      return Promise.resolve(n);
    },
    close() {
      stream.closed = true;
    },
  };
  return stream;
}

Deno.test("FramedStream yields payloads across chunk boundaries and ends cleanly", async () => {
  const bytes = new Uint8Array([
    ...encodeFrame(new Uint8Array([1, 2, 3])),
    ...encodeFrame(new Uint8Array([4])),
  ]);
  const framed = new FramedStream(
    fakeStream([bytes.subarray(0, 2), bytes.subarray(2, 8), bytes.subarray(8)]),
  );
  const payloads: number[][] = [];
  for await (const p of framed.payloads()) payloads.push([...p]);
  assert.deepEqual(payloads, [[1, 2, 3], [4]]);
  assert.equal(framed.error, null);
});

Deno.test("FramedStream stops at an oversize header and at a truncated frame with the codec's error", async () => {
  const big = new Uint8Array([...encodeFrame(new Uint8Array([9])), 0, 1, 0x11, 0x70]);
  const framed = new FramedStream(fakeStream([big]));
  const payloads: Uint8Array[] = [];
  for await (const p of framed.payloads()) payloads.push(p);
  assert.equal(payloads.length, 1, "the frame before the bad header is delivered");
  assert.equal(framed.error?.code, "FRAME_TOO_LARGE");
  const cut = new FramedStream(fakeStream([encodeFrame(new Uint8Array(10)).subarray(0, 8)]));
  for await (const _ of cut.payloads()) assert.fail("no payload expected");
  assert.equal(cut.error?.code, "BAD_FRAME");
  assert.match(cut.error!.message, /Truncated frame: stream ended after 4 of 10 payload bytes/);
});

Deno.test("FramedStream writes whole frames in call order despite short writes, then closes", async () => {
  const stream = fakeStream([]);
  const framed = new FramedStream(stream);
  const a = encodeFrame(new Uint8Array([1, 2, 3, 4, 5]));
  const b = encodeFrame(new Uint8Array([6, 7]));
  const sends = [framed.send(a), framed.send(b)];
  await framed.close();
  await Promise.all(sends);
  assert.deepEqual(stream.written, [...a, ...b]);
  assert.equal(stream.closed, true);
  assert.equal(framed.closed, true);
});

Deno.test("FramedStream sends the frames queued during a write together in the next write, in order", async () => {
  const calls: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const stream: ByteStream = {
    read: () => Promise.resolve(null),
    async write(data) {
      calls.push([...data]);
      if (calls.length === 1) await gate;
      return data.length;
    },
    close() {},
  };
  const framed = new FramedStream(stream);
  const frames = [[1], [2, 3], [4], [5, 6, 7]].map((p) => encodeFrame(new Uint8Array(p)));
  const first = framed.send(frames[0]!);
  await Promise.resolve();
  const rest = frames.slice(1).map((f) => framed.send(f));
  assert.equal(framed.queuedBytes, frames.reduce((n, f) => n + f.length, 0));
  release();
  await Promise.all([first, ...rest]);
  assert.deepEqual(
    calls,
    [[...frames[0]!], frames.slice(1).flatMap((f) => [...f])],
    "two writes, the second batched",
  );
  assert.equal(framed.queuedBytes, 0);
  await framed.close();
});
