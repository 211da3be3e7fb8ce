import assert from "node:assert/strict";
import { ChatCommands } from "../../lib/client/_chat_commands.ts";
import { eventText, printable } from "../../lib/client/client_event.ts";
import type { CommandIO } from "../../lib/client/command_io.ts";

function recorder(): { io: CommandIO; out: string[] } {
  const out: string[] = [];
  return {
    out,
    io: {
      emit: (event) => {
        const text = eventText(event);
        out.push(...text.lines.map((l) => text.stream === "stdout" ? l : `err ${l}`));
      },
      secret: () => Promise.reject(new Error("no secrets here")),
      user: () => Promise.reject(new Error("no user here")),
    },
  };
}

Deno.test("ChatCommands prints each presence change once, even when a first login re-announces the key", () => {
  const { io, out } = recorder();
  const chat = new ChatCommands(io, undefined);
  chat.onServerEvent({ op: "PRESENCE", user: "Dave", state: "online" });
  chat.onServerEvent({ op: "PRESENCE", user: "Dave", state: "online", key: "k", fingerprint: "SHA256:x" });
  chat.onServerEvent({ op: "PRESENCE", user: "Dave", state: "offline" });
  chat.onServerEvent({ op: "PRESENCE", user: "Dave", state: "online" });
  assert.deepEqual(out, ["presence: Dave online", "presence: Dave offline", "presence: Dave online"]);
});

Deno.test("ChatCommands shows the server's goodbye unless told to keep quiet", () => {
  const { io, out } = recorder();
  const chat = new ChatCommands(io, undefined);
  chat.onServerEvent({ op: "BYE", code: "SHUTDOWN", reason: "Server stopping\u001b[2J" });
  chat.onServerEvent({ op: "BYE", code: "AUTH_TIMEOUT", reason: "Not logged in within 30 s" }, {
    quiet: true,
  });
  assert.deepEqual(out, ["err server: Server stopping\\u001b[2J (SHUTDOWN)"]);
});

Deno.test("printable shows control characters from other users escaped, on one line", () => {
  assert.equal(printable("line1\nline2\r\u001b[31mred\u0007"), "line1\\nline2\\u000d\\u001b[31mred\\u0007");
  assert.equal(printable("tab\there \u2028 ok ✓"), "tab\\there \\u2028 ok ✓");
});
