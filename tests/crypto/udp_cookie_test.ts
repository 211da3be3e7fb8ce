import assert from "node:assert/strict";
import { blake3, createBLAKE3 } from "hash-wasm";
import { COOKIE_BYTES, type SourceAddress, UdpCookies } from "../../lib/crypto/udp_cookie.ts";
import { assertBytesEqual } from "../_bytes.ts";

const MASTER = new Uint8Array(32).map((_, i) => 0x30 + i);
const SOURCE: SourceAddress = { hostname: "127.0.0.7", port: 40_000 };
const BOUND = new Uint8Array(68).map((_, i) => i * 3);
const SLOT_MS = 10_000;

/** A clock the test moves. */
function clock(start = 1_700_000_000_000) {
  const time = { now: start };
  return { time, now: () => time.now };
}

/**
 * Keyed BLAKE3 outputs from the BLAKE3 team's test vectors (BLAKE3-team/BLAKE3, test_vectors/test_vectors.json,
 * version 1.8.6): the input is `i % 251` for each byte `i`, the key the 32 ASCII bytes below; the first 32
 * bytes of each `keyed_hash`.
 */
const BLAKE3_KEY = new TextEncoder().encode("whats the Elvish word for friend");
const BLAKE3_KEYED: [number, string][] = [
  [0, "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"],
  [1, "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b"],
  [63, "bb1eb5d4afa793c1ebdd9fb08def6c36d10096986ae0cfe148cd101170ce37ae"],
  [64, "ba8ced36f327700d213f120b1a207a3b8c04330528586f414d09f2f7d9ccb7e6"],
  [65, "c0a4edefa2d2accb9277c371ac12fcdbb52988a86edc54f0716e1591b4326e72"],
  [127, "c64200ae7dfaf35577ac5a9521c47863fb71514a3bcad18819218b818de85818"],
  [128, "b04fe15577457267ff3b6f3c947d93be581e7e3a4b018679125eaf86f6a628ec"],
  [129, "d4a64dae6cdccbac1e5287f54f17c5f985105457c1a2ec1878ebd4b57e20d38f"],
];

Deno.test("the cookie's MAC is BLAKE3's keyed_hash: the BLAKE3 test vectors, one keyed hasher used again and again", async () => {
  // As UdpCookies uses it: one hasher per key, init → update → digest for every MAC.
  const keyed = await createBLAKE3(256, BLAKE3_KEY);
  for (const round of [1, 2]) {
    for (const [length, expected] of BLAKE3_KEYED) {
      const input = new Uint8Array(length).map((_, i) => i % 251);
      keyed.init();
      keyed.update(input);
      assert.equal(keyed.digest("hex"), expected, `length ${length}, round ${round}`);
      assert.equal(await blake3(input, 256, BLAKE3_KEY), expected, `one-shot, length ${length}`);
    }
  }
});

/** The cookie as docs/PROTOCOL.md §20.2 defines it: WebCrypto's HKDF, and BLAKE3's one-shot function. */
async function referenceCookie(
  master: Uint8Array<ArrayBuffer>,
  nowMs: number,
  source: SourceAddress,
  bound: Uint8Array,
  difficulty: number,
): Promise<Uint8Array<ArrayBuffer>> {
  const slot = Math.floor(nowMs / SLOT_MS);
  const slotBytes = [(slot >>> 24) & 0xff, (slot >>> 16) & 0xff, (slot >>> 8) & 0xff, slot & 0xff];
  const hkdf = await crypto.subtle.importKey("raw", master, "HKDF", false, ["deriveBits"]);
  const info = Uint8Array.from([...new TextEncoder().encode("authchat-udp-cookie/2"), ...slotBytes]);
  const raw = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(), info },
    hkdf,
    256,
  );
  const mac = async (data: Uint8Array) => await blake3(data, 256, new Uint8Array(raw));
  const address = new TextEncoder().encode(source.hostname);
  const head = [...slotBytes, difficulty];
  const initInput = Uint8Array.from([0x02, ...head, ...bound]);
  const initTag = Uint8Array.fromHex(await mac(initInput)).subarray(0, 8);
  const tagInput = Uint8Array.from([
    0x01,
    ...head,
    source.port >> 8,
    source.port & 0xff,
    address.length,
    ...address,
    ...bound,
    ...initTag,
  ]);
  const tag = Uint8Array.fromHex(await mac(tagInput)).subarray(0, 16);
  return Uint8Array.from([...head, ...tag, ...initTag]);
}

