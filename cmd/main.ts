/**
 * The `authchat` command line: four subcommands sharing one library.
 *
 * @module
 */

import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import denoJson from "../deno.json" with { type: "json" };
import { ConfigError, loadServerConfig } from "../lib/server/server_config.ts";
import { coerceValue } from "../lib/server/config_file.ts";
import type { ConfigSources, ServerConfig } from "../lib/server/server_config.ts";
import { CLIENT_CONFIG_KEYS, loadClientConfig } from "../lib/client/client_config.ts";
import type { ClientConfig, ClientConfigKey, ClientConfigSources } from "../lib/client/client_config.ts";
import { runClient } from "./client.ts";
import { CLIENT_HELP } from "./_client_help.ts";
import { runKeygen } from "./keygen.ts";
import { runSeed } from "./seed.ts";
import { runServer } from "./server.ts";
import { UsageError } from "./_usage_error.ts";

function integer(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) {
      throw new InvalidArgumentError(`Expected an integer within ${min}..${max}.`);
    }
    return n;
  };
}

const port = integer(0, 65535);

/** What `--database` of `server` and `seed` takes. */
const DATABASE_HELP =
  "SQLite file (default DATA/authchat.db), or postgres://USER@HOST:PORT/DB for a PostgreSQL " +
  "database several servers share (give its password in AUTHCHAT_DATABASE, the config file or PGPASSWORD, " +
  "not here: a command line is visible to other users)";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function env(name: string): string | undefined {
  return Deno.env.get(name);
}

/**
 * The names of the variables set, for the loader to refuse a misspelt `AUTHCHAT_*` one — only when this
 * process may list the environment (the launcher may; the server and seed it runs may read only
 * `AUTHCHAT_*` names: asking would fail, or prompt on a terminal); else no check.
 *
 * @returns A function listing the names, or `undefined` when they may not be listed.
 */
export function listEnvNames(): (() => string[]) | undefined {
  return Deno.permissions.querySync({ name: "env" }).state === "granted"
    ? () => Object.keys(Deno.env.toObject())
    : undefined;
}

/** The flags of `server` and `seed` that set a configuration key, by option name. */
const CONFIG_FLAGS: Readonly<Record<"server" | "seed", Readonly<Record<string, keyof ServerConfig>>>> = {
  seed: { data: "data_dir", database: "database", iterations: "scram_iterations" },
  server: {
    data: "data_dir",
    database: "database",
    host: "host",
    tcpPort: "tcp_port",
    tlsPort: "tls_port",
    udpPort: "udp_port",
    tcp: "tcp",
    tls: "tls",
    udp: "udp",
    udpSessions: "udp_sessions",
    name: "name",
    logFormat: "log_format",
    metricsPort: "metrics_port",
    metricsHost: "metrics_host",
    bus: "bus",
    nodeId: "node_id",
  },
};

/**
 * The flags of `client` that set a configuration key, by option name: every key has its flag, named alike
 * (`password_file` is `--password-file`, option `passwordFile`).
 */
const CLIENT_CONFIG_FLAGS: Readonly<Record<string, ClientConfigKey>> = Object.fromEntries(
  CLIENT_CONFIG_KEYS.map((key) => [key.replace(/_(.)/g, (_, c: string) => c.toUpperCase()), key]),
);

/**
 * The `--config` file of a parsed command (as `{ file }`, or nothing), and the values of the flags given on
 * its command line (not defaults), by the configuration key each sets.
 */
function givenConfig(
  command: Command,
  keys: Readonly<Record<string, string>>,
): { file?: string; flags: Record<string, unknown> } {
  const file = command.getOptionValue("config") as string | undefined;
  const flags: Record<string, unknown> = {};
  for (const [flag, key] of Object.entries(keys)) {
    if (command.getOptionValueSource(flag) === "cli") flags[key] = command.getOptionValue(flag);
  }
  return { ...(file === undefined ? {} : { file }), flags };
}

/**
 * Where the configuration of a parsed `server` or `seed` command comes from: its `--config` file, the
 * environment, and the flags given on the command line (defaults are left to the config loader). The
 * launcher resolves the configuration from the same sources to find the paths the command will use.
 *
 * @param command The parsed `server` or `seed` subcommand.
 * @param getEnv Reads one environment variable.
 * @param envNames Lists the names of the variables set, when the process may (see {@linkcode listEnvNames}).
 * @returns The sources for {@linkcode loadServerConfig}.
 */
export function configSources(
  command: Command,
  getEnv: (name: string) => string | undefined,
  envNames?: () => string[],
): ConfigSources {
  const names = CONFIG_FLAGS[command.name() === "seed" ? "seed" : "server"];
  const { flags, ...file } = givenConfig(command, names);
  return {
    ...file,
    env: getEnv,
    ...(envNames === undefined ? {} : { envNames }),
    flags: flags as Partial<ServerConfig>,
    // An invalid value is reported under the flag that was typed: `--data`, not `--data-dir`.
    flagNames: Object.fromEntries(
      Object.entries(names).map((
        [option, key],
      ) => [key, `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`]),
    ),
  };
}

