/**
 * Server configuration: defaults, then a YAML file, then `AUTHCHAT_*`
 * environment variables, then command-line flags. Every key is checked; an
 * invalid one is reported by name, and so are a misspelt key or variable (with
 * the name it was likely meant to be), a TLS port equal to the TCP port, and a
 * host name that does not resolve.
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { join } from "node:path";
import { closestName } from "./closest_name.ts";
import { coerceValue, ConfigError, readConfigFile } from "./config_file.ts";
import type { ValueKind } from "./config_file.ts";
import { DEFAULT_ITERATIONS, MAX_ITERATIONS, MIN_ITERATIONS } from "../crypto/scram_verifier.ts";
import { DEFAULT_MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS } from "../auth/password_policy.ts";
import { DEFAULT_LOGIN_BUDGET } from "../auth/login_budget.ts";
import { checkDatabaseSetting, DEFAULT_POOL_SIZE } from "../store/database_location.ts";
import { TrustedProxies } from "./trusted_proxies.ts";

/** The resolved configuration a server runs with. */
export interface ServerConfig {
  /** Server name shown in HELLO. */
  name: string;
  /** Address to listen on. */
  host: string;
  /** Serve plain TCP. */
  tcp: boolean;
  /** Serve TLS. */
  tls: boolean;
  /** Serve the UDP rendezvous and relay (chat). */
  udp: boolean;
  /** TCP port (0: any free port). */
  tcp_port: number;
  /** TLS port (0: any free port). */
  tls_port: number;
  /** UDP port of the rendezvous and relay (0: any free port). */
  udp_port: number;
  /** Serve whole sessions over the UDP port too (docs/PROTOCOL.md §20), when `udp` is on. */
  udp_sessions: boolean;
  /** UDP handshakes per second at which proof of work engages (H of §20.3). */
  udp_handshake_threshold: number;
  /** Half-open UDP sessions at which proof of work engages (O of §20.3). */
  udp_half_open_threshold: number;
  /** Most half-open UDP sessions at once (0: 4 × `udp_half_open_threshold`); past it new ones are dropped. */
  udp_half_open_max: number;
  /** Data directory. */
  data_dir: string;
  /**
   * Where the accounts live: a SQLite database file, or a `postgres://` / `postgresql://` URL (several
   * nodes share one PostgreSQL database).
   */
  database: string;
  /** Most connections to PostgreSQL at once (unused with SQLite). */
  database_pool_size: number;
  /** TLS certificate file. */
  tls_cert: string;
  /** TLS private key file. */
  tls_key: string;
  /** Sealing private key file. */
  seal_private_key: string;
  /** Sealing public key file. */
  seal_public_key: string;
  /** PBKDF2 iterations for new verifiers and mock exchanges. */
  scram_iterations: number;
  /** Shortest accepted password, in characters. */
  password_min_length: number;
  /** Seconds a connection has to log in. */
  auth_timeout: number;
  /** Seconds a logged-in session may stay silent. */
  idle_timeout: number;
  /** Seconds a session that sends keepalives may stay silent before it is taken for dead. */
  keepalive_timeout: number;
  /**
   * Seconds between two re-checks of the node's logged-in sessions against the store: those whose account
   * changed its password or is gone end (session_recheck.ts).
   */
  session_recheck: number;
  /** Datagrams per second one user may send through the relay (and at once). */
  relay_per_second: number;
  /** Most connections per source address that are not logged in. */
  max_unauthenticated_per_ip: number;
  /** Most connections per source address in all. */
  max_connections_per_ip: number;
  /**
   * Most connections in all, TLS handshakes included (0: derived from the descriptors the process may
   * open, see `connectionCap`). At the cap, the oldest connection not logged in makes room for a new one.
   */
  max_connections: number;
  /** Registrations a source address may make per minute (and at once). */
  registrations_per_minute: number;
  /** Successful logins to one account per minute (and at once), from anywhere. */
  logins_per_minute_per_account: number;
  /** Successful logins from one source address per minute (and at once), to any accounts. */
  logins_per_minute_per_source: number;
  /** Failed proofs allowed before backoff starts (the attempt after that many failures waits). */
  failures_before_backoff: number;
  /** First backoff in seconds; doubles per further failure. */
  backoff_base: number;
  /** Longest backoff in seconds. */
  backoff_max: number;
  /** `text` or `json` log lines on stderr. */
  log_format: "text" | "json";
  /** Log lines per second each event may write once its burst is spent (0: no limit). */
  log_lines_per_second: number;
  /** Log lines each event may write at once. */
  log_lines_burst: number;
  /** Port of `/metrics` and `/healthz` (0: any free port; `null`: off, the default). */
  metrics_port: number | null;
  /** Address the metrics port listens on (default 127.0.0.1: metrics are not for the internet). */
  metrics_host: string;
  /**
   * The message bus that joins several nodes: `nats://host:port`, several separated by commas; `null` for
   * none (one node alone, everything shared in its memory).
   */
  bus: string | null;
  /**
   * This node's id among the nodes on the bus (unique); `null` for the default, the host name and the TCP
   * port (the TLS port without TCP; the process id instead when that port is 0): see `nodeIdOf`.
   */
  node_id: string | null;
  /**
   * Load balancers whose connections name their client in a PROXY protocol v2 header (HAProxy's
   * `send-proxy-v2`): addresses and networks separated by commas; `null` for none (every connection is its
   * own client, the default). A connection to the TCP or TLS port from one of them must begin with the
   * header; the client it names is the connection's address for the limits and the log.
   */
  proxy_protocol_from: string | null;
}

