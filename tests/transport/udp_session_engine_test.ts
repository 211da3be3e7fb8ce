import assert from "node:assert/strict";
import fc from "fast-check";
import { RecordProtection } from "../../lib/crypto/udp_record_protection.ts";
import {
  CLOSE_COPIES,
  CONFIRMATION_GAP_MS,
  DEFAULT_ACK_DELAY_MS,
  UdpSessionEngine,
  type UdpSessionEngineOptions,
} from "../../lib/transport/udp_session_engine.ts";
import { ReliableChannel } from "../../lib/transport/reliable_channel.ts";
import { encodeDataPacket } from "../../lib/transport/_reliable_packets.ts";

const EMPTY = new Uint8Array(0);
import { type LinkOptions, LossyLink, prng, randomBytes } from "./_lossy_link.ts";
import { establishedPair } from "./_udp_session_pair.ts";
import { assertBytesEqual, concat } from "../_bytes.ts";

const LOSSY: LinkOptions = { drop: 0.2, duplicate: 0.1, maxDelayMs: 40 };
const PERFECT: LinkOptions = { drop: 0, duplicate: 0, maxDelayMs: 0 };
const SECRETS = {
  connectionId: new Uint8Array(8).fill(7),
  clientTraffic: new Uint8Array(32).fill(1),
  serverTraffic: new Uint8Array(32).fill(2),
};

/** One end of a simulation: its engine, the writes still to queue, and what it received. */
class End {
  engine: UdpSessionEngine;
  writes: Uint8Array[] = [];
  #offset = 0;
  delivered: Uint8Array[] = [];
  verdicts: string[] = [];

  constructor(engine: UdpSessionEngine) {
    this.engine = engine;
  }

