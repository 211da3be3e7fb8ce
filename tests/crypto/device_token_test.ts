import assert from "node:assert/strict";
import { decodeBase64, encodeBase64 } from "../../lib/codec/base64.ts";
import {
  DEVICE_TOKEN_BYTES,
  DEVICE_TOKEN_KDF_INFO,
  DEVICE_TOKEN_LIFETIME_MS,
  DeviceTokenKey,
} from "../../lib/crypto/device_token.ts";
import { parseVerifier } from "../../lib/crypto/scram_verifier.ts";
import { hashCalls, hmacSha256 } from "../../lib/crypto/sha256.ts";

const SECRET = new Uint8Array(32).fill(3);
const NOW = 1_800_000_000_000;
const ALICE = { accountId: 7, nameKey: "alice", storedKey: new Uint8Array(32).fill(1) };

async function issued(key?: DeviceTokenKey) {
  const k = key ?? await DeviceTokenKey.derive(SECRET);
  return { key: k, ...(await k.issue(ALICE, NOW)) };
}

Deno.test("DeviceTokenKey issues a token that checks for its account until it expires", async () => {
  const { key, token, grant } = await issued();
  assert.equal(token.length, 100);
  assert.equal(decodeBase64(token)?.length, DEVICE_TOKEN_BYTES);
  assert.equal(grant.expiresAt, NOW + DEVICE_TOKEN_LIFETIME_MS);
  assert.equal(DEVICE_TOKEN_LIFETIME_MS, 180 * 24 * 3600 * 1000);
  assert.match(grant.id, /^[0-9a-f]{32}$/);
  assert.deepEqual(await key.check(token, ALICE, NOW), { ok: true, token: grant });
  assert.deepEqual(await key.check(token, ALICE, grant.expiresAt - 1), { ok: true, token: grant });
  assert.deepEqual(await key.check(token, ALICE, grant.expiresAt), { ok: false, fault: "expired" });
});

Deno.test("DeviceTokenKey gives every token a fresh random id", async () => {
  const key = await DeviceTokenKey.derive(SECRET);
  const ids = new Set<string>();
  for (let i = 0; i < 50; i++) ids.add((await key.issue(ALICE, NOW)).grant.id);
  assert.equal(ids.size, 50);
});

Deno.test("DeviceTokenKey refuses a token of another account, name, password or server", async () => {
  const { key, token } = await issued();
  const invalid = { ok: false, fault: "invalid" };
  assert.deepEqual(await key.check(token, { ...ALICE, nameKey: "bob" }, NOW), invalid, "another name");
  assert.deepEqual(await key.check(token, { ...ALICE, accountId: 8 }, NOW), invalid, "a re-created account");
  assert.deepEqual(await key.check(token, { ...ALICE, accountId: null }, NOW), invalid, "a name without one");
  const changed = { ...ALICE, storedKey: new Uint8Array(32).fill(2) };
  assert.deepEqual(await key.check(token, changed, NOW), invalid, "the password changed");
  const other = await DeviceTokenKey.derive(new Uint8Array(32).fill(4));
  assert.deepEqual(await other.check(token, ALICE, NOW), invalid, "another database's secret");
  // Every node sharing the database derives the same key.
  const same = await DeviceTokenKey.derive(SECRET.slice());
  assert.equal((await same.check(token, ALICE, NOW)).ok, true);
});

Deno.test("DeviceTokenKey refuses a token with any bit flipped", async () => {
  const { key, token } = await issued();
  const bytes = decodeBase64(token)!;
  for (let at = 0; at < bytes.length; at++) {
    for (const bit of [0x01, 0x80]) {
      const tampered = bytes.slice();
      tampered[at]! ^= bit;
      const check = await key.check(encodeBase64(tampered), ALICE, NOW);
      assert.equal(check.ok, false, `byte ${at} bit ${bit}`);
    }
  }
});

