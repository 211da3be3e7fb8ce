import assert from "node:assert/strict";
import fc from "fast-check";
import { ReliableChannel } from "../../lib/transport/reliable_channel.ts";
import { assertCarried, prng, randomBytes, simulate } from "./_lossy_link.ts";
import { assertByteArraysEqual } from "../_bytes.ts";

/** A DATA packet built by hand rather than by the code under test. */
function dataPacket(seq: number, last: boolean, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(6 + payload.length);
  out[0] = 1;
  new DataView(out.buffer).setUint32(1, seq);
  out[5] = last ? 1 : 0;
  out.set(payload, 6);
  return out;
}

/** An ACK packet's fields, read by hand. */
function readAck(packet: Uint8Array): { cum: number; sack: bigint } {
  assert.equal(packet[0], 2);
  assert.equal(packet.length, 13);
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  return { cum: view.getUint32(1), sack: view.getBigUint64(5) };
}

/** Run two channels over a perfect, instant link until neither has anything to send. */
function exchange(a: ReliableChannel, b: ReliableChannel, now: number): void {
  for (let round = 0; round < 10_000; round++) {
    const fromA = a.poll(now);
    const fromB = b.poll(now);
    if (fromA.length === 0 && fromB.length === 0) return;
    for (const p of fromA) b.receive(p, now);
    for (const p of fromB) a.receive(p, now);
  }
  throw new Error("Exchange did not settle");
}