  /** Queue what fits of the pending writes. */
  pump(now: number): void {
    while (this.writes.length > 0 && this.engine.ended === null && !this.engine.closing) {
      const head = this.writes[0]!;
      this.#offset += this.engine.write(head.subarray(this.#offset), now);
      if (this.#offset < head.length) return;
      this.writes.shift();
      this.#offset = 0;
    }
  }
}

/** Two engines of one real handshake (client first), with their options. */
async function pair(
  client: Omit<UdpSessionEngineOptions, "records"> = {},
  server: Omit<UdpSessionEngineOptions, "records"> = {},
): Promise<{ a: End; b: End }> {
  const keys = await establishedPair();
  return {
    a: new End(new UdpSessionEngine({ ...client, records: keys.client.records }, 0)),
    b: new End(new UdpSessionEngine({ ...server, records: keys.server.records }, 0)),
  };
}

/** Run both ends over a simulated link from `start` until `done()`; returns the simulated time. */
function run(a: End, b: End, link: LinkOptions, done: () => boolean, seed = 1, start = 0): number {
  const random = prng(seed);
  const toB = new LossyLink(random, link);
  const toA = new LossyLink(random, link);
  let now = start;
  for (let step = 0; step < 200_000; step++) {
    for (const d of toB.due(now)) b.verdicts.push(b.engine.receive(d, now));
    for (const d of toA.due(now)) a.verdicts.push(a.engine.receive(d, now));
    for (const [end, link] of [[a, toB], [b, toA]] as const) {
      end.pump(now);
      end.delivered.push(...end.engine.takeDelivered());
      for (const d of end.engine.poll(now)) link.push(d, now);
    }
    if (done()) return now;
    const next = Math.min(
      toA.next(),
      toB.next(),
      a.engine.nextWakeup() ?? Infinity,
      b.engine.nextWakeup() ?? Infinity,
    );
    assert.ok(next < Infinity, "Simulation stalled with work outstanding");
    assert.ok(next < 3_600_000, "Simulation ran past a simulated hour");
    now = Math.max(now, next);
  }
  throw new Error("Simulation did not finish");
}

function deliveredBytes(end: End): Uint8Array {
  return concat(...end.delivered);
}

Deno.test("UdpSessionEngine carries 200 messages each way over a lossy link exactly once, in order", async () => {
  const { a, b } = await pair();
  const random = prng(42);
  const toB = Array.from({ length: 200 }, (_, i) => randomBytes(random, 1 + (i * 37) % 3000));
  const toA = Array.from({ length: 200 }, (_, i) => randomBytes(random, 1 + (i * 53) % 1500));
  a.writes.push(...toB);
  b.writes.push(...toA);
  const total = (ms: Uint8Array[]) => ms.reduce((n, m) => n + m.length, 0);
  run(a, b, LOSSY, () => {
    return deliveredBytes(b).length === total(toB) && deliveredBytes(a).length === total(toA) &&
      a.engine.room === 1024 * 1024 && b.engine.room === 1024 * 1024;
  }, 42);
  assertBytesEqual(deliveredBytes(b), concat(...toB));
  assertBytesEqual(deliveredBytes(a), concat(...toA));
  // Each write fitted the queue, so each went as one message.
  assert.equal(b.delivered.length, 200);
  assert.equal(a.delivered.length, 200);
  const stats = a.engine.stats;
  assert.ok(stats.reliable.retransmitted > 0, "the link lost nothing");
  assert.ok(stats.drops.replayed > 0, "the link duplicated nothing");
  assert.equal(stats.drops.forged + stats.drops.bad_packet, 0);
  // Copies delayed past 64 later records fall out of the replay window; nothing else is dropped.
  assert.ok(b.verdicts.every((v) => v === "accepted" || v === "replayed" || v === "out-of-window"));
});

Deno.test("UdpSessionEngine carries a 64 KiB write and a 300 KiB write over a lossy link", async () => {
  for (const seed of [1, 2, 3]) {
    const { a, b } = await pair();
    const random = prng(seed);
    const big = randomBytes(random, 65536);
    const bigger = randomBytes(random, 300 * 1024);
    a.writes.push(big, bigger);
    const expected = concat(big, bigger);
    run(
      a,
      b,
      LOSSY,
      () => deliveredBytes(b).length >= expected.length && a.engine.room === 1024 * 1024,
      seed,
    );
    assertBytesEqual(deliveredBytes(b), expected);
    assert.equal(b.delivered[0]!.length, 65536);
  }
});

Deno.test("UdpSessionEngine write stops at the queue cap and takes more once acknowledged", async () => {
  const { a, b } = await pair({ reliable: { maxQueuedBytes: 4000 } });
  assert.equal(a.engine.write(new Uint8Array(10_000), 0), 4000);
  assert.equal(a.engine.room, 0);
  assert.equal(a.engine.write(new Uint8Array(10), 0), 0);
  run(a, b, PERFECT, () => a.engine.room === 4000);
  assert.equal(deliveredBytes(b).length, 4000);
  assert.equal(a.engine.write(new Uint8Array(10), 100), 10);
});

Deno.test("UdpSessionEngine drops replayed and tampered records, counts them and delivers nothing", async () => {
  const { a, b } = await pair();
  a.engine.write(new TextEncoder().encode("once"), 0);
  const [record] = a.engine.poll(0);
  assert.ok(record !== undefined);
  const tampered = new Uint8Array(record);
  tampered[tampered.length - 20]! ^= 1;
  assert.equal(b.engine.receive(tampered, 1), "forged");
  assert.deepEqual(b.engine.takeDelivered(), []);
  assert.equal(b.engine.receive(record, 2), "accepted");
  assert.equal(new TextDecoder().decode(b.engine.takeDelivered()[0]), "once");
  assert.equal(b.engine.receive(record, 3), "replayed");
  assert.deepEqual(b.engine.takeDelivered(), []);
  assert.equal(b.engine.receive(record.subarray(0, 20), 4), "truncated");
  const other = new RecordProtection(SECRETS, "client");
  assert.equal(b.engine.receive(other.seal(new Uint8Array([1])), 5), "wrong-connection");
  const stats = b.engine.stats;
  assert.equal(stats.accepted, 1);
  assert.deepEqual(
    [stats.drops.forged, stats.drops.replayed, stats.drops.truncated, stats.drops["wrong-connection"]],
    [1, 1, 1, 1],
  );
});

Deno.test("UdpSessionEngine counts authenticated packets of unknown kinds as bad_packet", () => {
  const client = new RecordProtection(SECRETS, "client");
  const server = new UdpSessionEngine({ records: new RecordProtection(SECRETS, "server") }, 0);
  for (const payload of [[], [7], [3, 0], [1, 0, 0], [2, 0, 0, 0, 0], [1, 0, 0, 0, 0, 2]]) {
    assert.equal(server.receive(client.seal(new Uint8Array(payload)), 1), "accepted");
  }
  assert.equal(server.stats.drops.bad_packet, 6);
  assert.equal(server.ended, null);
  assert.deepEqual(server.takeDelivered(), []);
  assert.deepEqual(server.poll(2), []);
});

Deno.test("UdpSessionEngine sends a keepalive after silence, which is acknowledged and delivers nothing", async () => {
  const { a, b } = await pair({ keepaliveMs: 10_000 });
  assert.equal(a.engine.nextWakeup(), 10_000);
  assert.deepEqual(a.engine.poll(9_999), []);
  const [keepalive, ...rest] = a.engine.poll(10_000);
  assert.ok(keepalive !== undefined && rest.length === 0);
  assert.equal(a.engine.stats.keepalives, 1);
  assert.equal(b.engine.receive(keepalive, 10_010), "accepted");
  assert.deepEqual(b.engine.takeDelivered(), []);
  // Nothing to answer it with: the ACK waits its delay, then goes alone.
  assert.deepEqual(b.engine.poll(10_010), []);
  assert.equal(b.engine.nextWakeup(), 10_010 + DEFAULT_ACK_DELAY_MS);
  const [ack] = b.engine.poll(10_010 + DEFAULT_ACK_DELAY_MS);
  assert.ok(ack !== undefined);
  assert.equal(a.engine.receive(ack, 10_020), "accepted");
  assert.equal(a.engine.room, 1024 * 1024);
  // The next keepalive is due a whole interval after this one; the server (keepaliveMs 0) sends none.
  assert.equal(a.engine.nextWakeup(), 20_000);
  assert.equal(b.engine.stats.keepalives, 0);
  assert.equal(b.engine.nextWakeup(), 10_010 + 60_000);
});

Deno.test("UdpSessionEngine ends as dead when nothing authenticated arrives for deadAfterMs", async () => {
  const { a, b } = await pair({ deadAfterMs: 5_000, keepaliveMs: 1_000 });
  // Forgeries and the client's own keepalives do not keep it alive.
  const forged = new RecordProtection(SECRETS, "server").seal(new Uint8Array([2]));
  for (let t = 0; t < 5_000; t += 1_000) {
    assert.notEqual(a.engine.receive(forged, t), "accepted");
    a.engine.poll(t);
  }
  assert.equal(a.engine.ended, null);
  assert.deepEqual(a.engine.poll(5_000), []);
  assert.equal(a.engine.ended, "dead");
  assert.equal(a.engine.nextWakeup(), null);
  assert.throws(() => a.engine.write(new Uint8Array(1), 5_001), /Stream closed: dead/);
  assert.equal(b.engine.ended, null);
});

Deno.test("UdpSessionEngine close lingers until the data is acknowledged, then the peer sees peer_closed", async () => {
  const { a, b } = await pair();
  const data = randomBytes(prng(5), 20_000);
  a.engine.write(data, 0);
  a.engine.close(0);
  assert.equal(a.engine.closing, true);
  assert.throws(() => a.engine.write(new Uint8Array(1), 0), /Stream closed: closing/);
  // The first flight is lost: the engine must retransmit before closing.
  const lost = a.engine.poll(0);
  assert.ok(lost.length > 10);
  assert.equal(a.engine.ended, null);
  run(a, b, LOSSY, () => b.engine.ended !== null && a.engine.ended !== null, 9);
  assert.equal(a.engine.ended, "closed");
  assert.equal(b.engine.ended, "peer_closed");
  assertBytesEqual(deliveredBytes(b), data);
  assert.equal(b.engine.nextWakeup(), null);
  assert.equal(b.engine.receive(lost[0]!, 100_000), "closed");
  assert.equal(b.engine.stats.drops.closed, 1);
});

Deno.test("UdpSessionEngine close gives up lingering after lingerMs and sends CLOSE", async () => {
  const { a, b } = await pair({ lingerMs: 2_000 });
  a.engine.write(new Uint8Array(5000), 0);
  a.engine.close(0);
  let now = 0;
  let closes: Uint8Array[] = [];
  while (a.engine.ended === null) {
    now = a.engine.nextWakeup()!;
    assert.ok(now <= 2_000);
    closes = a.engine.poll(now);
  }
  assert.equal(now, 2_000);
  assert.equal(a.engine.ended, "closed");
  assert.equal(closes.length, CLOSE_COPIES);
  // The peer never saw the data, but one CLOSE ends it; the other copies are dropped as closed.
  assert.deepEqual(closes.map((d) => b.engine.receive(d, 2_001)), ["accepted", "closed", "closed"]);
  assert.equal(b.engine.ended, "peer_closed");
  assert.deepEqual(b.engine.takeDelivered(), []);
});

Deno.test("UdpSessionEngine close again with a shorter linger sends CLOSE at once, never later", async () => {
  const { a } = await pair({ lingerMs: 2_000 });
  a.engine.write(new Uint8Array(5000), 0);
  a.engine.close(0);
  a.engine.poll(0);
  // A longer linger does not extend the first one; lingerMs 0 (a server out of grace) ends it now.
  a.engine.close(100, 60_000);
  assert.ok(a.engine.nextWakeup()! <= 2_000);
  a.engine.close(100, 0);
  assert.equal(a.engine.nextWakeup(), 100);
  assert.equal(a.engine.poll(100).length, CLOSE_COPIES);
  assert.equal(a.engine.ended, "closed");
});

Deno.test("UdpSessionEngine resends untilConfirmed before each poll's packets until the peer is heard", async () => {
  const keys = await establishedPair();
  const client = new UdpSessionEngine({ records: keys.client.records, untilConfirmed: keys.finish }, 0);
  const server = new UdpSessionEngine({ records: keys.server.records }, 0);
  // The first poll sends it even with nothing else to send.
  assert.equal(client.nextWakeup(), 0);
  assert.deepEqual(client.poll(0), [keys.finish]);
  assert.deepEqual(client.poll(1), []);
  // Right behind the first copy, the first record goes alone: the FINISH is most likely on its way.
  client.write(new Uint8Array([1]), 1);
  const first = client.poll(1);
  assert.equal(first.length, 1);
  assert.notEqual(first[0], keys.finish);
  // Both lost: the retransmission (200 ms later, the reliable layer's first timeout) takes a FINISH again.
  const again = client.poll(201);
  assert.equal(again.length, 2);
  assert.equal(again[0], keys.finish);
  assert.equal(server.receive(again[1]!, 202), "accepted");
  const [ack] = server.poll(202 + DEFAULT_ACK_DELAY_MS);
  assert.equal(client.receive(ack!, 210), "accepted");
  client.write(new Uint8Array([2]), 300);
  const after = client.poll(300);
  assert.equal(after.length, 1);
  assert.notEqual(after[0], keys.finish);
  assert.equal(client.stats.confirmationsSent, 2);
});

Deno.test("UdpSessionEngine resends untilConfirmed with a poll's packets once CONFIRMATION_GAP_MS passed", async () => {
  const keys = await establishedPair();
  const client = new UdpSessionEngine({ records: keys.client.records, untilConfirmed: keys.finish }, 0);
  assert.deepEqual(client.poll(0), [keys.finish]);
  client.write(new Uint8Array([1]), CONFIRMATION_GAP_MS - 1);
  assert.equal(client.poll(CONFIRMATION_GAP_MS - 1).length, 1);
  client.write(new Uint8Array([2]), CONFIRMATION_GAP_MS);
  const [finish, record, ...rest] = client.poll(CONFIRMATION_GAP_MS);
  assert.equal(finish, keys.finish);
  assert.ok(record !== undefined && rest.length === 0);
  assert.equal(client.stats.confirmationsSent, 2);
});

Deno.test("UdpSessionEngine never throws on random datagrams, nor on random authenticated payloads", () => {
  const client = new RecordProtection(SECRETS, "client");
  const server = new UdpSessionEngine({ records: new RecordProtection(SECRETS, "server") }, 0);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1300 }), fc.boolean(), (bytes, seal) => {
      const datagram = seal && bytes.length <= 1165 ? client.seal(bytes) : bytes;
      const verdict = server.receive(datagram, 1);
      assert.ok(typeof verdict === "string");
      server.poll(1);
      server.takeDelivered();
    }),
    { numRuns: 2000 },
  );
  assert.ok(server.stats.accepted > 0);
});

