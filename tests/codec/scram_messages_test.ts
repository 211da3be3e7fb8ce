import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import {
  escapeSaslName,
  formatClientFinalWithoutProof,
  formatClientFirst,
  formatServerFirst,
  gs2Header,
  parseClientFinal,
  parseClientFirst,
  parseServerFinal,
  parseServerFirst,
  unescapeSaslName,
} from "../../lib/codec/scram_messages.ts";

/** RFC 5802 §5 example. */
const RFC5802 = {
  clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
  serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
  clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
  serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

const b64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));
const ascii = (text: string) => new TextEncoder().encode(text);

function badScram(fn: () => unknown, scram = "invalid-encoding"): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected ProtocolError, got ${err}`);
    assert.equal(err.code, "BAD_SCRAM");
    assert.equal(err.details.scram, scram, err.message);
    return true;
  });
}

Deno.test("parseClientFirst reads the RFC 5802 client-first-message", () => {
  assert.deepEqual(parseClientFirst(RFC5802.clientFirst), {
    gs2Header: "n,,",
    cbindFlag: "n",
    bare: "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    username: "user",
    nonce: "fyko+d2lbbFgONRv9qkxdawL",
  });
});

Deno.test("formatClientFirst reproduces the RFC 5802 and RFC 7677 client-first-messages", () => {
  assert.equal(
    formatClientFirst("user", { nonce: "fyko+d2lbbFgONRv9qkxdawL", flag: "n" }),
    RFC5802.clientFirst,
  );
  assert.equal(
    formatClientFirst("user", { nonce: "rOprNGfwEbeRWgbNEkqO", flag: "n" }),
    "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  );
  assert.equal(formatClientFirst("a,b", { nonce: "x", flag: "p" }), "p=tls-server-end-point,,n=a=2Cb,r=x");
  assert.equal(gs2Header("y"), "y,,");
});

Deno.test("parseServerFirst reads the RFC 5802 server-first-message and formatServerFirst rebuilds it", () => {
  const sf = parseServerFirst(RFC5802.serverFirst);
  assert.equal(sf.nonce, "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j");
  assert.deepEqual(sf.salt, b64("QSXCR+Q6sek8bf92"));
  assert.equal(sf.iterations, 4096);
  assert.equal(
    formatServerFirst(sf.nonce, { salt: sf.salt, iterations: sf.iterations }),
    RFC5802.serverFirst,
  );
});

Deno.test("parseClientFinal reads the RFC 5802 client-final-message", () => {
  const cf = parseClientFinal(RFC5802.clientFinal);
  assert.deepEqual(cf.channelBinding, ascii("n,,"));
  assert.equal(cf.nonce, "fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j");
  assert.deepEqual(cf.proof, b64("v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="));
  assert.equal(cf.withoutProof, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j");
  assert.equal(formatClientFinalWithoutProof(ascii("n,,"), cf.nonce), cf.withoutProof);
});

Deno.test("parseServerFinal reads a verifier or an error value", () => {
  assert.deepEqual(parseServerFinal(RFC5802.serverFinal), { verifier: b64("rmF9pqV8S7suAoZWja4dJRkFsKQ=") });
  assert.deepEqual(parseServerFinal("e=invalid-proof"), { error: "invalid-proof" });
  badScram(() => parseServerFinal("e="));
  badScram(() => parseServerFinal("e=bad value"));
  badScram(() => parseServerFinal("x=1"));
  badScram(() => parseServerFinal("v=not*base64"));
  badScram(() => parseServerFinal(""));
});

Deno.test("parseClientFirst decodes =2C and =3D in the username", () => {
  assert.equal(parseClientFirst("n,,n=a=2Cb=3Dc,r=x").username, "a,b=c");
  assert.equal(parseClientFirst("n,,n==3D2C,r=x").username, "=2C");
});

Deno.test("parseClientFirst refuses '=' followed by anything but 2C or 3D", () => {
  for (const name of ["a=", "a=2c", "a=3d", "=41", "a==3D", "a=2", "=3"]) {
    badScram(() => parseClientFirst(`n,,n=${name},r=x`), "invalid-username-encoding");
  }
  badScram(() => unescapeSaslName("x=20y"), "invalid-username-encoding");
});

Deno.test("escapeSaslName and unescapeSaslName are inverses (property)", () => {
  fc.assert(
    fc.property(fc.string({ unit: fc.constantFrom("=", ",", "2", "C", "3", "D", "a") }), (name) => {
      const escaped = escapeSaslName(name);
      assert.ok(!escaped.includes(","));
      assert.equal(unescapeSaslName(escaped), name);
    }),
    { numRuns: 500 },
  );
});

Deno.test("parseClientFirst refuses an empty username", () => {
  badScram(() => parseClientFirst("n,,n=,r=x"), "invalid-username-encoding");
});

Deno.test("parseClientFirst and parseServerFirst refuse a mandatory m= extension", () => {
  badScram(() => parseClientFirst("n,,m=ext,n=user,r=x"), "extensions-not-supported");
  badScram(() => parseServerFirst("m=ext,r=xy,s=QSXCR+Q6sek8bf92,i=4096"), "extensions-not-supported");
});

Deno.test("parseClientFirst refuses an authorization identity", () => {
  assert.throws(() => parseClientFirst("n,a=admin,n=user,r=x"), (err: unknown) => {
    assert.ok(err instanceof ProtocolError);
    assert.equal(err.code, "BAD_SCRAM");
    assert.match(err.message, /Authorization identity/);
    assert.equal(err.details.scram, "other-error");
    return true;
  });
});

Deno.test("parseClientFirst refuses a bad channel binding flag", () => {
  for (const flag of ["x", "N", "p", "p=", "p=bad name", "p=a_b", ""]) {
    badScram(() => parseClientFirst(`${flag},,n=user,r=x`));
  }
  // One comma short: "n=user" is read as an authzid, which is refused.
  badScram(() => parseClientFirst("n,n=user,r=x"), "other-error");
  badScram(() => parseClientFirst("n"));
  badScram(() => parseClientFirst("n=user,r=x"));
});

Deno.test("parseClientFirst reads the y flag and p=tls-server-end-point", () => {
  assert.equal(parseClientFirst("y,,n=user,r=x").cbindFlag, "y");
  const first = parseClientFirst("p=tls-server-end-point,,n=user,r=x");
  assert.equal(first.cbindFlag, "p");
  assert.equal(first.cbName, "tls-server-end-point");
  assert.equal(first.gs2Header, "p=tls-server-end-point,,");
  assert.equal(first.bare, "n=user,r=x");
  assert.equal(parseClientFirst("p=tls-unique,,n=user,r=x").cbName, "tls-unique");
  assert.equal("cbName" in parseClientFirst("n,,n=user,r=x"), false);
});

Deno.test("parseClientFirst refuses a nonce with a comma, a non-printable character, or no nonce", () => {
  for (const nonce of ["ab c", "ab\u0001c", "abc\u007f", "\u00e9t\u00e9", "", "a".repeat(257)]) {
    badScram(() => parseClientFirst(`n,,n=user,r=${nonce}`));
  }
  // A comma ends the nonce, so what follows must be a valid attribute.
  badScram(() => parseClientFirst("n,,n=user,r=ab,c"));
  badScram(() => parseClientFirst("n,,n=user"));
  badScram(() => parseClientFirst("n,,r=x,n=user"));
  assert.equal(parseClientFirst(`n,,n=user,r=${"a".repeat(256)}`).nonce.length, 256);
});

Deno.test("parseClientFirst accepts optional extensions and refuses malformed ones", () => {
  assert.equal(parseClientFirst("n,,n=user,r=x,x=ext").nonce, "x");
  badScram(() => parseClientFirst("n,,n=user,r=x,"));
  badScram(() => parseClientFirst("n,,n=user,r=x,junk"));
});

Deno.test("parseServerFirst refuses bad salts and iteration counts", () => {
  for (
    const text of [
      "r=xy,s=,i=4096",
      "r=xy,s=QSXCR+Q6sek8bf9,i=4096",
      "r=xy,s=QSXCR+Q6sek8bf92,i=04096",
      "r=xy,s=QSXCR+Q6sek8bf92,i=0",
      "r=xy,s=QSXCR+Q6sek8bf92,i=-1",
      "r=xy,s=QSXCR+Q6sek8bf92,i=1e4",
      "r=xy,s=QSXCR+Q6sek8bf92,i=12345678901",
      "r=xy,s=QSXCR+Q6sek8bf92",
      "r=x y,s=QSXCR+Q6sek8bf92,i=4096",
    ]
  ) badScram(() => parseServerFirst(text));
});

Deno.test("parseClientFinal refuses a missing proof, bad base64 and a bad nonce", () => {
  badScram(() => parseClientFinal("c=biws,r=abc"));
  badScram(() => parseClientFinal("c=biws,r=abc,p=abc"));
  badScram(() => parseClientFinal("c=biws\n,r=abc,p=AAAA"));
  badScram(() => parseClientFinal("c=biw,r=abc,p=AAAA"));
  badScram(() => parseClientFinal("c=biws,r=a c,p=AAAA"));
  badScram(() => parseClientFinal("r=abc,c=biws,p=AAAA"));
  badScram(() => parseClientFinal(",p=AAAA"));
  badScram(() => parseClientFinal("c=biws,r=abc,junk,p=AAAA"));
  badScram(() => parseClientFinal("c=biws,r=abc,p=AAAA,x=1"));
});

const SCRAM_CHARS = fc.constantFrom(..."nyprcsvei=,ABab+/0123456789 \u0000\u00e9-.".split(""));
const scramish = fc.oneof(
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.string({ unit: SCRAM_CHARS, maxLength: 60 }),
  fc.tuple(
    fc.constantFrom("n,,", "y,,", "p=tls-server-end-point,,", "c=biws,r=", "n,,n=", "r=x,s="),
    fc.string({
      unit: SCRAM_CHARS,
      maxLength: 40,
    }),
  ).map(([a, b]) => a + b),
);

function onlyBadScram(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `threw ${String(err)}`);
    assert.equal(err.code, "BAD_SCRAM");
  }
}

Deno.test("SCRAM parsers throw only BAD_SCRAM protocol errors on arbitrary strings (property)", () => {
  fc.assert(
    fc.property(scramish, (text) => {
      onlyBadScram(() => parseClientFirst(text));
      onlyBadScram(() => parseClientFinal(text));
      onlyBadScram(() => parseServerFirst(text));
      onlyBadScram(() => parseServerFinal(text));
    }),
    { numRuns: 2000 },
  );
});
