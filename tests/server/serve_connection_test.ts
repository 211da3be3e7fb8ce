import assert from "node:assert/strict";
import { encodeMessage } from "../../lib/codec/messages.ts";
import { serveConnection } from "../../lib/server/serve_connection.ts";
import type { ByteStream } from "../../lib/transport/byte_stream.ts";
import { FramedStream, MAX_QUEUED_BYTES } from "../../lib/transport/framed_stream.ts";
import { makeKit } from "./_session_kit.ts";

/** A peer that sends `input` at once and never reads: writes hang until the stream is closed. */
function deafPeer(input: Uint8Array) {
  let delivered = false;
  let closed!: () => void;
  const closing = new Promise<void>((resolve) => closed = resolve);
  const peer = {
    writes: 0,
    closed: false,
    read(buffer: Uint8Array): Promise<number | null> {
      if (!delivered) {
        delivered = true;
        buffer.set(input.subarray(0, buffer.length));
        return Promise.resolve(Math.min(input.length, buffer.length));
      }
      return closing.then(() => null);
    },
    write(_data: Uint8Array): Promise<number> {
      peer.writes++;
      return closing.then(() => Promise.reject(new Deno.errors.BadResource("closed")));
    },
    close() {
      peer.closed = true;
      closed();
    },
  };
  return peer;
}

Deno.test("serveConnection reads no further request while replies to a peer that does not read are unsent", async () => {
  await using kit = await makeKit({ authTimeoutMs: 200 });
  const hello = encodeMessage({ op: "HELLO", id: 1, version: 1 });
  const flood = new Uint8Array(hello.length * 500);
  for (let i = 0; i < 500; i++) flood.set(hello, i * hello.length);
  const peer = deafPeer(flood);
  const served = serveConnection(
    peer,
    { peerAddress: "10.0.0.9", transport: "tcp", confidential: false },
    kit.ctx,
  );
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(peer.writes, 1, "only the first request was answered");
  kit.clock.now += 1000;
  await served;
  assert.equal(peer.closed, true, "the auth timeout still closed the stuck connection");
  assert.equal(kit.ctx.registry.size, 0);
});

Deno.test("FramedStream closes a connection whose peer lets more than 1 MiB pile up", async () => {
  const peer = deafPeer(new Uint8Array());
  const framed = new FramedStream(peer as ByteStream);
  const chunk = new Uint8Array(64 * 1024);
  const sends: Promise<void>[] = [];
  for (let i = 0; i < MAX_QUEUED_BYTES / chunk.length; i++) sends.push(framed.send(chunk).catch(() => {}));
  assert.equal(framed.queuedBytes, MAX_QUEUED_BYTES);
  await assert.rejects(framed.send(new Uint8Array(1)), /Peer is not reading/);
  await Promise.all(sends);
  assert.equal(peer.closed, true);
  assert.equal(framed.queuedBytes, 0);
});

Deno.test("serveConnection waits out a deadline beyond 2^31 ms without its timer firing at once, again and again", async () => {
  // 40 days to log in: more than a timer takes (setTimeout fires a longer delay after 1 ms).
  await using kit = await makeKit({ authTimeoutMs: 40 * 86_400_000 });
  let reads = 0;
  const now = kit.ctx.now;
  kit.ctx.now = () => {
    reads++;
    return now();
  };
  const peer = deafPeer(new Uint8Array(0));
  const served = serveConnection(
    peer,
    { peerAddress: "10.0.0.9", transport: "tcp", confidential: false },
    kit.ctx,
  );
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(reads < 10, `the clock was read ${reads} times in 100 ms: the timer keeps firing`);
  assert.equal(peer.closed, false, "the connection is still within its deadline");
  peer.close();
  await served;
});