Deno.test("UdpCookies mints exactly the cookie docs/PROTOCOL.md §20.2 defines", async () => {
  const c = clock();
  const cookies = new UdpCookies(MASTER, { now: c.now });
  for (const [source, difficulty] of [[SOURCE, 0], [{ hostname: "::1", port: 1 }, 17]] as const) {
    const cookie = await cookies.mint(source, BOUND, difficulty);
    assert.equal(cookie.length, COOKIE_BYTES);
    assertBytesEqual(cookie, await referenceCookie(MASTER, c.time.now, source, BOUND, difficulty));
  }
});

Deno.test("UdpCookies: addresses of 1..255 UTF-8 bytes in the scratch buffer, long then short, and interleaved calls", async () => {
  const c = clock();
  const cookies = new UdpCookies(MASTER, { now: c.now });
  const sources: SourceAddress[] = [
    { hostname: "a".repeat(255), port: 65535 },
    { hostname: "é".repeat(127) + "x", port: 0 },
    { hostname: "1", port: 7 },
    { hostname: "fe80::1%eth0", port: 5 },
    { hostname: "::ffff:127.0.0.7", port: 4000 },
  ];
  // One after another: what a longer address left in the scratch buffer is never part of a shorter one's MAC.
  for (const source of sources) {
    assertBytesEqual(
      await cookies.mint(source, BOUND, 9),
      await referenceCookie(MASTER, c.time.now, source, BOUND, 9),
      source.hostname,
    );
  }
  for (
    const hostname of ["", "a".repeat(256), "é".repeat(128), "a".repeat(254) + "é", "a".repeat(255) + "é"]
  ) {
    await assert.rejects(
      () => cookies.mint({ hostname, port: 1 }, BOUND, 0),
      RangeError,
      `${hostname.length}`,
    );
  }
  // All at once, with first key derivations in flight: each call's MAC inputs are its own.
  const minted = await Promise.all(sources.map((s, i) => cookies.mint(s, BOUND, i)));
  const checks = await Promise.all(sources.flatMap((s, i) => [
    cookies.verify(minted[i]!, s, BOUND),
    cookies.verify(minted[i]!, sources[(i + 1) % sources.length]!, BOUND),
  ]));
  sources.forEach((_, i) => {
    assert.deepEqual(checks[2 * i], { ok: true, slot: cookies.currentSlot(), difficulty: i });
    assert.deepEqual(checks[2 * i + 1], { ok: false, reason: "moved_cookie" });
  });
});

Deno.test("UdpCookies accepts its cookie in its slot and the next, with the slot and difficulty", async () => {
  const c = clock(50 * SLOT_MS + 9_999);
  const cookies = new UdpCookies(MASTER, { now: c.now });
  const cookie = await cookies.mint(SOURCE, BOUND, 14);
  assert.deepEqual(await cookies.verify(cookie, SOURCE, BOUND), { ok: true, slot: 50, difficulty: 14 });
  c.time.now = 51 * SLOT_MS + 9_999;
  assert.deepEqual(await cookies.verify(cookie, SOURCE, BOUND), { ok: true, slot: 50, difficulty: 14 });
});

Deno.test("UdpCookies refuses an expired cookie: two slots on, however little time that is", async () => {
  const c = clock(50 * SLOT_MS + 9_999);
  const cookies = new UdpCookies(MASTER, { now: c.now });
  const cookie = await cookies.mint(SOURCE, BOUND, 0);
  c.time.now = 52 * SLOT_MS;
  assert.deepEqual(await cookies.verify(cookie, SOURCE, BOUND), { ok: false, reason: "expired_cookie" });
  c.time.now = 9_000 * SLOT_MS;
  assert.deepEqual(await cookies.verify(cookie, SOURCE, BOUND), { ok: false, reason: "expired_cookie" });
});

Deno.test("UdpCookies refuses a cookie moved to another address or port", async () => {
  const c = clock();
  const cookies = new UdpCookies(MASTER, { now: c.now });
  const cookie = await cookies.mint(SOURCE, BOUND, 0);
  for (
    const moved of [
      { hostname: SOURCE.hostname, port: SOURCE.port + 1 },
      { hostname: "127.0.0.8", port: SOURCE.port },
      { hostname: "::ffff:127.0.0.7", port: SOURCE.port },
    ]
  ) {
    assert.deepEqual(await cookies.verify(cookie, moved, BOUND), { ok: false, reason: "moved_cookie" });
  }
});

