/**
 * Where the client's events go and where its secrets come from, for each way
 * it runs: a terminal (line editor, hidden prompts asked twice for new
 * passwords), a script on stdin (the next line), or files named by flags.
 *
 * @module
 */

import { eventJson, eventText } from "../lib/client/client_event.ts";
import type { ClientEvent } from "../lib/client/client_event.ts";
import type { CommandIO, SecretKind } from "../lib/client/command_io.ts";
import type { LineEditor } from "./_line_editor.ts";
import type { LineInput } from "./_line_input.ts";
import { readPasswordFile } from "./_password_file.ts";

const encoder = new TextEncoder();

/** Writes text lines to stdout or stderr. */
export type Printer = (stream: "stdout" | "stderr", text: string) => void;

/**
 * Print straight to the standard streams (no prompt to keep intact).
 *
 * @param stream Where.
 * @param text One or more lines, without the final line ending.
 */
export function printPlain(stream: "stdout" | "stderr", text: string): void {
  const bytes = encoder.encode(text + "\n");
  const target = stream === "stdout" ? Deno.stdout : Deno.stderr;
  let done = 0;
  while (done < bytes.length) done += target.writeSync(bytes.subarray(done));
}

/**
 * Show events as JSON lines on stdout (`--json`) or as text lines.
 *
 * @param json Whether to print JSON.
 * @param print Where lines go.
 * @returns The `emit` of a {@linkcode CommandIO}.
 */
export function eventPrinter(json: boolean, print: Printer): (event: ClientEvent) => void {
  return (event) => {
    if (json) return print("stdout", eventJson(event));
    const { stream, lines } = eventText(event);
    if (lines.length > 0) print(stream, lines.join("\n"));
  };
}

const PROMPTS: Record<SecretKind, string> = {
  login: "Password: ",
  current: "Current password: ",
  register: "Choose a password: ",
  new: "New password: ",
};

/** Where secrets and user names come from. */
export interface SecretSources {
  /** `--password-file`: the password of login, register, and the current one of passwd and delete. */
  passwordFile?: string | undefined;
  /** `--new-password-file`: the new password of passwd. */
  newPasswordFile?: string | undefined;
  /** The terminal, when stdin is one: hidden prompts (made when first needed). */
  terminal?: () => LineEditor;
  /** Stdin lines, in scripted mode: a password is the next line. */
  lines?: LineInput;
}

/**
 * Secrets from files when given, else from a hidden prompt on a terminal, else from the next stdin line.
 * Only prompted new passwords are asked twice. A script's line for a secret its command failed before
 * reading is passed over.
 *
 * @param sources Files, terminal, stdin.
 * @returns The secret, confirmation and user-name parts of a {@linkcode CommandIO}.
 */
export function secretIO(
  sources: SecretSources,
): Pick<CommandIO, "secret" | "confirm" | "skipSecret" | "user"> {
  /** The flag that gives a secret of this kind, and the file it named (if it was given). */
  const fileOf = (kind: SecretKind) =>
    kind === "new"
      ? { flag: "--new-password-file", path: sources.newPasswordFile }
      : { flag: "--password-file", path: sources.passwordFile };
  return {
    secret: async (kind) => {
      const { flag, path } = fileOf(kind);
      if (path !== undefined) return await readPasswordFile(path, flag);
      if (sources.terminal) return await sources.terminal().readHidden(PROMPTS[kind]);
      const line = await sources.lines?.readLine();
      if (line === null || line === undefined) {
        throw new Error(`A password is needed: none left on stdin and no ${flag} given`);
      }
      if (line === "") throw new Error(`Empty password on line ${sources.lines!.lineNumber} of stdin`);
      return line;
    },
    skipSecret: async (kind) => {
      // A terminal asks at a prompt, which a failed command never showed: nothing waits there.
      if (fileOf(kind).path !== undefined || sources.terminal) return;
      await sources.lines?.readLine();
    },
    confirm: async (kind) => {
      if (fileOf(kind).path !== undefined || !sources.terminal) return null;
      return await sources.terminal().readHidden("Repeat it: ");
    },
    user: async () => {
      if (!sources.terminal) throw new Error("No user name: give it as an argument or with --user");
      const name = (await sources.terminal().readLine("User: "))?.trim();
      if (!name) throw new Error("No user name given");
      return name;
    },
  };
}
