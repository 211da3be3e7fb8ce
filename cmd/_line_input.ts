/**
 * Lines from stdin when it is not a terminal (scripted mode): commands, and
 * the passwords those commands read when no file gives them. Lines are
 * numbered, so a line is reported by its number rather than its text.
 *
 * @module
 */

/** Reads numbered lines from a byte source. */
export class LineInput {
  #source: { read(p: Uint8Array): Promise<number | null> };
  #buffer: number[] = [];
  #eof = false;
  #decoder = new TextDecoder();
  #number = 0;

  /**
   * Read from a source (default stdin).
   *
   * @param source Byte source.
   */
  constructor(source: { read(p: Uint8Array): Promise<number | null> } = Deno.stdin) {
    this.#source = source;
  }

  /** The number of the last line read (1 for the first). */
  get lineNumber(): number {
    return this.#number;
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
    chunk.fill(0);
    return true;
  }

  /**
   * Read one line without its line ending (`\n` or `\r\n`).
   *
   * @returns The line, or `null` at end of input.
   */
  async readLine(): Promise<string | null> {
    while (true) {
      const nl = this.#buffer.indexOf(10);
      if (nl >= 0) {
        const bytes = this.#buffer.splice(0, nl + 1);
        this.#number++;
        return this.#decoder.decode(new Uint8Array(bytes)).replace(/\r?\n$/, "");
      }
      if (!await this.#fill()) {
        if (this.#buffer.length === 0) return null;
        this.#number++;
        return this.#decoder.decode(new Uint8Array(this.#buffer.splice(0)));
      }
    }
  }
}
