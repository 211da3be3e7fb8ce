import assert from "node:assert/strict";
import { safetyNumber } from "../../lib/crypto/safety_number.ts";

const ALICE = { user: "alice", key: new Uint8Array(32).map((_, i) => i) };
const BOB = { user: "bob", key: new Uint8Array(32).map((_, i) => 255 - i) };
// Computed once; a change here means every user's safety numbers changed.
const PINNED = "17215 32294 13064 11811 24957 10868 26194 08785 29938 94129 88431 78600";

/** The spec's recipe written a second way: BigInt arithmetic over a DataView. */
async function reference(a: { user: string; key: Uint8Array }, b: { user: string; key: Uint8Array }) {
  const side = async ({ user, key }: { user: string; key: Uint8Array }) => {
    const prefix = new TextEncoder().encode("authchat-safety/1\u0000" + user + "\u0000");
    const hash = new DataView(await crypto.subtle.digest("SHA-256", new Uint8Array([...prefix, ...key])));
    const parts = [];
    for (let i = 0; i < 6; i++) {
      const n = (BigInt(hash.getUint8(i * 5)) << 32n) | BigInt(hash.getUint32(i * 5 + 1));
      parts.push((n % 100000n).toString().padStart(5, "0"));
    }
    return parts.join("");
  };
  const [x, y] = [await side(a), await side(b)];
  const joined = x < y ? x + y : y + x;
  return Array.from({ length: 12 }, (_, i) => joined.slice(i * 5, i * 5 + 5)).join(" ");
}

Deno.test("safetyNumber matches an independent computation and a pinned vector", async () => {
  const n = await safetyNumber(ALICE, BOB);
  assert.equal(n, await reference(ALICE, BOB));
  assert.equal(n, PINNED);
});

Deno.test("safetyNumber is the same for (a, b) and (b, a) and is 60 digits in 12 groups", async () => {
  const ab = await safetyNumber(ALICE, BOB);
  assert.equal(await safetyNumber(BOB, ALICE), ab);
  assert.match(ab, /^\d{5}( \d{5}){11}$/);
  assert.equal(ab.replaceAll(" ", "").length, 60);
});

Deno.test("safetyNumber changes when any key byte or either name changes", async () => {
  const base = await safetyNumber(ALICE, BOB);
  for (const i of [0, 13, 31]) {
    const key = new Uint8Array(ALICE.key);
    key[i]! ^= 1;
    assert.notEqual(await safetyNumber({ ...ALICE, key }, BOB), base, `alice byte ${i}`);
    assert.notEqual(await safetyNumber(BOB, { ...ALICE, key }), base, `alice byte ${i}, swapped`);
  }
  const bobKey = new Uint8Array(BOB.key);
  bobKey[7]! ^= 0x80;
  assert.notEqual(await safetyNumber(ALICE, { ...BOB, key: bobKey }), base);
  assert.notEqual(await safetyNumber({ ...ALICE, user: "alicf" }, BOB), base);
  assert.notEqual(await safetyNumber(ALICE, { ...BOB, user: "carol" }), base);
  // Swapping the keys between the names is a different pairing.
  assert.notEqual(
    await safetyNumber({ user: "alice", key: BOB.key }, { user: "bob", key: ALICE.key }),
    base,
  );
});

Deno.test("safetyNumber lower-cases the user names", async () => {
  assert.equal(
    await safetyNumber({ ...ALICE, user: "Alice" }, { ...BOB, user: "BOB" }),
    await safetyNumber(ALICE, BOB),
  );
});