/** A key of {@linkcode ServerConfig}. */
export type ConfigKey = keyof ServerConfig;

const PORT: ValueKind = { type: "int", min: 0, max: 65535 };

/** Every key: its kind and default (paths under the data directory default from it). */
const KEYS: Record<ConfigKey, ValueKind> = {
  name: { type: "string" },
  host: { type: "string" },
  tcp: { type: "bool" },
  tls: { type: "bool" },
  udp: { type: "bool" },
  tcp_port: PORT,
  tls_port: PORT,
  udp_port: PORT,
  udp_sessions: { type: "bool" },
  udp_handshake_threshold: { type: "int", min: 1, max: 10_000_000 },
  udp_half_open_threshold: { type: "int", min: 1, max: 10_000_000 },
  udp_half_open_max: { type: "int", min: 0, max: 10_000_000 },
  data_dir: { type: "path" },
  database: { type: "path" },
  database_pool_size: { type: "int", min: 1, max: 1000 },
  tls_cert: { type: "path" },
  tls_key: { type: "path" },
  seal_private_key: { type: "path" },
  seal_public_key: { type: "path" },
  scram_iterations: { type: "int", min: MIN_ITERATIONS, max: MAX_ITERATIONS },
  password_min_length: { type: "int", min: 1, max: MAX_PASSWORD_CHARS },
  auth_timeout: { type: "number", min: 0.05, max: 86_400 },
  idle_timeout: { type: "number", min: 0.05, max: 30 * 86_400 },
  keepalive_timeout: { type: "number", min: 0.05, max: 3600 },
  session_recheck: { type: "number", min: 1, max: 60 },
  relay_per_second: { type: "int", min: 1, max: 1_000_000 },
  max_unauthenticated_per_ip: { type: "int", min: 1, max: 1_000_000 },
  max_connections_per_ip: { type: "int", min: 1, max: 1_000_000 },
  max_connections: { type: "int", min: 0, max: 10_000_000 },
  registrations_per_minute: { type: "int", min: 1, max: 1_000_000 },
  logins_per_minute_per_account: { type: "int", min: 1, max: 1_000_000 },
  logins_per_minute_per_source: { type: "int", min: 1, max: 1_000_000 },
  failures_before_backoff: { type: "int", min: 0, max: 1000 },
  backoff_base: { type: "number", min: 0.001, max: 86_400 },
  backoff_max: { type: "number", min: 0.001, max: 7 * 86_400 },
  log_format: { type: "enum", values: ["text", "json"] },
  log_lines_per_second: { type: "number", min: 0, max: 1_000_000 },
  log_lines_burst: { type: "int", min: 1, max: 1_000_000 },
  metrics_port: PORT,
  metrics_host: { type: "string" },
  bus: { type: "urls", schemes: ["nats"] },
  node_id: {
    type: "string",
    pattern: /^[A-Za-z0-9._:@-]{1,128}$/,
    expected: "1 to 128 letters, digits and . _ : @ -",
  },
  proxy_protocol_from: { type: "string" },
};

