import assert from "node:assert/strict";
import { join } from "node:path";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { MAX_FRAME_BYTES } from "../../lib/codec/frame.ts";
import { decodeServerMessage, MAX_ID } from "../../lib/codec/messages.ts";
import { ERROR_CODES } from "../../lib/codec/protocol_error.ts";
import type { ErrorCode } from "../../lib/codec/protocol_error.ts";
import { formatVerifier } from "../../lib/crypto/scram_verifier.ts";
import { installKeys, runCli, seedUsers, ServerProcess, tempDir, TEST_ITERATIONS } from "./_harness.ts";
import {
  clientVerifier,
  frameHeader,
  hello,
  jsonFrame,
  RawClient,
  scramLogin,
  sealVerifier,
} from "./_raw_client.ts";
import type { Reply } from "./_raw_client.ts";

const ALICE = { user: "alice", password: "tulip orbit canyon 7" };
const encoder = new TextEncoder();

/** Where a row's steps run: the HELLO reply (when the row said HELLO) and writes still in flight. */
interface RowEnv {
  greeting: Reply | null;
  inFlight: Promise<unknown>[];
}

/** Raw bytes, a JSON message sent as a frame, a half-close, or a scripted exchange. */
type Step = Uint8Array | Record<string, unknown> | "closeWrite" | Exchange;
type Exchange = (c: RawClient, env: RowEnv) => Promise<void>;

interface Row {
  name: string;
  /** Say HELLO (and check the greeting) before the steps. */
  hello: boolean;
  steps: Step[];
  /** The code of the ERROR frame the last step must draw. */
  code: ErrorCode;
  /** The server closes the connection after the error. */
  fatal: boolean;
  /** The id the error must echo, or `null` for none. */
  id: number | null;
  message?: string | RegExp;
  scram?: string;
  reason?: string;
  /** The user IS_LOGGED must still report after the error (default: logged out). */
  loggedInAs?: string;
}

function bytes(...parts: (Uint8Array | string | number[])[]): Uint8Array {
  const chunks = parts.map((p) => typeof p === "string" ? encoder.encode(p) : new Uint8Array(p));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** A message for assertion output, with long strings cut short. */
function brief(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) => typeof v === "string" && v.length > 120 ? `${v.slice(0, 60)}…(${v.length} chars)` : v,
  );
}

/** A frame around any payload bytes (below the cap). */
function rawFrame(payload: Uint8Array | string | number[]): Uint8Array {
  const body = bytes(payload);
  return bytes(frameHeader(body.length), body);
}

function mechanisms(env: RowEnv): string[] {
  assert.ok(env.greeting, "this row needs HELLO first");
  return env.greeting.mechanisms as string[];
}

/** Send LOGIN and expect a CHALLENGE; returns the SCRAM client and the server-first-message. */
async function beginLogin(
  c: RawClient,
  env: RowEnv,
  credentials: { user: string; password: string; nonce?: string },
  id: number,
): Promise<{ scram: ScramClient; serverFirst: string }> {
  const scram = new ScramClient({
    username: credentials.user,
    password: credentials.password,
    serverMechanisms: mechanisms(env),
    ...(credentials.nonce === undefined ? {} : { nonce: credentials.nonce }),
  });
  const challenge = await c.request({ op: "LOGIN", id, mechanism: scram.mechanism, data: scram.first });
  assert.equal(challenge.op, "CHALLENGE", JSON.stringify(challenge));
  assert.equal(challenge.id, id);
  return { scram, serverFirst: String(challenge.data) };
}

const NUL_USER = "a\u0000b";
const JUNK_SEALED = { key: "AAAA", iv: "AAAAAAAAAAAAAAAA", ct: "Zm9vYmFy" };
const ONE_MB_NAME = "u".repeat(1024 * 1024);
const ONE_MB_PAYLOAD = encoder.encode(
  JSON.stringify({ op: "REGISTER", id: 3, user: ONE_MB_NAME, verifier: "x".repeat(12) }),
);

/** A frame of exactly `size` bytes: `prefix`, then `fill` repeated, then `suffix`. */
function frameOfSize(size: number, prefix: string, fill: string, suffix: string): Uint8Array {
  const payload = prefix + fill.repeat(size - prefix.length - suffix.length) + suffix;
  assert.equal(encoder.encode(payload).length, size);
  return rawFrame(payload);
}

/**
 * A verifier of the right form (what the server checks) but of no password, or with one part changed to
 * test a refusal: the server's iteration count, a 16-byte salt, 32-byte keys.
 */
function verifierText(options: { iterations?: number; saltBytes?: number } = {}): string {
  return formatVerifier({
    iterations: options.iterations ?? TEST_ITERATIONS,
    salt: new Uint8Array(options.saltBytes ?? 16).fill(7),
    storedKey: new Uint8Array(32).fill(1),
    serverKey: new Uint8Array(32).fill(2),
  });
}
const VERIFIER = verifierText();

