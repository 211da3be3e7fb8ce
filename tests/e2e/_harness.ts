/**
 * Helpers for end-to-end tests: run the real `authchat` CLI as child
 * processes exactly as the deno.json tasks' launcher runs it (the same
 * permissions, derived from the same arguments, environment and
 * configuration), against temporary data directories, on port 0.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { LOG_FLUSH_MS } from "../../lib/server/logger.ts";
import { fileURLToPath } from "node:url";
import { childArgs, clientLaunchFlags, launchFlags } from "../../cmd/_launch_plan.ts";
import type { LaunchContext } from "../../cmd/_launch_plan.ts";
import { UsageError } from "../../cmd/_usage_error.ts";
import { ConfigError } from "../../lib/server/server_config.ts";

/** Repository root. */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));
/** The CLI entry point. */
export const MOD: string = join(ROOT, "mod.ts");

/** PBKDF2 iterations used by test servers and seeds (the minimum, for speed). */
export const TEST_ITERATIONS = 4096;

/** The script the launcher runs from the repository. */
const SCRIPT = { path: MOD, config: join(ROOT, "deno.json") };

/** The environment every CLI child gets on top of this process's own. */
const BASE_ENV: Readonly<Record<string, string>> = { NO_COLOR: "1" };

function launchContext(env: Record<string, string>, cwd = Deno.cwd()): LaunchContext {
  return {
    env: (name) => Object.hasOwn(env, name) ? env[name] : Deno.env.get(name),
    // The launcher may list the environment (the child inherits this process's, plus `env`).
    envNames: () => Object.keys({ ...Deno.env.toObject(), ...env }),
    cwd,
    exists: (path) => {
      try {
        Deno.statSync(resolve(cwd, path));
        return true;
      } catch {
        return false;
      }
    },
  };
}

/**
 * The `deno` arguments that run a subcommand as the tasks' launcher does: its permissions derived from
 * these arguments, this environment and the configuration they select.
 *
 * @param kind The subcommand.
 * @param args Arguments after the subcommand.
 * @param env Environment additions the child gets (on top of this process's environment).
 * @param cwd The child's working directory (default: this process's).
 * @returns Arguments for `Deno.execPath()`.
 */
