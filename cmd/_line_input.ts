/**
 * Line input from stdin for the client: plain lines (scripted or REPL) and,
 * on a terminal, hidden entry for passwords (raw mode, no echo). One buffer
 * serves both, so bytes typed ahead are never lost.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Reads lines and hidden lines from a byte source. */
export class LineInput {
  #source: { read(p: Uint8Array): Promise<number | null> };
  #buffer: number[] = [];
  #eof = false;
  #decoder = new TextDecoder();

  /**
   * Read from a source (default stdin).
   *
   * @param source Byte source.
   */
  constructor(source: { read(p: Uint8Array): Promise<number | null> } = Deno.stdin) {
    this.#source = source;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(4096);
    const n = await this.#source.read(chunk);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    for (let i = 0; i < n; i++) this.#buffer.push(chunk[i]!);
    return true;
  }

  /**
   * Read one line without its line ending.
   *
   * @returns The line, or `null` at end of input.
   */
  async readLine(): Promise<string | null> {
    while (true) {
      const nl = this.#buffer.indexOf(10);
      if (nl >= 0) {
        const bytes = this.#buffer.splice(0, nl + 1);
        return this.#decoder.decode(new Uint8Array(bytes)).replace(/\r?\n$/, "");
      }
      if (!await this.#fill()) {
        if (this.#buffer.length === 0) return null;
        return this.#decoder.decode(new Uint8Array(this.#buffer.splice(0)));
      }
    }
  }

  /**
   * Read a line with echo off, on a terminal. Backspace edits; Ctrl-C and Ctrl-D abort.
   *
   * @param prompt Shown first (on stderr, so stdout stays clean).
   * @returns The text typed.
   * @throws {Deno.errors.Interrupted} On Ctrl-C or Ctrl-D.
   */
  async readHidden(prompt: string): Promise<string> {
    Deno.stderr.writeSync(encoder.encode(prompt));
    Deno.stdin.setRaw(true);
    const typed: number[] = [];
    try {
      while (true) {
        if (this.#buffer.length === 0 && !await this.#fill()) {
          throw new Deno.errors.Interrupted("Input ended");
        }
        const byte = this.#buffer.shift()!;
        if (byte === 13 || byte === 10) break;
        if (byte === 3 || byte === 4) throw new Deno.errors.Interrupted("Cancelled");
        if (byte === 127 || byte === 8) {
          // Drop a whole UTF-8 character: continuation bytes are 10xxxxxx.
          while (typed.length > 0 && (typed.pop()! & 0xc0) === 0x80);
          continue;
        }
        if (byte >= 32 || byte === 9) typed.push(byte);
      }
      return new TextDecoder().decode(new Uint8Array(typed));
    } finally {
      typed.fill(0);
      Deno.stdin.setRaw(false);
      Deno.stderr.writeSync(encoder.encode("\n"));
    }
  }
}
