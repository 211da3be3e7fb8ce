import assert from "node:assert/strict";
import { eventJson, eventText } from "../../lib/client/client_event.ts";
import type { ClientEvent } from "../../lib/client/client_event.ts";

Deno.test("eventText renders replies on stdout and failures, notices and goodbyes on stderr", () => {
  const cases: [ClientEvent, "stdout" | "stderr", string[]][] = [
    [
      {
        type: "reply",
        ok: true,
        command: "is_logged",
        logged_in: false,
        user: null,
        must_change_password: false,
      },
      "stdout",
      [
        "not logged in",
      ],
    ],
    [
      {
        type: "reply",
        ok: true,
        command: "access",
        user: "a",
        created: "c",
        last_login: null,
        resource: "R",
      },
      "stdout",
      ["user a", "created c", "last login never (this is the first)", "R"],
    ],
    [
      {
        type: "reply",
        ok: true,
        command: "list",
        users: [{ user: "a", fingerprint: "SHA256:x", you: true }, {
          user: "b",
          fingerprint: null,
          you: false,
        }],
      },
      "stdout",
      ["a SHA256:x (you)", "b (no identity key yet)", "2 online"],
    ],
    [
      {
        type: "reply",
        ok: true,
        command: "fingerprint",
        user: "a",
        fingerprint: "SHA256:a",
        peer: "b",
        peer_fingerprint: "SHA256:new",
        pin: "changed",
        pinned_fingerprint: "SHA256:old",
        safety_number: "12345",
      },
      "stdout",
      ["you (a): SHA256:a", "b: SHA256:new (CHANGED: pinned SHA256:old)", "safety number: 12345"],
    ],
    [{ type: "reply", ok: true, command: "wait", seconds: 1 }, "stdout", []],
    [
      { type: "reply", ok: false, command: "login", error: { code: "AUTH_FAILED", message: "Nope" } },
      "stderr",
      ["error: Nope (AUTH_FAILED)"],
    ],
    [{ type: "reply", ok: false, command: null, error: { code: null, message: "Unknown" } }, "stderr", [
      "error: Unknown",
    ]],
    [{ type: "message", from: "b", text: "hi\u001b[2J" }, "stdout", ["msg from b: hi\\u001b[2J"]],
    [{ type: "notice", level: "warning", message: "Direct messages unavailable: x" }, "stderr", [
      "warning: Direct messages unavailable: x",
    ]],
    [{ type: "notice", level: "warning", message: "WARNING: the key changed" }, "stderr", [
      "WARNING: the key changed",
    ]],
    [{ type: "bye", code: "SHUTDOWN", reason: "Stopping" }, "stderr", ["server: Stopping (SHUTDOWN)"]],
  ];
  for (const [event, stream, lines] of cases) assert.deepEqual(eventText(event), { stream, lines });
});

Deno.test("eventJson writes one line that parses back to the event, line separators escaped", () => {
  const event: ClientEvent = { type: "message", from: "b", text: "one\ntwo\u2028three\u2029" };
  const line = eventJson(event);
  assert.ok(!/[\n\r\u2028\u2029]/.test(line), line);
  assert.deepEqual(JSON.parse(line), event);
});
