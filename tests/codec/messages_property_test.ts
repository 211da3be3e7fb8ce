import assert from "node:assert/strict";
import fc from "fast-check";
import { CLIENT_OPS, decodeClientMessage, decodeServerMessage } from "../../lib/codec/messages.ts";
import { ERROR_CODES, ProtocolError } from "../../lib/codec/protocol_error.ts";

const utf8 = new TextEncoder();

/** Run a decoder and fail unless it returns or throws a ProtocolError with a known code. */
function onlyProtocolErrors(decode: (payload: Uint8Array) => unknown, payload: Uint8Array): void {
  try {
    decode(payload);
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `threw ${String(err)}`);
    assert.ok((ERROR_CODES as readonly string[]).includes(err.code), err.code);
  }
}

Deno.test("decodeClientMessage throws only ProtocolError for any JSON value (property)", () => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      onlyProtocolErrors(decodeClientMessage, utf8.encode(JSON.stringify(value)));
      onlyProtocolErrors(decodeServerMessage, utf8.encode(JSON.stringify(value)));
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeClientMessage throws only ProtocolError for any object (property)", () => {
  fc.assert(
    fc.property(fc.object({ withNullPrototype: true, withObjectString: true }), (value) => {
      const text = JSON.stringify(value);
      if (text === undefined) return;
      onlyProtocolErrors(decodeClientMessage, utf8.encode(text));
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeClientMessage throws only ProtocolError for objects shaped like commands (property)", () => {
  const field = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string(), fc.integer(), fc.double());
  const keys = fc.constantFrom(
    "id",
    "version",
    "user",
    "verifier",
    "password",
    "sealed",
    "mechanism",
    "data",
    "x",
  );
  const message = fc.record({
    op: fc.oneof(fc.constantFrom(...CLIENT_OPS), fc.string()),
    fields: fc.dictionary(keys, field, { maxKeys: 5 }),
  });
  fc.assert(
    fc.property(message, ({ op, fields }) => {
      onlyProtocolErrors(decodeClientMessage, utf8.encode(JSON.stringify({ ...fields, op })));
    }),
    { numRuns: 1000 },
  );
});

Deno.test("decodeClientMessage throws only ProtocolError for random bytes (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => onlyProtocolErrors(decodeClientMessage, bytes)),
    { numRuns: 1000 },
  );
});
