/**
 * A real `authchat server` as a child process on port 0 (started directly, through `deno task start`, or
 * through the bundle's launcher script), and the members of its process group.
 *
 * @module
 */

import { LOG_FLUSH_MS } from "../../lib/server/logger.ts";
import { BASE_ENV, cliArgs, ROOT, TEST_ITERATIONS } from "./_cli_args.ts";

/**
 * The arguments of an `authchat server` on port 0 for TCP, TLS and UDP.
 *
 * @param dataDir Data directory.
 * @param extra More arguments, after those.
 * @returns The arguments, after the subcommand.
 */
export function serverArgs(dataDir: string, extra: string[] = []): string[] {
  return ["--data", dataDir, "--tcp-port", "0", "--tls-port", "0", "--udp-port", "0", ...extra];
}

/** A running `authchat server` child process. */
export class ServerProcess {
  /** Bound TCP port (0 when TCP is off). */
  tcpPort = 0;
  /** Bound TLS port (0 when TLS is off). */
  tlsPort = 0;
  /** Bound UDP rendezvous port (0 when UDP is off). */
  udpPort = 0;
  /** The ready line. */
  line = "";
  #child: Deno.ChildProcess;
  #stderr = "";
  #stdout = "";
  #pumps: Promise<void>[] = [];
  #status: Promise<Deno.CommandStatus>;

  #group: boolean;

  private constructor(child: Deno.ChildProcess, group: boolean) {
    this.#child = child;
    this.#status = child.status;
    this.#group = group;
  }

  /**
   * Start a server on port 0 (TCP, TLS and UDP) and wait for its ready line.
   *
   * @param dataDir Data directory (keys installed by the caller or created on first start).
   * @param options Extra arguments and environment.
   * @returns The running server.
   */
  static async start(
    dataDir: string,
    options: {
      args?: string[];
      env?: Record<string, string>;
      /**
       * Run it as a user does, through the launcher, in a process group of its own (`setsid`, so `pid` is
       * the group's id): `"task"` is `deno task start` from the repository root; a program is a launcher
       * script (the bundle's `authchat`) run as `program server ...` from `cwd`.
       */
      via?: "task" | { program: string; cwd: string };
      /**
       * Run it under `ulimit -n` of this many descriptors (set by `sh`, soft and hard alike, so the runtime
       * cannot raise it); direct runs only.
       */
      descriptors?: number;
    } = {},
  ): Promise<ServerProcess> {
    const env = { AUTHCHAT_SCRAM_ITERATIONS: String(TEST_ITERATIONS), ...options.env };
    const args = serverArgs(dataDir, options.args);
    const via = options.via;
    const limit = options.descriptors;
    const [program, programArgs, cwd] = via === undefined && limit !== undefined
      ? ["sh", [
        "-c",
        `ulimit -n ${limit} && exec "$0" "$@"`,
        Deno.execPath(),
        ...await cliArgs("server", args, env),
      ]]
      : via === undefined
      ? [Deno.execPath(), await cliArgs("server", args, env), undefined]
      : via === "task"
      ? ["setsid", [Deno.execPath(), "task", "start", ...args], ROOT]
      : ["setsid", [via.program, "server", ...args], via.cwd];
    const child = new Deno.Command(program, {
      args: programArgs,
      ...(cwd === undefined ? {} : { cwd }),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { ...BASE_ENV, ...env },
    }).spawn();
    const server = new ServerProcess(child, via !== undefined);
    let ready!: () => void;
    const readyPromise = new Promise<void>((resolve) => ready = resolve);
    server.#pumps.push(
      server.#pump(child.stdout, (text) => {
        server.#stdout += text;
        const line = server.#stdout.split("\n").find((l) => l.startsWith("authchat listening"));
        if (line && !server.line) {
          server.line = line;
          server.tcpPort = Number(/tcp=\S+:(\d+)/.exec(line)?.[1] ?? 0);
          server.tlsPort = Number(/tls=\S+:(\d+)/.exec(line)?.[1] ?? 0);
          server.udpPort = Number(/udp=\S+:(\d+)/.exec(line)?.[1] ?? 0);
          ready();
        }
      }),
      server.#pump(child.stderr, (text) => server.#stderr += text),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      readyPromise.then(() => "ready"),
      server.#status.then(() => "exited"),
      new Promise((r) => timer = setTimeout(r, 30_000, "timeout")),
    ]);
    clearTimeout(timer);
    if (outcome !== "ready") {
      await server.kill();
      throw new Error(`server did not start (${outcome}): ${server.#stderr}`);
    }
    return server;
  }

  async #pump(stream: ReadableStream<Uint8Array>, onText: (text: string) => void): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of stream) onText(decoder.decode(chunk, { stream: true }));
  }

  /** Everything the server wrote to stderr so far (its log). */
  get stderr(): string {
    return this.#stderr;
  }

  /**
   * The log once every line of what has happened so far is in: the server writes its log lines in batches,
   * at most `LOG_FLUSH_MS` late, so a test that looks right after an event waits that long (and a margin).
   *
   * @returns Everything the server wrote to stderr.
   */
  async settledLog(): Promise<string> {
    await new Promise((r) => setTimeout(r, LOG_FLUSH_MS * 5));
    return this.#stderr;
  }

  /** Everything the server wrote to stdout so far. */
  get stdout(): string {
    return this.#stdout;
  }

  /** The process id (of the process group too, when run through a launcher). */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Send a signal (to the whole process group when run through a launcher) and wait for exit.
   *
   * @param signal The signal (default SIGTERM).
   * @returns The exit status.
   */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      if (this.#group) Deno.kill(-this.#child.pid, signal);
      else this.#child.kill(signal);
    } catch {
      // Already exited.
    }
    const status = await this.#status;
    await Promise.all(this.#pumps);
    return status;
  }

  /**
   * Wait for the process to exit by itself (after a signal sent some other way).
   *
   * @returns The exit status.
   */
  async exited(): Promise<Deno.CommandStatus> {
    const status = await this.#status;
    await Promise.all(this.#pumps);
    return status;
  }

  /** Kill with SIGKILL and wait. */
  kill(): Promise<Deno.CommandStatus> {
    return this.stop("SIGKILL");
  }

  /** Stop on dispose. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
  }
}

/** A process found in /proc. */
export interface ProcessInfo {
  /** Its id. */
  pid: number;
  /** Its command line. */
  args: string[];
}

/**
 * The processes of a process group that are still alive, from /proc (Linux).
 *
 * @param pgid The group's id.
 * @returns Its members.
 */
export async function groupProcesses(pgid: number): Promise<ProcessInfo[]> {
  const members: ProcessInfo[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so fields are counted after its ')'.
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) !== pgid) continue;
      const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      members.push({ pid: Number(entry.name), args: cmdline.split("\0").slice(0, -1) });
    } catch {
      // It exited while we looked.
    }
  }
  return members;
}