Deno.test("UdpSessionEngine refuses DATA unacknowledged while holding, and takes the retransmission after", async () => {
  const { a, b } = await pair();
  a.engine.write(new Uint8Array([1, 2, 3]), 0);
  const [first] = a.engine.poll(0);
  b.engine.holding = true;
  assert.equal(b.engine.receive(first!, 1), "accepted");
  assert.deepEqual(b.engine.takeDelivered(), []);
  assert.deepEqual(b.engine.poll(1), [], "a held packet is not acknowledged");
  assert.equal(b.engine.stats.held, 1);
  b.engine.holding = false;
  run(a, b, PERFECT, () => b.delivered.length === 1 && a.engine.room === 1024 * 1024, 1, 1);
  assert.deepEqual([...b.delivered[0]!], [1, 2, 3]);
  assert.equal(a.engine.stats.reliable.retransmitted, 1);
});

Deno.test("UdpSessionEngine sends untilConfirmed before its CLOSEs while the peer is unheard", async () => {
  // The client's FINISH is lost and it closes with nothing to write: without a FINISH ahead of them, the
  // server can open none of the CLOSEs and keeps the session half-open until its dead timeout.
  const keys = await establishedPair();
  const client = new UdpSessionEngine({ records: keys.client.records, untilConfirmed: keys.finish }, 0);
  assert.deepEqual(client.poll(0), [keys.finish]);
  client.close(1);
  const closing = client.poll(1);
  assert.equal(client.ended, "closed");
  assert.equal(closing.length, 1 + CLOSE_COPIES);
  assert.equal(closing[0], keys.finish);
  assert.equal(client.stats.confirmationsSent, 2);
  // Once the peer was heard, CLOSEs go alone.
  const again = await establishedPair();
  const heard = new UdpSessionEngine({ records: again.client.records, untilConfirmed: again.finish }, 0);
  const server = new UdpSessionEngine({ records: again.server.records }, 0);
  heard.write(new Uint8Array([1]), 0);
  const [, record] = heard.poll(0);
  assert.equal(server.receive(record!, 1), "accepted");
  const [ack] = server.poll(1 + DEFAULT_ACK_DELAY_MS);
  assert.equal(heard.receive(ack!, 2), "accepted");
  heard.close(2);
  const alone = heard.poll(2);
  assert.equal(alone.length, CLOSE_COPIES);
  assert.ok(alone.every((d) => d !== again.finish));
});

