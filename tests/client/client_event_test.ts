import assert from "node:assert/strict";
import { eventJson, eventText } from "../../lib/client/client_event.ts";
import type { ClientEvent } from "../../lib/client/client_event.ts";

Deno.test("eventText renders replies on stdout and failures, notices and goodbyes on stderr", () => {
  const cases: [ClientEvent, "stdout" | "stderr", string[]][] = [
    ...([[false, undefined, "plain TCP (secrets sealed)"], [true, undefined, "TLS"], [
      true,
      "udp",
      "UDP session",
    ]] as const)
      .map(([confidential, transport, said]): [ClientEvent, "stdout", string[]] => [
        {
          type: "reply",
          ok: true,
          command: "hello",
          server: "authchat",
          version: 1,
          mechanisms: ["SCRAM-SHA-256"],
          confidential,
          ...(transport === undefined ? {} : { transport }),
        },
        "stdout",
        [`server authchat, protocol 1, mechanisms SCRAM-SHA-256, ${said}`],
      ]),
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

Deno.test("eventText escapes control characters from the server in every line, keeping only its own line breaks", () => {
  const evil = "\u001b]0;owned\u0007\u001b[2J\u009b31m";
  const shown = "\\u001b]0;owned\\u0007\\u001b[2J\\u009b31m";
  const cases: [ClientEvent, string[]][] = [
    // An ERROR message reaches a failure; a BYE reason reaches the next command's failure.
    [
      {
        type: "reply",
        ok: false,
        command: "hello",
        error: { code: "INTERNAL", message: `Cannot connect: ${evil}` },
      },
      [`error: Cannot connect: ${shown} (INTERNAL)`],
    ],
    [
      {
        type: "reply",
        ok: false,
        command: "access",
        error: { code: null, message: `Not connected: ${evil}` },
      },
      [`error: Not connected: ${shown}`],
    ],
    // The client's own multi-line message (a changed server key) keeps its lines.
    [{ type: "reply", ok: false, command: null, error: { code: null, message: "@@@\nWARNING" } }, [
      "error: @@@\nWARNING",
    ]],
    [
      {
        type: "reply",
        ok: true,
        command: "hello",
        server: `evil\nlogged in as admin${evil}`,
        version: 1,
        mechanisms: ["SCRAM-SHA-256"],
        confidential: false,
      },
      [`server evil\\nlogged in as admin${shown}, protocol 1, mechanisms SCRAM-SHA-256, plain TCP (secrets sealed)`],
    ],
    [
      {
        type: "reply",
        ok: true,
        command: "access",
        user: `a${evil}`,
        created: "c\n",
        last_login: `l${evil}`,
        resource: `R\n${evil}`,
      },
      [`user a${shown}`, "created c\\n", `last login l${shown}`, `R\\n${shown}`],
    ],
    [{ type: "notice", level: "warning", message: `WARNING: the key of ${evil} changed` }, [
      `WARNING: the key of ${shown} changed`,
    ]],
    // Names the server gives stay on their line.
    [{ type: "presence", user: "bob\nmsg from alice: hi", state: "online" }, [
      "presence: bob\\nmsg from alice: hi online",
    ]],
    [{ type: "message", from: "bob\nx", text: "hi" }, ["msg from bob\\nx: hi"]],
    [
      { type: "reply", ok: true, command: "list", users: [{ user: "a\nb", fingerprint: "f\n", you: false }] },
      ["a\\nb f\\n", "1 online"],
    ],
  ];
  for (const [event, lines] of cases) assert.deepEqual(eventText(event).lines, lines);
});

Deno.test("eventJson escapes DEL and the C1 controls a terminal may act on", () => {
  const event: ClientEvent = { type: "message", from: "b", text: "\u009b2J\u007f\u0085" };
  const line = eventJson(event);
  assert.ok(!/[\u007f-\u009f]/.test(line), line);
  assert.deepEqual(JSON.parse(line), event);
});

/** Every bidirectional embedding, override and isolate character: U+202A–U+202E and U+2066–U+2069. */
const BIDI_CONTROLS = [0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069]
  .map((c) => String.fromCharCode(c));

Deno.test("eventText escapes bidirectional overrides and isolates in chat text, names and server text", () => {
  for (const c of BIDI_CONTROLS) {
    const shown = `\\u${c.charCodeAt(0).toString(16)}`;
    // "pay bob" with an override: a terminal would draw the rest of the line reversed.
    const cases: [ClientEvent, string][] = [
      [
        { type: "message", from: "alice", text: `pay ${c}bob${c}` },
        `msg from alice: pay ${shown}bob${shown}`,
      ],
      [{ type: "message", from: `eve${c}`, text: "hi" }, `msg from eve${shown}: hi`],
      [{ type: "presence", user: `bob${c}`, state: "online" }, `presence: bob${shown} online`],
      [{ type: "bye", code: "SHUTDOWN", reason: `bye${c}` }, `server: bye${shown} (SHUTDOWN)`],
      [
        { type: "reply", ok: false, command: "login", error: { code: "INTERNAL", message: `no${c}pe` } },
        `error: no${shown}pe (INTERNAL)`,
      ],
    ];
    for (const [event, line] of cases) assert.deepEqual(eventText(event).lines, [line], shown);
  }
  // Right-to-left text itself is left alone: only the invisible controls are shown.
  assert.deepEqual(eventText({ type: "message", from: "dana", text: "שלום" }).lines, ["msg from dana: שלום"]);
});

Deno.test("eventJson escapes bidirectional overrides and isolates, and parses back to the event", () => {
  const event: ClientEvent = { type: "message", from: "b", text: `x${BIDI_CONTROLS.join("")}y` };
  const line = eventJson(event);
  assert.ok(!/[\u202a-\u202e\u2066-\u2069]/.test(line), line);
  assert.deepEqual(JSON.parse(line), event);
});
