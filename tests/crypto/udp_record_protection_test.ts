import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeRecordHeader, MAX_RECORD_PAYLOAD } from "../../lib/codec/udp_session_datagram.ts";
import { sealAesGcm } from "../../lib/crypto/aes_gcm.ts";
import { nextTrafficSecret, trafficKeys } from "../../lib/crypto/udp_key_schedule.ts";
import {
  type OpenResult,
  RECORD_DROP_REASONS,
  type RecordDropReason,
  RecordProtection,
  type RecordSecrets,
  REKEY_INTERVAL,
} from "../../lib/crypto/udp_record_protection.ts";
import { assertBytesEqual } from "../_bytes.ts";

const SECRETS: RecordSecrets = {
  connectionId: new Uint8Array(8).fill(7),
  clientTraffic: new Uint8Array(32).fill(1),
  serverTraffic: new Uint8Array(32).fill(2),
};
const utf8 = new TextEncoder();

function pair(options = {}): { client: RecordProtection; server: RecordProtection } {
  return {
    client: new RecordProtection(SECRETS, "client", options),
    server: new RecordProtection(SECRETS, "server", options),
  };
}

function payloadOf(r: OpenResult): string {
  assert.ok(r.ok, r.ok ? "" : r.reason);
  return new TextDecoder().decode(r.payload);
}

function assertDropped(r: OpenResult, reason: RecordDropReason): void {
  assert.equal(r.ok ? "accepted" : r.reason, reason);
}

/** Decrypt a record with WebCrypto, nonce = IV XOR counter computed with BigInt. */
async function webOpen(
  secret: Uint8Array,
  record: Uint8Array<ArrayBuffer>,
  counter: bigint,
): Promise<Uint8Array> {
  const { key, iv } = trafficKeys(secret);
  const nonce = iv.slice();
  for (let i = 0; i < 8; i++) nonce[11 - i]! ^= Number((counter >> BigInt(8 * i)) & 0xffn);
  const aes = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
  return new Uint8Array(
    await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: nonce, additionalData: record.subarray(0, 19) },
      aes,
      record.subarray(19),
    ),
  );
}

Deno.test("RecordProtection carries payloads both ways, each direction under its own key", () => {
  const { client, server } = pair();
  assert.equal(payloadOf(server.open(client.seal(utf8.encode("to server")))), "to server");
  assert.equal(payloadOf(client.open(server.seal(utf8.encode("to client")))), "to client");
  // A record reflected back to its sender does not open: the directions' keys differ.
  assertDropped(client.open(client.seal(utf8.encode("echo"))), "forged");
  const max = new Uint8Array(MAX_RECORD_PAYLOAD).fill(3);
  const big = client.seal(max);
  assert.equal(big.length, 1200);
  const opened = server.open(big);
  assert.ok(opened.ok);
  assertBytesEqual(opened.payload, max);
  assert.throws(() => client.seal(new Uint8Array(MAX_RECORD_PAYLOAD + 1)), RangeError);
});

Deno.test("RecordProtection nonces are the IV XOR the counter, as an independent AES-GCM checks", async () => {
  const { client } = pair();
  for (let i = 0; i < 3; i++) client.seal(utf8.encode("x"));
  const record = client.seal(utf8.encode("fourth"));
  assert.equal(new TextDecoder().decode(await webOpen(SECRETS.clientTraffic, record, 3n)), "fourth");
  await assert.rejects(webOpen(SECRETS.clientTraffic, record, 2n));
});

Deno.test("RecordProtection drops a replayed record before decrypting, and counts it", () => {
  const { client, server } = pair();
  const record = client.seal(utf8.encode("once"));
  assert.ok(server.open(record).ok);
  assertDropped(server.open(record), "replayed");
  assertDropped(server.open(record.slice()), "replayed");
  assert.equal(server.drops.replayed, 2);
});

Deno.test("RecordProtection accepts reordering inside the 64-record window and drops what is older", () => {
  const { client, server } = pair();
  const records = Array.from({ length: 100 }, (_, i) => client.seal(utf8.encode(`m${i}`)));
  assert.equal(payloadOf(server.open(records[99]!)), "m99");
  assert.equal(payloadOf(server.open(records[36]!)), "m36");
  assertDropped(server.open(records[35]!), "out-of-window");
  assertDropped(server.open(records[0]!), "out-of-window");
  assertDropped(server.open(records[36]!), "replayed");
  assert.equal(payloadOf(server.open(records[50]!)), "m50");
});

Deno.test("RecordProtection drops every single-bit change of a record, and a forgery moves no window", () => {
  const { client, server } = pair();
  const record = client.seal(utf8.encode("tamper with me"));
  const reasons = new Set<string>();
  for (let i = 0; i < record.length; i++) {
    for (let bit = 0; bit < 8; bit++) {
      const bad = record.slice();
      bad[i]! ^= 1 << bit;
      const r = server.open(bad);
      assert.ok(!r.ok, `byte ${i} bit ${bit} accepted`);
      reasons.add(r.reason);
    }
  }
  // Prefix bits give malformed, connection id bits wrong-connection, counter and body bits forged.
  assert.deepEqual([...reasons].sort(), ["forged", "malformed", "out-of-window", "wrong-connection"].sort());
  assert.equal(payloadOf(server.open(record)), "tamper with me");
});

