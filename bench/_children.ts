/**
 * The processes of a benchmark run: the `authchat` CLI (keygen, seed, server), the echo server and the
 * load generator, each with the permissions it needs, their stdout read line by line.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { raceTimeout } from "../lib/transport/race_timeout.ts";
import { SERVER_V8_FLAGS } from "../cmd/_launch_permissions.ts";

/** Repository root. */
const ROOT: string = fileURLToPath(new URL("../", import.meta.url));
const MOD = join(ROOT, "mod.ts");
const CONFIG = join(ROOT, "deno.json");

/** A child process whose stdout lines can be awaited. */
export class Child {
  readonly pid: number;
  #child: Deno.ChildProcess;
  #lines: string[] = [];
  #waiters: (() => void)[] = [];
  #stderr = "";
  /** Set once the process has exited and its output has all been read. */
  #ended = false;
  #done: Promise<Deno.CommandStatus>;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;

  /**
   * Spawn `deno run` with the repository's configuration.
   *
   * @param args Permissions, then the script and its arguments.
   * @param env Environment additions.
   */
  constructor(args: string[], env: Record<string, string> = {}) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--config", CONFIG, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
    }).spawn();
    this.pid = this.#child.pid;
    this.#stdin = this.#child.stdin.getWriter();
    const out = this.#pump(this.#child.stdout, (line) => {
      this.#lines.push(line);
      this.#wake();
    });
    const err = this.#pump(this.#child.stderr, (line) => {
      // A busy server logs a great deal; only the end is worth keeping for an error report.
      this.#stderr = (this.#stderr + line + "\n").slice(-20_000);
    });
    this.#done = Promise.all([out, err]).then(() => this.#child.status).finally(() => {
      this.#ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  async #pump(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) onLine(line);
    }
    if (rest) onLine(rest);
  }

  /** The tail of what it wrote to stderr. */
  get stderr(): string {
    return this.#stderr;
  }

  /**
   * Wait for a stdout line.
   *
   * @param match What the line must satisfy.
   * @param timeoutMs How long to wait.
   * @returns The line.
   * @throws {Error} When the process ends or the time runs out first.
   */
  async line(match: (line: string) => boolean, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.#lines.find(match);
      if (found !== undefined) return found;
      if (this.#ended) throw new Error(`Process ended without the expected output:\n${this.#stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`No expected output within ${timeoutMs / 1000} s:\n${this.#stderr}`);
      // Woken by each new line and by the end of the process.
      await raceTimeout(new Promise<void>((resolve) => this.#waiters.push(resolve)), left);
    }
  }

  /**
   * The first stdout line that is a JSON object (with a given key).
   *
   * @param timeoutMs How long to wait.
   * @param has A key it must have.
   * @returns The object.
   */
  async json(timeoutMs: number, has?: string): Promise<Record<string, number>> {
    return JSON.parse(
      await this.line((l) => l.startsWith("{") && (has === undefined || l.includes(`"${has}"`)), timeoutMs),
    );
  }

  /**
   * Write a line to its stdin.
   *
   * @param text The line.
   */
  async send(text: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${text}\n`));
  }

  /** Close its stdin (roles that hold connections exit then). */
  async #closeStdin(): Promise<void> {
    await this.#stdin.close().catch(() => {});
  }

  /**
   * Wait for the exit.
   *
   * @returns The status.
   */
  async wait(): Promise<Deno.CommandStatus> {
    await this.#closeStdin();
    return await this.#done;
  }

  /**
   * Signal and wait for the exit.
   *
   * @param signal The signal.
   * @returns The status.
   */
  stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.#child.kill(signal);
    } catch {
      // Already gone.
    }
    return this.wait();
  }
}

/**
 * Run an `authchat` subcommand to completion.
 *
 * @param data The data directory it may read and write.
 * @param args The subcommand and its arguments.
 * @param options `net`: it may reach the network (a PostgreSQL database).
 * @throws {Error} When it fails.
 */
export async function authchat(data: string, args: string[], options: { net?: boolean } = {}): Promise<void> {
  const child = new Child([
    `--allow-read=${data}`,
    `--allow-write=${data}`,
    "--allow-env",
    ...(options.net ? ["--allow-net"] : []),
    MOD,
    ...args,
  ]);
  const status = await child.wait();
  if (!status.success) throw new Error(`authchat ${args[0]} failed:\n${child.stderr}`);
}

/**
 * Start a process that prints one ready line `PREFIX NAME=HOST:PORT …`, and wait for that line.
 *
 * @param args Permissions, then the script and its arguments.
 * @param prefix How the ready line starts.
 * @param timeoutMs How long to wait for it.
 * @returns The process, and the port of each listener named in the line.
 */
async function startListening(
  args: string[],
  prefix: string,
  timeoutMs: number,
): Promise<{ child: Child; port: (name: string) => number }> {
  const child = new Child(args);
  let line: string;
  try {
    line = await child.line((l) => l.startsWith(prefix), timeoutMs);
  } catch (err) {
    // No ready line: the process must not outlive the run that gave up on it.
    await child.stop("SIGKILL");
    throw err;
  }
  return { child, port: (name) => Number(new RegExp(`${name}=\\S+:(\\d+)`).exec(line)?.[1]) };
}

/**
 * The V8 flags `deno task start` runs the server with (a young generation sized for a server holding many
 * sessions): its launcher's, which are not in the task's text.
 */
const START_V8_FLAGS: string[] = [SERVER_V8_FLAGS];

/**
 * Start `authchat server` with the permissions and V8 flags of `deno task start`, and wait for its ready
 * line.
 *
 * @param data The data directory.
 * @param config The configuration file.
 * @param args Further arguments of `authchat server` (`--node-id`).
 * @returns The process and its ports.
 */
export async function startServer(
  data: string,
  config: string,
  args: string[] = [],
): Promise<{ child: Child; tcp: number; tls: number; udp: number }> {
  const { child, port } = await startListening(
    [
      ...START_V8_FLAGS,
      "--allow-net",
      // /dev/null: the server counts its free descriptors with it (the cap on connections derives from them).
      `--allow-read=${data},${config},/dev/null`,
      `--allow-write=${data}`,
      // PG*: the PostgreSQL client's variables, read when the database is a postgres:// URL.
      "--allow-env=AUTHCHAT_*,LOG_TOKENS,LOG_STREAM,PG*",
      MOD,
      "server",
      "--config",
      config,
      ...args,
    ],
    "authchat listening",
    60_000,
  );
  return { child, tcp: port("tcp"), tls: port("tls"), udp: port("udp") };
}

/**
 * Start the echo server.
 *
 * @param cert Certificate file.
 * @param key Key file.
 * @returns The process and its ports.
 */
export async function startEcho(
  cert: string,
  key: string,
): Promise<{ child: Child; tcp: number; tls: number; udp: number }> {
  const { child, port } = await startListening(
    [
      "--allow-net",
      `--allow-read=${cert},${key}`,
      join(ROOT, "bench/echo_server.ts"),
      cert,
      key,
    ],
    "echo listening",
    30_000,
  );
  return { child, tcp: port("tcp"), tls: port("tls"), udp: port("udp") };
}

/**
 * Start the load generator in a role.
 *
 * @param role The role.
 * @param options Its options (JSON), with `dir`, a directory it may write to.
 * @param procAccess Whether it reads other processes' CPU time in `/proc` (Deno asks `--allow-all` for
 *   that); otherwise it may only use the network, read, and write in `dir`.
 * @returns The process.
 */
export function loadGenerator(
  role: string,
  options: { dir: string; [key: string]: unknown },
  procAccess = false,
): Child {
  return new Child([
    ...(procAccess ? ["--allow-all"] : ["--allow-net", "--allow-read", `--allow-write=${options.dir}`]),
    join(ROOT, "bench/load_generator.ts"),
    role,
    JSON.stringify(options),
  ]);
}

/**
 * Resident memory of a process, from the OS (`VmRSS` in `/proc/PID/status`; Linux).
 *
 * @param pid The process.
 * @returns MiB, or `NaN` where `/proc` is not there.
 */
export async function residentMb(pid: number): Promise<number> {
  return await statusMb(pid, "VmRSS");
}

/**
 * The part of a process's resident memory that maps files (`RssFile`: the runtime's executable, mostly),
 * which the page cache can make larger or smaller for the same process.
 *
 * @param pid The process.
 * @returns MiB, or `NaN` where `/proc` is not there.
 */
export async function fileBackedMb(pid: number): Promise<number> {
  return await statusMb(pid, "RssFile");
}

async function statusMb(pid: number, field: string): Promise<number> {
  let status: string;
  try {
    status = await Deno.readTextFile(`/proc/${pid}/status`);
  } catch {
    return NaN;
  }
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status)?.[1];
  return kb === undefined ? NaN : Number(kb) / 1024;
}

/** Clock ticks per second of `/proc`'s times (`USER_HZ`: 100 on Linux). */
const clockTicks = 100;

/**
 * CPU time a process has used so far, user and system (`/proc/PID/stat`; Linux).
 *
 * @param pid The process.
 * @returns Seconds, or `NaN` where `/proc` is not there.
 */
export async function cpuSeconds(pid: number): Promise<number> {
  let stat: string;
  try {
    stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch {
    return NaN;
  }
  // The fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/**
 * The machine's CPU time so far, busy and in all (`/proc/stat`; Linux): two readings give how busy it was.
 *
 * @returns Clock ticks, or `NaN`s where `/proc` is not there.
 */
export async function machineTicks(): Promise<{ busy: number; total: number }> {
  let stat: string;
  try {
    stat = await Deno.readTextFile("/proc/stat");
  } catch {
    return { busy: NaN, total: NaN };
  }
  const ticks = stat.split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((sum, t) => sum + t, 0);
  // idle and iowait
  return { busy: total - ticks[3]! - (ticks[4] ?? 0), total };
}