Deno.test("DeviceTokenKey calls a token that is not one malformed, without computing a MAC", async () => {
  const { key, token } = await issued();
  const bytes = decodeBase64(token)!;
  const wrongVersion = bytes.slice();
  wrongVersion[0] = 2;
  for (
    const text of [
      "",
      "not base64!",
      token.slice(0, 96),
      encodeBase64(bytes.subarray(0, 72)),
      encodeBase64(new Uint8Array([...bytes, 0])),
      encodeBase64(wrongVersion),
    ]
  ) {
    const before = hashCalls();
    assert.deepEqual(await key.check(text, ALICE, NOW), { ok: false, fault: "malformed" }, text);
    assert.equal(hashCalls(), before, text);
  }
});

Deno.test("DeviceTokenKey.check does the same hashing for a name with an account and one without", async () => {
  const { key, token } = await issued();
  const before = hashCalls();
  await key.check(token, ALICE, NOW);
  const known = hashCalls() - before;
  await key.check(token, { ...ALICE, accountId: null }, NOW);
  assert.equal(hashCalls() - before - known, known);
  assert.equal(known, 1);
});

Deno.test("DeviceTokenKey lays a token out as documented: version, account, times, id, HMAC of the binding", async () => {
  const { token, grant } = await issued();
  const bytes = decodeBase64(token)!;
  const view = new DataView(bytes.buffer);
  assert.equal(bytes[0], 1);
  assert.equal(view.getBigUint64(1), 7n);
  assert.equal(view.getBigUint64(9), BigInt(NOW));
  assert.equal(view.getBigUint64(17), BigInt(grant.expiresAt));
  assert.equal(bytes.subarray(25, 41).toHex(), grant.id);
  // K = HKDF-SHA-256(secret, empty salt, info), computed here with WebCrypto on its own.
  const base = await crypto.subtle.importKey("raw", SECRET, "HKDF", false, ["deriveBits"]);
  const k = new Uint8Array(
    await crypto.subtle.deriveBits(
      {
        name: "HKDF",
        hash: "SHA-256",
        salt: new Uint8Array(0),
        info: new TextEncoder().encode(DEVICE_TOKEN_KDF_INFO),
      },
      base,
      256,
    ),
  );
  const input = new Uint8Array([
    ...bytes.subarray(0, 41),
    0,
    5,
    ...new TextEncoder().encode("alice"),
    32,
    ...ALICE.storedKey,
  ]);
  assert.deepEqual(bytes.subarray(41), await hmacSha256(k, input));
});

Deno.test("DeviceTokenKey refuses to issue a token for an id or time it cannot encode", async () => {
  const key = await DeviceTokenKey.derive(SECRET);
  await assert.rejects(() => key.issue({ ...ALICE, accountId: -1 }, NOW), RangeError);
  await assert.rejects(() => key.issue({ ...ALICE, accountId: 1.5 }, NOW), RangeError);
  await assert.rejects(() => key.issue(ALICE, Number.MAX_SAFE_INTEGER), RangeError);
});

Deno.test("DeviceTokenKey accepts the example token of docs/PROTOCOL.md section 7.1, laid out as it says", async () => {
  const doc = await Deno.readTextFile(new URL("../../docs/PROTOCOL.md", import.meta.url));
  const section = doc.slice(doc.indexOf("### 7.1 Device tokens"), doc.indexOf("### 7.2"));
  const example = section.slice(section.indexOf("- Example:"));
  const verifier = /`(SCRAM-SHA-256\$[^`]+)`/.exec(example)![1]!;
  const token = /the token is\s+`([A-Za-z0-9+/=]+)`/.exec(example)![1]!;
  const key = await DeviceTokenKey.derive(new Uint8Array(32));
  const issued = Date.UTC(2026, 0, 1);
  const subject = { accountId: 1, nameKey: "user", storedKey: parseVerifier(verifier).storedKey };
  assert.deepEqual(await key.check(token, subject, issued), {
    ok: true,
    token: { id: "000102030405060708090a0b0c0d0e0f", expiresAt: issued + DEVICE_TOKEN_LIFETIME_MS },
  });
  // The worked transcript (section 12) carries the same token.
  assert.ok(doc.includes(`"device_token":"${token}"`));
});
