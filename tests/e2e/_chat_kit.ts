/**
 * Helpers for the end-to-end chat tests: a long-running `authchat client`
 * driven by stdin lines whose output can be awaited line by line, and account
 * registration through the real client. The capturing proxies live in
 * `../_tcp_proxy.ts` and `_udp_capture.ts`, the leak search in `_secret_search.ts`.
 *
 * @module
 */

import { join } from "node:path";
import { clientArgs, runCli } from "./_harness.ts";

const encoder = new TextEncoder();

/** How long a test waits for one expected line unless told otherwise. */
export const LINE_TIMEOUT_MS = 15_000;

/** Which output stream of a client. */
export type Stream = "out" | "err";

interface Waiter {
  stream: Stream;
  from: number;
  pattern: RegExp;
  resolve(index: number): void;
}

/** Where a client runs: the server port, its user and password file, its own config directory. */
export interface ChatClientOptions {
  /** Control port (plain TCP). */
  port: number;
  /** Default user for login and register. */
  user: string;
  /** File holding the password. */
  passwordFile: string;
  /** AUTHCHAT_CONFIG_DIR of this client: its known_hosts and known_peers. */
  configDir: string;
  /** More client flags (`--relay`, `--server-udp-port`, …). */
  args?: string[];
}

/**
 * A running `authchat client` reading commands from stdin (not a terminal, so
 * scripted mode: failures are counted into the exit status), with every line
 * it printed kept for assertions.
 */
export class ChatClient {
  /** Lines printed on stdout so far. */
  readonly out: string[] = [];
  /** Lines printed on stderr so far. */
  readonly err: string[] = [];
  /** The user name this client logs in as. */
  readonly user: string;
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #stdinOpen = true;
  #status: Promise<Deno.CommandStatus>;
  #pumps: Promise<void>[];
  #waiters = new Set<Waiter>();
  #ended = { out: false, err: false };

  private constructor(options: ChatClientOptions) {
    this.user = options.user;
    const env = { AUTHCHAT_CONFIG_DIR: options.configDir };
    this.#child = new Deno.Command(Deno.execPath(), {
      args: clientArgs([
        "--port",
        String(options.port),
        "--user",
        options.user,
        "--password-file",
        options.passwordFile,
        // A test goes on after a command it expects to fail (and counts failures in the exit status).
        "--keep-going",
        ...(options.args ?? []),
      ], env),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#status = this.#child.status;
    this.#pumps = [this.#pump(this.#child.stdout, "out"), this.#pump(this.#child.stderr, "err")];
  }

  /**
   * Start a client process (it connects when the first command needs the server).
   *
   * @param options Server port, user, password file, config directory, extra flags.
   * @returns The running client.
   */
  static start(options: ChatClientOptions): ChatClient {
    return new ChatClient(options);
  }

  /**
   * Start a client and log it in, waiting until chat is ready (the `list`
   * after `login` answers only once the UDP rendezvous finished).
   *
   * @param options As for {@linkcode ChatClient.start}.
   * @returns The logged-in client.
   * @throws {Error} When login or the chat start fails.
   */
  static async login(options: ChatClientOptions): Promise<ChatClient> {
    const client = ChatClient.start(options);
    try {
      await client.command("login", /^logged in as /);
      await client.command("list", /^\d+ online$/);
      const warning = client.err.find((l) => /warning|error/i.test(l));
      if (warning) throw new Error(`${options.user} has no chat: ${warning}`);
      return client;
    } catch (err) {
      await client.kill();
      throw err;
    }
  }