Deno.test("UdpSessionEngine destroys its record keys once the stream ends, however it ends", async () => {
  const { a, b } = await pair({ deadAfterMs: 1_000 });
  const keysOf = async () => await establishedPair();
  // Closed and peer_closed.
  const closed = await keysOf();
  const closer = new UdpSessionEngine({ records: closed.client.records }, 0);
  const peer = new UdpSessionEngine({ records: closed.server.records }, 0);
  closer.close(0);
  for (const d of closer.poll(0)) peer.receive(d, 1);
  assert.equal(closer.ended, "closed");
  assert.equal(peer.ended, "peer_closed");
  assert.throws(() => closed.client.records.seal(new Uint8Array(1)), /Record protection destroyed/);
  assert.throws(() => closed.server.records.seal(new Uint8Array(1)), /Record protection destroyed/);
  // Dead.
  a.engine.poll(1_000);
  assert.equal(a.engine.ended, "dead");
  assert.equal(b.engine.ended, null);
  // Failed: the peer sent a message over maxMessage.
  const failed = await keysOf();
  const small = new UdpSessionEngine({ records: failed.server.records, reliable: { maxMessage: 10 } }, 0);
  const big = new UdpSessionEngine({ records: failed.client.records }, 0);
  big.write(new Uint8Array(11), 0);
  for (const d of big.poll(0)) small.receive(d, 1);
  assert.equal(small.ended, "failed");
  assert.throws(() => failed.server.records.seal(new Uint8Array(1)), /Record protection destroyed/);
});

