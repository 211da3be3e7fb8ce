/**
 * The Deno permissions a subcommand's process gets from the launcher: exactly the paths its arguments,
 * environment and configuration name, and nothing else. A pure function, so what each task grants can be
 * read and tested in one place.
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { DEFAULT_CONFIG_FILE } from "../lib/server/server_config.ts";
import type { ServerConfig } from "../lib/server/server_config.ts";
import { privateFileWorkDir } from "../lib/client/private_file.ts";
import { isPostgresUrl, postgresLocation } from "../lib/store/database_location.ts";
import { UsageError } from "./_usage_error.ts";

/**
 * Environment variables the server and seed read: their `AUTHCHAT_*` settings, and the two debug switches
 * the yaml package reads on every parse.
 */
export const SERVER_ENV: readonly string[] = ["AUTHCHAT_*", "LOG_TOKENS", "LOG_STREAM"];

/**
 * Environment variables the PostgreSQL client reads besides, when the database is a URL: libpq's `PG*`
 * (`PGPASSWORD` supplies a password the URL leaves out; `PGAPPNAME` and the like are read on every connect).
 */
export const POSTGRES_ENV: readonly string[] = ["PG*"];

/**
 * Environment variables the client reads: where its known-hosts, known-peers, device-token and client.yaml
 * files live, and the yaml package's debug switches (client.yaml).
 */
export const CLIENT_ENV: readonly string[] = [
  "HOME",
  "XDG_CONFIG_HOME",
  "AUTHCHAT_CONFIG_DIR",
  "LOG_TOKENS",
  "LOG_STREAM",
];

/**
 * V8's young generation for the server: 4 MiB instead of the default keeps about 40 MiB less resident
 * with 10,000 sessions at the same speed (docs/BENCHMARKS.md).
 */
export const SERVER_V8_FLAGS = "--v8-flags=--max-semi-space-size=4";

/**
 * What the server opens to count the descriptors it may still open at start (lib/server/descriptor_limit.ts):
 * Deno lets only a process with every permission read /proc/self/limits.
 */
export const DESCRIPTOR_PROBE_FILE = "/dev/null";

/** What one subcommand will touch, as the launcher found it from the arguments, environment and config. */
export type PermissionRequest =
  | {
    command: "server";
    /** The resolved configuration. */
    config: ServerConfig;
    /** The `--config` file, when one was given. */
    configFile?: string;
    /** Key files (of the configuration) that exist already; missing ones are created on first start. */
    existingKeys: readonly string[];
  }
  | {
    command: "seed";
    /** The resolved configuration. */
    config: ServerConfig;
    /** The `--config` file, when one was given. */
    configFile?: string;
    /** Files given to `--from`, `--import-verifiers` and `--password-file`. */
    inputs: readonly (string | undefined)[];
  }
  | {
    command: "keygen";
    /** The `--data` directory. */
    data: string;
  }
  | {
    command: "client";
    /** Files the client only reads: `--password-file`, `--new-password-file`, `--ca`, `--config`. */
    inputs: readonly (string | undefined)[];
    /**
     * The known-hosts, known-peers and device-token files, in that order (given, or the defaults; undefined
     * when none).
     */
    trustFiles: readonly [string | undefined, string | undefined, string | undefined];
    /** The directories of the trust files that do not exist yet: the client makes them at first use. */
    missingDirs: readonly string[];
  };

/** Absolute, distinct paths; empty and missing values are left out (the command itself reports them). */
class PathList {
  #paths: string[] = [];
  #cwd: string;

  constructor(cwd: string) {
    this.#cwd = cwd;
  }

