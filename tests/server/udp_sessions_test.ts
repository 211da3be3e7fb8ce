import assert from "node:assert/strict";
import { decodeRetry, encodeInit, INIT_BYTES, RETRY_TYPE } from "../../lib/codec/udp_init.ts";
import { ACCEPT_TYPE, encodeFinish } from "../../lib/codec/udp_session_datagram.ts";
import { mintServerCertificate } from "../../lib/crypto/certificate.ts";
import { ClientHandshake } from "../../lib/crypto/udp_client_handshake.ts";
import { type SourceAddress, UdpCookies } from "../../lib/crypto/udp_cookie.ts";
import { solvePuzzle } from "../../lib/crypto/udp_puzzle.ts";
import type { RecordProtection } from "../../lib/crypto/udp_record_protection.ts";
import { importUdpSigningKey, type UdpSigningKey } from "../../lib/crypto/udp_server_signature.ts";
import type { EstablishedSession } from "../../lib/crypto/udp_session_keys.ts";
import type { Outgoing } from "../../lib/server/udp_rendezvous.ts";
import type { SessionEnd } from "../../lib/server/udp_session_stats.ts";
import {
  isSessionDatagram,
  type UdpEstablished,
  UdpSessions,
  type UdpSessionStreamLike,
} from "../../lib/server/udp_sessions.ts";

const MASTER = new Uint8Array(32).fill(0x3c);
const T0 = 1_800_000_000_000;

let signingKey: Promise<UdpSigningKey> | undefined;
function key(): Promise<UdpSigningKey> {
  signingKey ??= mintServerCertificate({ days: 1 }).then((c) => importUdpSigningKey(c.certPem, c.keyPem));
  return signingKey;
}

/** A stream that opens records with the session's keys and ends when the test says. */
class FakeStream implements UdpSessionStreamLike {
  readonly ended: Promise<SessionEnd>;
  readonly records: RecordProtection;
  readonly send: (d: Uint8Array<ArrayBuffer>) => void;
  payloads: Uint8Array[] = [];
  #end: (reason: SessionEnd) => void;

  constructor(records: RecordProtection, send: (d: Uint8Array<ArrayBuffer>) => void) {
    this.records = records;
    this.send = send;
    const { promise, resolve } = Promise.withResolvers<SessionEnd>();
    this.ended = promise;
    this.#end = resolve;
  }
  receive(datagram: Uint8Array): string {
    const opened = this.records.open(datagram);
    if (!opened.ok) return opened.reason;
    this.payloads.push(opened.payload);
    return "accepted";
  }
  end(reason: SessionEnd): void {
    this.#end(reason);
  }
  read(): Promise<number | null> {
    return Promise.resolve(null);
  }
  write(data: Uint8Array): Promise<number> {
    return Promise.resolve(data.length);
  }
  close(): void {}
}

interface KitOptions {
  handshakesPerSecond?: number;
  halfOpen?: number;
  maxHalfOpen?: number;
  halfOpenMs?: number;
}

async function kit(options: KitOptions = {}) {
  const time = { now: T0 };
  const cookies = new UdpCookies(MASTER, { now: () => time.now });
  const established: UdpEstablished[] = [];
  const streams: FakeStream[] = [];
  const transmitted: Outgoing[] = [];
  const sessions = new UdpSessions({
    cookies,
    signingKey: await key(),
    difficulty: {
      handshakesPerSecond: options.handshakesPerSecond ?? 200,
      halfOpen: options.halfOpen ?? 1000,
    },
    ...(options.maxHalfOpen ? { maxHalfOpen: options.maxHalfOpen } : {}),
    ...(options.halfOpenMs ? { halfOpenMs: options.halfOpenMs } : {}),
    openStream: ({ records, send }) => {
      const stream = new FakeStream(records, send);
      streams.push(stream);
      return stream;
    },
    transmit: (out) => void transmitted.push(out),
    onEstablished: (session) => void established.push(session),
  });
  /** Bytes in and out per source key, as a network tap would count them. */
  const tap = new Map<string, { in: number; out: number }>();
  const count = (source: SourceAddress) => {
    const k = `${source.hostname}:${source.port}`;
    let entry = tap.get(k);
    if (!entry) tap.set(k, entry = { in: 0, out: 0 });
    return entry;
  };
  const send = async (datagram: Uint8Array, source: SourceAddress): Promise<Outgoing[]> => {
    count(source).in += datagram.length;
    const out = await sessions.receive(datagram, source, time.now);
    for (const o of out) {
      assert.equal(
        `${o.hostname}:${o.port}`,
        `${source.hostname}:${source.port}`,
        "answers go to the source",
      );
      count(source).out += o.bytes.length;
    }
    return out;
  };
  return { time, sessions, established, streams, transmitted, tap, send };
}

