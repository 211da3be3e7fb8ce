/**
 * How the end-to-end tests run the real `authchat` CLI: as the deno.json tasks' launcher runs it, with
 * the permissions it derives from the same arguments, environment and configuration.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { childArgs, clientLaunchFlags, launchFlags } from "../../cmd/_launch_plan.ts";
import type { LaunchContext } from "../../cmd/_launch_plan.ts";

/** Repository root. */
export const ROOT: string = fileURLToPath(new URL("../../", import.meta.url));
/** The CLI entry point. */
export const MOD: string = join(ROOT, "mod.ts");

/** PBKDF2 iterations used by test servers and seeds (the minimum, for speed). */
export const TEST_ITERATIONS = 4096;

/** The script the launcher runs from the repository. */
const SCRIPT = { path: MOD, config: join(ROOT, "deno.json") };

/** The environment every CLI child gets on top of this process's own. */
export const BASE_ENV: Readonly<Record<string, string>> = { NO_COLOR: "1" };

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