export async function cliArgs(
  kind: "server" | "seed" | "keygen" | "client",
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<string[]> {
  const flags = await launchFlags([kind, ...args], launchContext({ ...BASE_ENV, ...env }, cwd));
  return childArgs(flags, SCRIPT, [kind, ...args]);
}

/**
 * {@linkcode cliArgs} of the client, found at once (clients are started synchronously).
 *
 * @param args Arguments after `client`.
 * @param env Environment additions the child gets.
 * @returns Arguments for `Deno.execPath()`.
 */
export function clientArgs(args: string[], env: Record<string, string> = {}): string[] {
  return childArgs(clientLaunchFlags(args, launchContext({ ...BASE_ENV, ...env })), SCRIPT, [
    "client",
    ...args,
  ]);
}

/** Result of a finished CLI run. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode runCli}. */
export interface RunOptions {
  /** Environment additions. */
  env?: Record<string, string>;
  /** Text written to stdin (stdin is closed after it). */
  stdin?: string;
  /** Working directory. */
  cwd?: string;
}

/** Options of {@linkcode runProgram}. */
export interface ProgramOptions {
  /** Working directory (default: this process's). */
  cwd?: string;
  /** Environment additions, or with `clearEnv` the whole environment. */
  env?: Record<string, string>;
  /** Start from an empty environment instead of this process's. */
  clearEnv?: boolean;
}

/**
 * Run a program to completion with stdin closed, collecting its output.
 *
 * @param program The executable.
 * @param args Its arguments.
 * @param options Working directory and environment.
 * @returns Exit code and output.
 */
export async function runProgram(
  program: string,
  args: string[],
  options: ProgramOptions = {},
): Promise<CliResult> {
  const out = await new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
    ...(options.clearEnv ? { clearEnv: true } : {}),
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * Run `deno task --quiet <name> ...` from the repository root, as the README shows.
 *
 * @param name The task.
 * @param args Arguments after it.
 * @param env Environment additions.
 * @returns Exit code and output.
 */
export function denoTask(name: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runProgram(Deno.execPath(), ["task", "--quiet", name, ...args], {
    cwd: ROOT,
    env: { ...BASE_ENV, ...env },
  });
}

/**
 * Run one `authchat` subcommand to completion, with the permissions the tasks' launcher would give it.
 *
 * @param kind The subcommand.
 * @param args Arguments after the subcommand.
 * @param options Environment, stdin, working directory.
 * @returns Exit code and output.
 */
export async function runCli(
  kind: "server" | "seed" | "keygen" | "client",
  args: string[],
  options: RunOptions = {},
): Promise<CliResult> {
  let deno: string[];
  try {
    deno = await cliArgs(kind, args, options.env, options.cwd);
  } catch (err) {
    // What the launcher does with a configuration it cannot use: the command's own message, exit 2.
    if (err instanceof ConfigError || err instanceof UsageError) {
      return { code: 2, stdout: "", stderr: `error: ${err.message}\n` };
    }
    throw err;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: deno,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { ...BASE_ENV, ...options.env },
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  const writer = child.stdin.getWriter();
  if (options.stdin !== undefined) await writer.write(new TextEncoder().encode(options.stdin));
  await writer.close();
  const out = await child.output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/**
 * Log in once with the real client, a password file and a known-hosts file under `home`.
 *
 * @param server The server to reach.
 * @param options User, password, transport and the directory used as XDG_CONFIG_HOME.
 * @returns The client's result.
 */
export async function loginOnce(
  server: { tcpPort: number; tlsPort: number },
  options: { user: string; password: string; tls?: boolean; home: string },
): Promise<CliResult> {
  const file = join(options.home, `.pw-${crypto.randomUUID()}`);
  await Deno.writeTextFile(file, options.password);
  try {
    return await runCli("client", [
      ...(options.tls ? ["--tls"] : []),
      "--port",
      String(options.tls ? server.tlsPort : server.tcpPort),
      "--user",
      options.user,
      "--password-file",
      file,
      "--exec",
      "login",
    ], { env: { XDG_CONFIG_HOME: options.home } });
  } finally {
    await Deno.remove(file);
  }
}

/**
 * Make a temporary directory, removed by the returned disposer.
 *
 * @returns The path and a cleanup function.
 */
export async function tempDir(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: "authchat-test-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}) };
}

let keyTemplate: Promise<string> | undefined;

/**
 * Put a server identity (from one keygen per test process) into a data directory.
 *
 * @param dataDir Target data directory (created).
 */
export async function installKeys(dataDir: string): Promise<void> {
  keyTemplate ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "authchat-keys-" });
    const result = await runCli("keygen", ["--data", dir]);
    if (result.code !== 0) throw new Error(`keygen failed: ${result.stderr}`);
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // Already gone.
      }
    });
    return dir;
  })();
  const template = await keyTemplate;
  await Deno.mkdir(dataDir, { recursive: true });
  for (const name of ["server-cert.pem", "server-key.pem", "seal-private.pem", "seal-public.pem"]) {
    await Deno.copyFile(join(template, name), join(dataDir, name));
    await Deno.chmod(join(dataDir, name), name.includes("key") || name.includes("private") ? 0o600 : 0o644);
  }
}

/**
 * Create accounts directly with `authchat seed --user`.
 *
 * @param dataDir Data directory.
 * @param users Name to password.
 */
export async function seedUsers(dataDir: string, users: Record<string, string>): Promise<void> {
  for (const [user, password] of Object.entries(users)) {
    const file = join(dataDir, `.pw-${crypto.randomUUID()}`);
    await Deno.writeTextFile(file, password);
    const result = await runCli(
      "seed",
      ["--data", dataDir, "--user", user, "--password-file", file, "--iterations", String(TEST_ITERATIONS)],
    );
    await Deno.remove(file);
    if (result.code !== 0) throw new Error(`seed of ${user} failed: ${result.stderr}`);
  }
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
    } = {},
  ): Promise<ServerProcess> {
    const env = { AUTHCHAT_SCRAM_ITERATIONS: String(TEST_ITERATIONS), ...options.env };
    const args = [
      "--data",
      dataDir,
      "--tcp-port",
      "0",
      "--tls-port",
      "0",
      "--udp-port",
      "0",
      ...(options.args ?? []),
    ];
    const via = options.via;
    const [program, programArgs, cwd] = via === undefined
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

/**
 * Open a raw TCP connection to a test server.
 *
 * @param port The port.
 * @returns The connection.
 */
export function connectRaw(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port });
}
