import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeFrame } from "../../lib/codec/frame.ts";
import { FINISH_TYPE } from "../../lib/codec/udp_session_datagram.ts";
import { encodeDataPacket } from "../../lib/transport/_reliable_packets.ts";
import { RecordProtection } from "../../lib/crypto/udp_record_protection.ts";
import { FramedStream } from "../../lib/transport/framed_stream.ts";
import { UdpSessionStream, type UdpSessionStreamOptions } from "../../lib/transport/udp_session_stream.ts";
import { type LinkOptions, prng, randomBytes } from "./_lossy_link.ts";
import { establishedPair } from "./_udp_session_pair.ts";
import { assertBytesEqual, concat } from "../_bytes.ts";

// Retransmission timeouts of a few milliseconds keep lossy runs on real timers short.
const FAST = { reliable: { minRtoMs: 2, initialRtoMs: 10, maxRtoMs: 40 }, deadAfterMs: 5_000 };
const LOSSY: LinkOptions = { drop: 0.2, duplicate: 0.1, maxDelayMs: 4 };
const SECRETS = {
  connectionId: new Uint8Array(8).fill(7),
  clientTraffic: new Uint8Array(32).fill(1),
  serverTraffic: new Uint8Array(32).fill(2),
};

/** One direction of a lossy link on real timers; stop() cancels what is still in flight. */
class TimerLink {
  #random: () => number;
  #options: LinkOptions;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  to: ((datagram: Uint8Array) => void) | null = null;
  sent: Uint8Array[] = [];

  constructor(random: () => number, options: LinkOptions) {
    this.#random = random;
    this.#options = options;
  }

  send = (datagram: Uint8Array<ArrayBuffer>): void => {
    this.sent.push(datagram);
    if (this.#random() < this.#options.drop) return;
    const copies = this.#random() < this.#options.duplicate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        this.to?.(datagram);
      }, this.#random() * this.#options.maxDelayMs);
      this.#timers.add(timer);
    }
  };

  stop(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}

type Tuning = Omit<UdpSessionStreamOptions, "records" | "send">;

/** Two streams of one real handshake over a link in each direction. */
async function connected(link: LinkOptions, client: Tuning = FAST, server: Tuning = FAST, seed = 1) {
  const keys = await establishedPair();
  const random = prng(seed);
  const toServer = new TimerLink(random, link);
  const toClient = new TimerLink(random, link);
  const a = new UdpSessionStream({ ...client, records: keys.client.records, send: toServer.send });
  const b = new UdpSessionStream({ ...server, records: keys.server.records, send: toClient.send });
  toServer.to = (d) => b.receive(d);
  toClient.to = (d) => a.receive(d);
  return {
    a,
    b,
    toServer,
    toClient,
    async [Symbol.asyncDispose]() {
      a.close();
      b.close();
      await Promise.all([a.ended, b.ended]);
      toServer.stop();
      toClient.stop();
    },
  };
}

async function readExactly(stream: UdpSessionStream, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let at = 0;
  while (at < length) {
    const n = await stream.read(out.subarray(at, Math.min(length, at + 1000)));
    assert.ok(n !== null, `stream ended after ${at} of ${length} bytes`);
    at += n;
  }
  return out;
}

Deno.test("UdpSessionStream carries 200 writes and a 64 KiB write each way over a lossy link", async () => {
  await using link = await connected(LOSSY, FAST, FAST, 3);
  const { a, b } = link;
  const random = prng(11);
  const writes = Array.from({ length: 200 }, (_, i) => randomBytes(random, 1 + (i * 41) % 900));
  writes.push(randomBytes(random, 65536));
  const expected = concat(...writes);
  const [toB, toA] = await Promise.all([
    readExactly(b, expected.length),
    readExactly(a, expected.length),
    (async () => {
      for (const w of writes) assert.equal(await a.write(w), w.length);
    })(),
    (async () => {
      for (const w of writes) assert.equal(await b.write(w), w.length);
    })(),
  ]);
  assertBytesEqual(toB, expected);
  assertBytesEqual(toA, expected);
  assert.ok(a.stats.reliable.retransmitted > 0, "the link lost nothing");
  a.close();
  assert.equal(await a.ended, "closed");
  assert.equal(await b.ended, "peer_closed");
  assert.equal(await b.read(new Uint8Array(10)), null);
});

Deno.test("UdpSessionStream carries framed payloads for a FramedStream", async () => {
  await using link = await connected(LOSSY, FAST, FAST, 5);
  const client = new FramedStream(link.a);
  const server = new FramedStream(link.b);
  const payloads = Array.from({ length: 50 }, (_, i) => new TextEncoder().encode(`message ${i}`));
  for (const p of payloads) void client.send(encodeFrame(p));
  await client.flushed();
  for (const p of payloads) assertBytesEqual(await server.nextPayload(), p);
  await client.close();
  assert.equal(await link.b.ended, "peer_closed");
  assert.equal(await server.nextPayload(), null);
});

Deno.test("UdpSessionStream close lingers until written data is acknowledged, then the peer reads it all", async () => {
  await using link = await connected(LOSSY, FAST, FAST, 8);
  const { a, b } = link;
  const data = randomBytes(prng(2), 100_000);
  await a.write(data);
  a.close();
  assert.equal(await a.ended, "closed");
  assert.equal(await b.ended, "peer_closed");
  // Everything in order before the CLOSE is still read, then the end.
  assertBytesEqual(await readExactly(b, data.length), data);
  assert.equal(await b.read(new Uint8Array(1)), null);
});

