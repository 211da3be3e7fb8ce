/**
 * What the client shows, as data: every command's reply or failure, incoming messages, presence, the
 * server ending the session, and notices. `authchat client --json` prints each event as one JSON object
 * per line on stdout (this type is the schema); otherwise {@linkcode eventText} renders it as the
 * familiar text lines.
 *
 * @module
 */

import type { ErrorCode } from "../codec/protocol_error.ts";

/** A successful reply: `command` says which, the other fields are that command's result. */
export type CommandResult =
  | {
    command: "hello";
    server: string;
    version: number;
    mechanisms: string[];
    confidential: boolean;
    /** Present on a UDP session (`"udp"`), which is confidential as TLS is. */
    transport?: "udp";
  }
  | { command: "register" | "delete"; user: string }
  | {
    command: "login";
    user: string;
    /** The account must change its password before anything else (docs/PROTOCOL.md §6). */
    must_change_password: boolean;
  }
  | { command: "is_logged"; logged_in: boolean; user: string | null; must_change_password: boolean }
  | { command: "access"; user: string; created: string; last_login: string | null; resource: string }
  | { command: "passwd" | "logout" | "close" }
  | { command: "help"; text: string }
  | { command: "list"; users: { user: string; fingerprint: string | null; you: boolean }[] }
  | { command: "send"; to: string }
  | {
    command: "fingerprint";
    /** This client's user and identity-key fingerprint. */
    user: string;
    fingerprint: string;
    /** The other user and the key the server has for them now (or the pinned one when offline). */
    peer: string;
    peer_fingerprint: string;
    /** `pinned`: the key is the pinned one; `new`: nothing pinned yet; `changed`: it differs from the pin. */
    pin: "pinned" | "new" | "changed";
    pinned_fingerprint: string | null;
    safety_number: string;
  }
  | { command: "trust"; user: string; fingerprint: string }
  | { command: "wait"; seconds: number };

/** A command that succeeded. */
export type ReplyEvent = { type: "reply"; ok: true } & CommandResult;

/** A command that failed. */
export interface FailureEvent {
  /** Always `reply`. */
  type: "reply";
  /** Always `false`. */
  ok: false;
  /** The command, or `null` when the line was not one (its text is not repeated: it may be a password). */
  command: string | null;
  /** Why it failed. */
  error: {
    /** The stable code of docs/PROTOCOL.md when the error has one (refusals by server or client). */
    code: ErrorCode | null;
    /** What went wrong, for a person. */
    message: string;
  };
}

/** A direct message from another user (its text as sent: JSON escapes what a terminal must not see). */
export interface MessageEvent {
  /** Always `message`. */
  type: "message";
  /** The sender's user name. */
  from: string;
  /** The text. */
  text: string;
}

/** Another user came online or went offline. */
export interface PresenceEvent {
  /** Always `presence`. */
  type: "presence";
  /** Whose presence changed. */
  user: string;
  /** What it is now. */
  state: "online" | "offline";
}

/** The server ended the session (`BYE`): `code` is its reason code (`AUTH_TIMEOUT`, `SHUTDOWN`, …). */
export interface ByeEvent {
  /** Always `bye`. */
  type: "bye";
  /** The BYE code (docs/PROTOCOL.md, section 10). */
  code: string;
  /** The server's words. */
  reason: string;
}

/** Something to know that is not a reply: a key trusted on first use, a reconnection, a chat warning. */
export interface NoticeEvent {
  /** Always `notice`. */
  type: "notice";
  /** `warning` when something does not work as asked (chat unavailable, a password to change). */
  level: "info" | "warning";
  /** What to know. */
  message: string;
}

/** Everything the client reports. */
export type ClientEvent = ReplyEvent | FailureEvent | MessageEvent | PresenceEvent | ByeEvent | NoticeEvent;

/**
 * Text from elsewhere (another user, the server) made safe for one terminal line: control characters
 * (which could move the cursor, clear the screen or fake a line of output) are shown escaped, and so are
 * the bidirectional embedding, override and isolate characters (U+202A–U+202E, U+2066–U+2069), which
 * would reorder the rest of the line as displayed ("Trojan Source": a name or message that reads
 * otherwise than it is).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { printable } from "./client_event.ts";
 * assert(printable("a\nb\u001b[2J") === "a\\nb\\u001b[2J");
 * assert(printable("pay \u202egpj.exe") === "pay \\u202egpj.exe");
 * ```
 *
 * @param text The text.
 * @returns One printable line.
 */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex -- matching control characters is the point
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => c === "\n" ? "\\n" : c === "\t" ? "\\t" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Text made safe for a terminal, keeping its line breaks: every other control character (an escape
 * sequence that could retitle the window, move the cursor or clear the screen) is shown escaped. Every line
 * {@linkcode eventText} renders goes through it, since a server's words (an `ERROR` message, a `BYE`
 * reason, a name) reach the errors and replies it prints.
 */
