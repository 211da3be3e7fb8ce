import assert from "node:assert/strict";
import { MAX_FRAME_BYTES } from "../../lib/codec/frame.ts";
import { MAX_ID } from "../../lib/codec/messages.ts";
import { frameHeader, jsonFrame } from "./_raw_client.ts";
import {
  badInputTable,
  bytes,
  frameOfSize,
  JUNK_SEALED,
  ONE_MB_PAYLOAD,
  rawFrame,
} from "./_bad_input_kit.ts";
import type { Row } from "./_bad_input_kit.ts";

const FRAMES: Row[] = [
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
    name: "HELLO with an unknown field → BAD_MESSAGE",
    hello: false,
    steps: [{ op: "HELLO", id: 10, version: 1, admin: true }],
    code: "BAD_MESSAGE",
    fatal: false,
    id: 10,
    message: "Invalid field msg.admin: unknown field",
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

Deno.test("authchat server answers bad frames, encodings and messages with documented errors and keeps serving", (t) =>
  badInputTable(t, FRAMES));