/** Keys of the secured-chat seed project's YAML file, accepted as aliases. */
export const CONFIG_ALIASES: Readonly<Record<string, ConfigKey>> = {
  server_address: "host",
  server_port: "tcp_port",
  server_certificate: "tls_cert",
  server_privateKey: "tls_key",
  data_base: "database",
};

const DEFAULTS: Omit<
  ServerConfig,
  "database" | "tls_cert" | "tls_key" | "seal_private_key" | "seal_public_key"
> = {
  name: "authchat",
  host: "127.0.0.1",
  tcp: true,
  tls: true,
  udp: true,
  tcp_port: 1991,
  tls_port: 1992,
  udp_port: 1991,
  udp_sessions: true,
  udp_handshake_threshold: 200,
  udp_half_open_threshold: 1000,
  udp_half_open_max: 0,
  data_dir: "./data",
  database_pool_size: DEFAULT_POOL_SIZE,
  scram_iterations: DEFAULT_ITERATIONS,
  password_min_length: DEFAULT_MIN_PASSWORD_CHARS,
  auth_timeout: 30,
  idle_timeout: 900,
  keepalive_timeout: 15,
  session_recheck: 30,
  relay_per_second: 500,
  max_unauthenticated_per_ip: 32,
  max_connections_per_ip: 256,
  max_connections: 0,
  registrations_per_minute: 10,
  logins_per_minute_per_account: DEFAULT_LOGIN_BUDGET.perAccountPerMinute,
  logins_per_minute_per_source: DEFAULT_LOGIN_BUDGET.perSourcePerMinute,
  failures_before_backoff: 5,
  backoff_base: 1,
  backoff_max: 900,
  log_format: "text",
  // A burst of 20 lines, then 10 a second, per event: a busy server's audit lines (connect, login_ok)
  // pass; an attack's million lines a minute become ten a second and a count.
  log_lines_per_second: 10,
  log_lines_burst: 20,
  metrics_port: null,
  metrics_host: "127.0.0.1",
  bus: null,
  node_id: null,
  proxy_protocol_from: null,
};

/** The default configuration file, read when present and no other is named. */
export const DEFAULT_CONFIG_FILE = "config/authchat.yaml";

export { ConfigError } from "./config_file.ts";

/**
 * `AUTHCHAT_*` variables other parts of authchat read (the client's, and the test suite's: where the
 * PostgreSQL and NATS servers of the cluster tests are, and whether they must run): the server's check of
 * variable names leaves them alone, so one shell can set them all.
 */
export const OTHER_AUTHCHAT_VARIABLES: readonly string[] = [
  "AUTHCHAT_CONFIG_DIR",
  "AUTHCHAT_TEST_NATS",
  "AUTHCHAT_TEST_POSTGRES",
  "AUTHCHAT_TEST_REQUIRE_CLUSTER",
];

/**
 * The prefix of the test suite's variables (`AUTHCHAT_TEST_POSTGRES` and the like, which `.ci/services.sh`
 * prints): no configuration key starts with `test`, so the server's check of variable names leaves them
 * alone, and servers the tests start in a shell holding them still run.
 */
export const TEST_VARIABLE_PREFIX = "AUTHCHAT_TEST_";

const ENV_PREFIX = "AUTHCHAT_";

