import assert from "node:assert/strict";
import { FrameDecoder } from "../../lib/codec/frame.ts";
import {
  CLIENT_OPS,
  decodeClientMessage,
  decodeServerMessage,
  encodeMessage,
  errorFromMessage,
  errorMessage,
  MAX_ID,
  parseJsonObject,
  peekId,
} from "../../lib/codec/messages.ts";
import type { ClientMessage } from "../../lib/codec/messages.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";
import type { ErrorCode } from "../../lib/codec/protocol_error.ts";

const utf8 = new TextEncoder();

function json(text: string): Uint8Array {
  return utf8.encode(text);
}

function decode(value: unknown): ClientMessage {
  return decodeClientMessage(json(JSON.stringify(value)));
}

function assertCode(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ProtocolError, `expected a ProtocolError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const SEALED = { key: "a2V5", iv: "aXZpdml2aXZpdml2", ct: "Y3Q=" };
/** A verifier's shape (the codec bounds its length; the server checks its parts). */
const VERIFIER = `SCRAM-SHA-256$4096:${"A".repeat(22)}==$${"A".repeat(43)}=:${"A".repeat(43)}=`;
/** 32 zero bytes in base64: the shape of an Ed25519 public key. */
const IDENTITY_KEY = "A".repeat(43) + "=";
const BACKUP = {
  v: 1,
  kdf: "argon2id",
  m: 19456,
  t: 2,
  p: 1,
  salt: "c2FsdHNhbHRzYWx0c2FsdA==",
  iv: "aXZpdml2aXZpdml2",
  ct: "Y3Q=",
};

/** One valid message per client op, with every optional field used somewhere. */
const VALID: Record<string, Record<string, unknown>> = {
  HELLO: { op: "HELLO", id: 1, version: 1 },
  REGISTER: {
    op: "REGISTER",
    id: 2,
    user: "alice",
    sealed: SEALED,
    identity: { key: IDENTITY_KEY, backup: BACKUP },
  },
  LOGIN: { op: "LOGIN", id: 3, mechanism: "SCRAM-SHA-256", data: "n,,n=alice,r=abc" },
  PROOF: { op: "PROOF", id: 4, data: "c=biws,r=abcdef,p=AAAA" },
  IS_LOGGED: { op: "IS_LOGGED", id: 5 },
  ACCESS: { op: "ACCESS" },
  PASSWD: {
    op: "PASSWD",
    id: 7,
    mechanism: "SCRAM-SHA-256",
    data: "n,,n=alice,r=abc",
    verifier: VERIFIER,
    backup: BACKUP,
  },
  DELETE: { op: "DELETE", id: MAX_ID, mechanism: "SCRAM-SHA-256", data: "n,,n=alice,r=abc" },
  LOGOUT: { op: "LOGOUT", id: 0 },
  CLOSE: { op: "CLOSE", id: 9 },
  IDENTITY: { op: "IDENTITY", id: 10, key: IDENTITY_KEY, backup: BACKUP },
  LIST: { op: "LIST", id: 11, after: "bob" },
  PEER: { op: "PEER", id: 12, user: "Bob" },
  PING: { op: "PING", id: 13 },
};

Deno.test("decodeClientMessage accepts a valid message of every client op", () => {
  assert.deepEqual(Object.keys(VALID).sort(), [...CLIENT_OPS].sort(), "one sample per op");
  for (const [op, msg] of Object.entries(VALID)) {
    assert.deepEqual(decode(msg), msg, op);
  }
});

Deno.test("decodeClientMessage accepts REGISTER with a verifier in clear and no id", () => {
  const msg = { op: "REGISTER", user: "bob", verifier: VERIFIER };
  assert.deepEqual(decode(msg), msg);
});

Deno.test("decodeClientMessage refuses the password field REGISTER and PASSWD no longer have", () => {
  assertCode(
    () => decode({ op: "REGISTER", user: "bob", password: "correct horse battery" }),
    "BAD_MESSAGE",
    /msg\.password: unknown field/,
  );
  assertCode(
    () => decode({ op: "PASSWD", mechanism: "SCRAM-SHA-256", data: "x", password: "correct horse battery" }),
    "BAD_MESSAGE",
    /msg\.password: unknown field/,
  );
  assertCode(() => decode({ op: "REGISTER", user: "bob", verifier: 42 }), "BAD_MESSAGE", /msg\.verifier/);
});

Deno.test("decodeClientMessage reads a null optional field as absent", () => {
  assert.deepEqual(decode({ op: "LOGOUT", id: null }), { op: "LOGOUT" });
});

Deno.test("decodeClientMessage refuses invalid UTF-8 with BAD_ENCODING", () => {
  assertCode(() => decodeClientMessage(new Uint8Array([0x7b, 0xff, 0x7d])), "BAD_ENCODING");
  // Overlong "/" and an encoded lone surrogate are not UTF-8 either.
  assertCode(() => decodeClientMessage(new Uint8Array([0x22, 0xc0, 0xaf, 0x22])), "BAD_ENCODING");
  assertCode(() => decodeClientMessage(new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22])), "BAD_ENCODING");
});

Deno.test("decodeClientMessage refuses an empty frame with BAD_FRAME", () => {
  assertCode(() => decodeClientMessage(new Uint8Array(0)), "BAD_FRAME");
});

Deno.test("decodeClientMessage refuses non-JSON and JSON that is not an object with BAD_JSON", () => {
  for (const text of ["hello", "{", '{"op":"HELLO",}', "[1]", "[]", "42", "null", '"HELLO"', "true"]) {
    assertCode(() => decodeClientMessage(json(text)), "BAD_JSON");
  }
});

Deno.test("decodeClientMessage refuses an unknown op with UNKNOWN_COMMAND", () => {
  assertCode(() => decode({ op: "FLY" }), "UNKNOWN_COMMAND", /^Unknown command: "FLY"$/);
  assertCode(() => decode({ op: "hello", version: 1 }), "UNKNOWN_COMMAND");
  assertCode(() => decode({ op: "X".repeat(100) }), "UNKNOWN_COMMAND", new RegExp(`"${"X".repeat(32)}…"`));
});

Deno.test("decodeClientMessage treats inherited property names as unknown commands", () => {
  for (const op of ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"]) {
    assertCode(() => decodeClientMessage(json(`{"op":${JSON.stringify(op)}}`)), "UNKNOWN_COMMAND");
  }
});

Deno.test("decodeClientMessage refuses a missing or non-string op with BAD_MESSAGE", () => {
  assertCode(() => decode({ id: 1 }), "BAD_MESSAGE", /msg\.op/);
  assertCode(() => decode({ op: 1 }), "BAD_MESSAGE", /msg\.op/);
  assertCode(() => decode({ op: ["HELLO"] }), "BAD_MESSAGE");
});

Deno.test("decodeClientMessage refuses missing and extra fields with BAD_MESSAGE", () => {
  assertCode(() => decode({ op: "HELLO" }), "BAD_MESSAGE", /^Invalid field msg\.version: missing$/);
  assertCode(() => decode({ op: "LOGIN", mechanism: "SCRAM-SHA-256" }), "BAD_MESSAGE", /msg\.data/);
  assertCode(() => decode({ op: "HELLO", version: 1, extra: 1 }), "BAD_MESSAGE", /msg\.extra: unknown field/);
  assertCode(
    () => decode({ op: "REGISTER", user: "a", sealed: { ...SEALED, extra: "x" } }),
    "BAD_MESSAGE",
    /msg\.sealed\.extra/,
  );
  assertCode(() => decode({ op: "HELLO", version: null }), "BAD_MESSAGE", /msg\.version/);
});

Deno.test("decodeClientMessage refuses wrong field types with BAD_MESSAGE", () => {
  const cases: Record<string, unknown>[] = [
    { op: "HELLO", version: "1" },
    { op: "HELLO", version: true },
    { op: "REGISTER", user: 5 },
    { op: "REGISTER", user: ["a"] },
    { op: "REGISTER", user: "a", sealed: "c2VhbGVk" },
    { op: "REGISTER", user: "a", sealed: { ...SEALED, iv: 12 } },
    { op: "REGISTER", user: "a", sealed: { ...SEALED, ct: "not base64!" } },
    { op: "LOGIN", mechanism: {}, data: "x" },
    { op: "PROOF", data: 1 },
  ];
  for (const msg of cases) assertCode(() => decode(msg), "BAD_MESSAGE", undefined);
});

Deno.test("decodeClientMessage enforces string length bounds with BAD_MESSAGE", () => {
  assert.equal(decode({ op: "REGISTER", user: "u".repeat(1024) }).op, "REGISTER");
  assertCode(() => decode({ op: "REGISTER", user: "u".repeat(1025) }), "BAD_MESSAGE", /longer than 1024/);
  assert.equal(decode({ op: "REGISTER", user: "u", verifier: "v".repeat(512) }).op, "REGISTER");
  assertCode(
    () => decode({ op: "REGISTER", user: "u", verifier: "v".repeat(513) }),
    "BAD_MESSAGE",
    /msg\.verifier.*longer than 512/,
  );
  assertCode(
    () => decode({ op: "PASSWD", mechanism: "M", data: "x", verifier: "v".repeat(513) }),
    "BAD_MESSAGE",
    /msg\.verifier/,
  );
  assert.equal(decode({ op: "PROOF", data: "d".repeat(4096) }).op, "PROOF");
  assertCode(() => decode({ op: "PROOF", data: "d".repeat(4097) }), "BAD_MESSAGE", /msg\.data/);
  assertCode(() => decode({ op: "PROOF", data: "" }), "BAD_MESSAGE", /shorter than 1/);
  assertCode(() => decode({ op: "LOGIN", mechanism: "M".repeat(65), data: "x" }), "BAD_MESSAGE");
  assertCode(() => decode({ op: "LOGIN", mechanism: "", data: "x" }), "BAD_MESSAGE");
  assertCode(
    () => decode({ op: "REGISTER", user: "u", sealed: { ...SEALED, key: "A".repeat(1028) } }),
    "BAD_MESSAGE",
  );
});

Deno.test("decodeClientMessage refuses non-integer or out-of-range id and version with BAD_MESSAGE", () => {
  for (const id of [1.5, -1, MAX_ID + 1, 2 ** 53, "1"]) {
    assertCode(() => decode({ op: "LOGOUT", id }), "BAD_MESSAGE", /msg\.id/);
  }
  for (const version of [-1, 65536, 0.5]) {
    assertCode(() => decode({ op: "HELLO", version }), "BAD_MESSAGE", /msg\.version/);
  }
  assertCode(() => decodeClientMessage(json('{"op":"HELLO","version":1e400}')), "BAD_MESSAGE");
  assert.equal(decode({ op: "HELLO", version: 65535, id: MAX_ID }).id, MAX_ID);
});

Deno.test("decodeClientMessage refuses __proto__ and constructor keys without polluting prototypes", () => {
  assertCode(
    () => decodeClientMessage(json('{"op":"LOGOUT","__proto__":{"id":5,"polluted":true}}')),
    "BAD_MESSAGE",
    /msg\.__proto__/,
  );
  assertCode(() => decodeClientMessage(json('{"op":"LOGOUT","constructor":{}}')), "BAD_MESSAGE");
  assertCode(
    () =>
      decodeClientMessage(
        json(`{"op":"REGISTER","user":"a","sealed":{"__proto__":{},"key":"","iv":"","ct":""}}`),
      ),
    "BAD_MESSAGE",
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("decodeClientMessage turns deeply nested JSON into a ProtocolError", () => {
  const depth = 100_000;
  assertCode(() => decodeClientMessage(json("[".repeat(depth))), "BAD_JSON");
  assertCode(() => decodeClientMessage(json("[".repeat(depth) + "]".repeat(depth))), "BAD_JSON");
  const nested = `{"op":"LOGOUT","id":${"[".repeat(depth)}${"]".repeat(depth)}}`;
  assertCode(() => decodeClientMessage(json(nested)), "BAD_MESSAGE");
  const nestedObjects = `{"op":"LOGOUT","x":${'{"a":'.repeat(depth)}1${"}".repeat(depth)}}`;
  assertCode(() => decodeClientMessage(json(nestedObjects)), "BAD_MESSAGE");
});

Deno.test("peekId reads a valid id from a message that is otherwise invalid", () => {
  assert.equal(peekId(parseJsonObject(json('{"op":"NOPE","id":7}'))), 7);
  assert.equal(peekId({ id: 0 }), 0);
  assert.equal(peekId({ id: MAX_ID }), MAX_ID);
  for (const id of [1.5, -1, MAX_ID + 1, "7", null, true, [7]]) assert.equal(peekId({ id }), undefined);
  assert.equal(peekId({}), undefined);
});

Deno.test("errorMessage carries code, message, id and every detail, and omits absent ones", () => {
  const err = new ProtocolError("RATE_LIMITED", "Too many failures: wait", {
    retryAfterMs: 1500,
    fatal: true,
    scram: "other-error",
    reason: "backoff",
  });
  assert.deepEqual(errorMessage(err, 12), {
    op: "ERROR",
    id: 12,
    code: "RATE_LIMITED",
    message: "Too many failures: wait",
    fatal: true,
    scram: "other-error",
    reason: "backoff",
    retry_after_ms: 1500,
  });
  assert.deepEqual(errorMessage(new ProtocolError("AUTH_FAILED", "No", { fatal: false })), {
    op: "ERROR",
    code: "AUTH_FAILED",
    message: "No",
  });
});

Deno.test("errorFromMessage inverts errorMessage through the wire format", () => {
  const original = new ProtocolError("PASSWORD_POLICY", "Password refused: too short", {
    reason: "too_short",
    fatal: true,
    scram: "x",
    retryAfterMs: 0,
  });
  const decoder = new FrameDecoder();
  const [payload] = decoder.push(encodeMessage(errorMessage(original, 3)));
  assert.ok(payload);
  const msg = decodeServerMessage(payload);
  assert.equal(msg.op, "ERROR");
  if (msg.op !== "ERROR") return;
  const back = errorFromMessage(msg);
  assert.ok(back instanceof ProtocolError);
  assert.equal(back.code, original.code);
  assert.equal(back.message, original.message);
  assert.deepEqual(back.details, original.details);
});

Deno.test("errorFromMessage maps an unknown code to INTERNAL and keeps the text", () => {
  const err = errorFromMessage({ op: "ERROR", code: "SOMETHING_NEW", message: "Future error" });
  assert.equal(err.code, "INTERNAL");
  assert.equal(err.message, "Future error");
  assert.deepEqual(err.details, {});
});

Deno.test("decodeServerMessage tolerates extra fields from newer servers", () => {
  const hello = {
    op: "HELLO",
    server: "authchat 9",
    version: 1,
    versions: [1, 2],
    mechanisms: ["SCRAM-SHA-256"],
    confidential: true,
    seal_key: "AAAA",
    seal_nonce: "bm9uY2U=",
    iterations: 600_000,
    password_min_length: 10,
    future: { anything: [1, 2, 3] },
  };
  const msg = decodeServerMessage(json(JSON.stringify(hello)));
  const { future: _, ...known } = hello;
  assert.deepEqual(msg, known);
  assert.equal(decodeServerMessage(json('{"op":"LOGOUT","id":1,"new":true}')).op, "LOGOUT");
  assert.equal(decodeServerMessage(json('{"op":"BYE","code":"SHUTDOWN","reason":"bye","x":1}')).op, "BYE");
});

Deno.test("decodeServerMessage requires HELLO's iteration count and shortest password", () => {
  const hello = {
    op: "HELLO",
    server: "authchat",
    version: 1,
    versions: [1],
    mechanisms: ["SCRAM-SHA-256"],
    confidential: false,
    seal_key: "AAAA",
    seal_nonce: "bm9uY2U=",
    iterations: 4096,
    password_min_length: 12,
  };
  assert.deepEqual(decodeServerMessage(json(JSON.stringify(hello))), hello);
  const { iterations: _i, ...noIterations } = hello;
  const { password_min_length: _p, ...noMinLength } = hello;
  const cases: [Record<string, unknown>, RegExp][] = [
    [noIterations, /msg\.iterations/],
    [noMinLength, /msg\.password_min_length/],
    [{ ...hello, iterations: 0 }, /msg\.iterations/],
    [{ ...hello, iterations: 4096.5 }, /msg\.iterations/],
    [{ ...hello, iterations: "4096" }, /msg\.iterations/],
    [{ ...hello, password_min_length: 0 }, /msg\.password_min_length/],
    [{ ...hello, password_min_length: 257 }, /msg\.password_min_length/],
  ];
  for (const [msg, message] of cases) {
    assertCode(() => decodeServerMessage(json(JSON.stringify(msg))), "BAD_MESSAGE", message);
  }
});

Deno.test("decodeServerMessage still refuses wrong types and unknown ops", () => {
  assertCode(() => decodeServerMessage(json('{"op":"IS_LOGGED","logged_in":"yes"}')), "BAD_MESSAGE");
  assertCode(() => decodeServerMessage(json('{"op":"PROOF","data":"x"}')), "UNKNOWN_COMMAND");
  assertCode(() => decodeServerMessage(json('{"op":"ERROR","code":"X"}')), "BAD_MESSAGE", /msg\.message/);
});

Deno.test("encodeMessage frames a client message that decodes back to itself", () => {
  const msg: ClientMessage = { op: "LOGIN", id: 4, mechanism: "SCRAM-SHA-256", data: "n,,n=ünïcødé,r=x" };
  const frames = new FrameDecoder().push(encodeMessage(msg));
  assert.equal(frames.length, 1);
  assert.deepEqual(decodeClientMessage(frames[0]!), msg);
});

Deno.test("encodeMessage refuses a message larger than one frame with a RangeError", () => {
  assert.throws(
    () => encodeMessage({ op: "ERROR", code: "INTERNAL", message: "x".repeat(70_000) }),
    RangeError,
  );
});

Deno.test("decodeServerMessage accepts the chat replies and unsolicited PRESENCE", () => {
  const samples = [
    {
      op: "LOGIN",
      id: 3,
      user: "alice",
      data: "v=abc",
      identity: { key: IDENTITY_KEY, backup: BACKUP },
      udp: { port: 1991, handle: "AAAAAAAAAAAAAAAAAAAAAA==", relay_id: 7 },
    },
    { op: "IDENTITY", id: 4, key: IDENTITY_KEY, fingerprint: "SHA256:x" },
    {
      op: "LIST",
      id: 5,
      users: [{ user: "alice", key: IDENTITY_KEY, fingerprint: "SHA256:x" }, { user: "bob" }],
    },
    { op: "LIST", id: 6, users: [], next: "bob" },
    {
      op: "PEER",
      id: 7,
      user: "bob",
      key: IDENTITY_KEY,
      fingerprint: "SHA256:x",
      relay_id: 2,
      address: "2001:db8::1",
      port: 40000,
    },
    { op: "PONG", id: 8 },
    { op: "PRESENCE", user: "bob", state: "offline" },
    { op: "PRESENCE", user: "bob", state: "online", key: IDENTITY_KEY, fingerprint: "SHA256:x" },
    { op: "BYE", code: "KEEPALIVE_TIMEOUT", reason: "No keepalive for 15 s: session closed" },
  ];
  for (const sample of samples) {
    assert.deepEqual(decodeServerMessage(json(JSON.stringify(sample))), sample, sample.op);
  }
});

Deno.test("decodeServerMessage refuses malformed chat replies with BAD_MESSAGE", () => {
  const cases = [
    { op: "PRESENCE", user: "bob", state: "away" },
    { op: "PRESENCE", user: "bob", state: "online", key: "short" },
    { op: "LOGIN", user: "a", data: "v=x", udp: { port: 0, handle: "AAAA", relay_id: 1 } },
    { op: "LOGIN", user: "a", data: "v=x", identity: { key: IDENTITY_KEY } },
    { op: "PEER", user: "bob", key: IDENTITY_KEY, fingerprint: "f", relay_id: -1, address: "h", port: 1 },
    { op: "LIST", users: "alice" },
  ];
  for (const msg of cases) assertCode(() => decodeServerMessage(json(JSON.stringify(msg))), "BAD_MESSAGE");
});

Deno.test("decodeClientMessage refuses an identity key of the wrong length and a backup of the wrong shape", () => {
  assertCode(
    () => decode({ op: "IDENTITY", key: "A".repeat(40), backup: BACKUP }),
    "BAD_MESSAGE",
    /msg\.key/,
  );
  assertCode(
    () => decode({ op: "IDENTITY", key: IDENTITY_KEY, backup: { ...BACKUP, kdf: "scrypt" } }),
    "BAD_MESSAGE",
  );
  assertCode(() => decode({ op: "IDENTITY", key: IDENTITY_KEY, backup: { ...BACKUP, v: 2 } }), "BAD_MESSAGE");
  assertCode(
    () => decode({ op: "PASSWD", mechanism: "SCRAM-SHA-256", data: "x", backup: { ...BACKUP, extra: 1 } }),
    "BAD_MESSAGE",
  );
  assertCode(() => decode({ op: "PEER" }), "BAD_MESSAGE", /msg\.user/);
  assertCode(() => decode({ op: "LIST", after: 5 }), "BAD_MESSAGE", /msg\.after/);
});
