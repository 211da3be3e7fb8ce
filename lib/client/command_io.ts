/**
 * How the client's command language talks to its user: events out (replies, messages, presence, notices),
 * secrets and a user name in. The REPL, scripted mode and tests each provide one; the
 * {@linkcode CommandRunner} and its chat commands share this file rather than each other.
 *
 * @module
 */

import type { ClientEvent } from "./client_event.ts";

/** Which secret a command needs: the password to log in, a new one (register, passwd), or the current one. */
export type SecretKind = "login" | "register" | "current" | "new";

/** How the runner talks to its user. */
export interface CommandIO {
  /**
   * Show an event: a command's reply or failure, an incoming message, presence, a notice.
   *
   * @param event What happened.
   */
  emit(event: ClientEvent): void;
  /**
   * Get a secret: from a file, a hidden prompt on a terminal, or the next stdin line in scripted mode.
   *
   * @param kind What it is for.
   * @returns The secret.
   */
  secret(kind: SecretKind): Promise<string>;
  /**
   * Ask for a new password a second time. The runner asks only once the first entry passed the checks it
   * can make (the policy), so a refused password is not typed twice.
   *
   * @param kind `register` or `new`.
   * @returns The repetition, or `null` when the secret was not typed (a file, a script's line): nothing
   *   to compare.
   */
  confirm?(kind: SecretKind): Promise<string | null>;
  /**
   * Pass over a secret a command that failed did not read, where it would have been read from stdin (a
   * script's next line), so that line is not taken for a command. Nothing to do for a file or a terminal.
   *
   * @param kind What it was for.
   */
  skipSecret?(kind: SecretKind): Promise<void>;
  /**
   * Get the user name when a command needs one and none was given.
   *
   * @returns The name.
   */
  user(): Promise<string>;
}
