import assert from "node:assert/strict";
import fc from "fast-check";
import { encodeRdv } from "../../lib/codec/datagram.ts";
import { importUdpKey, tagDatagram } from "../../lib/crypto/datagram_tag.ts";
import { decodeRetry, encodeInit, INIT_BYTES } from "../../lib/codec/udp_init.ts";
import { type SourceAddress, UdpCookies } from "../../lib/crypto/udp_cookie.ts";
import { proofBits, solvePuzzle } from "../../lib/crypto/udp_puzzle.ts";
import { PuzzleDifficulty } from "../../lib/server/puzzle_difficulty.ts";
import {
  ADMISSION_DROP_REASONS,
  type AdmissionDecision,
  UdpAdmission,
} from "../../lib/server/udp_admission.ts";
import { assertBytesEqual } from "../_bytes.ts";

const MASTER = new Uint8Array(32).fill(0x5a);
const SOURCE: SourceAddress = { hostname: "127.0.0.10", port: 50_000 };
const SLOT_MS = 10_000;

/** An engine on a clock and a difficulty curve the test moves. */
function kit(options: { handshakesPerSecond?: number } = {}) {
  const time = { now: 1_800_000_000_000 };
  const cookies = new UdpCookies(MASTER, { now: () => time.now });
  const difficulty = new PuzzleDifficulty({ handshakesPerSecond: options.handshakesPerSecond ?? 100 });
  const admission = new UdpAdmission({ cookies, difficulty });
  return { time, cookies, difficulty, admission };
}

function fields(seed: number) {
  return {
    clientRandom: new Uint8Array(32).fill(seed),
    clientShare: new Uint8Array(32).fill(seed ^ 0xff),
  };
}

function expectRetry(decision: AdmissionDecision, received: number) {
  if (decision.kind !== "retry") return assert.fail(`expected a retry, got ${JSON.stringify(decision)}`);
  assert(decision.bytes.length <= received, `RETRY of ${decision.bytes.length} bytes answers ${received}`);
  return { ...decodeRetry(decision.bytes), cause: decision.cause, length: decision.bytes.length };
}

function expectDrop(decision: AdmissionDecision, reason: string): void {
  assert.deepEqual(decision, { kind: "drop", reason });
}

/** First INIT, then its repeat with the cookie (and a solved puzzle): the client's side, by hand. */
async function handshake(
  admission: UdpAdmission,
  source: SourceAddress,
  seed = 1,
): Promise<AdmissionDecision> {
  const first = encodeInit(fields(seed));
  const retry = expectRetry(await admission.decide(first, source), first.length);
  const powNonce = await solvePuzzle(retry.cookie, retry.difficulty);
  return await admission.decide(encodeInit({ ...fields(seed), cookie: retry.cookie, powNonce }), source);
}

Deno.test("UdpAdmission answers a first INIT with a small RETRY echoing client_random, and admits the repeat", async () => {
  const { admission } = kit();
  const first = encodeInit(fields(7));
  const retry = expectRetry(await admission.decide(first, SOURCE), INIT_BYTES);
  assert.equal(retry.cause, "no_cookie");
  assert.equal(retry.difficulty, 0);
  assertBytesEqual(retry.echo, fields(7).clientRandom);
  assert.equal(retry.length, 66);
  const decision = await admission.decide(encodeInit({ ...fields(7), cookie: retry.cookie }), SOURCE);
  if (decision.kind !== "admit") return assert.fail(JSON.stringify(decision));
  assertBytesEqual(decision.init.clientRandom, fields(7).clientRandom);
  assertBytesEqual(decision.init.clientShare, fields(7).clientShare);
});