Deno.test("ReliableChannel delivers messages in order exactly once and coalesces ACKs", () => {
  const a = new ReliableChannel();
  const b = new ReliableChannel();
  assert.equal(a.nextWakeup(), null);
  const messages = Array.from({ length: 10 }, (_, i) => new Uint8Array([i, i + 1]));
  assert.deepEqual(messages.map((m) => a.send(m)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(a.nextWakeup(), 0);
  const packets = a.poll(0);
  assert.equal(packets.length, 10);
  for (const p of packets) b.receive(p, 3);
  assert.equal(b.nextWakeup(), 3);
  const acks = b.poll(3);
  assert.equal(acks.length, 1);
  assert.deepEqual(readAck(acks[0]!), { cum: 10, sack: 0n });
  assertByteArraysEqual(b.takeDelivered(), messages);
  assert.deepEqual(b.takeDelivered(), []);
  a.receive(acks[0]!, 6);
  assert.deepEqual(a.takeAcknowledged(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(a.nextWakeup(), null);
  assert.deepEqual(a.stats, {
    sent: 10,
    retransmitted: 0,
    received: 0,
    duplicates: 0,
    malformed: 0,
    outOfWindow: 0,
  });
  assert.equal(b.stats.received, 10);
});

Deno.test("ReliableChannel fragments messages at maxPacket - 6 bytes", () => {
  const cases: [number, number][] = [[0, 1], [1, 1], [1094, 1], [1095, 2], [65536, 60]];
  for (const [size, fragments] of cases) {
    const a = new ReliableChannel();
    const b = new ReliableChannel();
    const message = randomBytes(prng(size), size);
    a.send(message);
    const packets = a.poll(0);
    assert.equal(packets.length, fragments, `size ${size}`);
    packets.forEach((p, i) => {
      assert.ok(p.length <= 1100);
      assert.equal(p[0], 1);
      assert.equal(p[5], i === fragments - 1 ? 1 : 0);
    });
    if (size === 0) assert.deepEqual(packets[0], new Uint8Array([1, 0, 0, 0, 0, 1]));
    for (const p of packets) b.receive(p, 1);
    assertByteArraysEqual(b.takeDelivered(), [message]);
  }
});

Deno.test("ReliableChannel refuses oversized messages and a full send queue with RangeError", () => {
  const a = new ReliableChannel();
  assert.throws(() => a.send(new Uint8Array(65537)), RangeError);
  assert.equal(a.send(new Uint8Array(65536)), 0);
  const small = new ReliableChannel({ maxQueuedBytes: 3000 });
  const b = new ReliableChannel();
  assert.equal(small.send(new Uint8Array(2000)), 0);
  assert.throws(() => small.send(new Uint8Array(1001)), { name: "RangeError", message: /Send queue full/ });
  assert.equal(small.send(new Uint8Array(1000)), 1);
  assert.equal(small.queuedBytes, 3000);
  exchange(small, b, 0);
  assert.equal(small.queuedBytes, 0);
  assert.equal(small.send(new Uint8Array(3000)), 2);
});

Deno.test("ReliableChannel refuses to wrap sequence numbers", () => {
  const initialSeq = 2 ** 32 - 4;
  const a = new ReliableChannel({ initialSeq, maxPacket: 100 });
  const b = new ReliableChannel({ initialSeq, maxPacket: 100 });
  a.send(new Uint8Array([1]));
  a.send(new Uint8Array([2]));
  assert.throws(() => a.send(new Uint8Array(150)), {
    name: "RangeError",
    message: /Sequence numbers exhausted/,
  });
  a.send(new Uint8Array([3]));
  assert.throws(() => a.send(new Uint8Array(0)), RangeError);
  exchange(a, b, 0);
  assert.deepEqual(b.takeDelivered(), [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]);
  assert.deepEqual(a.takeAcknowledged(), [0, 1, 2]);
  assert.equal(b.stats.outOfWindow, 0);
  b.receive(dataPacket(2 ** 32 - 1, true, new Uint8Array(0)), 1);
  assert.equal(b.stats.outOfWindow, 1);
});

Deno.test("ReliableChannel rejects out-of-range options with RangeError", () => {
  assert.throws(() => new ReliableChannel({ maxPacket: 12 }), RangeError);
  assert.throws(() => new ReliableChannel({ window: 0 }), RangeError);
  assert.throws(() => new ReliableChannel({ initialRtoMs: 10 }), RangeError);
  assert.throws(() => new ReliableChannel({ maxRtoMs: 1.5 }), RangeError);
});

Deno.test("ReliableChannel retransmits after loss with a doubling, capped timeout and Karn's rule", () => {
  const a = new ReliableChannel();
  const b = new ReliableChannel();
  a.send(new Uint8Array([42]));
  const first = a.poll(0);
  assert.equal(first.length, 1);
  let t = 0;
  for (const gap of [200, 400, 800, 1600, 2000, 2000]) {
    assert.equal(a.nextWakeup(), t + gap);
    assert.deepEqual(a.poll(t + gap - 1), []);
    t += gap;
    assert.deepEqual(a.poll(t), first);
  }
  assert.equal(a.stats.retransmitted, 6);
  b.receive(first[0]!, t + 5);
  for (const p of b.poll(t + 5)) a.receive(p, t + 10);
  assert.deepEqual(a.takeAcknowledged(), [0]);
  assert.equal(a.nextWakeup(), null);
  // Only retransmitted packets were acknowledged: no RTT sample, so the backed-off timeout stays.
  t += 100;
  a.send(new Uint8Array([43]));
  for (const p of a.poll(t)) b.receive(p, t + 2);
  assert.equal(a.nextWakeup(), t + 2000);
  for (const p of b.poll(t + 2)) a.receive(p, t + 4);
  // A clean 4 ms sample gives 4 + 4 × 2 = 12 ms, raised to the 30 ms floor.
  t += 100;
  a.send(new Uint8Array([44]));
  a.poll(t);
  assert.equal(a.nextWakeup(), t + 30);
});

/** Two channels that have measured a round trip of `rttMs` (a's clock ends at `rttMs`). */
function measuredPair(rttMs: number): [ReliableChannel, ReliableChannel] {
  const a = new ReliableChannel();
  const b = new ReliableChannel();
  a.send(new Uint8Array(0));
  for (const p of a.poll(0)) b.receive(p, 0);
  for (const p of b.poll(0)) a.receive(p, rttMs);
  assert.deepEqual(a.takeAcknowledged(), [0]);
  b.takeDelivered();
  return [a, b];
}

Deno.test("ReliableChannel fast-retransmits a hole shown by three ACKs", () => {
  const [a, b] = measuredPair(4);
  for (let i = 1; i <= 5; i++) a.send(new Uint8Array([i]));
  const packets = a.poll(100);
  const acks: Uint8Array[] = [];
  for (const i of [1, 2, 3]) {
    b.receive(packets[i]!, 101);
    acks.push(...b.poll(101));
  }
  assert.equal(acks.length, 3);
  assert.deepEqual(readAck(acks[2]!), { cum: 1, sack: 0b111n });
  a.receive(acks[0]!, 110);
  a.receive(acks[1]!, 111);
  assert.deepEqual(a.poll(111), []);
  a.receive(acks[2]!, 112);
  assert.equal(a.nextWakeup(), 112);
  assert.deepEqual(a.poll(112), [packets[0]]);
  assert.equal(a.stats.retransmitted, 1);
  a.receive(acks[2]!, 113);
  assert.deepEqual(a.poll(113), [], "a stale hole report does not retransmit again");
  b.receive(packets[0]!, 114);
  b.receive(packets[4]!, 114);
  assert.deepEqual(b.takeDelivered().map((m) => m[0]), [1, 2, 3, 4, 5]);
  for (const p of b.poll(114)) a.receive(p, 115);
  assert.deepEqual(a.takeAcknowledged(), [2, 3, 4, 1, 5]);
});

Deno.test("ReliableChannel tolerates reordering shorter than a round trip", () => {
  const [a, b] = measuredPair(20);
  for (let i = 1; i <= 5; i++) a.send(new Uint8Array([i]));
  const packets = a.poll(100);
  for (const i of [1, 2, 3, 4]) {
    b.receive(packets[i]!, 101);
    for (const ack of b.poll(101)) a.receive(ack, 102 + i);
  }
  assert.deepEqual(a.poll(106), []);
  b.receive(packets[0]!, 107);
  for (const ack of b.poll(107)) a.receive(ack, 108);
  assert.deepEqual(b.takeDelivered().map((m) => m[0]), [1, 2, 3, 4, 5]);
  assert.equal(a.stats.retransmitted, 0);
  assert.equal(a.nextWakeup(), null);
});

Deno.test("ReliableChannel suppresses duplicate packets and acknowledges them again", () => {
  const a = new ReliableChannel();
  const b = new ReliableChannel();
  a.send(new Uint8Array([1]));
  a.send(new Uint8Array([2]));
  a.send(new Uint8Array([3]));
  const [p0, p1, p2] = a.poll(0);
  b.receive(p0!, 1);
  b.receive(p2!, 1);
  b.receive(p2!, 1);
  const ack = b.poll(1);
  assert.deepEqual(readAck(ack[0]!), { cum: 1, sack: 0b1n });
  assert.deepEqual(b.poll(1), []);
  b.receive(p0!, 2);
  assert.deepEqual(b.poll(2), ack, "a duplicate is re-acknowledged");
  b.receive(p1!, 3);
  b.receive(p1!, 3);
  assert.deepEqual(b.takeDelivered(), [new Uint8Array([1]), new Uint8Array([2]), new Uint8Array([3])]);
  assert.equal(b.stats.duplicates, 3);
  assert.equal(b.stats.received, 3);
  const final = b.poll(3);
  assert.deepEqual(readAck(final[0]!), { cum: 3, sack: 0n });
  a.receive(final[0]!, 4);
  a.receive(final[0]!, 4);
  assert.deepEqual(a.takeAcknowledged(), [0, 1, 2]);
  assert.deepEqual(a.takeAcknowledged(), []);
});

Deno.test("ReliableChannel counts malformed packets instead of throwing", () => {
  const b = new ReliableChannel({ maxPacket: 100 });
  const bad = [
    new Uint8Array(0),
    new Uint8Array([0]),
    new Uint8Array([3, 0, 0, 0, 0, 1]),
    new Uint8Array([1, 0, 0, 0, 0]),
    new Uint8Array([1, 0, 0, 0, 0, 2]),
    dataPacket(0, true, new Uint8Array(95)),
    new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    new Uint8Array(14).fill(0, 1).fill(2, 0, 1),
    new Uint8Array([2, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0]),
  ];
  for (const p of bad) b.receive(p, 0);
  assert.equal(b.stats.malformed, bad.length);
  assert.deepEqual(b.poll(0), []);
  assert.deepEqual(b.takeDelivered(), []);
  assert.equal(b.failed, null);
  b.receive(dataPacket(0, true, new Uint8Array(94)), 1);
  assert.equal(b.takeDelivered()[0]?.length, 94);
});

Deno.test("ReliableChannel drops DATA beyond the receive window", () => {
  const b = new ReliableChannel({ window: 8 });
  b.receive(dataPacket(8, true, new Uint8Array([8])), 0);
  assert.equal(b.stats.outOfWindow, 1);
  assert.deepEqual(b.poll(0), []);
  b.receive(dataPacket(7, true, new Uint8Array([7])), 0);
  assert.equal(b.stats.received, 1);
  assert.deepEqual(readAck(b.poll(0)[0]!), { cum: 0, sack: 1n << 6n });
});

Deno.test("ReliableChannel fails, bounded, when a peer never ends a message", () => {
  const b = new ReliableChannel();
  const fragment = new Uint8Array(1094);
  for (let seq = 0; seq < 59; seq++) b.receive(dataPacket(seq, false, fragment), seq);
  assert.equal(b.failed, null);
  b.receive(dataPacket(59, false, fragment), 59);
  assert.match(b.failed ?? "", /Message too large/);
  b.receive(dataPacket(60, true, fragment), 60);
  assert.deepEqual(b.takeDelivered(), []);
  assert.deepEqual(b.poll(61), []);
  assert.equal(b.nextWakeup(), null);
  assert.throws(() => b.send(new Uint8Array(1)), /Channel failed/);

  // Out of order, only the window is buffered; the rest is dropped until the gap fills.
  const c = new ReliableChannel();
  for (let seq = 1; seq < 200; seq++) c.receive(dataPacket(seq, false, fragment), 0);
  assert.equal(c.stats.received, 63);
  assert.equal(c.stats.outOfWindow, 136);
  assert.equal(c.failed, null);
  c.receive(dataPacket(0, false, fragment), 1);
  assert.match(c.failed ?? "", /Message too large/);
});

Deno.test("ReliableChannel lists exactly the unacknowledged messages", () => {
  const a = new ReliableChannel({ maxPacket: 100 });
  const b = new ReliableChannel({ maxPacket: 100 });
  const m0 = randomBytes(prng(1), 10);
  const m1 = randomBytes(prng(2), 250);
  const m2 = randomBytes(prng(3), 5);
  for (const m of [m0, m1, m2]) a.send(m);
  const p = a.poll(0);
  assert.equal(p.length, 5);
  const sent = [m0, m1, m2];
  // The ids still unacknowledged, each listed with the very message sent under it.
  const unacknowledged = () => {
    const list = a.unacknowledged();
    assertByteArraysEqual(list.map((u) => u.message), list.map((u) => sent[u.id]!));
    return list.map((u) => u.id);
  };
  assert.deepEqual(unacknowledged(), [0, 1, 2]);
  for (const i of [0, 1, 3, 4]) b.receive(p[i]!, 1);
  for (const ack of b.poll(1)) a.receive(ack, 2);
  assert.deepEqual(a.takeAcknowledged(), [0, 2]);
  assert.deepEqual(unacknowledged(), [1]);
  b.receive(p[2]!, 3);
  for (const ack of b.poll(3)) a.receive(ack, 4);
  assert.deepEqual(a.takeAcknowledged(), [1]);
  assert.deepEqual(unacknowledged(), []);
  assertByteArraysEqual(b.takeDelivered(), [m0, m1, m2]);
});

Deno.test("ReliableChannel carries 1,000 messages each way over a lossy, duplicating, reordering link", () => {
  const random = prng(7);
  const messages = (count: number): Uint8Array[] =>
    Array.from({ length: count }, (_, i) => {
      const r = random();
      const size = i % 125 === 7 ? 65536 : [0, 1, 1094, 1095][i] ??
        (r < 0.4 ? random() * 64 : r < 0.8 ? random() * 1200 : r < 0.95 ? random() * 5000 : random() * 20000);
      return randomBytes(random, Math.floor(size));
    });
  const { a, b, timeMs } = simulate(
    11,
    { drop: 0.2, duplicate: 0.1, maxDelayMs: 30 },
    messages(1000),
    messages(1000),
  );
  assertCarried(a, b);
  assertCarried(b, a);
  const stats = [a.channel.stats, b.channel.stats];
  for (const s of stats) {
    assert.ok(s.retransmitted > 0 && s.duplicates > 0);
    assert.equal(s.malformed + s.outOfWindow, 0);
  }
  if (Deno.env.get("RELIABLE_STATS")) console.log({ timeMs, a: stats[0], b: stats[1] });
});

Deno.test("ReliableChannel delivers what was sent for any loss schedule and message sizes (property)", () => {
  const sizes = fc.array(
    fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 6 },
      { arbitrary: fc.integer({ min: 0, max: 5000 }), weight: 3 },
      { arbitrary: fc.constantFrom(0, 65536), weight: 1 },
    ),
    { maxLength: 25 },
  );
  fc.assert(
    fc.property(
      fc.integer(),
      fc.record({
        drop: fc.double({ min: 0, max: 0.35, noNaN: true }),
        duplicate: fc.double({ min: 0, max: 0.3, noNaN: true }),
        maxDelayMs: fc.integer({ min: 0, max: 50 }),
      }),
      fc.record({ maxPacket: fc.integer({ min: 200, max: 1100 }), window: fc.integer({ min: 2, max: 100 }) }),
      sizes,
      sizes,
      (seed, link, options, sizesAB, sizesBA) => {
        const make = (list: number[]) => list.map((n, i) => randomBytes(prng(seed + i), n));
        const { a, b } = simulate(seed, link, make(sizesAB), make(sizesBA), options);
        assertCarried(a, b);
        assertCarried(b, a);
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("ReliableChannel with ackDelayMs holds an ACK of in-order DATA for its delay, or sends it with DATA", () => {
  const a = new ReliableChannel({ ackDelayMs: 5 });
  const b = new ReliableChannel({ ackDelayMs: 5 });
  a.send(new Uint8Array([1]));
  const [request] = a.poll(0);
  b.receive(request!, 10);
  assert.deepEqual(b.takeDelivered(), [new Uint8Array([1])]);
  // Owed, not due: nothing at 10..14, the ACK alone at 15.
  assert.equal(b.nextWakeup(), 15);
  assert.deepEqual(b.poll(14), []);
  const alone = b.poll(15);
  assert.equal(alone.length, 1);
  assert.deepEqual(readAck(alone[0]!), { cum: 1, sack: 0n });
  assert.equal(b.nextWakeup(), null);
  // Answered within the delay: the ACK goes first in the same poll as the answer.
  a.send(new Uint8Array([2]));
  b.receive(a.poll(20)[0]!, 21);
  b.send(new Uint8Array([9]));
  const [ack, answer, ...rest] = b.poll(22);
  assert.deepEqual(readAck(ack!), { cum: 2, sack: 0n });
  assert.equal(answer![0], 1);
  assert.deepEqual(rest, []);
  assert.deepEqual(b.poll(30), [], "the ACK went once");
});

Deno.test("ReliableChannel with ackDelayMs acknowledges at once a gap, a duplicate and a second full packet", () => {
  const a = new ReliableChannel({ ackDelayMs: 5, maxPacket: 20 });
  const b = new ReliableChannel({ ackDelayMs: 5, maxPacket: 20 });
  for (let i = 0; i < 2; i++) a.send(new Uint8Array([i]));
  // Three full packets (14-byte payloads), then a small one.
  for (let i = 2; i < 5; i++) a.send(new Uint8Array(i === 4 ? 1 : 14).fill(i));
  const [p0, p1, p2, p3, p4] = a.poll(0);
  assert.deepEqual([p0, p1, p2, p3, p4].map((p) => p!.length), [7, 7, 20, 20, 7]);
  // A gap: the SACK must reach the sender without delay.
  b.receive(p1!, 1);
  assert.equal(b.nextWakeup(), 1);
  assert.deepEqual(readAck(b.poll(1)[0]!), { cum: 0, sack: 0b1n });
  // Filling it: at once too.
  b.receive(p0!, 2);
  assert.deepEqual(readAck(b.poll(2)[0]!), { cum: 2, sack: 0n });
  // A duplicate: the last ACK was probably lost.
  b.receive(p0!, 3);
  assert.deepEqual(readAck(b.poll(3)[0]!), { cum: 2, sack: 0n });
  // One full packet in order waits; the second makes it due.
  b.receive(p2!, 4);
  assert.deepEqual(b.poll(4), []);
  b.receive(p3!, 4);
  assert.deepEqual(readAck(b.poll(4)[0]!), { cum: 4, sack: 0n });
  // Small packets in order wait, however many (an answer of several messages).
  b.receive(p4!, 6);
  assert.equal(b.nextWakeup(), 11);
  a.send(new Uint8Array([5]));
  b.receive(a.poll(7)[0]!, 7);
  assert.deepEqual(b.poll(7), []);
  assert.deepEqual(readAck(b.poll(11)[0]!), { cum: 6, sack: 0n });
  assert.throws(() => new ReliableChannel({ ackDelayMs: 31 }), RangeError);
});
