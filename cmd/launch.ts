/**
 * The authchat launcher: runs one subcommand of `mod.ts` (or of the bundle) as a child Deno process with
 * permissions on exactly the paths its arguments, environment and configuration name. The deno.json tasks
 * `start`, `client`, `seed` and `keygen`, and the bundle's `dist/authchat` script, run through it:
 *
 * ```sh
 * deno run --no-prompt --allow-read --allow-env \
 *   --allow-run="$(deno eval 'console.log(Deno.execPath())')" cmd/launch.ts server --data /srv/authchat
 * ```
 *
 * The launcher itself reads files (the configuration), reads the environment (all of it, so the
 * configuration loader can refuse a misspelt `AUTHCHAT_*` variable; the child inherits it anyway) and runs
 * Deno, nothing else: no writes, no network. It runs `Deno.execPath()`: `--allow-run=deno` would not match it when `deno` is
 * reached through a symbolic link (Deno compares the paths as written), and a `deno` found on `PATH` might
 * not be the one running the task, so the task names the running executable with `deno eval`, which deno
 * task runs with its own executable (about 50 ms).
 *
 * The child inherits stdin, stdout and stderr; SIGINT, SIGTERM and SIGHUP are passed on to it, and the
 * launcher exits with its exit status, never before it.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../lib/server/server_config.ts";
import { childArgs, launchFlags } from "./_launch_plan.ts";
import type { ChildScript } from "./_launch_plan.ts";
import { STOP_SIGNALS } from "./_stop_signals.ts";
import { UsageError } from "./_usage_error.ts";
import { listEnvNames } from "./main.ts";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The script this launcher runs: `mod.ts` with the repository's deno.json when it runs from the source,
 * `authchat.js` beside it with no configuration when it runs as the bundle `authchat-launch.js`.
 *
 * @param url The launcher's own module URL.
 * @returns The script.
 */
export function childScript(url: string): ChildScript {
  const here = dirname(fileURLToPath(url));
  if (url.endsWith(".ts")) return { path: join(here, "..", "mod.ts"), config: join(here, "..", "deno.json") };
  return { path: join(here, "authchat.js"), config: null };
}

/**
 * Run one `authchat` subcommand as a child process with the permissions it needs.
 *
 * @param args The subcommand and its arguments.
 * @param script The script to run and its Deno configuration.
 * @returns The child's exit status; 2 when the configuration or a path is unusable, 1 when Deno cannot be run
 *   (either said on stderr).
 */
export async function launch(args: string[], script: ChildScript): Promise<number> {
  let flags: string[];
  try {
    const envNames = listEnvNames();
    flags = await launchFlags(args, {
      env: (name) => Deno.env.get(name),
      ...(envNames === undefined ? {} : { envNames }),
      cwd: Deno.cwd(),
      exists,
    });
  } catch (err) {
    const usage = err instanceof ConfigError || err instanceof UsageError;
    console.error(`error: ${(err as Error)?.message ?? String(err)}`);
    return usage ? 2 : 1;
  }
  // Spawning is synchronous and signals are handled on the event loop, so the child exists by the time a
  // handler runs.
  let child: Deno.ChildProcess | undefined;
  // Passed on to the child: the signals that stop the server cleanly.
  const handlers = STOP_SIGNALS.map((signal) => {
    const handler = () => {
      try {
        child?.kill(signal);
      } catch {
        // It has exited already: its status is on the way.
      }
    };
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  try {
    try {
      child = new Deno.Command(Deno.execPath(), { args: childArgs(flags, script, args) }).spawn();
    } catch (err) {
      console.error(`error: cannot run ${Deno.execPath()}: ${(err as Error).message}`);
      return 1;
    }
    return (await child.status).code;
  } finally {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  }
}

if (import.meta.main) {
  Deno.exit(await launch(Deno.args, childScript(import.meta.url)));
}
