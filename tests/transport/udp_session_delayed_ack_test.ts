// Second reader's checks of delayed ACKs and ACK + DATA records (9bd370a, 2a9a0cb).
import assert from "node:assert/strict";
import fc from "fast-check";
import { RecordProtection } from "../../lib/crypto/udp_record_protection.ts";
import { UdpSessionEngine } from "../../lib/transport/udp_session_engine.ts";
import { encodeAckPacket, encodeDataPacket } from "../../lib/transport/_reliable_packets.ts";
import { concat } from "../_bytes.ts";

const SECRETS = {
  connectionId: new Uint8Array(8).fill(7),
  clientTraffic: new Uint8Array(32).fill(1),
  serverTraffic: new Uint8Array(32).fill(2),
};

function side() {
  const peer = new RecordProtection(SECRETS, "client");
  const engine = new UdpSessionEngine({ records: new RecordProtection(SECRETS, "server") }, 0);
  return { peer, engine };
}

function opened(peer: RecordProtection, datagrams: Uint8Array[]): string[] {
  return datagrams.map((d) => {
    const o = peer.open(d);
    assert.ok(o.ok);
    return o.payload.join(",");
  });
}

Deno.test("an ACK + DATA record does exactly what the ACK record then the DATA record do", () => {
  const event = fc.record({
    cum: fc.integer({ min: 0, max: 6 }),
    sack: fc.integer({ min: 0, max: 255 }),
    seq: fc.integer({ min: 0, max: 8 }),
    last: fc.boolean(),
    size: fc.integer({ min: 0, max: 1146 }),
    holding: fc.boolean(),
    write: fc.boolean(),
    dt: fc.integer({ min: 0, max: 40 }),
  });
  fc.assert(
    fc.property(fc.array(event, { maxLength: 30 }), (events) => {
      const x = side();
      const y = side();
      let now = 0;
      for (const e of events) {
        now += e.dt;
        if (e.write) {
          for (const s of [x, y]) s.engine.write(new Uint8Array([e.seq]), now);
        }
        const ack = encodeAckPacket(e.cum, 0, e.sack);
        const data = encodeDataPacket(e.seq, e.last, new Uint8Array(e.size).fill(e.seq));
        x.engine.holding = y.engine.holding = e.holding;
        assert.equal(x.engine.receive(x.peer.seal(concat(ack, data)), now), "accepted");
        assert.equal(y.engine.receive(y.peer.seal(ack), now), "accepted");
        assert.equal(y.engine.receive(y.peer.seal(data), now), "accepted");
        assert.deepEqual(x.engine.takeDelivered(), y.engine.takeDelivered());
        assert.equal(x.engine.room, y.engine.room);
        assert.equal(x.engine.nextWakeup(), y.engine.nextWakeup());
        assert.equal(x.engine.ended, y.engine.ended);
        assert.deepEqual(x.engine.stats.reliable, y.engine.stats.reliable);
        assert.equal(x.engine.stats.held, y.engine.stats.held);
        assert.deepEqual(opened(x.peer, x.engine.poll(now)), opened(y.peer, y.engine.poll(now)));
      }
    }),
    { numRuns: 300 },
  );
});

import { UdpSessionStream } from "../../lib/transport/udp_session_stream.ts";

Deno.test("a stream sends a delayed ACK alone after about 5 ms, with few timers, also under a trickle", async () => {
  const peer = new RecordProtection(SECRETS, "client");
  const sent: { at: number; payload: string }[] = [];
  const start = performance.now();
  const stream = new UdpSessionStream({
    records: new RecordProtection(SECRETS, "server"),
    send: (d) => {
      const o = peer.open(d);
      assert.ok(o.ok);
      sent.push({ at: performance.now() - start, payload: o.payload.join(",") });
    },
  });
  const realSetTimeout = globalThis.setTimeout;
  let timers = 0;
  // deno-lint-ignore no-explicit-any
  (globalThis as any).setTimeout = (
    ...args: Parameters<typeof setTimeout>
  ) => (timers++, realSetTimeout(...args));
  try {
    // A hostile trickle: one in-order 1-byte DATA every millisecond for 100 ms, never answered.
    for (let seq = 0; seq < 100; seq++) {
      stream.receive(peer.seal(encodeDataPacket(seq, true, new Uint8Array([1]))));
      await new Promise((r) => realSetTimeout(r, 1));
    }
    await new Promise((r) => realSetTimeout(r, 30));
  } finally {
    globalThis.setTimeout = realSetTimeout;
  }
  const acks = sent.filter((s) => s.payload.startsWith("2,"));
  const last = acks.at(-1)!.payload.split(",").map(Number);
  assert.equal((last[1]! << 24 | last[2]! << 16 | last[3]! << 8 | last[4]!) >>> 0, 100, "all acknowledged");
  // ACKs keep coming while DATA does (due 5 ms after the first DATA each covers).
  for (let i = 1; i < acks.length; i++) {
    // Real timers on a shared machine: only a loose bound (a stall of the whole process shows here too).
    assert.ok(acks[i]!.at - acks[i - 1]!.at < 100, `gap ${acks[i]!.at - acks[i - 1]!.at} ms`);
  }
  assert.ok(timers < 200, `${timers} timers armed for 100 packets`);
  stream.close({ lingerMs: 0 });
  await stream.ended;
});

/** A → B over a link of `latency` ms each way, driven by both engines' wakeups; the simulated time taken. */
function transfer(messages: number, size: number, ackDelayMs: number | undefined, latency = 0.25): number {
  const reliable = ackDelayMs === undefined ? {} : { ackDelayMs };
  const a = new UdpSessionEngine({ records: new RecordProtection(SECRETS, "client"), reliable }, 0);
  const b = new UdpSessionEngine({ records: new RecordProtection(SECRETS, "server"), reliable }, 0);
  let queued = 0;
  let delivered = 0;
  let now = 0;
  const wire: { at: number; to: UdpSessionEngine; d: Uint8Array }[] = [];
  for (let step = 0; step < 1_000_000 && delivered < messages * size; step++) {
    while (queued < messages && a.room >= size) a.write(new Uint8Array(size), now), queued++;
    for (let i = 0; i < wire.length;) {
      if (wire[i]!.at <= now) wire[i]!.to.receive(wire.splice(i, 1)[0]!.d, now);
      else i++;
    }
    for (const m of b.takeDelivered()) delivered += m.length;
    for (const d of a.poll(now)) wire.push({ at: now + latency, to: b, d });
    for (const d of b.poll(now)) wire.push({ at: now + latency, to: a, d });
    const next = Math.min(a.nextWakeup() ?? Infinity, b.nextWakeup() ?? Infinity, ...wire.map((w) => w.at));
    now = Math.max(now, next);
  }
  return now;
}

Deno.test("a stream of small messages is not paced by the ACK delay: two full packets' worth of bytes make it due", () => {
  const immediate = transfer(640, 1000, 0);
  const delayed = transfer(640, 1000, undefined);
  const full = transfer(560, 1159, undefined);
  // 640 KB at 0.5 ms RTT: a few ms without the delay; paced by it, a window (64 packets) per 5 ms, over 50.
  assert.ok(delayed <= 4 * immediate + 5, `${delayed} ms vs ${immediate} ms`);
  assert.ok(full <= 4 * immediate + 5, `full packets: ${full} ms vs ${immediate} ms`);
});
