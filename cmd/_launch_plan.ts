/**
 * What the launcher runs: the arguments are parsed by the real `authchat` program (its actions replaced),
 * the server's configuration is resolved by the real loader, and the paths found are turned into Deno
 * flags by {@linkcode permissionFlags}. The e2e harness builds its child processes with the same
 * functions, so tests run the CLI exactly as the tasks do.
 *
 * @module
 */

import type { Command } from "commander";
import { dirname, join, resolve } from "node:path";
import { DEFAULT_CLIENT_CONFIG_NAME, loadClientConfig } from "../lib/client/client_config.ts";
import { configDir, configDirEnv } from "../lib/client/config_dir.ts";
import { defaultKnownHostsPath } from "../lib/client/known_hosts.ts";
import { defaultKnownPeersPath } from "../lib/client/known_peers.ts";
import { defaultDeviceTokensPath } from "../lib/client/device_tokens.ts";
import { loadServerConfig } from "../lib/server/server_config.ts";
import { permissionFlags } from "./_launch_permissions.ts";
import type { PermissionRequest } from "./_launch_permissions.ts";
import { clientConfigSources, configSources, createProgram } from "./main.ts";

/** The environment a subcommand will run in, as the launcher sees it. */
export interface LaunchContext {
  /** Reads one environment variable of the child. */
  env(name: string): string | undefined;
  /**
   * Lists the names of the child's environment variables, when they may be listed: the configuration
   * loader then refuses a misspelt `AUTHCHAT_*` one (the launcher may list them; its child may not).
   */
  envNames?: () => string[];
  /** The child's working directory. */
  cwd: string;
  /** Whether a file exists (the server creates missing key files on first start). */
  exists(path: string): boolean;
}

/** The script a launcher runs, and the Deno configuration it runs under. */
export interface ChildScript {
  /** `mod.ts` of the repository, or the bundle `authchat.js`. */
  path: string;
  /** The `deno.json` to use; `null` for none (the bundle needs none, and must not pick one up). */
  config: string | null;
}

/**
 * Parse arguments with the real program, running no action.
 *
 * @returns The subcommand the arguments select with its parsed options, or `null` when they select none
 *   (help, version, or a usage error: the command itself will print it).
 */
function parse(args: string[]): Command | null {
  const { program } = createProgram();
  let chosen: Command | null = null;
  for (const command of [program, ...program.commands]) {
    command.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  }
  for (const sub of program.commands) {
    sub.action((...actionArgs: unknown[]) => {
      chosen = actionArgs.at(-1) as Command;
    });
  }
  try {
    program.parse(args, { from: "user" });
  } catch {
    // A CommanderError: help, version or a usage error. The command run without permissions says it.
    return null;
  }
  return chosen;
}

/**
 * What the client will read: its input files and trust files, from its flags and the configuration file
 * they select (whose relative paths are the file's own), and the default configuration file itself; and
 * which trust-file directories it will have to make.
 *
 * @throws {ConfigError} When the client configuration is invalid (the message the client gives).
 */
function clientRequest(command: Command, context: LaunchContext): PermissionRequest {
  const getEnv = (name: string) => context.env(name);
  const named = clientConfigSources(command, getEnv);
  // A named file is found, and its relative paths resolved, from the child's working directory.
  const sources = named.file === undefined ? named : { ...named, file: resolve(context.cwd, named.file) };
  const { config } = loadClientConfig(sources);
  // Without a configuration directory only the files given are used (the client says what is missing).
  const env = configDirEnv(getEnv);
  const dir = configDir(env);
  const trustFiles = [
    config.known_hosts ?? (dir === null ? undefined : defaultKnownHostsPath(env)),
    config.known_peers ?? (dir === null ? undefined : defaultKnownPeersPath(env)),
    config.device_tokens ?? (dir === null ? undefined : defaultDeviceTokensPath(env)),
  ] as const;
  return {
    command: "client",
    inputs: [
      config.password_file,
      config.new_password_file,
      config.ca,
      sources.file ?? (dir === null ? undefined : join(dir, DEFAULT_CLIENT_CONFIG_NAME)),
    ],
    trustFiles,
    missingDirs: [...new Set(trustFiles.flatMap((file) => file ? [dirname(file)] : []))]
      .filter((dir) => !context.exists(dir)),
  };
}