Deno.test("UdpSessionEngine keeps nothing per acknowledged message: a long session does not grow", async () => {
  // The reliable channel lists the ids of acknowledged messages until someone takes them; the engine has no
  // use for them, and left alone the list grows by one number per message for the whole session.
  const channels = new Set<ReliableChannel>();
  const poll = ReliableChannel.prototype.poll;
  ReliableChannel.prototype.poll = function (this: ReliableChannel, now: number) {
    channels.add(this);
    return poll.call(this, now);
  };
  try {
    const { a, b } = await pair();
    for (let i = 0; i < 500; i++) a.writes.push(new Uint8Array([i & 0xff]));
    run(a, b, PERFECT, () => b.delivered.length === 500 && a.engine.room === 1024 * 1024);
    assert.equal(channels.size, 2);
    for (const channel of channels) assert.ok(channel.takeAcknowledged().length < 64);
  } finally {
    ReliableChannel.prototype.poll = poll;
  }
});

Deno.test("UdpSessionEngine write counts each unacknowledged message's cost, not only its bytes", async () => {
  // A peer that never acknowledges, sending requests that each get a small answer, would otherwise have the
  // server queue a million one-byte messages (objects of hundreds of bytes each) under the 1 MiB cap.
  const { b } = await pair();
  let queued = 0;
  while (queued < 20_000 && b.engine.write(new Uint8Array([1]), 0) === 1) queued++;
  assert.ok(queued < 20_000, "the queue took 20 000 one-byte messages");
  assert.ok(queued >= 1000, `only ${queued} messages fit`);
  assert.equal(b.engine.room < b.engine.writeThreshold, true);
});