Deno.test("UdpAdmission drops bad cookies by reason: forged, expired, moved, for another INIT", async () => {
  const { admission, time } = kit();
  const first = encodeInit(fields(1));
  const { cookie } = expectRetry(await admission.decide(first, SOURCE), INIT_BYTES);
  const withCookie = (c: Uint8Array, f = fields(1)) => encodeInit({ ...f, cookie: c });
  const forged = cookie.slice();
  forged[10]! ^= 0x40;
  const randomTail = crypto.getRandomValues(new Uint8Array(29));
  randomTail.set(cookie.subarray(0, 5));
  const otherDifficulty = cookie.slice();
  otherDifficulty[4] = 1;
  const rows: [string, Uint8Array, SourceAddress, string][] = [
    ["a flipped tag bit", withCookie(forged), SOURCE, "moved_cookie"],
    ["another difficulty", withCookie(otherDifficulty), SOURCE, "bad_cookie"],
    ["random bytes after a genuine slot", withCookie(randomTail), SOURCE, "bad_cookie"],
    ["a short cookie", withCookie(cookie.subarray(0, 20)), SOURCE, "bad_cookie"],
    [
      "another client_share",
      withCookie(cookie, { ...fields(1), clientShare: new Uint8Array(32) }),
      SOURCE,
      "bad_cookie",
    ],
    [
      "another client_random",
      withCookie(cookie, { ...fields(1), clientRandom: new Uint8Array(32) }),
      SOURCE,
      "bad_cookie",
    ],
    ["another port", withCookie(cookie), { ...SOURCE, port: 50_001 }, "moved_cookie"],
    ["another address", withCookie(cookie), { ...SOURCE, hostname: "127.0.0.11" }, "moved_cookie"],
  ];
  for (const [what, bytes, source, reason] of rows) {
    const decision = await admission.decide(bytes, source);
    assert.deepEqual(decision, { kind: "drop", reason }, what);
  }
  time.now += 2 * SLOT_MS;
  expectDrop(await admission.decide(withCookie(cookie), SOURCE), "expired_cookie");
});

Deno.test("UdpAdmission drops what is not a well-formed INIT, and never answers it", async () => {
  const { admission } = kit();
  const good = encodeInit(fields(2));
  const badVersion = good.slice();
  badVersion[3] = 2;
  const padded = good.slice();
  padded[1199] = 1;
  const rdv = await tagDatagram(
    await importUdpKey(new Uint8Array(32)),
    encodeRdv({ handle: new Uint8Array(16), counter: 0 }),
  );
  const answer = await admission.decide(good, SOURCE);
  const reflected = answer.kind === "retry" ? answer.bytes : assert.fail("no RETRY to reflect");
  const rows: [string, Uint8Array, string][] = [
    ["another session version", badVersion, "bad_version"],
    ["a non-zero padding byte", padded, "malformed"],
    ["a short INIT", good.subarray(0, 1199), "malformed"],
    ["a small datagram", good.subarray(0, 80), "malformed"],
    ["empty", new Uint8Array(0), "malformed"],
    ["an RDV", rdv, "malformed"],
    ["a RETRY reflected back", reflected, "malformed"],
  ];
  for (const [what, bytes, reason] of rows) {
    assert.deepEqual(await admission.decide(bytes, SOURCE), { kind: "drop", reason }, what);
  }
});

Deno.test("UdpAdmission asks proof of work only under load, and stops when the load drops", async () => {
  const { admission, difficulty } = kit({ handshakesPerSecond: 100 });
  const ask = async (seed: number) =>
    expectRetry(await admission.decide(encodeInit(fields(seed)), SOURCE), 1200);
  difficulty.observe({ handshakesPerSecond: 99, halfOpen: 0 });
  assert.equal((await ask(1)).difficulty, 0);
  difficulty.observe({ handshakesPerSecond: 150, halfOpen: 0 });
  const underLoad = await ask(2);
  assert.equal(underLoad.difficulty, 12);
  // The puzzle solved: admitted. The zero nonce (or any nonce short of 12 bits): dropped as weak.
  const solved = await solvePuzzle(underLoad.cookie, 12);
  const decision = await admission.decide(
    encodeInit({ ...fields(2), cookie: underLoad.cookie, powNonce: solved }),
    SOURCE,
  );
  assert.equal(decision.kind, "admit");
  const weak = weakNonce(underLoad.cookie, 12);
  expectDrop(
    await admission.decide(encodeInit({ ...fields(2), cookie: underLoad.cookie, powNonce: weak }), SOURCE),
    "weak_pow",
  );
  difficulty.observe({ handshakesPerSecond: 3200, halfOpen: 0 });
  assert.equal((await ask(3)).difficulty, 18, "the most asked by default");
  difficulty.observe({ handshakesPerSecond: 10, halfOpen: 0 });
  assert.equal((await ask(4)).difficulty, 0);
  // A cookie minted under load still demands its work after the load dropped: the difficulty is in the MAC.
  expectDrop(
    await admission.decide(encodeInit({ ...fields(2), cookie: underLoad.cookie, powNonce: weak }), SOURCE),
    "weak_pow",
  );
  const late = await admission.decide(
    encodeInit({ ...fields(2), cookie: underLoad.cookie, powNonce: solved }),
    SOURCE,
  );
  assert.equal(late.kind, "admit");
});

