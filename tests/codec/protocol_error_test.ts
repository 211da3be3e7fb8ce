import assert from "node:assert/strict";
import { describeError, ERROR_CODES, isErrorCode, ProtocolError } from "../../lib/codec/protocol_error.ts";

Deno.test("ProtocolError carries its code, message, details and name", () => {
  const err = new ProtocolError("AUTH_FAILED", "Authentication failed: nope", { scram: "invalid-proof" });
  assert.ok(err instanceof Error);
  assert.equal(err.name, "ProtocolError");
  assert.equal(err.code, "AUTH_FAILED");
  assert.equal(err.message, "Authentication failed: nope");
  assert.deepEqual(err.details, { scram: "invalid-proof" });
  assert.deepEqual(new ProtocolError("INTERNAL", "x").details, {});
});

Deno.test("isErrorCode accepts exactly the listed codes", () => {
  for (const code of ERROR_CODES) assert.ok(isErrorCode(code));
  for (const other of ["auth_failed", "", "OK", 1, null, undefined]) assert.equal(isErrorCode(other), false);
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length);
});

Deno.test("describeError shows the code of protocol errors only", () => {
  assert.equal(describeError(new ProtocolError("BAD_JSON", "Bad")), "Bad (BAD_JSON)");
  assert.equal(describeError(new TypeError("Plain")), "Plain");
  assert.equal(describeError("text"), "text");
});

Deno.test("ERROR_CODES are exactly the codes docs/PROTOCOL.md section 9 lists, in order", async () => {
  const doc = await Deno.readTextFile(new URL("../../docs/PROTOCOL.md", import.meta.url));
  const section = doc.slice(doc.indexOf("## 9. Error codes"), doc.indexOf("## 10."));
  const listed = [...section.matchAll(/^\| `([A-Z_]+)` +\|/gm)].map((m) => m[1]);
  assert.deepEqual(listed, [...ERROR_CODES]);
});
