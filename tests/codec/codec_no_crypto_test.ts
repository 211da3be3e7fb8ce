/**
 * The codec does no crypto (docs: DESIGN.md, "The codec does no crypto"): it splits and joins bytes and
 * says which span a MAC or AEAD covers; keys, tags and verification live in lib/crypto. These tests read
 * the codec's source, so a MAC slipping back into it fails here rather than in review.
 */

import assert from "node:assert/strict";

const CODEC = new URL("../../lib/codec/", import.meta.url);
const CANARY = new URL("../../lib/crypto/datagram_tag.ts", import.meta.url);

/**
 * Every module specifier of a file's code: static and type imports, re-exports, side-effect and dynamic
 * imports. Comment lines are skipped: the runnable examples in doc comments import what a user would
 * (`node:assert/strict`), and `deno test --doc` runs them, not the codec.
 */
function specifiers(source: string): string[] {
  const code = source.split("\n").filter((line) => !/^\s*(?:\*|\/\*|\/\/)/.test(line)).join("\n");
  const found = new Set<string>();
  const statements = [
    /^\s*(?:import\s+(?:type\s+)?[\w$*{]|export\s+(?:type\s+)?[*{])[^;]*?\bfrom\s*["']([^"']+)["']/gm,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\s*\(\s*["'`]([^"'`]+)["'`]\s*\)/g,
  ];
  for (const pattern of statements) for (const m of code.matchAll(pattern)) found.add(m[1]!);
  return [...found];
}

/** Uses of crypto a codec file must not make: WebCrypto, node:crypto, hash-wasm, crypto keys. */
function cryptoUses(source: string): string[] {
  const patterns = [
    /\bcrypto\s*\.\s*subtle\b/g,
    /\bsubtle\s*\.\s*(?:sign|verify|digest|importKey|exportKey|encrypt|decrypt|deriveBits|deriveKey)\b/g,
    /\bCryptoKey\b/g,
    /["']node:crypto["']/g,
    /["']hash-wasm["']/g,
  ];
  return patterns.flatMap((p) => [...source.matchAll(p)].map((m) => m[0]));
}

/** Specifiers that leave lib/codec: anything but a sibling file. */
function outside(source: string): string[] {
  return specifiers(source).filter((s) => !/^\.\/[A-Za-z0-9_]+\.ts$/.test(s));
}

async function codecFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const entry of Deno.readDir(CODEC)) {
    if (entry.isDirectory) throw new Error(`lib/codec/${entry.name}: a folder this test does not read yet`);
    if (entry.name.endsWith(".ts")) {
      files.set(entry.name, await Deno.readTextFile(new URL(entry.name, CODEC)));
    }
  }
  return files;
}

Deno.test("lib/codec imports only its own files: nothing from lib/crypto or anywhere else", async () => {
  const files = await codecFiles();
  assert.ok(files.has("datagram.ts") && files.size >= 5, `read ${files.size} files`);
  let total = 0;
  for (const [name, source] of files) {
    total += specifiers(source).length;
    assert.deepEqual(outside(source), [], `lib/codec/${name} imports from outside lib/codec`);
  }
  assert.ok(total > 0, "the scanner found the codec's own imports");
});

Deno.test("lib/codec uses no WebCrypto, node:crypto, hash-wasm or CryptoKey", async () => {
  for (const [name, source] of await codecFiles()) {
    assert.deepEqual(cryptoUses(source), [], `lib/codec/${name}`);
  }
});

Deno.test("the scanners catch what they look for (lib/crypto/datagram_tag.ts as a canary)", async () => {
  const source = await Deno.readTextFile(CANARY);
  assert.ok(outside(source).includes("../codec/datagram.ts"));
  assert.ok(cryptoUses(source).includes('"hash-wasm"'), "hash-wasm");
  for (const use of ["await crypto.subtle.sign(a, k, b)", "subtle.digest(x)", "let k: CryptoKey;"]) {
    assert.equal(cryptoUses(use).length >= 1, true, use);
  }
  const made = [
    'import { x } from "../crypto/constant_time.ts";',
    'import type { Y } from "../crypto/y.ts";',
    'export { z } from "../crypto/z.ts";',
    'import "../crypto/side_effect.ts";',
    'const m = await import("../crypto/dynamic.ts");',
    'import { createHmac } from "node:crypto";',
  ];
  for (const line of made) assert.equal(outside(line).length, 1, line);
  const multiline =
    'import {\n  a,\n  b,\n} from "../crypto/a.ts";\nexport type {\n  C,\n} from "../crypto/c.ts";';
  assert.deepEqual(outside(multiline), ["../crypto/a.ts", "../crypto/c.ts"]);
  assert.deepEqual(
    outside('w.str8(fields.from, "from").str8(fields.to, "to");'),
    [],
    "a field is not an import",
  );
  assert.deepEqual(cryptoUses("await globalThis.crypto.subtle.sign(a, b, c)"), [
    "crypto.subtle",
    "subtle.sign",
  ]);
  assert.deepEqual(outside('import { T } from "./_datagram_bytes.ts";'), []);
  assert.deepEqual(
    outside(' * import assert from "node:assert/strict";'),
    [],
    "a doc example is not the codec",
  );
});