/**
 * Where the client's configuration comes from: its `--config` file (else the default one), the
 * environment, and the flags given on the command line, by config key. The launcher uses it too, to grant
 * the client the files its configuration names.
 *
 * @param command The parsed `client` command.
 * @param getEnv Reads one environment variable.
 * @returns The sources for `loadClientConfig`.
 */
export function clientConfigSources(
  command: Command,
  getEnv: (name: string) => string | undefined,
): ClientConfigSources {
  const { flags, ...file } = givenConfig(command, CLIENT_CONFIG_FLAGS);
  return { ...file, env: getEnv, flags: flags as Partial<ClientConfig> };
}

/**
 * Run the CLI.
 *
 * @param args Arguments after the program name.
 * @returns Exit status: 0 success, 1 failure, 2 usage or configuration error (the client adds 3, cannot
 *   connect, and 4, server key not trusted).
 */
export async function main(args: string[]): Promise<number> {
  const cli = createProgram();
  try {
    await cli.program.parseAsync(args, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    console.error(`error: ${(err as Error)?.message ?? String(err)}`);
    return 1;
  }
  return cli.status();
}

/** The command-line program and the exit status its action set. */
export interface Cli {
  /** The program: parse arguments with `parseAsync(args, { from: "user" })`. */
  program: Command;
  /** The exit status the action that ran returned (0 before any ran). */
  status(): number;
}

/**
 * Build the command-line program with its four subcommands and their actions. Parsing errors throw a
 * `CommanderError` (after printing the message) instead of exiting.
 *
 * @returns The program and its status.
 */
export function createProgram(): Cli {
  let status = 0;
  const program = new Command("authchat")
    // Before any subcommand is added: subcommands copy this configuration when they are created. Commander's
    // default asks NO_COLOR, FORCE_COLOR and CLICOLOR_FORCE whether to colour help, and reading the
    // environment needs a permission the tasks do not grant (help has no colours anyway).
    .configureOutput({ getOutHasColors: () => false, getErrHasColors: () => false })
    .description("Authenticated, end-to-end encrypted chat: one program, four subcommands.")
    .version(denoJson.version)
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .addHelpText(
      "after",
      "\nQuick start:\n  authchat server                 # first start creates ./data with keys and database\n" +
        "  authchat seed --demo            # demo users with printed passwords\n" +
        "  authchat client --tls --user alice   # then: login, access, close",
    );

  program.command("keygen")
    .description(
      "Create the server's TLS certificate and key and its RSA sealing key pair; print fingerprints.",
    )
    .option("--data <dir>", "directory to write into", "./data")
    .option(
      "--hostname <name>",
      "extra subjectAltName entry (repeatable); localhost, 127.0.0.1 and ::1 are always in",
      collect,
    )
    .option("--days <n>", "certificate validity in days", integer(1, 36500), 825)
    .option("--rsa", "RSA-3072 certificate key instead of ECDSA P-256")
    .option("--force", "replace existing key files")
    .action(async (opts) => {
      // As `server` and `seed` refuse it: an empty directory would mean the working directory.
      coerceValue({ type: "path" }, "--data", opts.data, false);
      status = await runKeygen(opts);
    });

  program.command("seed")
    .description("Create or migrate the user store and add accounts.")
    .option("--config <file>", "YAML configuration (database path, policy)")
    .option("--data <dir>", "data directory holding authchat.db")
    .option("--database <file|url>", DATABASE_HELP)
    .option("--demo", "add alice, bob, charlie, eve and admin with strong random passwords (printed once)")
    .option("--user <name>", "add one user (with --password-file)")
    .option("--password-file <file>", "file holding the password of --user")
    .option(
      "--from <file>",
      "import a legacy user:password file (blank and # lines skipped); rejected lines are reported",
    )
    .option(
      "--import-verifiers <file>",
      "import user:SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey> lines",
    )
    .option(
      "--iterations <n>",
      "PBKDF2 iterations of new verifiers (default 600000)",
      integer(4096, 10_000_000),
    )
    .addHelpText(
      "after",
      [
        "",
        "The password policy applies to --demo and --user. --from imports a legacy password the policy refuses",
        "(it worked in the old system) and flags the account: its logins can only change the password.",
        "An empty password or an invalid name is rejected. Users that exist already are kept, so an import can",
        "be run again: the exit code is 1 only when a line was rejected. Plaintext passwords are never stored.",
      ].join("\n"),
    )
    .action(async (opts, command: Command) => {
      status = await runSeed(opts, await loadServerConfig(configSources(command, env, listEnvNames())));
    });

  program.command("server")
    .description(
      "Serve logins over TCP, TLS and UDP sessions, presence and the UDP rendezvous and relay for direct\n" +
        "messages.\n" +
        "Prints one line when ready: authchat listening tcp=HOST:PORT tls=HOST:PORT udp=HOST:PORT\n" +
        "(and metrics=HOST:PORT with --metrics-port)",
    )
    .option("--config <file>", "YAML configuration (default config/authchat.yaml if present)")
    .option("--data <dir>", "data directory: database, keys (default ./data)")
    .option("--database <file|url>", DATABASE_HELP)
    .option("--host <address>", "address to listen on (default 127.0.0.1)")
    .option("--tcp-port <port>", "plain TCP port, 0 for any free port (default 1991)", port)
    .option("--tls-port <port>", "TLS port, 0 for any free port (default 1992)", port)
    .option("--udp-port <port>", "UDP rendezvous and relay port, 0 for any free port (default 1991)", port)
    .option("--no-tcp", "do not serve plain TCP")
    .option("--no-tls", "do not serve TLS")
    .option("--no-udp", "do not serve the UDP rendezvous and relay (no direct messages)")
    .option("--no-udp-sessions", "serve no whole sessions over the UDP port (no `authchat client --udp`)")
    .option("--name <name>", "server name shown in HELLO (default authchat)")
    .option(
      "--bus <urls>",
      "join the other nodes on NATS: nats://host:port, several separated by commas (default: none, one node)",
    )
    .option(
      "--node-id <id>",
      "this node's id on the bus, unique (default: host name and TCP port, e.g. chat1:1991)",
    )
    .addOption(new Option("--log-format <format>", "log lines on stderr").choices(["text", "json"]))
    .option(
      "--metrics-port <port>",
      "serve Prometheus /metrics and /healthz over HTTP on this port, 0 for any free port (default off)",
      port,
    )
    .option("--metrics-host <address>", "address of the metrics port (default 127.0.0.1, this machine only)")
    .addHelpText(
      "after",
      "\nPrecedence: flags, then AUTHCHAT_* environment variables, then the YAML file, then defaults.\n" +
        "config/authchat.example.yaml documents every key.\n" +
        "SIGINT (Ctrl-C), SIGTERM or SIGHUP stops the server cleanly: sessions are told goodbye, the database\n" +
        "is closed. A second signal while it stops is logged; a third forces the exit (status 1).",
    )
    .action(async (_opts, command: Command) => {
      status = await runServer(await loadServerConfig(configSources(command, env, listEnvNames())));
    });

  program.command("client")
    .description(
      "Connect to a server: an interactive REPL on a terminal, else commands from --exec or stdin lines.",
    )
    .option(
      "--config <file>",
      "YAML configuration (default client.yaml in the configuration directory, if present)",
    )
    .option("--host <host>", "server address (default 127.0.0.1)")
    .option(
      "--port <port>",
      "server port (default 1992 with --tls, else 1991; with --udp its UDP port)",
      port,
    )
    .option("--tls", "connect with TLS (SCRAM-SHA-256-PLUS, channel-bound)")
    .option("--no-tls", "connect over plain TCP even when the configuration says tls: true")
    .option(
      "--udp",
      "open the whole session over UDP, where only UDP gets through (encrypted, channel-bound; not with --tls)",
    )
    .option("--no-udp", "connect over TCP even when the configuration says udp: true")
    .option("--ca <file>", "trust a server certificate signed by this CA (or this certificate itself)")
    .option(
      "--fingerprint <SHA256:...>",
      "pin the certificate (TLS, UDP) or sealing key (TCP) fingerprint keygen printed",
    )
    .option("--user <name>", "default user for login and register")
    .option("--password-file <file>", "password of login/register, current one of passwd/delete (no prompt)")
    .option("--new-password-file <file>", "new password of passwd (no prompt)")
    .option("--exec <command>", "run a command (repeatable, in order) instead of reading commands", collect)
    .option("--keep-going", "in a script, run the remaining commands after one failed")
    .option("--no-keep-going", "stop a script at the first failed command (the default)")
    .option("--json", "print one JSON object per event on stdout (schema below)")
    .option("--no-json", "print text even when the configuration says json: true")
    .option(
      "--known-hosts <file>",
      "trust-on-first-use file (default known_hosts in the configuration directory)",
    )
    .option(
      "--known-peers <file>",
      "pinned identity keys of other users (default known_peers in the configuration directory)",
    )
    .option(
      "--device-tokens <file>",
      "device tokens of earlier logins, shown at the next (default device_tokens in the configuration directory)",
    )
    .option(
      "--relay",
      "send direct messages through the server's relay only (when UDP between peers is blocked)",
    )
    .option("--no-relay", "try direct UDP first even when the configuration says relay: true")
    .option(
      "--server-udp-port <port>",
      "the server's UDP port, when it differs from the one it announces",
      port,
    )
    .addHelpText("after", CLIENT_HELP)
    .action(async (opts, command: Command) => {
      const { config } = loadClientConfig(clientConfigSources(command, env));
      status = await runClient(config, opts.exec ?? []);
    });

  return { program, status: () => status };
}