type Kit = Awaited<ReturnType<typeof kit>>;

/** A client through RETRY (and proof of work if asked) to the ACCEPT: returns what it needs to finish. */
async function handshake(k: Kit, source: SourceAddress) {
  const client = await ClientHandshake.start();
  const fields = { clientRandom: client.init.clientRandom, clientShare: client.init.clientShare };
  const first = await k.send(encodeInit(fields), source);
  assert.equal(first.length, 1);
  assert.equal(first[0]!.bytes[2], RETRY_TYPE);
  const retry = decodeRetry(first[0]!.bytes);
  const powNonce = await solvePuzzle(retry.cookie, retry.difficulty);
  const init = encodeInit({ ...fields, cookie: retry.cookie, powNonce });
  const accepts = await k.send(init, source);
  assert.ok(accepts.length >= 1, "an ACCEPT answers the admitted INIT");
  let accepted;
  for (const d of accepts) {
    assert.equal(d.bytes[2], ACCEPT_TYPE);
    accepted = await client.receiveAccept(d.bytes);
  }
  assert.ok(accepted?.kind === "accepted", `accepted: ${JSON.stringify(accepted)}`);
  return { client, init, accepts, retry, accepted };
}

async function connect(k: Kit, source: SourceAddress) {
  const h = await handshake(k, source);
  assert.deepEqual(await k.send(h.accepted.finish, source), []);
  const session = k.established.at(-1)!;
  return { ...h, session, stream: k.streams.at(-1)!, client: h.accepted.session as EstablishedSession };
}

/** A cookie of the current slot whose tags are not ours. */
function forgedCookie(now: number): Uint8Array {
  const cookie = new Uint8Array(29).fill(7);
  new DataView(cookie.buffer).setUint32(0, Math.floor(now / 10_000));
  cookie[4] = 0;
  return cookie;
}

const A: SourceAddress = { hostname: "127.0.0.2", port: 40_000 };
const B: SourceAddress = { hostname: "127.0.0.3", port: 40_001 };

Deno.test("isSessionDatagram picks INIT, FINISH and RECORD, not RETRY, ACCEPT or rendezvous types", () => {
  for (const type of [0x30, 0x33, 0x34]) assert.ok(isSessionDatagram(new Uint8Array([0xac, 1, type, 0])));
  for (const type of [0x31, 0x32, 0x01, 0x10]) assert.ok(!isSessionDatagram(new Uint8Array([0xac, 1, type])));
  assert.ok(!isSessionDatagram(new Uint8Array([0xac, 1])));
  assert.ok(!isSessionDatagram(new Uint8Array([0xad, 1, 0x30])));
});

Deno.test("UdpSessions: RETRY, admission, ACCEPT, FINISH, then RECORDs reach the session's stream", async () => {
  const k = await kit();
  const c = await connect(k, A);
  assert.equal(k.sessions.stats.opened, 1);
  assert.equal(k.sessions.stats.retries.no_cookie, 1);
  assert.equal(k.sessions.stats.halfOpen, 0, "established sessions are no longer half-open");
  assert.equal(c.session.peerAddress, A.hostname);
  assert.equal(c.session.channelBindingType, "authchat-udp-exporter");
  assert.equal(c.session.channelBinding.toHex(), c.client.channelBinding.toHex());
  const record = c.client.records.seal(new TextEncoder().encode("hello"));
  assert.deepEqual(await k.send(record, A), []);
  assert.equal(new TextDecoder().decode(c.stream.payloads[0]), "hello");
  // The stream's sends go to where the session's peer is.
  c.stream.send(new Uint8Array([1]));
  assert.deepEqual(k.transmitted.map((o) => o.hostname), [A.hostname]);
});

Deno.test("UdpSessions sends the same ACCEPT for a repeated INIT and opens one session", async () => {
  const k = await kit();
  const h = await handshake(k, A);
  const again = await k.send(h.init, A);
  assert.deepEqual(again.map((o) => o.bytes.toHex()), h.accepts.map((o) => o.bytes.toHex()));
  assert.equal(k.sessions.stats.admitted, 1);
  assert.equal(k.sessions.stats.halfOpen, 1);
  await k.send(h.accepted.finish, A);
  assert.equal(k.sessions.stats.opened, 1);
  // A FINISH retransmitted after the session is open is a harmless duplicate.
  await k.send(h.accepted.finish, A);
  assert.equal(k.sessions.stats.finish.duplicate, 1);
  assert.equal(k.established.length, 1);
});