/** Seal a verifier (or any text or bytes) with the row's HELLO, for `op` by or for `user`. */
async function sealedFor(
  env: RowEnv,
  op: "REGISTER" | "PASSWD",
  user: string,
  verifier: string | Uint8Array<ArrayBuffer> = VERIFIER,
) {
  assert.ok(env.greeting, "sealing needs HELLO first");
  return await sealVerifier(env.greeting, { op, user, verifier });
}

/** A step sending REGISTER of mallory with `verifier` (or any text or bytes) sealed. */
function sealedRegister(id: number, verifier: string | Uint8Array<ArrayBuffer>): Exchange {
  return async (c, env) => {
    const sealed = await sealedFor(env, "REGISTER", "mallory", verifier);
    await c.send({ op: "REGISTER", id, user: "mallory", sealed });
  };
}

/** A step logging alice in, then sending PASSWD with `fields` carrying the new verifier. */
function passwdAfterLogin(id: number, fields: (env: RowEnv) => Promise<Record<string, unknown>>): Exchange {
  return async (c, env) => {
    await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
    const data = "n,,n=alice,r=abcdefgh";
    await c.send({ op: "PASSWD", id, mechanism: "SCRAM-SHA-256", data, ...await fields(env) });
  };
}

const ROWS: Row[] = [
  {
    name: "frame header of 70000 bytes → FRAME_TOO_LARGE, fatal",
    hello: false,
    steps: [frameHeader(70000)],
    code: "FRAME_TOO_LARGE",
    fatal: true,
    id: null,
    message: "Frame too large: 70000 bytes exceeds 65536",
  },
  {
    name: "frame header 0xFFFFFFFF → FRAME_TOO_LARGE, fatal",
    hello: true,
    steps: [frameHeader(0xFFFFFFFF)],
    code: "FRAME_TOO_LARGE",
    fatal: true,
    id: null,
    message: "Frame too large: 4294967295 bytes exceeds 65536",
  },
  {
    name: "1 MB user name inside a too-large frame → FRAME_TOO_LARGE, fatal, nothing buffered",
    hello: true,
    steps: [(c, env) => {
      // The server stops reading at the header, so this write may fail with a reset: keep it aside.
      env.inFlight.push(
        c.sendBytes(bytes(frameHeader(ONE_MB_PAYLOAD.length), ONE_MB_PAYLOAD)).catch(() => {}),
      );
      return Promise.resolve();
    }],
    code: "FRAME_TOO_LARGE",
    fatal: true,
    id: null,
    message: `Frame too large: ${ONE_MB_PAYLOAD.length} bytes exceeds ${MAX_FRAME_BYTES}`,
  },
  {
    name: "frame of exactly 65536 bytes is read whole → BAD_MESSAGE for its unknown field",
    hello: true,
    steps: [frameOfSize(MAX_FRAME_BYTES, '{"op":"IS_LOGGED","id":32,"pad":"', "x", '"}')],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 32,
    message: "Invalid field msg.pad: unknown field",
  },
  {
    name: "frame of 65537 bytes → FRAME_TOO_LARGE, fatal",
    hello: true,
    steps: [(c, env) => {
      const frame = frameOfSize(MAX_FRAME_BYTES + 1, '{"op":"IS_LOGGED","id":33,"pad":"', "x", '"}');
      env.inFlight.push(c.sendBytes(frame).catch(() => {}));
      return Promise.resolve();
    }],
    code: "FRAME_TOO_LARGE",
    fatal: true,
    id: null,
    message: "Frame too large: 65537 bytes exceeds 65536",
  },
  {
    name: "valid frame and an oversize header in one write → the valid one is answered, then FRAME_TOO_LARGE",
    hello: true,
    steps: [async (c) => {
      await c.sendBytes(bytes(jsonFrame({ op: "ACCESS", id: 34 }), frameHeader(70000)));
      const first = await c.reply();
      assert.equal(first.code, "NOT_LOGGED_IN", JSON.stringify(first));
      assert.equal(first.id, 34);
    }],
    code: "FRAME_TOO_LARGE",
    fatal: true,
    id: null,
    message: "Frame too large: 70000 bytes exceeds 65536",
  },
  {
    name: "truncated frame (header says 100, 10 bytes, end of stream) → BAD_FRAME, fatal",
    hello: true,
    steps: [bytes(frameHeader(100), '{"op":"HE'.padEnd(10, " ")), "closeWrite"],
    code: "BAD_FRAME",
    fatal: true,
    id: null,
    message: "Truncated frame: stream ended after 10 of 100 payload bytes",
  },
  {
    name: "truncated header (2 of 4 bytes, end of stream) → BAD_FRAME, fatal",
    hello: false,
    steps: [new Uint8Array([0, 0]), "closeWrite"],
    code: "BAD_FRAME",
    fatal: true,
    id: null,
    message: "Truncated frame: stream ended after 2 of 4 header bytes",
  },
  {
    name: "empty frame → BAD_FRAME, not fatal",
    hello: false,
    steps: [frameHeader(0)],
    code: "BAD_FRAME",
    fatal: false,
    id: null,
    message: /^Empty frame/,
  },
  {
    name: "invalid UTF-8 payload → BAD_ENCODING",
    hello: true,
    steps: [rawFrame([0x7b, 0x22, 0x6f, 0x70, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
    code: "BAD_ENCODING",
    fatal: false,
    id: null,
    message: "Invalid UTF-8 in frame",
  },
  {
    name: "UTF-8-encoded lone surrogate (CESU-8) → BAD_ENCODING",
    hello: true,
    steps: [rawFrame(bytes('{"op":"', [0xed, 0xa0, 0x80], '"}'))],
    code: "BAD_ENCODING",
    fatal: false,
    id: null,
  },
  {
    name: "payload that is not JSON → BAD_JSON",
    hello: true,
    steps: [rawFrame("op=HELLO&version=1")],
    code: "BAD_JSON",
    fatal: false,
    id: null,
    message: /^Frame is not valid JSON: /,
  },
  {
    name: "JSON array → BAD_JSON",
    hello: true,
    steps: [jsonFrame([{ op: "HELLO", version: 1, id: 4 }])],
    code: "BAD_JSON",
    fatal: false,
    id: null,
    message: "Frame is not a JSON object",
  },
  {
    name: "JSON nested 30000 levels deep → BAD_JSON, no stack overflow",
    hello: true,
    steps: [rawFrame("[".repeat(30000) + "]".repeat(30000))],
    code: "BAD_JSON",
    fatal: false,
    id: null,
  },
  {
    name: "unknown command → UNKNOWN_COMMAND, id echoed",
    hello: true,
    steps: [{ op: "SHUTDOWN", id: 5 }],
    code: "UNKNOWN_COMMAND",
    fatal: false,
    id: 5,
    message: 'Unknown command: "SHUTDOWN"',
  },
  {
    name: "__proto__ as command → UNKNOWN_COMMAND",
    hello: true,
    steps: [rawFrame('{"op":"__proto__","id":6}')],
    code: "UNKNOWN_COMMAND",
    fatal: false,
    id: 6,
  },
  {
    name: "unknown command with id 0 → UNKNOWN_COMMAND, id 0 echoed",
    hello: true,
    steps: [{ op: "FLY", id: 0 }],
    code: "UNKNOWN_COMMAND",
    fatal: false,
    id: 0,
  },
  {
    name: "ACCESS with id 2^31-1 → NOT_LOGGED_IN, id echoed",
    hello: true,
    steps: [{ op: "ACCESS", id: MAX_ID }],
    code: "NOT_LOGGED_IN",
    fatal: false,
    id: MAX_ID,
  },
  {
    // The schema error names the field, so the reply grows with the name (see the report).
    name: "unknown field with a 5000-character name → BAD_MESSAGE that fits the ERROR schema",
    hello: true,
    steps: [rawFrame(`{"op":"IS_LOGGED","id":30,"${"k".repeat(5000)}":1}`)],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 30,
  },
  {
    name: "unknown field whose name fills a 65536-byte frame → BAD_MESSAGE, not a dropped connection",
    hello: true,
    steps: [frameOfSize(MAX_FRAME_BYTES, '{"op":"IS_LOGGED","id":31,"', "k", '":1}')],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 31,
  },
  {
    name: "message without op → BAD_MESSAGE",
    hello: true,
    steps: [{ id: 7, version: 1 }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 7,
    message: "Invalid field msg.op: expected a string",
  },
  {
    name: "LOGIN before HELLO → OUT_OF_ORDER",
    hello: false,
    steps: [{ op: "LOGIN", id: 8, mechanism: "SCRAM-SHA-256", data: "n,,n=alice,r=abcdefgh" }],
    code: "OUT_OF_ORDER",
    fatal: false,
    id: 8,
    message: /^Send HELLO first/,
  },
  {
    name: "HELLO with version 2 → UNSUPPORTED_VERSION",
    hello: false,
    steps: [{ op: "HELLO", id: 9, version: 2 }],
    code: "UNSUPPORTED_VERSION",
    fatal: false,
    id: 9,
    message: "Unsupported protocol version: 2 (this server speaks 1)",
  },
  {
    name: "HELLO with an unknown field → BAD_MESSAGE",
    hello: false,
    steps: [{ op: "HELLO", id: 10, version: 1, admin: true }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 10,
    message: "Invalid field msg.admin: unknown field",
  },
  {
    name: "PROOF with no exchange in progress → OUT_OF_ORDER",
    hello: true,
    steps: [{ op: "PROOF", id: 11, data: "c=biws,r=abcdefgh,p=AAAA" }],
    code: "OUT_OF_ORDER",
    fatal: false,
    id: 11,
    message: /^No SCRAM exchange in progress/,
  },
  {
    name: "ACCESS when not logged in → NOT_LOGGED_IN",
    hello: true,
    steps: [{ op: "ACCESS", id: 12 }],
    code: "NOT_LOGGED_IN",
    fatal: false,
    id: 12,
  },
  {
    name: "LOGOUT when not logged in → NOT_LOGGED_IN",
    hello: true,
    steps: [{ op: "LOGOUT", id: 13 }],
    code: "NOT_LOGGED_IN",
    fatal: false,
    id: 13,
  },
  {
    name: "replayed client-final after LOGOUT and a new LOGIN → AUTH_FAILED",
    hello: true,
    steps: [async (c, env) => {
      const { clientFinal } = await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
      assert.equal((await c.request({ op: "LOGOUT", id: 4 })).op, "LOGOUT");
      await beginLogin(c, env, ALICE, 5);
      await c.send({ op: "PROOF", id: 6, data: clientFinal });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 6,
    scram: "other-error",
    message: /nonce does not match/,
  },
  {
    name: "replayed client-final with the same client nonce in a new exchange → AUTH_FAILED",
    hello: true,
    steps: [async (c, env) => {
      const nonce = "replayed-client-nonce-0123456789";
      const first = await beginLogin(c, env, { ...ALICE, nonce }, 4);
      const clientFinal = await first.scram.final(first.serverFirst);
      const ok = await c.request({ op: "PROOF", id: 5, data: clientFinal });
      assert.equal(ok.op, "LOGIN", JSON.stringify(ok));
      await beginLogin(c, env, { ...ALICE, nonce }, 6);
      await c.send({ op: "PROOF", id: 7, data: clientFinal });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 7,
  },
  {
    name: "client-final with a wrong nonce → AUTH_FAILED",
    hello: true,
    steps: [async (c, env) => {
      const { scram, serverFirst } = await beginLogin(c, env, ALICE, 4);
      const final = await scram.final(serverFirst);
      // The last character changed (to X, or to Y when it was X: one nonce in 64 ends in X).
      const tampered = final.replace(
        /,r=([^,]+),/,
        (_, nonce: string) => `,r=${nonce.slice(0, -1)}${nonce.endsWith("X") ? "Y" : "X"},`,
      );
      assert.notEqual(tampered, final);
      await c.send({ op: "PROOF", id: 5, data: tampered });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 5,
    scram: "other-error",
  },
  {
    name: "m= extension in client-first → BAD_SCRAM extensions-not-supported",
    hello: true,
    steps: [{ op: "LOGIN", id: 14, mechanism: "SCRAM-SHA-256", data: "n,,m=ext,n=alice,r=abcdefgh" }],
    code: "BAD_SCRAM",
    fatal: false,
    id: 14,
    scram: "extensions-not-supported",
  },
  {
    name: "client-first with bad saslname escaping (n=a=ZZb) → BAD_SCRAM",
    hello: true,
    steps: [{ op: "LOGIN", id: 15, mechanism: "SCRAM-SHA-256", data: "n,,n=a=ZZb,r=abcdefgh" }],
    code: "BAD_SCRAM",
    fatal: false,
    id: 15,
    scram: "invalid-username-encoding",
  },
  {
    name: "unsupported mechanism SCRAM-SHA-1 → UNSUPPORTED_MECHANISM",
    hello: true,
    steps: [{ op: "LOGIN", id: 16, mechanism: "SCRAM-SHA-1", data: "n,,n=alice,r=abcdefgh" }],
    code: "UNSUPPORTED_MECHANISM",
    fatal: false,
    id: 16,
    message: /^Unsupported mechanism: "SCRAM-SHA-1"/,
  },
  {
    name: "SCRAM-SHA-256-PLUS on plain TCP → UNSUPPORTED_MECHANISM",
    hello: true,
    steps: [{
      op: "LOGIN",
      id: 17,
      mechanism: "SCRAM-SHA-256-PLUS",
      data: "p=tls-server-end-point,,n=alice,r=abcdefgh",
    }],
    code: "UNSUPPORTED_MECHANISM",
    fatal: false,
    id: 17,
  },
  {
    name: "p=tls-server-end-point flag with SCRAM-SHA-256 on TCP → CHANNEL_BINDING",
    hello: true,
    steps: [{
      op: "LOGIN",
      id: 18,
      mechanism: "SCRAM-SHA-256",
      data: "p=tls-server-end-point,,n=alice,r=abcdefgh",
    }],
    code: "CHANNEL_BINDING",
    fatal: false,
    id: 18,
    scram: "channel-binding-not-supported",
  },
  {
    name: "wrong proof after a successful login on the same connection → AUTH_FAILED and logged out",
    hello: true,
    steps: [async (c, env) => {
      await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
      const before = await c.request({ op: "IS_LOGGED", id: 4 });
      assert.deepEqual(before, { op: "IS_LOGGED", id: 4, logged_in: true, user: "alice" });
      const { scram, serverFirst } = await beginLogin(c, env, { ...ALICE, password: "wrong password 42" }, 5);
      await c.send({ op: "PROOF", id: 6, data: await scram.final(serverFirst) });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 6,
    scram: "invalid-proof",
  },
  {
    name: "unsupported mechanism after a successful login → UNSUPPORTED_MECHANISM and logged out",
    hello: true,
    steps: [async (c, env) => {
      await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
      await c.send({ op: "LOGIN", id: 4, mechanism: "SCRAM-SHA-1", data: "n,,n=alice,r=abcdefgh" });
    }],
    code: "UNSUPPORTED_MECHANISM",
    fatal: false,
    id: 4,
  },
  {
    name: "another command during a SCRAM exchange → OUT_OF_ORDER, exchange abandoned",
    hello: true,
    steps: [async (c, env) => {
      const { scram, serverFirst } = await beginLogin(c, env, ALICE, 4);
      const abandoned = await c.request({ op: "ACCESS", id: 5 });
      assert.equal(abandoned.code, "OUT_OF_ORDER", JSON.stringify(abandoned));
      assert.equal(abandoned.id, 5);
      // The right proof is now too late: the exchange is gone.
      await c.send({ op: "PROOF", id: 6, data: await scram.final(serverFirst) });
    }],
    code: "OUT_OF_ORDER",
    fatal: false,
    id: 6,
    message: /^No SCRAM exchange in progress/,
  },
  {
    name: "DELETE when not logged in → NOT_LOGGED_IN",
    hello: true,
    steps: [{ op: "DELETE", id: 35, mechanism: "SCRAM-SHA-256", data: "n,,n=alice,r=abcdefgh" }],
    code: "NOT_LOGGED_IN",
    fatal: false,
    id: 35,
  },
  {
    name: "PASSWD proving another user's password → BAD_SCRAM, still logged in",
    hello: true,
    steps: [async (c, env) => {
      await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
      await c.send({
        op: "PASSWD",
        id: 36,
        mechanism: "SCRAM-SHA-256",
        data: "n,,n=bob,r=abcdefgh",
        sealed: JUNK_SEALED,
      });
    }],
    code: "BAD_SCRAM",
    fatal: false,
    id: 36,
    loggedInAs: "alice",
  },
  {
    name: "client-final without a proof → BAD_SCRAM",
    hello: true,
    steps: [async (c, env) => {
      const { serverFirst } = await beginLogin(c, env, ALICE, 4);
      const nonce = /^r=([^,]+)/.exec(serverFirst)?.[1];
      await c.send({ op: "PROOF", id: 37, data: `c=biws,r=${nonce}` });
    }],
    code: "BAD_SCRAM",
    fatal: false,
    id: 37,
    message: "Malformed client-final-message: missing proof",
  },
  {
    name: "client-final claiming y,, after an n,, client-first → CHANNEL_BINDING",
    hello: true,
    steps: [async (c, env) => {
      const { scram, serverFirst } = await beginLogin(c, env, ALICE, 4);
      const final = await scram.final(serverFirst);
      await c.send({ op: "PROOF", id: 38, data: final.replace(/^c=biws,/, "c=eSws,") });
    }],
    code: "CHANNEL_BINDING",
    fatal: false,
    id: 38,
    scram: "channel-bindings-dont-match",
  },
  {
    // Session.#onRegister checks the name before it opens (or refuses) the secret.
    name: "REGISTER of a name with NUL and junk sealed → INVALID_USERNAME (the name is checked first)",
    hello: true,
    steps: [{ op: "REGISTER", id: 19, user: NUL_USER, sealed: JUNK_SEALED }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 19,
    reason: "prohibited_character",
  },
  {
    name:
      "REGISTER of a name with NUL and a verifier in clear on TCP → INVALID_USERNAME (the name is checked first)",
    hello: true,
    steps: [{ op: "REGISTER", id: 20, user: NUL_USER, verifier: VERIFIER }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 20,
    reason: "prohibited_character",
  },
  {
    name: "REGISTER of a name with NUL, correctly sealed → INVALID_USERNAME",
    hello: true,
    steps: [async (c, env) => {
      await c.send({
        op: "REGISTER",
        id: 21,
        user: NUL_USER,
        sealed: await sealedFor(env, "REGISTER", NUL_USER),
      });
    }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 21,
    reason: "prohibited_character",
  },
  {
    name: "LOGIN with NUL in the SCRAM user name → INVALID_USERNAME",
    hello: true,
    steps: [{ op: "LOGIN", id: 22, mechanism: "SCRAM-SHA-256", data: `n,,n=${NUL_USER},r=abcdefgh` }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 22,
    reason: "prohibited_character",
  },
  {
    name: "REGISTER with a verifier in clear on plain TCP → CONFIDENTIALITY_REQUIRED",
    hello: true,
    steps: [{ op: "REGISTER", id: 23, user: "mallory", verifier: VERIFIER }],
    code: "CONFIDENTIALITY_REQUIRED",
    fatal: false,
    id: 23,
    message: "Verifier in clear on a plain connection: seal it to the server key or use TLS",
  },
  {
    name: "REGISTER with a password field, as before verifiers → BAD_MESSAGE, the field is unknown",
    hello: true,
    steps: [{ op: "REGISTER", id: 43, user: "mallory", password: "violet harbor 4821" }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 43,
    message: "Invalid field msg.password: unknown field",
  },
  {
    name: "REGISTER with both verifier and sealed → BAD_MESSAGE",
    hello: true,
    steps: [{ op: "REGISTER", id: 44, user: "mallory", verifier: VERIFIER, sealed: JUNK_SEALED }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 44,
    message: "Invalid field msg.verifier: send verifier or sealed, not both",
  },
  {
    name: "REGISTER with neither verifier nor sealed → BAD_MESSAGE",
    hello: true,
    steps: [{ op: "REGISTER", id: 45, user: "mallory" }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 45,
    message: "Invalid field msg.sealed: REGISTER needs verifier (TLS) or sealed",
  },
  {
    name: "REGISTER with garbage sealed → SEAL_INVALID",
    hello: true,
    steps: [{ op: "REGISTER", id: 24, user: "mallory", sealed: JUNK_SEALED }],
    code: "SEAL_INVALID",
    fatal: false,
    id: 24,
    message: /^Sealed secret could not be opened/,
  },
  {
    name: "REGISTER sealed to a seal nonce already spent → SEAL_INVALID",
    hello: true,
    steps: [async (c, env) => {
      assert.ok(env.greeting);
      const spent = await c.request({ op: "REGISTER", id: 25, user: "mallory", sealed: JUNK_SEALED });
      assert.equal(spent.code, "SEAL_INVALID", JSON.stringify(spent));
      await sealedRegister(26, VERIFIER)(c, env);
    }],
    code: "SEAL_INVALID",
    fatal: false,
    id: 26,
    message: /^No seal nonce in this session/,
  },
  {
    name: "REGISTER of an existing name in another case (ALICE) → USER_EXISTS",
    hello: true,
    steps: [async (c, env) => {
      await c.send({
        op: "REGISTER",
        id: 39,
        user: "ALICE",
        sealed: await sealedFor(env, "REGISTER", "ALICE"),
      });
    }],
    code: "USER_EXISTS",
    fatal: false,
    id: 39,
  },
  {
    // What a client of the old protocol sealed: the server takes no password, even sealed.
    name: "REGISTER with a sealed password instead of a verifier → BAD_MESSAGE",
    hello: true,
    steps: [sealedRegister(40, "violet harbor 4821")],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 40,
    message: /^Invalid field msg\.verifier: Not a SCRAM-SHA-256 verifier/,
  },
  {
    name: "REGISTER with a sealed verifier of another iteration count than HELLO's → BAD_MESSAGE",
    hello: true,
    steps: [sealedRegister(47, verifierText({ iterations: 600_000 }))],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 47,
    message: `Invalid field msg.verifier: 600000 iterations, this server uses ${TEST_ITERATIONS} (see HELLO)`,
  },
  {
    name: "REGISTER with a sealed verifier whose salt is 15 bytes → BAD_MESSAGE",
    hello: true,
    steps: [sealedRegister(49, verifierText({ saltBytes: 15 }))],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 49,
    message: "Invalid field msg.verifier: a salt of 15 bytes, expected 16 to 64",
  },
  {
    name: "REGISTER with a sealed verifier whose salt is 65 bytes → BAD_MESSAGE",
    hello: true,
    steps: [sealedRegister(51, verifierText({ saltBytes: 65 }))],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 51,
    message: "Invalid field msg.verifier: a salt of 65 bytes, expected 16 to 64",
  },
  {
    name: "REGISTER with a sealed blob that is not UTF-8 → BAD_ENCODING",
    hello: true,
    steps: [sealedRegister(41, new Uint8Array([0x70, 0x77, 0xff, 0xfe, 0xc0, 0x80]))],
    code: "BAD_ENCODING",
    fatal: false,
    id: 41,
    message: "Invalid UTF-8 in the sealed verifier",
  },
  {
    name: "REGISTER with a verifier sealed for another user name → SEAL_INVALID",
    hello: true,
    steps: [async (c, env) => {
      await c.send({
        op: "REGISTER",
        id: 42,
        user: "mallory",
        sealed: await sealedFor(env, "REGISTER", "trudy"),
      });
    }],
    code: "SEAL_INVALID",
    fatal: false,
    id: 42,
  },
  {
    name: "PASSWD with the new verifier in clear on plain TCP → CONFIDENTIALITY_REQUIRED, still logged in",
    hello: true,
    steps: [passwdAfterLogin(52, () => Promise.resolve({ verifier: VERIFIER }))],
    code: "CONFIDENTIALITY_REQUIRED",
    fatal: false,
    id: 52,
    loggedInAs: "alice",
  },
  {
    name:
      "PASSWD with a sealed verifier of another iteration count than HELLO's → BAD_MESSAGE, still logged in",
    hello: true,
    steps: [passwdAfterLogin(53, async (env) => ({
      sealed: await sealedFor(env, "PASSWD", "alice", verifierText({ iterations: 8192 })),
    }))],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 53,
    message: `Invalid field msg.verifier: 8192 iterations, this server uses ${TEST_ITERATIONS} (see HELLO)`,
    loggedInAs: "alice",
  },
  {
    name: "SQL in a LOGIN user name with spaces (alice'; DROP TABLE users;--) → INVALID_USERNAME",
    hello: true,
    steps: [{
      op: "LOGIN",
      id: 27,
      mechanism: "SCRAM-SHA-256",
      data: "n,,n=alice'; DROP TABLE users;--,r=abcdefgh",
    }],
    code: "INVALID_USERNAME",
    fatal: false,
    id: 27,
    reason: "whitespace",
  },
  {
    name: "SQL in a LOGIN user name without spaces → CHALLENGE, then AUTH_FAILED",
    hello: true,
    steps: [async (c, env) => {
      const user = "robert');DROP/**/TABLE/**/users;--";
      const { scram, serverFirst } = await beginLogin(c, env, { user, password: "violet harbor 4821" }, 4);
      assert.match(serverFirst, /^r=[^,]+,s=[^,]+,i=4096$/);
      await c.send({ op: "PROOF", id: 5, data: await scram.final(serverFirst) });
    }],
    code: "AUTH_FAILED",
    fatal: false,
    id: 5,
    scram: "invalid-proof",
  },
  {
    name: "string field longer than the schema allows → BAD_MESSAGE",
    hello: true,
    steps: [{ op: "REGISTER", id: 28, user: "a".repeat(1025), sealed: JUNK_SEALED }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 28,
    message: "Invalid field msg.user: longer than 1024 characters",
  },
  {
    name: "id that is not an integer (1.5) → BAD_MESSAGE without id",
    hello: true,
    steps: [{ op: "IS_LOGGED", id: 1.5 }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: null,
    message: "Invalid field msg.id: expected an integer",
  },
  {
    name: "id that is a string → BAD_MESSAGE without id",
    hello: true,
    steps: [{ op: "ACCESS", id: "29" }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: null,
  },
  {
    name: "id above 2^31-1 → BAD_MESSAGE without id",
    hello: true,
    steps: [{ op: "ACCESS", id: 2 ** 31 }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: null,
  },
];

/** Run one row on a fresh connection and check the error and what follows it. */
async function runRow(port: number, row: Row): Promise<void> {
  const env: RowEnv = { greeting: null, inFlight: [] };
  const c = await RawClient.connect(port);
  try {
    if (row.hello) env.greeting = await hello(c);
    for (const step of row.steps) {
      if (step === "closeWrite") await c.closeWrite();
      else if (typeof step === "function") await step(c, env);
      else if (step instanceof Uint8Array) await c.sendBytes(step);
      else await c.send(step);
    }
    const error = await c.reply();
    const shown = brief(error);
    assert.equal(error.op, "ERROR", shown);
    // The real client validates every server frame with this schema; an ERROR it refuses is useless.
    assert.doesNotThrow(() => decodeServerMessage(encoder.encode(JSON.stringify(error))), shown);
    assert.ok((ERROR_CODES as readonly unknown[]).includes(error.code), `undocumented code: ${shown}`);
    assert.equal(error.code, row.code, shown);
    if (row.id === null) assert.equal("id" in error, false, `no id expected: ${shown}`);
    else assert.equal(error.id, row.id, shown);
    if (typeof row.message === "string") assert.equal(error.message, row.message);
    else if (row.message) assert.match(String(error.message), row.message);
    if (row.scram !== undefined) assert.equal(error.scram, row.scram, shown);
    if (row.reason !== undefined) assert.equal(error.reason, row.reason, shown);
    if (row.fatal) {
      assert.equal(error.fatal, true, shown);
      await c.expectClosed();
    } else {
      assert.equal(error.fatal, undefined, shown);
      const after = await c.request({ op: "IS_LOGGED", id: 99 });
      if (row.loggedInAs !== undefined) {
        assert.deepEqual(after, { op: "IS_LOGGED", id: 99, logged_in: true, user: row.loggedInAs });
      } else if (row.hello) assert.deepEqual(after, { op: "IS_LOGGED", id: 99, logged_in: false });
      else assert.equal(after.code, "OUT_OF_ORDER", brief(after));
      assert.equal(after.id, 99);
    }
  } finally {
    await c.close();
    await Promise.all(env.inFlight);
  }
}

/** A full SCRAM login of alice with the raw client, then the protected resource, then CLOSE. */
async function goodRawLogin(port: number): Promise<void> {
  await using c = await RawClient.connect(port);
  const greeting = await hello(c);
  const { reply } = await scramLogin(c, { ...ALICE, mechanisms: greeting.mechanisms as string[] });
  assert.equal(reply.user, "alice");
  const access = await c.request({ op: "ACCESS", id: 4 });
  assert.equal(access.op, "ACCESS", JSON.stringify(access));
  assert.equal(access.user, "alice");
  assert.deepEqual(await c.request({ op: "CLOSE", id: 5 }), { op: "CLOSE", id: 5 });
  await c.expectClosed();
}

async function goodCliLogin(port: number, passwordFile: string, home: string): Promise<void> {
  const result = await runCli(
    "client",
    ["--port", String(port), "--user", "alice", "--password-file", passwordFile, "--exec", "login"],
    { env: { XDG_CONFIG_HOME: home } },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^logged in as alice$/m);
}

Deno.test("authchat server answers a table of bad inputs with documented errors and keeps serving", async (t) => {
  assert.ok(ROWS.length >= 22);
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  const passwordFile = join(dir.path, "alice.pw");
  await Deno.writeTextFile(passwordFile, `${ALICE.password}\n`);
  const server = await ServerProcess.start(data, { env: { AUTHCHAT_REGISTRATIONS_PER_MINUTE: "100000" } });
  let stopped = false;
  try {
    for (const [index, row] of ROWS.entries()) {
      await t.step(row.name, async () => {
        await runRow(server.tcpPort, row);
        await goodRawLogin(server.tcpPort);
        if (index % 8 === 7) await goodCliLogin(server.tcpPort, passwordFile, dir.path);
      });
    }
    await t.step(
      "concurrent REGISTER of one name on 6 connections → one REGISTER, the rest USER_EXISTS",
      async () => {
        const clients = await Promise.all(Array.from({ length: 6 }, () => RawClient.connect(server.tcpPort)));
        try {
          const messages = await Promise.all(clients.map(async (c) => {
            const env: RowEnv = { greeting: await hello(c), inFlight: [] };
            return {
              op: "REGISTER",
              id: 50,
              user: "racer",
              sealed: await sealedFor(
                env,
                "REGISTER",
                "racer",
                await clientVerifier("violet harbor 4821", env.greeting!),
              ),
            };
          }));
          await Promise.all(clients.map((c, i) => c.send(messages[i])));
          const replies = await Promise.all(clients.map((c) => c.reply()));
          const outcomes = replies.map((r) => r.op === "ERROR" ? String(r.code) : String(r.op)).sort();
          assert.deepEqual(outcomes, ["REGISTER", ...Array(5).fill("USER_EXISTS")], brief(replies));
        } finally {
          await Promise.all(clients.map((c) => c.close()));
        }
        await goodRawLogin(server.tcpPort);
      },
    );
    await goodCliLogin(server.tcpPort, passwordFile, dir.path);
    assert.doesNotMatch(server.stderr, / stopping /, "the server began stopping before SIGTERM");
    const status = await server.stop("SIGTERM");
    stopped = true;
    assert.equal(status.code, 0, server.stderr);
    assert.equal(status.signal, null);
    // Only a process still running when SIGTERM came can have logged this.
    assert.match(server.stderr, / stopping signal=SIGTERM/);
    assert.match(server.stderr, / shutdown /);
    // A stack trace, an INTERNAL error, or a disconnect reason "error: …" (serveConnection logs that
    // only when Session.receive threw, which it must never do) all mean a bad input got too far.
    const suspicious = server.stderr.split("\n").filter((line) =>
      /^\s+at |internal_error|connection_error|Uncaught|panicked|reason="error: /.test(line)
    );
    assert.deepEqual(suspicious, [], "server log shows a crash or an escaped exception");
    assert.match(server.stderr, /login_ok/);
  } finally {
    if (!stopped) await server.kill();
  }
});