Deno.test("UdpSessionStream resends the FINISH until the server's first record arrives", async () => {
  const keys = await establishedPair();
  const finishes: Uint8Array[] = [];
  // The owner's routing: FINISH datagrams go to the handshake (done already), RECORDs to the stream.
  const server = new UdpSessionStream({
    ...FAST,
    records: keys.server.records,
    send: (d) => client.receive(d),
  });
  const client: UdpSessionStream = new UdpSessionStream({
    ...FAST,
    records: keys.client.records,
    untilConfirmed: keys.finish,
    send: (d) => {
      if (d[2] === FINISH_TYPE) return void finishes.push(d);
      // The server misses every record until the FINISH comes again, as if it had lost the first copy.
      if (finishes.length < 2) return;
      server.receive(d);
    },
  });
  try {
    await client.write(new TextEncoder().encode("hello"));
    assert.equal(new TextDecoder().decode(await readExactly(server, 5)), "hello");
    await server.write(new Uint8Array([1]));
    assert.deepEqual(await readExactly(client, 1), new Uint8Array([1]));
    const before = finishes.length;
    assert.ok(before >= 2, `FINISH sent ${before} times`);
    assert.equal(client.stats.confirmationsSent, before);
    await client.write(new Uint8Array(10));
    await readExactly(server, 10);
    assert.equal(finishes.length, before);
  } finally {
    client.close();
    server.close();
    await Promise.all([client.ended, server.ended]);
  }
});

Deno.test("UdpSessionStream detects a dead peer; then reads return null and writes reject", async () => {
  const stream = new UdpSessionStream({
    records: new RecordProtection(SECRETS, "client"),
    send: () => {},
    keepaliveMs: 10,
    deadAfterMs: 60,
  });
  const pending = stream.read(new Uint8Array(10));
  assert.equal(await stream.ended, "dead");
  assert.equal(await pending, null);
  assert.equal(await stream.read(new Uint8Array(10)), null);
  await assert.rejects(stream.write(new Uint8Array(1)), /Stream closed: dead/);
  assert.ok(stream.stats.keepalives >= 1);
  assert.equal(stream.receive(new Uint8Array(40)), "closed");
  stream.close();
});

Deno.test("UdpSessionStream write waits at the queue cap and rejects once closed", async () => {
  await using link = await connected(
    { drop: 0, duplicate: 0, maxDelayMs: 1 },
    { ...FAST, reliable: { ...FAST.reliable, maxQueuedBytes: 3000 } },
  );
  const { a, b } = link;
  const data = randomBytes(prng(4), 30_000);
  const [written, read] = await Promise.all([a.write(data), readExactly(b, data.length)]);
  assert.equal(written, data.length);
  assertBytesEqual(read, data);
  const pendingRead = a.read(new Uint8Array(4));
  a.close();
  assert.equal(await pendingRead, null);
  await assert.rejects(a.write(new Uint8Array(1)), /Stream closed/);
  assert.equal(await a.read(new Uint8Array(4)), null);
  assert.equal(await a.ended, "closed");
});

Deno.test("UdpSessionStream holds a peer back while its reader is behind, losing nothing", async () => {
  await using link = await connected(
    { drop: 0, duplicate: 0, maxDelayMs: 1 },
    FAST,
    { ...FAST, maxUnreadBytes: 2000 },
  );
  const { a, b } = link;
  const data = randomBytes(prng(6), 50_000);
  // Many messages: one 50 KB message would arrive whole before the reader is over its cap, and holding would
  // then refuse nothing unless a spurious retransmission happened to come (the wait below would never end).
  for (let at = 0; at < data.length; at += 1000) await a.write(data.subarray(at, at + 1000));
  while (b.stats.held === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  assertBytesEqual(await readExactly(b, data.length), data);
  assert.ok(a.stats.reliable.retransmitted > 0);
});

Deno.test("UdpSessionStream never throws on random datagrams", async () => {
  const stream = new UdpSessionStream({ records: new RecordProtection(SECRETS, "server"), send: () => {} });
  const peer = new RecordProtection(SECRETS, "client");
  try {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1300 }), fc.boolean(), (bytes, seal) => {
        const verdict = stream.receive(seal && bytes.length <= 1165 ? peer.seal(bytes) : bytes);
        assert.ok(typeof verdict === "string");
      }),
      { numRuns: 1000 },
    );
    assert.ok(stream.stats.accepted > 0);
  } finally {
    stream.close();
    await stream.ended;
  }
});

Deno.test("UdpSessionStream holds a peer sending tiny messages long before a million of them are queued", async () => {
  // Each received message is one chunk in memory (about 500 bytes of RSS for a 1-byte one): counting
  // only payload bytes against maxUnreadBytes let a peer pin a million chunks, hundreds of MB, per session.
  const stream = new UdpSessionStream({ records: new RecordProtection(SECRETS, "server"), send: () => {} });
  const peer = new RecordProtection(SECRETS, "client");
  try {
    let taken = 0;
    for (let seq = 0; seq < 20_000 && stream.stats.held === 0; seq++) {
      assert.equal(
        stream.receive(peer.seal(encodeDataPacket(seq, true, new Uint8Array([seq & 0xff])))),
        "accepted",
      );
      if (stream.stats.held === 0) taken++;
    }
    assert.ok(stream.stats.held > 0, "the stream never held the peer back");
    assert.ok(taken <= 4096, `took ${taken} one-byte messages before holding`);
    // What was taken is all there, in order.
    const read = await readExactly(stream, taken);
    assert.ok(read.every((byte, i) => byte === (i & 0xff)));
  } finally {
    stream.close();
    await stream.ended;
  }
});