/** A nonce whose proof falls short of `difficulty` bits for this cookie. */
function weakNonce(cookie: Uint8Array, difficulty: number): Uint8Array<ArrayBuffer> {
  const nonce = new Uint8Array(8);
  while (proofBits(cookie, nonce) >= difficulty) nonce[7]!++;
  return nonce;
}

Deno.test("UdpAdmission asks again when load rose after a cookie was minted cheaply", async () => {
  const { admission, difficulty } = kit({ handshakesPerSecond: 100 });
  const first = expectRetry(await admission.decide(encodeInit(fields(5)), SOURCE), 1200);
  assert.equal(first.difficulty, 0);
  difficulty.observe({ handshakesPerSecond: 1000, halfOpen: 0 });
  const again = expectRetry(
    await admission.decide(
      encodeInit({ ...fields(5), cookie: first.cookie, powNonce: weakNonce(first.cookie, 18) }),
      SOURCE,
    ),
    1200,
  );
  assert.equal(again.cause, "difficulty_raised");
  assert.equal(again.difficulty, 18);
  assert.notDeepEqual([...again.cookie], [...first.cookie]);
  const powNonce = await solvePuzzle(again.cookie, again.difficulty);
  const decision = await admission.decide(
    encodeInit({ ...fields(5), cookie: again.cookie, powNonce }),
    SOURCE,
  );
  assert.equal(decision.kind, "admit");
});

Deno.test("UdpAdmission: a forged lower difficulty in a cookie is refused", async () => {
  const { admission, difficulty } = kit({ handshakesPerSecond: 100 });
  difficulty.observe({ handshakesPerSecond: 100, halfOpen: 0 });
  const retry = expectRetry(await admission.decide(encodeInit(fields(6)), SOURCE), 1200);
  assert.equal(retry.difficulty, 12);
  difficulty.observe({ handshakesPerSecond: 0, halfOpen: 0 });
  const lowered = retry.cookie.slice();
  lowered[4] = 0;
  expectDrop(await admission.decide(encodeInit({ ...fields(6), cookie: lowered }), SOURCE), "bad_cookie");
});

Deno.test("UdpAdmission never sends an unvalidated source more bytes than it sent (counted per source)", async () => {
  const { admission, difficulty } = kit({ handshakesPerSecond: 100 });
  const bytesIn = new Map<string, number>();
  const bytesOut = new Map<string, number>();
  const count = (m: Map<string, number>, key: string, n: number) => m.set(key, (m.get(key) ?? 0) + n);
  for (let i = 0; i < 600; i++) {
    if (i === 300) difficulty.observe({ handshakesPerSecond: 1e6, halfOpen: 0 });
    const source = { hostname: `127.0.${i % 7}.${i % 11}`, port: 1000 + (i % 3) };
    const key = `${source.hostname}:${source.port}`;
    const datagrams = [
      encodeInit(fields(i & 0xff)),
      encodeInit({ ...fields(i & 0xff), cookie: new Uint8Array(255).fill(i & 0xff) }),
      new Uint8Array(i % 1300),
    ];
    for (const datagram of datagrams) {
      count(bytesIn, key, datagram.length);
      const decision = await admission.decide(datagram, source);
      if (decision.kind === "retry") {
        assert(decision.bytes.length <= datagram.length);
        count(bytesOut, key, decision.bytes.length);
      }
    }
  }
  // 7 × 11 × 3 sources, each answered, none with more than it sent.
  assert.equal(bytesIn.size, 231);
  assert.equal(bytesOut.size, 231);
  for (const [key, out] of bytesOut) {
    assert(out <= bytesIn.get(key)!, `${key}: ${out} out, ${bytesIn.get(key)} in`);
  }
});