Deno.test("UdpSessions never sends a source more than it may: 1x unvalidated, 3x half-open", async () => {
  const k = await kit();
  // Unvalidated: every INIT without a cookie gets a RETRY no larger than it.
  for (let i = 0; i < 20; i++) {
    await k.send(
      encodeInit({ clientRandom: new Uint8Array(32).fill(i), clientShare: new Uint8Array(32) }),
      B,
    );
  }
  const b = k.tap.get(`${B.hostname}:${B.port}`)!;
  assert.ok(b.out <= b.in, `unvalidated: ${b.out} out for ${b.in} in`);
  assert.equal(k.sessions.stats.halfOpen, 0, "nothing kept for unvalidated sources");
  // Half-open: repeat the admitted INIT many times; out stays within 3x in (RETRY included).
  const h = await handshake(k, A);
  for (let i = 0; i < 10; i++) await k.send(h.init, A);
  const a = k.tap.get(`${A.hostname}:${A.port}`)!;
  assert.ok(a.out <= 3 * a.in, `half-open: ${a.out} out for ${a.in} in`);
  assert.ok(k.sessions.stats.acceptsSent >= 11);
});

Deno.test("UdpSessions keeps a two-datagram ACCEPT and its repeats within 3x the bytes received", async () => {
  // An RSA-3072 certificate makes a two-datagram ACCEPT: the largest this server sends, still within the
  // 3600 bytes one INIT allows, first and with every repeat.
  const rsa = await mintServerCertificate({ days: 1, rsa: true });
  const time = { now: T0 };
  const out: Outgoing[][] = [];
  const sessions = new UdpSessions({
    cookies: new UdpCookies(MASTER, { now: () => time.now }),
    signingKey: await importUdpSigningKey(rsa.certPem, rsa.keyPem),
    openStream: () => assert.fail("not established"),
    transmit: () => assert.fail("nothing to transmit"),
    onEstablished: () => assert.fail("not established"),
  });
  const client = await ClientHandshake.start();
  const fields = { clientRandom: client.init.clientRandom, clientShare: client.init.clientShare };
  const retry = decodeRetry((await sessions.receive(encodeInit(fields), A, time.now))[0]!.bytes);
  const init = encodeInit({ ...fields, cookie: retry.cookie });
  let sent = 0;
  let received = 0;
  for (let i = 0; i < 4; i++) {
    received += INIT_BYTES;
    const batch = await sessions.receive(init, A, time.now);
    out.push(batch);
    sent += batch.reduce((n, o) => n + o.bytes.length, 0);
    assert.ok(sent <= 3 * received, `${sent} sent for ${received} received`);
  }
  assert.deepEqual(out.map((batch) => batch.length), [2, 2, 2, 2], "every repeat gets the whole ACCEPT");
  assert.equal(sessions.stats.acceptsDeferred, 0);
  assert.equal(sessions.stats.halfOpen, 1);
});

Deno.test("UdpSessions asks proof of work above the handshake threshold and stops below it", async () => {
  const k = await kit({ handshakesPerSecond: 10 });
  const init = (i: number) =>
    encodeInit({ clientRandom: new Uint8Array(32).fill(i), clientShare: new Uint8Array(32).fill(1) });
  const difficulties: number[] = [];
  for (let i = 0; i < 30; i++) {
    const [retry] = await k.send(init(i), B);
    difficulties.push(decodeRetry(retry!.bytes).difficulty);
  }
  assert.equal(difficulties[0], 0, "no work at first");
  assert.ok(difficulties.at(-1)! >= 12, `work under load: ${difficulties}`);
  // A real client pays it and gets in.
  const c = await connect(k, A);
  assert.ok(c.retry.difficulty >= 12);
  assert.equal(k.sessions.stats.opened, 1);
  // The load is gone a few seconds later: no work any more.
  k.time.now += 5_000;
  const [calm] = await k.send(init(99), B);
  assert.equal(decodeRetry(calm!.bytes).difficulty, 0);
  assert.equal(k.sessions.stats.difficulty, 0);
});