/**
 * Find what an `authchat` invocation will touch.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { permissionRequest } from "./_launch_plan.ts";
 * const context = { env: () => undefined, cwd: "/srv", exists: () => false };
 * const request = await permissionRequest(["keygen", "--data", "keys"], context);
 * assert(request?.command === "keygen" && request.data === "keys");
 * assert(await permissionRequest(["keygen", "--help"], context) === null);
 * ```
 *
 * @param args The subcommand and its arguments.
 * @param context The child's environment, working directory and file system.
 * @returns The request, or `null` when the arguments run no action (help, version, a usage error).
 * @throws {ConfigError} When the server's configuration is invalid (the message the server gives).
 */
export async function permissionRequest(
  args: string[],
  context: LaunchContext,
): Promise<PermissionRequest | null> {
  const command = parse(args);
  if (command === null) return null;
  const opts = command.opts();
  switch (command.name()) {
    case "server":
    case "seed": {
      const config = await loadServerConfig(
        configSources(command, (name) => context.env(name), context.envNames),
      );
      const configFile = opts.config as string | undefined;
      const common = { config, ...(configFile === undefined ? {} : { configFile }) };
      if (command.name() === "seed") {
        return { command: "seed", ...common, inputs: [opts.from, opts.importVerifiers, opts.passwordFile] };
      }
      const keys = [config.tls_cert, config.tls_key, config.seal_private_key, config.seal_public_key];
      return { command: "server", ...common, existingKeys: keys.filter((file) => context.exists(file)) };
    }
    case "keygen":
      return { command: "keygen", data: opts.data as string };
    default:
      return clientRequest(command, context);
  }
}

/**
 * The Deno flags an `authchat` invocation runs with: {@linkcode permissionFlags} of what it will touch,
 * none at all when it runs no action (help needs no permission).
 *
 * @param args The subcommand and its arguments.
 * @param context The child's environment, working directory and file system.
 * @returns Flags for `deno run`, before the script.
 * @throws {ConfigError} When the server's configuration is invalid.
 * @throws {UsageError} When a path cannot be named in a permission.
 */
export async function launchFlags(args: string[], context: LaunchContext): Promise<string[]> {
  const request = await permissionRequest(args, context);
  return request === null ? [] : permissionFlags(request, context.cwd);
}

/**
 * The client's flags, found without waiting (its configuration file is read synchronously). Test harnesses
 * that start clients synchronously use it.
 *
 * @param args Arguments after `client`.
 * @param context The child's environment, working directory and file system.
 * @returns Flags for `deno run`, before the script.
 * @throws {ConfigError} When the client configuration is invalid.
 * @throws {UsageError} When a path cannot be named in a permission.
 */
export function clientLaunchFlags(args: string[], context: LaunchContext): string[] {
  const command = parse(["client", ...args]);
  return command === null ? [] : permissionFlags(clientRequest(command, context), context.cwd);
}

/**
 * The arguments of `deno` that run a subcommand with its flags: quietly (Deno's own messages came with the
 * launcher), never prompting for a permission (the flags are the whole grant).
 *
 * @param flags From {@linkcode launchFlags}.
 * @param script The script and its Deno configuration.
 * @param args The subcommand and its arguments.
 * @returns The argument list for `deno`.
 */
export function childArgs(flags: string[], script: ChildScript, args: string[]): string[] {
  return [
    "run",
    "--quiet",
    "--no-prompt",
    ...(script.config === null ? ["--no-config"] : [`--config=${script.config}`]),
    ...flags,
    script.path,
    ...args,
  ];
}