function terminalSafe(text: string): string {
  return text.split("\n").map(printable).join("\n");
}

/** The text lines of a successful reply (stdout); the server's one-line fields stay on one line. */
function replyLines(reply: ReplyEvent): string[] {
  switch (reply.command) {
    case "hello":
      return [
        `server ${printable(reply.server)}, protocol ${reply.version}, mechanisms ` +
        `${reply.mechanisms.join(" ")}, ${
          reply.transport === "udp"
            ? "UDP session"
            : reply.confidential
            ? "TLS"
            : "plain TCP (secrets sealed)"
        }`,
      ];
    case "register":
      return [`registered ${printable(reply.user)}`];
    case "login":
      return [`logged in as ${printable(reply.user)}`];
    case "is_logged":
      return [reply.logged_in ? `logged in as ${printable(`${reply.user}`)}` : "not logged in"];
    case "access":
      return [
        `user ${printable(reply.user)}`,
        `created ${printable(reply.created)}`,
        `last login ${reply.last_login === null ? "never (this is the first)" : printable(reply.last_login)}`,
        printable(reply.resource),
      ];
    case "passwd":
      return ["password changed"];
    case "delete":
      return [`account ${reply.user} deleted`];
    case "logout":
      return ["logged out"];
    case "close":
      return ["closed"];
    case "help":
      return [reply.text];
    case "list":
      return [
        ...reply.users.map((u) =>
          `${printable(u.user)} ${printable(u.fingerprint ?? "(no identity key yet)")}${
            u.you ? " (you)" : ""
          }`
        ),
        `${reply.users.length} online`,
      ];
    case "send":
      return ["delivered"];
    case "fingerprint": {
      const state = reply.pin === "new"
        ? "not pinned yet"
        : reply.pin === "changed"
        ? `CHANGED: pinned ${reply.pinned_fingerprint}`
        : "pinned";
      return [
        `you (${reply.user}): ${reply.fingerprint}`,
        `${printable(reply.peer)}: ${reply.peer_fingerprint} (${state})`,
        `safety number: ${reply.safety_number}`,
      ];
    }
    case "trust":
      return [`trusted ${printable(reply.user)}: ${reply.fingerprint}`];
    case "wait":
      return [];
  }
}

/**
 * An event as text: results, messages and presence on stdout; failures, notices and the server's
 * goodbye on stderr.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { eventText } from "./client_event.ts";
 * const text = eventText({ type: "reply", ok: true, command: "login", user: "alice", must_change_password: false });
 * assert(text.stream === "stdout" && text.lines[0] === "logged in as alice");
 * ```
 *
 * @param event The event.
 * @returns Which stream and the lines (none for a `wait` that ended).
 */
export function eventText(event: ClientEvent): { stream: "stdout" | "stderr"; lines: string[] } {
  const { stream, lines } = rawEventText(event);
  return { stream, lines: lines.map(terminalSafe) };
}

function rawEventText(event: ClientEvent): { stream: "stdout" | "stderr"; lines: string[] } {
  switch (event.type) {
    case "reply":
      if (event.ok) return { stream: "stdout", lines: replyLines(event) };
      return {
        stream: "stderr",
        lines: [`error: ${event.error.message}${event.error.code === null ? "" : ` (${event.error.code})`}`],
      };
    case "message":
      return { stream: "stdout", lines: [`msg from ${printable(event.from)}: ${printable(event.text)}`] };
    case "presence":
      return { stream: "stdout", lines: [`presence: ${printable(event.user)} ${event.state}`] };
    case "bye":
      return { stream: "stderr", lines: [`server: ${printable(event.reason)} (${printable(event.code)})`] };
    case "notice":
      // A warning that already says so (a changed identity key: "WARNING: …") is not labelled twice.
      return {
        stream: "stderr",
        lines: [
          event.level === "warning" && !/^warning\b/i.test(event.message)
            ? `warning: ${event.message}`
            : event.message,
        ],
      };
  }
}

/**
 * An event as one line of JSON (`--json`): no line breaks inside, so each line parses on its own.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { eventJson } from "./client_event.ts";
 * assert(eventJson({ type: "presence", user: "bob", state: "online" }) ===
 *   '{"type":"presence","user":"bob","state":"online"}');
 * ```
 *
 * @param event The event.
 * @returns The JSON text, without a line ending.
 */
export function eventJson(event: ClientEvent): string {
  // JSON allows U+2028 and U+2029 raw, but some line readers split on them; and DEL and the C1 controls
  // (U+009B is a terminal's CSI) and the bidirectional overrides and isolates raw, which a terminal
  // showing the output may act on or reorder the line by.
  return JSON.stringify(event).replace(
    /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