Deno.test("UdpSessions asks proof of work above the half-open threshold", async () => {
  const k = await kit({ halfOpen: 2, handshakesPerSecond: 1_000_000 });
  await handshake(k, { hostname: "127.0.0.4", port: 1 });
  await handshake(k, { hostname: "127.0.0.4", port: 2 });
  assert.equal(k.sessions.stats.halfOpen, 2);
  const h = await handshake(k, { hostname: "127.0.0.4", port: 3 });
  assert.ok(h.retry.difficulty >= 12, `difficulty ${h.retry.difficulty} with 2 half-open`);
});

Deno.test("UdpSessions forgets half-open sessions after their time and bounds their number", async () => {
  const k = await kit({ maxHalfOpen: 3, halfOpenMs: 20_000, halfOpen: 1000 });
  const pending = [];
  for (let port = 1; port <= 3; port++) pending.push(await handshake(k, { hostname: "127.0.0.5", port }));
  assert.equal(k.sessions.stats.halfOpen, 3);
  // Full: a fourth admission is dropped, nothing allocated.
  const client = await ClientHandshake.start();
  const fields = { clientRandom: client.init.clientRandom, clientShare: client.init.clientShare };
  const source = { hostname: "127.0.0.5", port: 4 };
  const retry = decodeRetry((await k.send(encodeInit(fields), source))[0]!.bytes);
  assert.deepEqual(await k.send(encodeInit({ ...fields, cookie: retry.cookie }), source), []);
  assert.equal(k.sessions.stats.init.half_open_full, 1);
  assert.equal(k.sessions.stats.halfOpen, 3);
  // Their time passes: forgotten, and a late FINISH finds nothing.
  k.time.now += 20_001;
  k.sessions.expire(k.time.now);
  assert.equal(k.sessions.stats.halfOpen, 0);
  assert.equal(k.sessions.stats.halfOpenExpired, 3);
  await k.send(pending[0]!.accepted.finish, { hostname: "127.0.0.5", port: 1 });
  assert.equal(k.sessions.stats.finish.unknown_connection, 1);
  assert.equal(k.sessions.stats.opened, 0);
});

Deno.test("UdpSessions bounds the half-open sessions of one address, so one source cannot fill the table", async () => {
  for (const attacker of ["127.0.0.66", "2001:db8:1:2::"]) {
    await oneAddressFills(attacker);
  }
});

async function oneAddressFills(attacker: string): Promise<void> {
  const k = await kit({ maxHalfOpen: 40 });
  // One address that receives (it passes the cookie) opens half-open sessions from port after port, never
  // sending a FINISH: each costs the server a key exchange and a signature, and a place in the table. An
  // IPv6 client has a /64 of them: its addresses count as one, as for the registry's caps.
  let admitted = 0;
  for (let port = 1; port <= 40; port++) {
    const client = await ClientHandshake.start();
    const fields = { clientRandom: client.init.clientRandom, clientShare: client.init.clientShare };
    const source = { hostname: attacker.includes(":") ? `${attacker}${port.toString(16)}` : attacker, port };
    const retry = decodeRetry((await k.send(encodeInit(fields), source))[0]!.bytes);
    const out = await k.send(encodeInit({ ...fields, cookie: retry.cookie }), source);
    if (out.length > 0) admitted++;
  }
  assert.ok(admitted <= 32, `one address holds ${admitted} of the 40 half-open places`);
  assert.equal(k.sessions.stats.init.half_open_per_address, 40 - admitted);
  // Another client still gets in.
  const h = await handshake(k, B);
  assert.deepEqual(await k.send(h.accepted.finish, B), []);
  assert.equal(k.sessions.stats.opened, 1);
}

Deno.test("UdpSessions drops FINISHes that are malformed, forged or for no connection, and counts them", async () => {
  const k = await kit();
  const h = await handshake(k, A);
  const cid = h.accepted.finish.subarray(3, 11);
  await k.send(h.accepted.finish.subarray(0, 8), A);
  await k.send(encodeFinish(cid, new Uint8Array(32)), A);
  await k.send(encodeFinish(new Uint8Array(8).fill(9), new Uint8Array(32)), A);
  await k.send(h.accepted.finish.subarray(0, 30), A);
  const { finish } = k.sessions.stats;
  assert.equal(finish.malformed, 2);
  assert.equal(finish.bad_finish, 1);
  assert.equal(finish.unknown_connection, 1);
  assert.equal(k.sessions.stats.opened, 0);
  // The genuine FINISH from another address than the validated one is refused (it would open the
  // session there), and still works from the INIT's.
  await k.send(h.accepted.finish, B);
  assert.equal(k.sessions.stats.finish.moved, 1);
  assert.equal(k.sessions.stats.opened, 0);
  await k.send(h.accepted.finish, A);
  assert.equal(k.sessions.stats.opened, 1);
  assert.equal(k.established[0]!.peerAddress, A.hostname);
});