Deno.test("UdpAdmission keeps no per-source state: 100,000 INITs from 10,000 sources", async () => {
  const { admission, cookies, time, difficulty } = kit({ handshakesPerSecond: 100 });
  difficulty.observe({ handshakesPerSecond: 20_000, halfOpen: 0 });
  const template = encodeInit(fields(0));
  // Forged cookies of the current slot, so each costs the engine its MAC check.
  const forgedCookie = new Uint8Array(29).fill(1);
  const forged = encodeInit({ ...fields(0), cookie: forgedCookie });
  const stampSlot = () => new DataView(forged.buffer).setUint32(69, cookies.currentSlot());
  stampSlot();
  const kinds = { retry: 0, drop: 0, admit: 0 };
  const reasons = new Map<string, number>();
  let bytesIn = 0;
  let bytesOut = 0;
  const ownKeys = Object.getOwnPropertyNames(admission);
  for (let i = 0; i < 100_000; i++) {
    const n = i % 10_000;
    const source = { hostname: `127.${n >> 8}.${n & 0xff}.1`, port: 1024 + (i % 50_000) };
    const datagram = i % 2 === 0 ? template : forged;
    datagram[4] = i & 0xff; // a new client_random now and then
    const decision = await admission.decide(datagram, source);
    kinds[decision.kind]++;
    if (decision.kind === "drop") reasons.set(decision.reason, (reasons.get(decision.reason) ?? 0) + 1);
    bytesIn += datagram.length;
    if (decision.kind === "retry") bytesOut += decision.bytes.length;
    if (i % 20_000 === 0) {
      time.now += 7_000;
      stampSlot();
    }
  }
  assert.deepEqual(kinds, { retry: 50_000, drop: 50_000, admit: 0 });
  assert.equal(reasons.get("bad_cookie"), 50_000);
  assert(bytesOut <= bytesIn / 10, `${bytesOut} bytes out for ${bytesIn} in`);
  // Nothing grew: the engine has no own fields (only private ones: the cookie minter and the difficulty),
  // and the minter holds the keys of at most two slots, whatever came in.
  assert.deepEqual(Object.getOwnPropertyNames(admission), ownKeys);
  assert(cookies.heldKeys <= 2, `${cookies.heldKeys} slot keys`);
  // A real client still gets in, paying the difficulty the flood raised.
  const decision = await handshake(admission, { hostname: "127.255.255.1", port: 4242 }, 9);
  assert.equal(decision.kind, "admit");
});

Deno.test("UdpAdmission turns a failure of its own into a counted drop, never a throw", async () => {
  const cookies = new UdpCookies(MASTER);
  const broken = new UdpAdmission({ cookies, difficulty: { current: () => 999 } });
  expectDrop(await broken.decide(encodeInit(fields(1)), SOURCE), "internal");
  const throwing = new UdpAdmission({
    cookies,
    difficulty: {
      current: () => {
        throw new Error("boom");
      },
    },
  });
  expectDrop(await throwing.decide(encodeInit(fields(1)), SOURCE), "internal");
  const { admission } = kit();
  expectDrop(await admission.decide(encodeInit(fields(1)), { hostname: "", port: 1 }), "internal");
});

Deno.test("UdpAdmission gives only drop reasons for random bytes, and never admits a tampered INIT (property)", async () => {
  const { admission } = kit();
  const retry = expectRetry(await admission.decide(encodeInit(fields(3)), SOURCE), 1200);
  const valid = encodeInit({ ...fields(3), cookie: retry.cookie });
  assert.equal((await admission.decide(valid, SOURCE)).kind, "admit");
  const reasons = new Set<string>(ADMISSION_DROP_REASONS);
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 1300 }), async (bytes) => {
      const decision = await admission.decide(bytes, SOURCE);
      assert.equal(decision.kind, "drop");
      if (decision.kind === "drop") assert(reasons.has(decision.reason));
    }),
  );
  // One byte changed anywhere but the nonce (ignored at difficulty 0): never admitted.
  const nonceAt = 69 + retry.cookie.length;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 1199 }).filter((at) => at < nonceAt || at >= nonceAt + 8),
      fc.integer({ min: 1, max: 255 }),
      async (at, flip) => {
        const tampered = valid.slice();
        tampered[at]! ^= flip;
        const decision = await admission.decide(tampered, SOURCE);
        assert.notEqual(decision.kind, "admit", `byte ${at}`);
        if (decision.kind === "drop") assert(reasons.has(decision.reason));
      },
    ),
  );
});