Deno.test("UdpSessionEngine ends as dead when its data sees no acknowledgement for deadAfterMs", async () => {
  // A client that keeps its session alive with a keepalive every 10 s but never acknowledges (or reads)
  // would otherwise have the server retransmit its whole window every 2 s for as long as it likes.
  const keys = await establishedPair();
  const server = new UdpSessionEngine({ records: keys.server.records, deadAfterMs: 60_000 }, 0);
  server.write(new Uint8Array(100_000), 0);
  let serverDatagrams = 0;
  let now = 0;
  for (let seq = 0; now <= 600_000 && server.ended === null; now += 100) {
    serverDatagrams += server.poll(now).length; // All lost on the way to the client.
    if (now % 10_000 === 0) {
      server.receive(keys.client.records.seal(encodeDataPacket(seq++, true, EMPTY)), now);
    }
  }
  assert.equal(server.ended, "dead");
  assert.ok(now <= 61_000, `the server gave up only at ${now} ms`);
  assert.ok(serverDatagrams < 3_000, `${serverDatagrams} datagrams sent`);
});

Deno.test("UdpSessionEngine sends an answer written within the ACK delay in the record of the ACK", () => {
  const clientRecords = new RecordProtection(SECRETS, "client");
  const server = new UdpSessionEngine({ records: new RecordProtection(SECRETS, "server") }, 0);
  const request = encodeDataPacket(0, true, new Uint8Array([7]));
  assert.equal(server.receive(clientRecords.seal(request), 1), "accepted");
  assert.deepEqual(server.takeDelivered(), [new Uint8Array([7])]);
  server.write(new Uint8Array([8, 9]), 2);
  const out = server.poll(2);
  assert.equal(out.length, 1, "one record for the ACK and the answer");
  const opened = clientRecords.open(out[0]!);
  assert.ok(opened.ok);
  // ACK cum 1 with no SACK bits, then DATA seq 0, last, [8, 9].
  assertBytesEqual(
    opened.payload,
    new Uint8Array([2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 8, 9]),
  );
  assert.equal(server.stats.datagramsSent, 1);
});

