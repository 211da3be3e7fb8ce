/**
 * The client's configuration: defaults, then a YAML file (`--config FILE`, else `client.yaml` in the
 * configuration directory when present), then command-line flags. The keys mirror the flags
 * (`password_file` is `--password-file`); config/client.example.yaml documents each. Every value is
 * checked, and a bad one is reported once, by key (or flag) and file.
 *
 * @module
 */

import { dirname, join, resolve } from "node:path";
import { isFingerprint } from "../crypto/fingerprint.ts";
import { closestName } from "../server/closest_name.ts";
import { coerceValue, ConfigError, readConfigFileSync } from "../server/config_file.ts";
import type { ValueKind } from "../server/config_file.ts";
import { configDir, configDirEnv } from "./config_dir.ts";

/** What the client runs with. Unset optional keys fall back as the flags' help says. */
export interface ClientConfig {
  /** Server host name or address. */
  host: string;
  /** Server port (default 1992 with `tls`, else 1991: the TCP port, and the UDP port with `udp`). */
  port?: number;
  /** Connect with TLS. */
  tls: boolean;
  /** Open a whole session over UDP (docs/PROTOCOL.md section 20), where only UDP gets through; not with `tls`. */
  udp: boolean;
  /** PEM file of the CA (or certificate) that must have signed the server certificate (TLS and UDP). */
  ca?: string;
  /** Pinned fingerprint of the server certificate (TLS and UDP) or sealing key (TCP). */
  fingerprint?: string;
  /** Default user for `login` and `register`. */
  user?: string;
  /** File holding the password (instead of a prompt or a stdin line). */
  password_file?: string;
  /** File holding the new password of `passwd`. */
  new_password_file?: string;
  /** Trust-on-first-use file (default `known_hosts` in the configuration directory). */
  known_hosts?: string;
  /** Pinned identity keys of other users (default `known_peers` in the configuration directory). */
  known_peers?: string;
  /** Device tokens from earlier logins (default `device_tokens` in the configuration directory). */
  device_tokens?: string;
  /** Send direct messages through the server's relay only. */
  relay: boolean;
  /** The server's UDP port, when it differs from the one it announces. */
  server_udp_port?: number;
  /** One JSON object per event on stdout. */
  json: boolean;
  /** Run every scripted command even after one failed. */
  keep_going: boolean;
}

/** A key of {@linkcode ClientConfig}. */
export type ClientConfigKey = keyof ClientConfig;

const PORT: ValueKind = { type: "int", min: 1, max: 65535 };

/** Every key and its kind. */
const KEYS: Record<ClientConfigKey, ValueKind> = {
  host: { type: "string" },
  port: PORT,
  tls: { type: "bool" },
  udp: { type: "bool" },
  ca: { type: "path" },
  fingerprint: { type: "string" },
  user: { type: "string" },
  password_file: { type: "path" },
  new_password_file: { type: "path" },
  known_hosts: { type: "path" },
  known_peers: { type: "path" },
  device_tokens: { type: "path" },
  relay: { type: "bool" },
  server_udp_port: PORT,
  json: { type: "bool" },
  keep_going: { type: "bool" },
};

/** Every key of the client configuration, in the order config/client.example.yaml documents them. */
export const CLIENT_CONFIG_KEYS: readonly ClientConfigKey[] = Object.keys(KEYS) as ClientConfigKey[];

const DEFAULTS: Pick<ClientConfig, "host" | "tls" | "udp" | "relay" | "json" | "keep_going"> = {
  host: "127.0.0.1",
  tls: false,
  udp: false,
  relay: false,
  json: false,
  keep_going: false,
};

/** The file read when `--config` is not given (and it exists). */
export const DEFAULT_CLIENT_CONFIG_NAME = "client.yaml";

/** Where the client configuration comes from. */
export interface ClientConfigSources {
  /** The file the user named (`--config`); without it the default file is read if present. */
  file?: string;
  /** Reads an environment variable (only those of the configuration directory are asked for). */
  env: (name: string) => string | undefined;
  /** Values of flags given on the command line, by key. */
  flags?: Partial<ClientConfig>;
}

/** The loaded configuration, and the file it came from (`null`: defaults and flags only). */
export interface LoadedClientConfig {
  config: ClientConfig;
  file: string | null;
}

/**
 * Resolve the client configuration. Relative paths in the file are taken from the file's directory;
 * those of flags from the working directory. Synchronous: the launcher reads it too, to grant the client
 * the files it names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadClientConfig } from "./client_config.ts";
 * const { config } = loadClientConfig({ file: "/dev/null", env: () => undefined, flags: { tls: true } });
 * assert(config.tls && config.host === "127.0.0.1" && config.port === undefined);
 * ```
 *
 * @param sources The named file, the environment and the flags.
 * @returns The configuration and the file read.
 * @throws {ConfigError} Naming the first invalid key or flag (and its file), or a contradiction.
 */
export function loadClientConfig(sources: ClientConfigSources): LoadedClientConfig {
  const dir = configDir(configDirEnv(sources.env));
  const file = sources.file ?? (dir === null ? null : join(dir, DEFAULT_CLIENT_CONFIG_NAME));
  const values: Partial<Record<ClientConfigKey, unknown>> = {};
  const origin: Partial<Record<ClientConfigKey, string>> = {};
  let read = false;
  if (file !== null) {
    const doc = readConfigFileSync(file, { optional: sources.file === undefined });
    read = sources.file !== undefined || Object.keys(doc).length > 0;
    for (const [key, value] of Object.entries(doc)) {
      if (!Object.hasOwn(KEYS, key)) {
        const near = closestName(key, CLIENT_CONFIG_KEYS);
        throw new ConfigError(
          key,
          `unknown key in ${file}${near === undefined ? "" : `: did you mean ${near}?`}`,
        );
      }
      if (value === null) continue;
      const k = key as ClientConfigKey;
      origin[k] = `${key} in ${file}`;
      const checked = coerceValue(KEYS[k], origin[k], value, false);
      values[k] = KEYS[k].type === "path" ? resolve(dirname(file), checked as string) : checked;
    }
  }
  for (const [key, value] of Object.entries(sources.flags ?? {}) as [ClientConfigKey, unknown][]) {
    if (value === undefined) continue;
    origin[key] = `--${key.replaceAll("_", "-")}`;
    values[key] = coerceValue(KEYS[key], origin[key], value, false);
  }
  const config = { ...DEFAULTS, ...values } as ClientConfig;
  if (config.fingerprint !== undefined && !isFingerprint(config.fingerprint)) {
    throw new ConfigError(origin.fingerprint!, "expected SHA256: and 43 base64 characters, as keygen prints");
  }
  if (config.ca !== undefined && config.fingerprint !== undefined) {
    throw new ConfigError(
      `${origin.ca} and ${origin.fingerprint}`,
      "pin the server with one of them, not both",
    );
  }
  if (config.udp && config.tls) {
    throw new ConfigError(
      `${origin.udp} and ${origin.tls}`,
      "a UDP session is encrypted and authenticated by itself, not over TLS: choose one of them",
    );
  }
  if (config.ca !== undefined && !config.tls && !config.udp) {
    throw new ConfigError(
      origin.ca!,
      "a CA applies to TLS and UDP sessions: add --tls (tls: true) or --udp (udp: true), or pin the " +
        "sealing key on plain TCP with a fingerprint",
    );
  }
  return { config, file: read ? file : null };
}