Deno.test("RecordProtection drops truncated, malformed and other connections' records", () => {
  const { client, server } = pair();
  const record = client.seal(utf8.encode("hello"));
  for (let n = 3; n < 35; n++) assertDropped(server.open(record.subarray(0, n)), "truncated");
  for (let n = 35; n < record.length; n++) assertDropped(server.open(record.subarray(0, n)), "forged");
  assertDropped(server.open(new Uint8Array(0)), "malformed");
  assertDropped(server.open(new Uint8Array([0xac, 1, 0x20, ...record.subarray(3)])), "malformed");
  assertDropped(server.open(new Uint8Array(1300)), "malformed");
  const other = new RecordProtection({ ...SECRETS, connectionId: new Uint8Array(8).fill(8) }, "client");
  assertDropped(server.open(other.seal(utf8.encode("hello"))), "wrong-connection");
  assert.equal(payloadOf(server.open(record)), "hello");
  const drops = server.drops;
  assert.equal(drops.truncated, 32);
  assert.equal(drops["wrong-connection"], 1);
  assert.deepEqual(Object.keys(drops).sort(), [...RECORD_DROP_REASONS].sort());
});

Deno.test("RecordProtection never throws on arbitrary bytes (property)", () => {
  const { server } = pair();
  const header = encodeRecordHeader(SECRETS.connectionId, 5);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1300 }), fc.boolean(), (tail, withHeader) => {
    const bytes = withHeader ? new Uint8Array([...header, ...tail]) : tail;
    const r = server.open(bytes);
    assert.ok(!r.ok && RECORD_DROP_REASONS.includes(r.reason));
  }));
});

Deno.test("RecordProtection steps to a new key every rekeyInterval records, on both sides", async () => {
  const interval = 128;
  const { client, server } = pair({ rekeyInterval: interval });
  const records = Array.from({ length: 3 * interval + 5 }, (_, i) => client.seal(utf8.encode(`m${i}`)));
  assert.equal(client.sendGeneration, 3);
  // Generation 1 is sealed under the next traffic secret, not the first one.
  const gen1 = nextTrafficSecret(SECRETS.clientTraffic);
  assert.equal(
    new TextDecoder().decode(await webOpen(gen1, records[interval]!, BigInt(interval))),
    `m${interval}`,
  );
  await assert.rejects(webOpen(SECRETS.clientTraffic, records[interval]!, BigInt(interval)));
  // Delivered with reordering across the boundaries.
  for (let g = 0; g < 3; g++) {
    const base = g * interval;
    assert.equal(payloadOf(server.open(records[base + interval]!)), `m${base + interval}`);
    for (let i = base; i < base + interval; i++) {
      const r = server.open(records[i]!);
      if (base + interval - i < 64) assert.equal(payloadOf(r), `m${i}`);
      else assertDropped(r, "out-of-window");
    }
  }
  assert.equal(server.receiveGeneration, 3);
});

Deno.test("RecordProtection refuses a counter more than one generation ahead without deriving keys", () => {
  const interval = 128;
  const { client, server } = pair({ rekeyInterval: interval });
  const far = new RecordProtection(SECRETS, "client", { rekeyInterval: interval });
  for (let i = 0; i < 2 * interval; i++) far.seal(new Uint8Array(0));
  assertDropped(server.open(far.seal(utf8.encode("far"))), "out-of-window");
  assert.ok(server.open(client.seal(utf8.encode("near"))).ok);
  assert.equal(server.receiveGeneration, 0);
});

Deno.test("RecordProtection refuses bad construction parameters", () => {
  assert.throws(() => new RecordProtection(SECRETS, "client", { rekeyInterval: 127 }), RangeError);
  assert.throws(
    () => new RecordProtection(SECRETS, "client", { rekeyInterval: REKEY_INTERVAL + 1 }),
    RangeError,
  );
  assert.throws(
    () => new RecordProtection({ ...SECRETS, connectionId: new Uint8Array(7) }, "client"),
    RangeError,
  );
  assert.throws(
    () => new RecordProtection({ ...SECRETS, serverTraffic: new Uint8Array(16) }, "server"),
    RangeError,
  );
});

Deno.test("RecordProtection.destroy forgets the keys: nothing seals or opens afterwards", () => {
  const { client, server } = pair();
  const before = client.seal(utf8.encode("before"));
  const later = client.seal(utf8.encode("later"));
  assert.equal(payloadOf(server.open(before)), "before");
  server.destroy();
  client.destroy();
  client.destroy(); // Twice is harmless.
  assert.throws(() => server.seal(utf8.encode("x")), /Record protection destroyed/);
  assertDropped(server.open(later), "wrong-connection");
  // Zeroed keys must not become keys anyone can use: a record sealed under an all-zero key and IV is
  // refused as well.
  const header = encodeRecordHeader(SECRETS.connectionId, 5);
  const nonce = new Uint8Array(12);
  nonce[11] = 5;
  assertDropped(
    server.open(sealAesGcm(new Uint8Array(32), nonce, header, utf8.encode("z"))),
    "wrong-connection",
  );
  assert.equal(server.drops["wrong-connection"], 2);
});