Deno.test("UdpCookies refuses forged cookies: any flipped bit, another master, other INIT bytes", async () => {
  const c = clock();
  const cookies = new UdpCookies(MASTER, { now: c.now });
  const cookie = await cookies.mint(SOURCE, BOUND, 8);
  // Every byte after the slot: the difficulty (a forger lowering the work asked), the tag and the init tag.
  for (let i = 4; i < COOKIE_BYTES; i++) {
    for (const bit of [0x01, 0x80]) {
      const forged = cookie.slice();
      forged[i]! ^= bit;
      const check = await cookies.verify(forged, SOURCE, BOUND);
      // A flipped tag byte leaves the init tag right for these INIT bytes: counted as moved (a cookie that is
      // ours for this INIT, its address tag wrong). Any other flip is a forgery.
      const reason = i >= 5 && i < 5 + 16 ? "moved_cookie" : "bad_cookie";
      assert.deepEqual(check, { ok: false, reason }, `byte ${i}`);
    }
  }
  const other = new UdpCookies(new Uint8Array(32).fill(9), { now: c.now });
  assert.deepEqual(await other.verify(cookie, SOURCE, BOUND), { ok: false, reason: "bad_cookie" });
  const otherShare = BOUND.slice();
  otherShare[67]! ^= 1;
  assert.deepEqual(await cookies.verify(cookie, SOURCE, otherShare), { ok: false, reason: "bad_cookie" });
  const random = crypto.getRandomValues(new Uint8Array(COOKIE_BYTES));
  random.set(cookie.subarray(0, 4));
  assert.deepEqual(await cookies.verify(random, SOURCE, BOUND), { ok: false, reason: "bad_cookie" });
  for (const length of [0, 1, COOKIE_BYTES - 1, COOKIE_BYTES + 1, 255]) {
    const wrong = new Uint8Array(length);
    wrong.set(cookie.subarray(0, Math.min(length, COOKIE_BYTES)));
    assert.deepEqual(await cookies.verify(wrong, SOURCE, BOUND), { ok: false, reason: "bad_cookie" });
  }
});

Deno.test("UdpCookies refuses a cookie of a future slot (a clock ahead, or a forged slot)", async () => {
  const c = clock(100 * SLOT_MS);
  const ahead = new UdpCookies(MASTER, { now: () => c.time.now + SLOT_MS });
  const cookies = new UdpCookies(MASTER, { now: c.now });
  const cookie = await ahead.mint(SOURCE, BOUND, 0);
  assert.deepEqual(await cookies.verify(cookie, SOURCE, BOUND), { ok: false, reason: "bad_cookie" });
  assert.equal(cookies.heldKeys, 0, "no key derived for a slot it refuses");
});

Deno.test("UdpCookies: nodes sharing the master accept each other's cookies", async () => {
  const c = clock();
  const a = new UdpCookies(MASTER, { now: c.now });
  const b = new UdpCookies(MASTER.slice(), { now: c.now });
  const cookie = await a.mint(SOURCE, BOUND, 3);
  assert.deepEqual(await b.verify(cookie, SOURCE, BOUND), { ok: true, slot: a.currentSlot(), difficulty: 3 });
});

Deno.test("UdpCookies keys rotate every slot: the same INIT gets another tag in the next slot", async () => {
  const c = clock(7 * SLOT_MS);
  const cookies = new UdpCookies(MASTER, { now: c.now });
  const first = await cookies.mint(SOURCE, BOUND, 0);
  c.time.now += SLOT_MS;
  const second = await cookies.mint(SOURCE, BOUND, 0);
  assert.notDeepEqual([...first.subarray(5)], [...second.subarray(5)]);
});

Deno.test("UdpCookies holds at most two slot keys, whatever it verifies", async () => {
  const c = clock(0);
  const cookies = new UdpCookies(MASTER, { now: c.now, slotMs: 1000 });
  for (let step = 0; step < 50; step++) {
    const cookie = await cookies.mint({ hostname: `127.0.${step}.1`, port: step }, BOUND, 0);
    await cookies.verify(cookie, SOURCE, BOUND);
    c.time.now += 700;
    assert(cookies.heldKeys <= 2, `${cookies.heldKeys} keys held`);
  }
});

Deno.test("UdpCookies refuses a bad master secret and slot length", () => {
  assert.throws(() => new UdpCookies(new Uint8Array(16)), RangeError);
  assert.throws(() => new UdpCookies(MASTER, { slotMs: 0 }), RangeError);
  assert.throws(() => new UdpCookies(MASTER, { slotMs: 1.5 }), RangeError);
});
