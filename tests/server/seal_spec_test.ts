/**
 * docs/PROTOCOL.md §5 and §14 state the sealing bytes exactly; these tests build them from the text alone
 * (their own JSON writer, node:crypto instead of the WebCrypto calls the code makes) and check that the
 * server accepts, and the client opens, what they make, so the document and the code cannot drift apart.
 */

import assert from "node:assert/strict";
import { constants, createCipheriv, createPublicKey, publicEncrypt, randomBytes } from "node:crypto";
import fc from "fast-check";
import { argon2id } from "hash-wasm";
import { saslPrep } from "../../lib/auth/saslprep.ts";
import { recoverIdentity } from "../../lib/client/_chat_identity.ts";
import { sealContext } from "../../lib/crypto/seal.ts";
import { exportIdentityPrivate, generateIdentity } from "../../lib/crypto/identity_key.ts";
import { makeKit, verifierFor } from "./_session_kit.ts";

const DOC = new URL("../../docs/PROTOCOL.md", import.meta.url);
const encoder = new TextEncoder();

/** One JSON string as §5 says: only `"`, `\` and U+0000–U+001F escaped, everything else as itself. */
function docString(text: string): string {
  const short: Record<number, string> = { 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r" };
  let out = '"';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (c < 0x20) out += short[c] ?? `\\u00${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/** The associated data §5 describes: the strings in `[` `]`, separated by `,`, no whitespace, UTF-8. */
function docAd(parts: string[]): Uint8Array<ArrayBuffer> {
  return encoder.encode(`[${parts.map(docString).join(",")}]`);
}

/** The worked example under `<!-- marker: k=v ... -->`: its fields, its text line and its hex bytes. */
async function docExample(
  marker: string,
): Promise<{ fields: Record<string, string>; text: string; bytes: Uint8Array }> {
  const doc = await Deno.readTextFile(DOC);
  const match = new RegExp(
    `<!-- ${marker}: ([^>]*) -->\\s*\`\`\`\\n([^\\n]*)\\n\\n([0-9a-f \\n]+?)\\s*\`\`\``,
  )
    .exec(doc);
  assert.ok(match, `docs/PROTOCOL.md has no ${marker} example`);
  const fields = Object.fromEntries(
    match[1]!.trim().split(/\s+/).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
  const bytes = Uint8Array.from(match[3]!.trim().split(/\s+/), (h) => parseInt(h, 16));
  return { fields, text: match[2]!.trim(), bytes };
}

/** AES-256-GCM as §5 says: `ct` is the ciphertext followed by the 16-byte tag. */
function gcm(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Buffer {
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
  cipher.setAAD(ad);
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/**
 * Seal as §5 says, with node:crypto: RSA-OAEP with SHA-256 (node uses the OAEP hash for MGF1 too) and no
 * label, a fresh 32-byte key, a 12-byte IV.
 */
function docSeal(
  spki: Uint8Array,
  plaintext: string,
  ad: Uint8Array,
): { key: string; iv: string; ct: string } {
  const k = randomBytes(32);
  const iv = randomBytes(12);
  const wrapped = publicEncrypt(
    {
      key: createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" }),
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: "sha256",
    },
    k,
  );
  assert.equal(wrapped.length, 384, "RSA-3072: 384 bytes");
  return {
    key: wrapped.toString("base64"),
    iv: iv.toString("base64"),
    ct: gcm(k, iv, encoder.encode(plaintext), ad).toString("base64"),
  };
}

Deno.test("PROTOCOL §5's worked example of the seal's associated data is the bytes the rules and the code make", async () => {
  const { fields, text, bytes } = await docExample("seal-ad-example");
  const parts = ["authchat-seal/1", fields.op!, fields.user!, fields.nonce!];
  assert.deepEqual(encoder.encode(text), bytes, "the example's text is its bytes");
  assert.deepEqual(docAd(parts), bytes, "the rules give the example's bytes");
  assert.deepEqual(sealContext(fields.op!, { user: fields.user!, nonce: fields.nonce! }), bytes);
  assert.equal(bytes.length, 64);
  assert.ok(!bytes.includes(0x20), "no whitespace");
});

Deno.test("sealContext writes exactly the bytes PROTOCOL §5's rules describe, for any strings", () => {
  const text = fc.oneof(fc.string({ unit: "grapheme" }), fc.string({ unit: "binary-ascii" }));
  fc.assert(
    fc.property(text, text, text, (op, user, nonce) => {
      assert.deepEqual(sealContext(op, { user, nonce }), docAd(["authchat-seal/1", op, user, nonce]));
    }),
    { numRuns: 500 },
  );
});

Deno.test("Session accepts a REGISTER sealed from PROTOCOL §5 alone, and refuses the spaced JSON the document once showed", async () => {
  await using kit = await makeKit();
  const conn = kit.connect();
  const { fields } = await docExample("seal-ad-example");
  const user = fields.user!;
  const spki = Uint8Array.fromBase64((await conn.sayHello()).seal_key);
  const verifier = await verifierFor("violet harbor engine 42");

  // What an implementation reading "the JSON array [...]" with its spaces would make.
  const spaced = encoder.encode(`["authchat-seal/1", "REGISTER", "${user}", "${conn.hello!.seal_nonce}"]`);
  const wrong = await conn.send({ op: "REGISTER", user, sealed: docSeal(spki, verifier, spaced) });
  assert.equal(wrong.op === "ERROR" && wrong.code, "SEAL_INVALID", JSON.stringify(wrong));

  const nonce = (await conn.sayHello()).seal_nonce;
  const ad = docAd(["authchat-seal/1", "REGISTER", user, nonce]);
  const reply = await conn.send({ op: "REGISTER", user, sealed: docSeal(spki, verifier, ad) });
  assert.equal(reply.op, "REGISTER", JSON.stringify(reply));
  assert.equal((reply as { user: string }).user, user);
  assert.equal((await kit.store.findUser(user.toLowerCase()))?.verifier, verifier);
});

Deno.test("PROTOCOL §14's key backup: the example's bytes follow §5's rules, and the client opens a backup built from the text", async () => {
  const { fields, text, bytes } = await docExample("key-backup-ad-example");
  assert.deepEqual(encoder.encode(text), bytes);
  assert.deepEqual(docAd(["authchat-key-backup/1", fields.user!, fields.key!]), bytes);
  assert.equal(bytes.length, 79);

  // A backup made from the document (Argon2id of the SASLprepped UTF-8 password, then AES-256-GCM with
  // the key-backup AD), for the account Zoë, whose key is zoë.
  const identity = await generateIdentity();
  const pkcs8 = await exportIdentityPrivate(identity);
  const password = "Ⅻ violet harbor engine";
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const params = { m: 8192, t: 1, p: 1 };
  const key = await argon2id({
    password: encoder.encode(saslPrep(password, { allowUnassigned: true })),
    salt,
    memorySize: params.m,
    iterations: params.t,
    parallelism: params.p,
    hashLength: 32,
    outputType: "binary",
  });
  const publicKey = identity.publicKey.toBase64();
  const ad = docAd(["authchat-key-backup/1", "zoë", publicKey]);
  const backup = {
    v: 1,
    kdf: "argon2id",
    ...params,
    salt: salt.toString("base64"),
    iv: iv.toString("base64"),
    ct: gcm(key, iv, pkcs8, ad).toString("base64"),
  } as const;
  const opened = await recoverIdentity("Zoë", password, { key: publicKey, backup });
  assert.deepEqual(opened.publicKey, identity.publicKey);
});