function coerce(key: ConfigKey, where: string, value: unknown, fromText: boolean): unknown {
  const coerced = coerceValue(KEYS[key], where, value, fromText);
  if (key === "database") {
    // The reason never repeats the value: a URL may hold a password.
    const refused = checkDatabaseSetting(coerced as string);
    if (refused !== undefined) throw new ConfigError(where, refused);
  }
  if (key === "proxy_protocol_from") {
    try {
      TrustedProxies.parse(coerced as string);
    } catch (err) {
      throw new ConfigError(where, (err as Error).message);
    }
  }
  return coerced;
}

/** Where configuration comes from. */
export interface ConfigSources {
  /** YAML file to read; when absent {@linkcode DEFAULT_CONFIG_FILE} is read if it exists. */
  file?: string;
  /** Reads one environment variable (only `AUTHCHAT_*` names are asked for). */
  env?: (name: string) => string | undefined;
  /**
   * Names of every environment variable that is set, to refuse a misspelt `AUTHCHAT_*` one (which would
   * otherwise be ignored). Leave it out when the process may not list the environment: then there is no check.
   */
  envNames?: () => string[];
  /** Values from command-line flags, already named by config key. */
  flags?: Partial<ServerConfig>;
  /** The flag that sets a key, for errors, when it is not the key's name (`data_dir` is set by `--data`). */
  flagNames?: Partial<Record<keyof ServerConfig, string>>;
}

/** The variable that sets a key. */
function envName(key: ConfigKey): string {
  return ENV_PREFIX + key.toUpperCase();
}

/** Refuse an `AUTHCHAT_*` variable that sets nothing, naming the one it was likely meant to be. */
function checkEnvNames(names: string[]): void {
  const valid = [...(Object.keys(KEYS) as ConfigKey[]).map(envName), ...OTHER_AUTHCHAT_VARIABLES];
  for (const name of names) {
    if (!name.toUpperCase().startsWith(ENV_PREFIX) || valid.includes(name)) continue;
    if (name.startsWith(TEST_VARIABLE_PREFIX)) continue;
    const meant = closestName(
      name.slice(ENV_PREFIX.length),
      valid.map((v) => v.slice(ENV_PREFIX.length)),
    );
    throw new ConfigError(
      name,
      meant === undefined
        ? `unknown variable: the server reads ${ENV_PREFIX} and a key of config/authchat.example.yaml in ` +
          "capitals, such as AUTHCHAT_TCP_PORT"
        : `unknown variable: did you mean ${ENV_PREFIX}${meant}?`,
    );
  }
}

const IP_ADDRESS = /^\d{1,3}(\.\d{1,3}){3}$|:/;

/**
 * Whether this process may look the host up without asking. Without network access, Deno's permission
 * query throws on a name it cannot hold (`a b`, `é.com`): such a process (the launcher, seed) cannot ask,
 * so it does not check; the server, which may, reports the name as one that does not resolve.
 */
function mayResolve(host: string): boolean {
  try {
    return Deno.permissions.querySync({ name: "net", host }).state === "granted";
  } catch {
    return false;
  }
}

/**
 * Refuse a host name that does not resolve, before anything is created for it (the first start writes a
 * certificate naming the host). Only when this process may resolve it without asking: a process without
 * network access (seed) has no use for the host, and the server's listen error names it too.
 */
async function checkHostResolves(host: string, key: "host" | "metrics_host" = "host"): Promise<void> {
  if (IP_ADDRESS.test(host)) return;
  if (!mayResolve(host)) return;
  try {
    await lookup(host);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "EPERM") return;
    const why = code === "ENOTFOUND"
      ? "no such name"
      : code === "EAI_AGAIN"
      ? "the name server did not answer"
      : code ?? (err as Error).message;
    throw new ConfigError(
      key,
      `cannot resolve ${host} (${why}): give an address of this machine, or a name that resolves to one`,
    );
  }
}

