/**
 * `authchat server`: load the configuration and keys (creating them on first
 * start), open the store, listen, print one ready line, and stop cleanly on
 * SIGINT, SIGTERM or SIGHUP (copies of one signal count once; a third distinct
 * one during the stop forces the exit: cmd/_stop_signals.ts).
 *
 * @module
 */

import { dirname } from "node:path";
import {
  existingIdentityFiles,
  generateServerIdentity,
  loadServerIdentity,
} from "../lib/crypto/server_identity.ts";
import type { IdentityPaths } from "../lib/crypto/server_identity.ts";
import { AuthchatServer } from "../lib/server/authchat_server.ts";
import { ListenError } from "../lib/server/listen_error.ts";
import { Logger } from "../lib/server/logger.ts";
import type { ServerConfig } from "../lib/server/server_config.ts";
import { SqliteUserStore } from "../lib/store/sqlite_user_store.ts";
import { requireDatagramSockets } from "../lib/transport/runtime_features.ts";
import { describeKeys } from "./keygen.ts";
import { StopSignals } from "./_stop_signals.ts";

/** Create the identity on first start; refuse to guess when only some files exist. */
async function ensureIdentity(paths: IdentityPaths, config: ServerConfig, log: Logger): Promise<void> {
  const needed = config.tls ? Object.values(paths) : [paths.sealPrivateFile, paths.sealPublicFile];
  const present = await existingIdentityFiles(paths);
  const missing = needed.filter((p) => !present.includes(p));
  if (missing.length === 0) return;
  if (present.length > 0) {
    throw new Error(
      `Key files missing: ${missing.join(", ")} (while ${present.join(", ")} exist): ` +
        "restore them, or run authchat keygen --force to replace all keys",
    );
  }
  const keys = await generateServerIdentity(paths, {
    hostnames: config.host === "0.0.0.0" ? [] : [config.host],
  });
  log.info("keygen", { dir: dirname(paths.sealPrivateFile), reason: "first start" });
  console.error(`First start: no keys found, so authchat keygen ran into ${dirname(paths.sealPrivateFile)}:`);
  for (const line of describeKeys(keys)) console.error(line);
}

async function warnOnLoosePermissions(paths: string[], log: Logger): Promise<void> {
  for (const file of paths) {
    try {
      const mode = (await Deno.stat(file)).mode;
      if (mode !== null && (mode & 0o077) !== 0) {
        log.warn("key_permissions", { file, mode: `0${(mode & 0o777).toString(8)}`, advice: "chmod 600" });
      }
    } catch {
      // Reported by the loader.
    }
  }
}

/**
 * Run the server until a signal arrives.
 *
 * @param config Resolved configuration.
 * @returns Exit code: 0 after a clean stop, 1 when it could not start, 2 when it cannot listen where the
 *   configuration says (a port in use, an address this machine lacks) or this runtime cannot serve UDP.
 */
export async function runServer(config: ServerConfig): Promise<number> {
  const log = new Logger({
    format: config.log_format,
    limit: { linesPerSecond: config.log_lines_per_second, burst: config.log_lines_burst },
  });
  if (config.udp) {
    try {
      requireDatagramSockets("pass --no-udp to serve without direct messages");
    } catch (err) {
      log.error("start_failed", { error: (err as Error).message });
      console.error(`error: ${(err as Error).message}`);
      return 2;
    }
  }
  const paths: IdentityPaths = {
    certFile: config.tls_cert,
    keyFile: config.tls_key,
    sealPrivateFile: config.seal_private_key,
    sealPublicFile: config.seal_public_key,
  };
  let store: SqliteUserStore | undefined;
  let server: AuthchatServer;
  try {
    await ensureIdentity(paths, config, log);
    await warnOnLoosePermissions([paths.keyFile, paths.sealPrivateFile], log);
    const identity = await loadServerIdentity(paths, { tls: config.tls });
    store = SqliteUserStore.open(config.database);
    server = await AuthchatServer.start({ config, identity, store, log });
  } catch (err) {
    store?.close();
    // An error line is written at once, so it comes before the message below.
    log.error("start_failed", { error: (err as Error).message });
    // A port taken or an address this machine lacks is the configuration's to change (exit 2); the
    // message names the key.
    if (err instanceof ListenError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    console.error(`error: cannot start the server: ${(err as Error).message}`);
    return 1;
  }
  // Installed until the stop is over: a repeated signal must not kill the process half-way (see the module).
  const signals = new StopSignals(log);
  console.log(server.listeningLine);
  log.always("info", "listening", { line: server.listeningLine, database: config.database });
  const signal = await signals.requested;
  log.always("info", "stopping", { signal });
  try {
    await server.shutdown();
  } finally {
    signals.close();
  }
  return 0;
}
