import assert from "node:assert/strict";
import fc from "fast-check";
import { hmacSha256, sha256 } from "../../lib/crypto/sha256.ts";

const hex = (s: string) => Uint8Array.fromHex(s);
const text = (s: string) => new TextEncoder().encode(s);

async function webHmac(key: Uint8Array<ArrayBuffer>, data: Uint8Array<ArrayBuffer>): Promise<string> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data)).toHex();
}

Deno.test("hmacSha256 matches the RFC 4231 test cases, short and long keys", async () => {
  const cases: [Uint8Array, Uint8Array, string][] = [
    [
      hex("0b".repeat(20)),
      text("Hi There"),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ],
    [
      text("Jefe"),
      text("what do ya want for nothing?"),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ],
    [
      hex("aa".repeat(20)),
      hex("dd".repeat(50)),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ],
    [
      hex("aa".repeat(131)),
      text("Test Using Larger Than Block-Size Key - Hash Key First"),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ],
  ];
  for (const [key, data, mac] of cases) assert.equal((await hmacSha256(key, data)).toHex(), mac);
});

Deno.test("sha256 and hmacSha256 agree with WebCrypto for any input (property)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      fc.uint8Array({ maxLength: 300 }),
      async (k, d) => {
        const key = new Uint8Array(k);
        const data = new Uint8Array(d);
        assert.equal((await hmacSha256(key, data)).toHex(), await webHmac(key, data));
        assert.equal(
          sha256(data).toHex(),
          new Uint8Array(await crypto.subtle.digest("SHA-256", data)).toHex(),
        );
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("hmacSha256 gives each of many concurrent calls its own result (the hasher is shared)", async () => {
  const inputs = Array.from(
    { length: 300 },
    (_, i) => [text(`key ${i}`), text(`message ${i}`.repeat(i % 7))] as const,
  );
  const got = await Promise.all(inputs.map(([k, d]) => hmacSha256(k, d)));
  for (let i = 0; i < inputs.length; i++) {
    assert.equal(got[i]!.toHex(), await webHmac(inputs[i]![0], inputs[i]![1]), `call ${i}`);
  }
});
