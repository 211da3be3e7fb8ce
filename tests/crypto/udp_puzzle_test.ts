import assert from "node:assert/strict";
import {
  DEFAULT_PUZZLE_CAP,
  leadingZeroBits,
  proofBits,
  type PuzzleProgress,
  PuzzleTooHardError,
  solvePuzzle,
} from "../../lib/crypto/udp_puzzle.ts";

const COOKIE = new Uint8Array(29).map((_, i) => i * 7);

/** Leading zero bits of SHA-256(cookie ‖ nonce), computed with WebCrypto and a bit string. */
async function referenceBits(cookie: Uint8Array, nonce: Uint8Array): Promise<number> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", Uint8Array.from([...cookie, ...nonce])),
  );
  const bits = [...digest].map((b) => b.toString(2).padStart(8, "0")).join("");
  const first = bits.indexOf("1");
  return first === -1 ? 256 : first;
}

Deno.test("leadingZeroBits counts zero bits before the first one", () => {
  assert.equal(leadingZeroBits(new Uint8Array([0x80])), 0);
  assert.equal(leadingZeroBits(new Uint8Array([0x01])), 7);
  assert.equal(leadingZeroBits(new Uint8Array([0, 0, 0x20])), 18);
  assert.equal(leadingZeroBits(new Uint8Array(4)), 32);
  assert.equal(leadingZeroBits(new Uint8Array(0)), 0);
});

Deno.test("proofBits agrees with WebCrypto SHA-256 over cookie ‖ nonce", async () => {
  for (let i = 0; i < 200; i++) {
    const nonce = crypto.getRandomValues(new Uint8Array(8));
    assert.equal(proofBits(COOKIE, nonce), await referenceBits(COOKIE, nonce));
  }
  assert.throws(() => proofBits(COOKIE, new Uint8Array(7)), RangeError);
});

Deno.test("solvePuzzle finds a nonce the one-hash check accepts, for several difficulties", async () => {
  for (const difficulty of [1, 4, 8, 12, 14]) {
    const nonce = await solvePuzzle(COOKIE, difficulty);
    assert.equal(nonce.length, 8);
    assert(await referenceBits(COOKIE, nonce) >= difficulty, `difficulty ${difficulty}`);
  }
});

Deno.test("solvePuzzle with difficulty 0 gives the zero nonce without work", async () => {
  assert.deepEqual([...await solvePuzzle(COOKIE, 0)], [0, 0, 0, 0, 0, 0, 0, 0]);
});

Deno.test("solvePuzzle refuses a difficulty above its cap before any work, with a clear error", async () => {
  let clockReads = 0;
  const now = () => ++clockReads;
  await assert.rejects(solvePuzzle(COOKIE, DEFAULT_PUZZLE_CAP + 1, { now }), (err: unknown) => {
    assert(err instanceof PuzzleTooHardError && err instanceof RangeError);
    assert.equal(err.difficulty, 25);
    assert.equal(err.cap, 24);
    assert.match(err.message, /asked for 25 leading zero bits, above this client's cap of 24/);
    return true;
  });
  await assert.rejects(solvePuzzle(COOKIE, 9, { cap: 8 }), PuzzleTooHardError);
  await assert.rejects(solvePuzzle(COOKIE, 255, { cap: 8 }), PuzzleTooHardError);
  assert.equal(clockReads, 0);
  await assert.rejects(solvePuzzle(COOKIE, -1), RangeError);
  await assert.rejects(solvePuzzle(COOKIE, 8, { cap: 1.5 }), RangeError);
});

Deno.test("solvePuzzle reports progress once it has worked for over a second, then once a second", async () => {
  // Each look at the clock is 400 ms later: reports at the third look (1200 ms), then every ~1 s.
  let time = 0;
  const now = () => (time += 400);
  const reports: PuzzleProgress[] = [];
  // 2^20 expected hashes: hundreds of batches, so progress shows, and the test takes about a second.
  const nonce = await solvePuzzle(COOKIE, 20, { now, onProgress: (p) => reports.push(p) });
  assert(await referenceBits(COOKIE, nonce) >= 20);
  const attempts = new DataView(nonce.buffer).getBigUint64(0);
  if (attempts < 4096n * 3n) return assert.fail(`solved too fast to show progress: ${attempts}`);
  assert(reports.length >= 1);
  const first = reports[0]!;
  assert(first.elapsedMs > 1000 && first.elapsedMs <= 1200, `first report after ${first.elapsedMs} ms`);
  assert.equal(first.expected, 2 ** 20);
  assert(first.attempts > 0);
  for (let i = 1; i < reports.length; i++) {
    assert(reports[i]!.attempts > reports[i - 1]!.attempts);
    assert(reports[i]!.elapsedMs - reports[i - 1]!.elapsedMs >= 1000);
  }
});

Deno.test("solvePuzzle yields to the event loop and stops when aborted", async () => {
  const controller = new AbortController();
  let ticks = 0;
  const interval = setInterval(() => {
    if (++ticks === 3) controller.abort(new Error("stop"));
  }, 1);
  try {
    // 2^40 hashes would take days: only an abort ends this.
    await assert.rejects(solvePuzzle(COOKIE, 40, { cap: 40, signal: controller.signal }), /stop/);
  } finally {
    clearInterval(interval);
  }
  assert(ticks >= 3, "timers ran while it worked");
});