  add(...paths: (string | undefined)[]): this {
    for (const path of paths) {
      if (path === undefined || path === "") continue;
      const absolute = resolve(this.#cwd, path);
      // Deno's permission lists are separated by commas and have no escape for one inside a path.
      if (absolute.includes(",")) {
        throw new UsageError(
          `Cannot grant access to ${absolute}: Deno cannot name a path containing a comma in a permission; ` +
            "rename it, or run mod.ts with deno run and your own permission flags",
        );
      }
      if (!this.#paths.includes(absolute)) this.#paths.push(absolute);
    }
    return this;
  }

  flag(name: string): string[] {
    return this.#paths.length === 0 ? [] : [`--${name}=${this.#paths.join(",")}`];
  }
}

/**
 * The directory SQLite writes beside a database (its -wal and -journal files); none for `:memory:` or a
 * PostgreSQL URL.
 */
function databaseDir(database: string): string | undefined {
  return database === ":memory:" || isPostgresUrl(database) ? undefined : dirname(database);
}

function databaseFile(database: string): string | undefined {
  return database === ":memory:" || isPostgresUrl(database) ? undefined : database;
}

/** The `host:port` a PostgreSQL database is reached at (an IPv6 address in brackets), or nothing for a file. */
function databaseHost(database: string): string[] {
  if (!isPostgresUrl(database)) return [];
  const { host, port } = postgresLocation(database);
  return [`${host.includes(":") ? `[${host}]` : host}:${port}`];
}

/** The variables a process using this database reads. */
function serverEnv(database: string): string {
  return [...SERVER_ENV, ...(isPostgresUrl(database) ? POSTGRES_ENV : [])].join(",");
}

function keyFiles(config: ServerConfig): string[] {
  return [config.tls_cert, config.tls_key, config.seal_private_key, config.seal_public_key];
}

/**
 * The Deno flags of a subcommand's process: permissions on exactly the paths it will use, the environment
 * variables it reads, and what else it needs to run (`--unstable-net` for UDP, the server's V8 flags).
 *
 * - server: network (the chat ports, the metrics port when `metrics_port` is set, the database, the bus); the
 *   host name when it is on a bus without a `node_id` (the default id names the host); read the config file, data directory, database and its directory, certificate, keys,
 *   and {@linkcode DESCRIPTOR_PROBE_FILE}; write the data directory, the database's directory, and the directory of each key file still missing
 *   (the first start creates them); {@linkcode SERVER_ENV}.
 * - seed: read the config file, data directory, database and its directory, and its input files; write
 *   the data directory and the database's directory; {@linkcode SERVER_ENV}.
 * - When the database is a PostgreSQL URL, neither gets a file of it (there is none): seed gets network
 *   access to its host and port only, and both read {@linkcode POSTGRES_ENV} too.
 * - keygen: read and write the `--data` directory.
 * - client: network; read its input files; read and write its trust files (known_hosts, known_peers,
 *   device_tokens), the directories known_peers and device_tokens are rewritten in
 *   ({@linkcode privateFileWorkDir}), and the trust files' directories only when they do not exist yet
 *   (never a directory a user's file happens to be in: `--known-hosts ~/kh` does not open the home
 *   directory); {@linkcode CLIENT_ENV}.
 *
 * Relative paths are made absolute against `cwd`, which must be the working directory of the process.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { permissionFlags } from "./_launch_permissions.ts";
 * const flags = permissionFlags({ command: "keygen", data: "keys" }, "/srv");
 * assert(flags.join(" ") === "--allow-read=/srv/keys --allow-write=/srv/keys");
 * ```
 *
 * @param request What the subcommand will touch.
 * @param cwd The working directory relative paths are resolved against.
 * @returns Deno flags for `deno run`, before the script.
 * @throws {UsageError} When a path contains a comma (a Deno permission list cannot name it).
 */
export function permissionFlags(request: PermissionRequest, cwd: string): string[] {
  const read = new PathList(cwd);
  const write = new PathList(cwd);
  switch (request.command) {
    case "server": {
      const { config } = request;
      const missing = keyFiles(config).filter((file) => !request.existingKeys.includes(file));
      read.add(request.configFile ?? DEFAULT_CONFIG_FILE, config.data_dir)
        .add(databaseDir(config.database), databaseFile(config.database), ...keyFiles(config))
        .add(DESCRIPTOR_PROBE_FILE);
      write.add(config.data_dir, databaseDir(config.database), ...missing.map((file) => dirname(file)));
      return [
        SERVER_V8_FLAGS,
        "--unstable-net",
        "--allow-net",
        ...read.flag("allow-read"),
        ...write.flag("allow-write"),
        `--allow-env=${serverEnv(config.database)}`,
        // The default node id on a bus is the host name and the port.
        ...(config.bus !== null && config.node_id === null ? ["--allow-sys=hostname"] : []),
      ];
    }
    case "seed": {
      const { config } = request;
      read.add(request.configFile ?? DEFAULT_CONFIG_FILE, config.data_dir)
        .add(databaseDir(config.database), databaseFile(config.database), ...request.inputs);
      write.add(config.data_dir, databaseDir(config.database));
      const hosts = databaseHost(config.database);
      return [
        ...(hosts.length === 0 ? [] : [`--allow-net=${hosts.join(",")}`]),
        ...read.flag("allow-read"),
        ...write.flag("allow-write"),
        `--allow-env=${serverEnv(config.database)}`,
      ];
    }
    case "keygen":
      read.add(request.data);
      write.add(request.data);
      return [...read.flag("allow-read"), ...write.flag("allow-write")];
    case "client": {
      const [knownHosts, ...rewritten] = request.trustFiles;
      const trust = [
        knownHosts,
        ...rewritten.flatMap((file) =>
          file === undefined || file === "" ? [] : [file, privateFileWorkDir(file)]
        ),
        ...request.missingDirs,
      ];
      read.add(...request.inputs, ...trust);
      write.add(...trust);
      return [
        "--unstable-net",
        "--allow-net",
        ...read.flag("allow-read"),
        ...write.flag("allow-write"),
        `--allow-env=${CLIENT_ENV.join(",")}`,
      ];
    }
  }
}