Deno.test("UdpSessionEngine takes an ACK with DATA behind it, both or neither", () => {
  const clientRecords = new RecordProtection(SECRETS, "client");
  const server = new UdpSessionEngine({ records: new RecordProtection(SECRETS, "server") }, 0);
  server.write(new Uint8Array([5]), 0);
  assert.equal(server.poll(0).length, 1);
  const ack = new Uint8Array([2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  // Behind the ACK, something that is not DATA: the whole record is ignored, the ACK too.
  for (const tail of [[3], [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], [1, 0, 0], [1, 0, 0, 0, 0, 4, 1]]) {
    assert.equal(server.receive(clientRecords.seal(concat(ack, new Uint8Array(tail))), 1), "accepted");
  }
  assert.equal(server.stats.drops.bad_packet, 4);
  assert.equal(server.room, 1024 * 1024 - 1 - 512, "the message is still unacknowledged");
  // ACK and DATA: the message is acknowledged and the DATA delivered.
  const data = encodeDataPacket(0, true, new Uint8Array([6]));
  assert.equal(server.receive(clientRecords.seal(concat(ack, data)), 2), "accepted");
  assert.equal(server.room, 1024 * 1024);
  assert.deepEqual(server.takeDelivered(), [new Uint8Array([6])]);
  // While holding, the ACK still counts and the DATA is refused unacknowledged.
  server.write(new Uint8Array([5]), 3);
  server.poll(3);
  server.holding = true;
  const ack2 = new Uint8Array([2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
  const data2 = encodeDataPacket(1, true, new Uint8Array([7]));
  assert.equal(server.receive(clientRecords.seal(concat(ack2, data2)), 4), "accepted");
  assert.equal(server.room, 1024 * 1024);
  assert.equal(server.stats.held, 1);
  assert.deepEqual(server.takeDelivered(), []);
});

Deno.test("UdpSessionEngine sends a full-size DATA packet apart from the ACK that would not fit beside it", () => {
  const clientRecords = new RecordProtection(SECRETS, "client");
  const server = new UdpSessionEngine({ records: new RecordProtection(SECRETS, "server") }, 0);
  assert.equal(
    server.receive(clientRecords.seal(encodeDataPacket(0, true, new Uint8Array([1]))), 1),
    "accepted",
  );
  server.write(new Uint8Array(1159), 1);
  const out = server.poll(1);
  assert.equal(out.length, 2);
  const payloads = out.map((d) => clientRecords.open(d)).map((o) => (assert.ok(o.ok), o.payload));
  assert.deepEqual(payloads.map((p) => [p[0], p.length]), [[2, 13], [1, 1165]]);
});

Deno.test("UdpSessionEngine: three requests and answers take 7 records in all, not 12", async () => {
  const { a, b } = await pair();
  let now = 0;
  let records = 0;
  const carry = (from: End, to: End) => {
    for (const d of from.engine.poll(now)) {
      records++;
      assert.equal(to.engine.receive(d, now), "accepted");
    }
  };
  for (let i = 0; i < 3; i++) {
    a.engine.write(new Uint8Array([i]), now);
    carry(a, b);
    now += 1;
    assert.deepEqual(b.engine.takeDelivered(), [new Uint8Array([i])]);
    b.engine.write(new Uint8Array([i, i]), now);
    carry(b, a);
    now += 1;
    assert.deepEqual(a.engine.takeDelivered(), [new Uint8Array([i, i])]);
  }
  // The last answer's ACK waits its delay, then goes alone.
  now += DEFAULT_ACK_DELAY_MS;
  carry(a, b);
  assert.equal(records, 7);
  assert.equal(a.engine.nextWakeup(), now - DEFAULT_ACK_DELAY_MS - 1 + 60_000);
});