  async #pump(stream: ReadableStream<Uint8Array>, name: Stream): Promise<void> {
    const lines = name === "out" ? this.out : this.err;
    let partial = "";
    const decoder = new TextDecoder();
    const take = (text: string) => {
      partial += text;
      let nl;
      while ((nl = partial.indexOf("\n")) >= 0) {
        lines.push(partial.slice(0, nl));
        partial = partial.slice(nl + 1);
        this.#check(name);
      }
    };
    for await (const chunk of stream) take(decoder.decode(chunk, { stream: true }));
    take(decoder.decode() + (partial === "" ? "" : "\n"));
    this.#ended[name] = true;
    this.#check(name);
  }

  #check(stream: Stream): void {
    const lines = stream === "out" ? this.out : this.err;
    for (const w of this.#waiters) {
      if (w.stream !== stream) continue;
      const index = lines.findIndex((l, i) => i >= w.from && w.pattern.test(l));
      if (index >= 0 || this.#ended[stream]) {
        this.#waiters.delete(w);
        w.resolve(index);
      }
    }
  }

  /** The process id, for signals other than a kill (SIGSTOP, SIGCONT). */
  get pid(): number {
    return this.#child.pid;
  }

  /** A readable dump of everything printed, for failure messages. */
  get transcript(): string {
    return `--- ${this.user} stdout\n${this.out.join("\n")}\n--- ${this.user} stderr\n${this.err.join("\n")}`;
  }

  /**
   * Write one command line to the client's stdin.
   *
   * @param line The command.
   */
  async write(line: string): Promise<void> {
    await this.#stdin.write(encoder.encode(line + "\n"));
  }

  /**
   * Wait for a line matching a pattern, at or after a given line index.
   *
   * @param stream Which output.
   * @param pattern What to find.
   * @param options First line index to consider (default 0) and the time limit.
   * @returns The index of the matching line.
   * @throws {Error} On timeout, or when the stream ends without a match.
   */
  async waitFor(
    stream: Stream,
    pattern: RegExp,
    options: { from?: number; timeoutMs?: number } = {},
  ): Promise<number> {
    const found = await this.#race([{ stream, pattern, from: options.from ?? 0 }], options.timeoutMs);
    return found.index;
  }

  /**
   * Run a command and wait for its outcome: a stdout line matching `ok`, or a
   * stderr line starting with `error:` (both only after the command was written).
   *
   * @param line The command.
   * @param ok The success line.
   * @param options Time limit.
   * @returns Whether it succeeded, the line that said so and its index in its stream.
   * @throws {Error} When neither appears in time.
   */
  async command(
    line: string,
    ok: RegExp,
    options: { timeoutMs?: number } = {},
  ): Promise<{ ok: boolean; line: string; index: number }> {
    const outFrom = this.out.length;
    const errFrom = this.err.length;
    await this.write(line);
    const found = await this.#race([
      { stream: "out", pattern: ok, from: outFrom },
      { stream: "err", pattern: /^error: /, from: errFrom },
    ], options.timeoutMs);
    return {
      ok: found.stream === "out",
      line: (found.stream === "out" ? this.out : this.err)[found.index]!,
      index: found.index,
    };
  }

  /**
   * Run a command that must succeed.
   *
   * @param line The command.
   * @param ok The success line.
   * @returns The index of the success line on stdout.
   * @throws {Error} When it failed or timed out.
   */
  async expectOk(line: string, ok: RegExp): Promise<number> {
    const result = await this.command(line, ok);
    if (!result.ok) throw new Error(`${this.user}: "${line}" failed: ${result.line}\n${this.transcript}`);
    return result.index;
  }

  async #race(
    wanted: { stream: Stream; pattern: RegExp; from: number }[],
    timeoutMs = LINE_TIMEOUT_MS,
  ): Promise<{ stream: Stream; index: number }> {
    const mine: Waiter[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await new Promise((resolve, reject) => {
        let ended = 0;
        for (const w of wanted) {
          const waiter: Waiter = {
            ...w,
            resolve: (index) => {
              if (index >= 0) return resolve({ stream: w.stream, index });
              if (++ended === wanted.length) {
                reject(new Error(`${this.user} ended before printing ${w.pattern}\n${this.transcript}`));
              }
            },
          };
          mine.push(waiter);
          this.#waiters.add(waiter);
          this.#check(w.stream);
        }
        timer = setTimeout(
          () =>
            reject(
              new Error(
                `${this.user}: no line matching ${wanted.map((w) => w.pattern).join(" or ")} within ` +
                  `${timeoutMs} ms\n${this.transcript}`,
              ),
            ),
          timeoutMs,
        );
      });
    } finally {
      clearTimeout(timer);
      for (const w of mine) this.#waiters.delete(w);
    }
  }

  /**
   * Close stdin (the client runs what is left, then exits) and wait.
   *
   * @param timeoutMs How long to wait before killing it.
   * @returns The exit status.
   */
  async finish(timeoutMs = 15_000): Promise<Deno.CommandStatus> {
    await this.#closeStdin();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      this.#status,
      new Promise<null>((r) => timer = setTimeout(r, timeoutMs, null)),
    ]);
    clearTimeout(timer);
    if (outcome === null) {
      await this.kill();
      throw new Error(`${this.user} did not exit within ${timeoutMs} ms of end of input\n${this.transcript}`);
    }
    await Promise.all(this.#pumps);
    return outcome;
  }

  async #closeStdin(): Promise<void> {
    if (!this.#stdinOpen) return;
    this.#stdinOpen = false;
    await this.#stdin.close().catch(() => {});
  }

  /**
   * Kill the process with a signal and wait for it.
   *
   * @param signal Default SIGKILL.
   * @returns The exit status.
   */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<Deno.CommandStatus> {
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited.
    }
    const status = await this.#status;
    await this.#closeStdin();
    await Promise.all(this.#pumps);
    return status;
  }

  /** Kill on dispose (a no-op wait when it already exited). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
  }
}

/**
 * Register accounts through the real client (each gets its identity key there),
 * all with one password.
 *
 * @param port The server's TCP port.
 * @param dir A scratch directory (password file, config).
 * @param users Names to register.
 * @param password The password of every one.
 * @returns The password file's path.
 * @throws {Error} When a registration fails.
 */
export async function registerUsers(
  port: number,
  dir: string,
  users: string[],
  password: string,
): Promise<string> {
  const file = join(dir, "pw");
  await Deno.writeTextFile(file, password);
  const result = await runCli("client", [
    "--port",
    String(port),
    "--password-file",
    file,
    ...users.flatMap((u) => ["--exec", `register ${u}`]),
  ], { env: { AUTHCHAT_CONFIG_DIR: join(dir, "cfg-register") } });
  if (result.code !== 0) throw new Error(`registration failed: ${result.stderr}`);
  return file;
}
