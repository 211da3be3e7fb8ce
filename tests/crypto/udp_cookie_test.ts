import assert from "node:assert/strict";
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

/** The cookie as docs/PROTOCOL.md §20.2 defines it, computed with WebCrypto alone. */
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
  const info = Uint8Array.from([...new TextEncoder().encode("authchat-udp-cookie/1"), ...slotBytes]);
  const raw = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(), info },
    hkdf,
    256,
  );
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const address = new TextEncoder().encode(source.hostname);
  const head = [...slotBytes, difficulty];
  const initInput = Uint8Array.from([0x02, ...head, ...bound]);
  const initTag = new Uint8Array(await crypto.subtle.sign("HMAC", key, initInput)).subarray(0, 8);
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
  const tag = new Uint8Array(await crypto.subtle.sign("HMAC", key, tagInput)).subarray(0, 16);
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
