import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { decodePem, encodePem } from "../../lib/crypto/pem.ts";

Deno.test("encodePem wraps base64 at 64 columns between BEGIN and END lines", () => {
  const der = new Uint8Array(100).map((_, i) => i);
  const pem = encodePem("PUBLIC KEY", der);
  const lines = pem.split("\n");
  assert.equal(lines[0], "-----BEGIN PUBLIC KEY-----");
  assert.equal(lines.at(-2), "-----END PUBLIC KEY-----");
  assert.equal(lines.at(-1), "", "ends in a newline");
  const body = lines.slice(1, -2);
  assert.deepEqual(body.map((l) => l.length), [64, 64, 8]);
  assert.equal(body.join(""), Buffer.from(der).toString("base64"));
});

Deno.test("decodePem inverts encodePem for any bytes (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (der) => {
      const pem = encodePem("CERTIFICATE", der);
      assert.ok(pem.split("\n").every((l) => l.length <= 64));
      assert.deepEqual(decodePem(pem, "CERTIFICATE"), der);
    }),
  );
});

Deno.test("decodePem finds the block with the asked label among others and tolerates CRLF", () => {
  const a = new Uint8Array([1, 2, 3]);
  const b = new Uint8Array(70).fill(9);
  const text = `junk\n${encodePem("CERTIFICATE", a)}${encodePem("PRIVATE KEY", b)}`.replaceAll("\n", "\r\n");
  assert.deepEqual(decodePem(text, "PRIVATE KEY"), b);
  assert.deepEqual(decodePem(text, "CERTIFICATE"), a);
});

Deno.test("decodePem refuses a missing block or a body that is not base64 with a TypeError", () => {
  const pem = encodePem("CERTIFICATE", new Uint8Array([1, 2, 3]));
  assert.throws(() => decodePem(pem, "PRIVATE KEY"), {
    name: "TypeError",
    message: "No PEM block: expected PRIVATE KEY",
  });
  assert.throws(() => decodePem("-----BEGIN X-----\nAAAA\n", "X"), TypeError);
  assert.throws(() => decodePem("-----BEGIN X-----\n!!!!\n-----END X-----\n", "X"), {
    name: "TypeError",
    message: "Invalid PEM block: X body is not base64",
  });
  assert.throws(() => decodePem(encodePem("RSA PRIVATE KEY", new Uint8Array(4)), "PRIVATE KEY"), TypeError);
});