/**
 * Resolve the configuration from every source.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadServerConfig } from "./server_config.ts";
 * const config = await loadServerConfig({ file: "/dev/null", flags: { tcp_port: 0 } });
 * assert(config.tcp_port === 0 && config.tls_port === 1992);
 * ```
 *
 * @param sources File, environment and flags.
 * @returns The configuration.
 * @throws {ConfigError} Naming the first invalid key, unknown key or `AUTHCHAT_*` variable, the file when it
 *   is not valid YAML, `tls_port` when it equals `tcp_port`, `metrics_port` when it equals either on the
 *   same host, and `host` or `metrics_host` when it does not resolve.
 */
export async function loadServerConfig(sources: ConfigSources = {}): Promise<ServerConfig> {
  const values: Partial<Record<ConfigKey, unknown>> = {};
  const file = sources.file ?? DEFAULT_CONFIG_FILE;
  // The default file is optional: one that is not there (or this process may not read) was not meant.
  const doc = await readConfigFile(file, { optional: sources.file === undefined });
  for (const [rawKey, value] of Object.entries(doc)) {
    const key = (Object.hasOwn(CONFIG_ALIASES, rawKey) ? CONFIG_ALIASES[rawKey] : rawKey) as ConfigKey;
    if (!Object.hasOwn(KEYS, key)) {
      const meant = closestName(rawKey, [...Object.keys(KEYS), ...Object.keys(CONFIG_ALIASES)]);
      throw new ConfigError(
        rawKey,
        `unknown key in ${file}${meant === undefined ? "" : `: did you mean ${meant}?`}`,
      );
    }
    if (value === null) continue;
    values[key] = coerce(key, rawKey, value, false);
  }
  if (sources.envNames) checkEnvNames(sources.envNames());
  for (const key of Object.keys(KEYS) as ConfigKey[]) {
    const name = envName(key);
    const value = sources.env?.(name);
    if (value !== undefined) values[key] = coerce(key, name, value, true);
  }
  for (const [key, value] of Object.entries(sources.flags ?? {}) as [ConfigKey, unknown][]) {
    if (value === undefined) continue;
    values[key] = coerce(key, sources.flagNames?.[key] ?? `--${key.replaceAll("_", "-")}`, value, false);
  }
  const dataDir = (values.data_dir as string | undefined) ?? DEFAULTS.data_dir;
  const config = {
    ...DEFAULTS,
    database: join(dataDir, "authchat.db"),
    tls_cert: join(dataDir, "server-cert.pem"),
    tls_key: join(dataDir, "server-key.pem"),
    seal_private_key: join(dataDir, "seal-private.pem"),
    seal_public_key: join(dataDir, "seal-public.pem"),
    ...values,
  } as ServerConfig;
  if (!config.tcp && !config.tls && !(config.udp && config.udp_sessions)) {
    throw new ConfigError("tcp", "tcp, tls and UDP sessions are all off: nothing to serve");
  }
  if (config.backoff_max < config.backoff_base) {
    throw new ConfigError(
      "backoff_max",
      `${config.backoff_max} is smaller than backoff_base ${config.backoff_base}`,
    );
  }
  if (config.tcp && config.tls && config.tls_port !== 0 && config.tls_port === config.tcp_port) {
    throw new ConfigError(
      "tls_port",
      `${config.tls_port} is tcp_port too: TLS and plain TCP need a port each (set another tls_port or tcp_port)`,
    );
  }
  if (config.metrics_port !== null && config.metrics_port !== 0 && config.metrics_host === config.host) {
    const taken = ([["tcp_port", config.tcp], ["tls_port", config.tls]] as const)
      .find(([key, on]) => on && config[key] === config.metrics_port);
    if (taken) {
      throw new ConfigError(
        "metrics_port",
        `${config.metrics_port} is ${
          taken[0]
        } too on ${config.host}: the metrics port needs a port of its own`,
      );
    }
  }
  await checkHostResolves(config.host);
  if (config.metrics_port !== null && config.metrics_host !== config.host) {
    await checkHostResolves(config.metrics_host, "metrics_host");
  }
  return config;
}
