import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { fingerprint, isFingerprint } from "../../lib/crypto/fingerprint.ts";

Deno.test("fingerprint is SHA256: and the unpadded base64 SHA-256 computed by node:crypto", async () => {
  const der = new Uint8Array(300).map((_, i) => i * 7);
  const expected = "SHA256:" + createHash("sha256").update(der).digest("base64").replace(/=+$/, "");
  const fp = await fingerprint(der);
  assert.equal(fp, expected);
  assert.equal(fp.length, 7 + 43);
  assert.match(fp, /^SHA256:[A-Za-z0-9+/]{43}$/);
});

Deno.test("fingerprint output always passes isFingerprint (property)", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 64 }), async (der) => {
      assert.ok(isFingerprint(await fingerprint(der)));
    }),
    { numRuns: 50 },
  );
});

Deno.test("isFingerprint refuses other forms", () => {
  const body = "A".repeat(43);
  assert.equal(isFingerprint(`SHA256:${body}`), true);
  for (
    const text of [
      `sha256:${body}`,
      `SHA256:${body}=`,
      `SHA256:${"A".repeat(42)}`,
      `SHA256:${"A".repeat(44)}`,
      `SHA256:${"A".repeat(42)}-`,
      `SHA256:${"A".repeat(42)}_`,
      `MD5:${body}`,
      body,
      ` SHA256:${body}`,
      `SHA256:${body}\n`,
    ]
  ) assert.equal(isFingerprint(text), false, JSON.stringify(text));
});