Deno.test("UdpSessions drops RECORDs for unknown or unfinished connections, replays and forgeries", async () => {
  const k = await kit();
  const h = await handshake(k, A);
  // Before FINISH: the client's first records are not opened.
  const early = h.accepted.session.records.seal(new Uint8Array([1]));
  await k.send(early, A);
  assert.equal(k.sessions.stats.record.not_established, 1);
  await k.send(h.accepted.finish, A);
  const stream = k.streams[0]!;
  const record = h.accepted.session.records.seal(new Uint8Array([2]));
  await k.send(record, A);
  await k.send(record, A);
  const forged = h.accepted.session.records.seal(new Uint8Array([3]));
  forged[forged.length - 1]! ^= 1;
  await k.send(forged, A);
  const unknown = record.slice();
  unknown[3]! ^= 0xff;
  await k.send(unknown, A);
  await k.send(record.subarray(0, 9), A);
  const { record: drops } = k.sessions.stats;
  assert.equal(drops.replayed, 1);
  assert.equal(drops.unknown_connection, 1);
  assert.equal(drops.truncated, 1);
  assert.equal(drops.forged, 1);
  assert.equal(stream.payloads.length, 1, "only the genuine record got through");
});

Deno.test("UdpSessions keeps a session at its validated address: a genuine record from elsewhere is not opened", async () => {
  const k = await kit();
  const c = await connect(k, A);
  // The client holds the keys: it could seal a record and send it from a victim's address (or someone on
  // the path could race a copy of its record from a forged source) to aim the server's output there.
  const genuine = c.client.records.seal(new Uint8Array([2]));
  await k.send(genuine, B);
  assert.equal(k.sessions.stats.record.moved, 1);
  assert.equal(c.stream.payloads.length, 0, "not opened: its counter is still free");
  c.stream.send(new Uint8Array([0]));
  assert.equal(k.transmitted.at(-1)!.hostname, A.hostname, "the server still answers the validated address");
  // The same record from the validated address opens: the copy from elsewhere moved nothing.
  await k.send(genuine, A);
  assert.equal(c.stream.payloads.length, 1);
});

Deno.test("UdpSessions forgets a session when its stream ends, and counts why", async () => {
  const k = await kit();
  const c = await connect(k, A);
  assert.equal(k.sessions.stats.established, 1);
  c.stream.end("peer_closed");
  await c.stream.ended;
  await Promise.resolve();
  assert.equal(k.sessions.stats.established, 0);
  assert.equal(k.sessions.stats.ended.peer_closed, 1);
  await k.send(c.client.records.seal(new Uint8Array([1])), A);
  assert.equal(k.sessions.stats.record.unknown_connection, 1);
});

Deno.test("UdpSessions drops bad INITs by reason and answers none of them", async () => {
  const k = await kit();
  const good = encodeInit({
    clientRandom: new Uint8Array(32).fill(1),
    clientShare: new Uint8Array(32).fill(2),
  });
  const badVersion = good.slice();
  badVersion[3] = 2;
  const forged = encodeInit({
    clientRandom: new Uint8Array(32).fill(1),
    clientShare: new Uint8Array(32).fill(2),
    cookie: forgedCookie(T0),
  });
  for (const d of [good.subarray(0, 100), badVersion, forged, crypto.getRandomValues(new Uint8Array(1200))]) {
    d.set([0xac, 1, 0x30]);
    if (d !== badVersion) d[3] = 1;
    assert.deepEqual(await k.send(d, A), []);
  }
  const { init } = k.sessions.stats;
  assert.equal(init.malformed, 2);
  assert.equal(init.bad_version, 1);
  assert.equal(init.bad_cookie, 1);
});

Deno.test("UdpSessions refuses new sessions once stopped", async () => {
  const k = await kit();
  const h = await handshake(k, A);
  k.sessions.stop();
  assert.equal(k.sessions.stats.halfOpen, 0);
  await k.send(h.init, A);
  await k.send(h.accepted.finish, A);
  assert.equal(k.sessions.stats.init.stopping, 1);
  assert.equal(k.sessions.stats.finish.unknown_connection, 1);
  assert.equal(k.sessions.stats.opened, 0);
});
