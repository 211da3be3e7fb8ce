/**
 * Helpers for end-to-end tests: run the real `authchat` CLI as child
 * processes exactly as the deno.json tasks' launcher runs it (the same
 * permissions, derived from the same arguments, environment and
 * configuration), against temporary data directories, on port 0. Tests
 * import everything from here; the launcher's arguments live in
 * `_cli_args.ts` and the server child process in `_server_process.ts`.
 *
 * @module
 */

import { join } from "node:path";
import { UsageError } from "../../cmd/_usage_error.ts";
import { ConfigError } from "../../lib/server/server_config.ts";
import { BASE_ENV, cliArgs, ROOT, TEST_ITERATIONS } from "./_cli_args.ts";

export { cliArgs, clientArgs, MOD, ROOT, TEST_ITERATIONS } from "./_cli_args.ts";
export { groupProcesses, serverArgs, ServerProcess } from "./_server_process.ts";
export type { ProcessInfo } from "./_server_process.ts";

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
 * @param options Environment additions (`AUTHCHAT_DATABASE` for a PostgreSQL store).
 */
export async function seedUsers(
  dataDir: string,
  users: Record<string, string>,
  options: { env?: Record<string, string> } = {},
): Promise<void> {
  for (const [user, password] of Object.entries(users)) {
    const file = join(dataDir, `.pw-${crypto.randomUUID()}`);
    await Deno.writeTextFile(file, password);
    const result = await runCli(
      "seed",
      ["--data", dataDir, "--user", user, "--password-file", file, "--iterations", String(TEST_ITERATIONS)],
      options.env === undefined ? {} : { env: options.env },
    );
    await Deno.remove(file);
    if (result.code !== 0) throw new Error(`seed of ${user} failed: ${result.stderr}`);
  }
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
