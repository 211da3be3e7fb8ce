/**
 * The client's line editor on a terminal, built on `node:readline`: editing
 * with the arrow keys, Home/End, Delete and the usual Ctrl keys, a history of
 * the session's commands (arrow up/down), hidden entry for passwords, and
 * output that arrives while the user types (messages, presence, notices)
 * printed above the prompt, which is then redrawn with the text typed so far.
 *
 * What is typed while no prompt is shown (a command is running, or the rest of
 * a paste after the line that started it) is not echoed there: it stays in the
 * line and appears with the next prompt (a whole line typed ahead only if the
 * prompt's reader says it may be shown), so a password typed ahead of its
 * prompt never shows on the screen. Prompts and echo go to stderr, so stdout
 * carries only results. With `TERM=dumb` readline edits nothing (lines are
 * still read).
 *
 * @module
 */

import process from "node:process";
import readline from "node:readline";
import { Writable } from "node:stream";

const encoder = new TextEncoder();

function writeAll(stream: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += stream.writeSync(bytes.subarray(done));
}

/** The parts of readline's interface the editor drives that its typings leave out. */
interface ReadlineState {
  history: string[];
  historyIndex: number;
}

/** Most commands the history keeps. */
const HISTORY_SIZE = 200;

interface Reader {
  resolve(line: string | null): void;
  reject(err: Error): void;
}

/** Reads lines on a terminal; see the module doc. */
export class LineEditor {
  #rl: readline.Interface;
  /** Echo is shown only while a visible prompt waits. */
  #muted = true;
  #prompt: { text: string; hidden: boolean } | null = null;
  #reader: Reader | null = null;
  /** Lines entered while nothing was reading (typed ahead of their prompt). */
  #typedAhead: string[] = [];
  #closed = false;
  /** Called on Ctrl-C while no prompt is shown (a command is running). */
  onInterrupt: (() => void) | null = null;

  /** Take over stdin (raw mode) until {@linkcode close}. */
  constructor() {
    const output = new Writable({
      write: (chunk: Uint8Array, _encoding, done) => {
        if (!this.#muted) writeAll(Deno.stderr, chunk);
        done();
      },
    });
    Object.defineProperty(output, "columns", { get: () => process.stderr.columns ?? 80 });
    Object.defineProperty(output, "isTTY", { value: true });
    // History is kept here, not by readline, which would also record passwords and mistyped lines.
    this.#rl = readline.createInterface({ input: process.stdin, output, terminal: true, historySize: 0 });
    this.#rl.on("line", (line: string) => this.#entered(line));
    this.#rl.on("close", () => {
      this.#closed = true;
      this.#entered(null);
    });
    this.#rl.on("SIGINT", () => this.#interrupt());
  }

  get #state(): ReadlineState {
    return this.#rl as unknown as ReadlineState;
  }

  #entered(line: string | null): void {
    // At once, not when the reader resumes: readline goes on with the rest of a paste synchronously, and the
    // next line may be the password the command just entered is about to ask for.
    this.#muted = true;
    this.#state.historyIndex = -1;
    const reader = this.#reader;
    this.#reader = null;
    if (reader) reader.resolve(line);
    else if (line !== null) this.#typedAhead.push(line);
  }

  #interrupt(): void {
    const prompt = this.#prompt;
    if (prompt === null) return this.onInterrupt?.();
    if (prompt.hidden) {
      const reader = this.#reader;
      this.#reader = null;
      this.#rl.write(null, { ctrl: true, name: "e" });
      this.#rl.write(null, { ctrl: true, name: "u" });
      return reader?.reject(new Deno.errors.Interrupted("Cancelled"));
    }
    if (this.#rl.line === "") {
      this.print("stderr", "(close or Ctrl-D leaves the client)");
      return;
    }
    // Like a shell: the line is dropped and a fresh prompt shown.
    this.#rl.write(null, { ctrl: true, name: "e" });
    this.#rl.write(null, { ctrl: true, name: "u" });
  }

  async #read(text: string, hidden: boolean, show?: (line: string) => boolean): Promise<string | null> {
    const ahead = this.#typedAhead.shift();
    if (ahead !== undefined) {
      writeAll(Deno.stderr, encoder.encode(`${text}${hidden || show?.(ahead) === false ? "" : ahead}\n`));
      return ahead;
    }
    if (this.#closed) return null;
    this.#prompt = { text, hidden };
    this.#rl.setPrompt(text);
    const line = new Promise<string | null>((resolve, reject) => this.#reader = { resolve, reject });
    if (hidden) {
      writeAll(Deno.stderr, encoder.encode(text));
    } else {
      this.#muted = false;
      this.#rl.prompt(true);
    }
    try {
      const result = await line;
      // Ctrl-D ends the input: the cursor still sits after the prompt.
      if (result === null && !hidden) writeAll(Deno.stderr, encoder.encode("\n"));
      return result;
    } finally {
      this.#muted = true;
      this.#prompt = null;
      if (hidden) writeAll(Deno.stderr, encoder.encode("\n"));
    }
  }

  /**
   * Read a line with echo and editing.
   *
   * @param prompt Shown before it.
   * @param options `showTypedAhead`: whether a line typed ahead of this prompt (never echoed while it was
   *   typed) is shown after it; by default it is. The REPL shows only commands: such a line may be a password
   *   whose prompt never came.
   * @returns The line, or `null` once input ended (Ctrl-D on an empty line).
   */
  readLine(
    prompt: string,
    options: { showTypedAhead?: (line: string) => boolean } = {},
  ): Promise<string | null> {
    return this.#read(prompt, false, options.showTypedAhead);
  }

  /**
   * Read a line without echo (a password). It never enters the history.
   *
   * @param prompt Shown before it.
   * @returns The text typed.
   * @throws {Deno.errors.Interrupted} On Ctrl-C, or when input ended.
   */
  async readHidden(prompt: string): Promise<string> {
    const line = await this.#read(prompt, true);
    if (line === null) throw new Deno.errors.Interrupted("Input ended");
    return line;
  }

  /**
   * Remember a command for the arrow keys (the REPL adds only lines that are commands, so a password typed
   * at the wrong prompt is not kept).
   *
   * @param line The command line.
   */
  addHistory(line: string): void {
    const history = this.#state.history;
    if (line.trim() === "" || history[0] === line) return;
    history.unshift(line);
    if (history.length > HISTORY_SIZE) history.pop();
  }

  /**
   * Print lines on stdout or stderr without disturbing what is being typed: the prompt and its text are
   * cleared, the lines written, and the prompt redrawn below them.
   *
   * @param stream Where.
   * @param text One or more lines (without the final line ending).
   */
  print(stream: "stdout" | "stderr", text: string): void {
    const prompt = this.#prompt;
    if (prompt) {
      // From the cursor back to the start of the prompt, however many rows the typed text takes.
      const rows = prompt.hidden ? 0 : this.#rl.getCursorPos().rows;
      writeAll(Deno.stderr, encoder.encode(`${rows > 0 ? `\x1b[${rows}A` : ""}\r\x1b[0J`));
    }
    writeAll(stream === "stdout" ? Deno.stdout : Deno.stderr, encoder.encode(text + "\n"));
    if (prompt?.hidden) writeAll(Deno.stderr, encoder.encode(prompt.text));
    else if (prompt) this.#rl.prompt(true);
  }

  /** Give the terminal back (cooked mode). */
  close(): void {
    this.#rl.close();
  }
}
