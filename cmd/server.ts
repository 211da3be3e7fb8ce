/**
 * `authchat server`: load the configuration and keys (creating them on first
 * start), open the store, listen, print one ready line, and stop cleanly on
 * SIGINT, SIGTERM or SIGHUP (copies of one signal count once; a third distinct
 * one during the stop forces the exit: cmd/_stop_signals.ts).
 *
 * @module
 */

import { dirname, normalize } from "node:path";
import {
  existingIdentityFiles,
  generateServerIdentity,
  loadServerIdentity,
} from "../lib/crypto/server_identity.ts";
import type { IdentityPaths } from "../lib/crypto/server_identity.ts";
import { BusUnavailableError, NodeIdConflictError, shownUrl } from "../lib/cluster/bus_errors.ts";
import { openSharedParts } from "../lib/cluster/open_shared_parts.ts";
import type { OpenedSharedParts } from "../lib/cluster/open_shared_parts.ts";
import { AuthchatServer } from "../lib/server/authchat_server.ts";
import { ListenError } from "../lib/server/listen_error.ts";
import { Logger } from "../lib/server/logger.ts";
import type { ServerConfig } from "../lib/server/server_config.ts";
import { isPostgresUrl, redactDatabaseUrl } from "../lib/store/database_location.ts";
import { DatabaseUnavailableError } from "../lib/store/database_unavailable.ts";
import { openUserStore } from "../lib/store/open_user_store.ts";
import type { UserStore } from "../lib/store/user_store.ts";
import { requireDatagramSockets } from "../lib/transport/runtime_features.ts";
import { describeKeys } from "./keygen.ts";
import { StopSignals } from "./_stop_signals.ts";
import { MetricsPort } from "./_metrics_port.ts";
import { BUS_ERRORS } from "../lib/server/server_metrics.ts";

/** Create the identity on first start; refuse to guess when only some files exist. */
/** Whether the server needs its certificate: for TLS, and to sign UDP session handshakes. */
function needsCertificate(config: ServerConfig): boolean {
  return config.tls || (config.udp && config.udp_sessions);
}

async function ensureIdentity(paths: IdentityPaths, config: ServerConfig, log: Logger): Promise<void> {
  const needed = needsCertificate(config)
    ? Object.values(paths)
    : [paths.sealPrivateFile, paths.sealPublicFile];
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

/** A file or directory others must not reach, and the warning when they can. */
interface Guarded {
  path: string;
  /** Permission bits that must be clear. */
  mask: number;
  event: "key_permissions" | "database_permissions" | "data_dir_permissions";
  advice: string;
}

/** Warn about every path whose mode lets other users in (one line each; nothing for a missing path). */
async function warnOnLoosePermissions(guarded: Guarded[], log: Logger): Promise<void> {
  for (const { path, mask, event, advice } of guarded) {
    try {
      const mode = (await Deno.stat(path)).mode;
      if (mode !== null && (mode & mask) !== 0) {
        log.warn(event, { file: path, mode: `0${(mode & 0o777).toString(8)}`, advice });
      }
    } catch {
      // A missing key is reported by the loader; a missing -wal or -shm is not in use.
    }
  }
}

/**
 * What must stay private besides the keys: the database holds verifiers and the mock-exchange secret (what
 * tells a real account from an unknown name), and its -wal and -shm hold recent pages of it; whoever can write
 * to the data directory (or the database's own) can replace any of them. Read or write by group or others
 * is warned about; execute is not (a directory others may only traverse hides its files' names, and the
 * files' own modes still hold). A PostgreSQL database is no file of this machine: only the data directory
 * (keys) is checked then.
 */
function dataPaths(config: ServerConfig): Guarded[] {
  const inMemory = config.database === ":memory:" || isPostgresUrl(config.database);
  const dirs = new Set([normalize(config.data_dir)]);
  if (!inMemory) dirs.add(dirname(normalize(config.database)));
  const files = inMemory ? [] : ["", "-wal", "-shm"].map((suffix) => config.database + suffix);
  return [
    ...[...dirs].map((path): Guarded => ({
      path,
      mask: 0o066,
      event: "data_dir_permissions",
      advice: "chmod 700",
    })),
    ...files.map((path): Guarded => ({
      path,
      mask: 0o066,
      event: "database_permissions",
      advice: "chmod 600",
    })),
  ];
}

/**
 * Run the server until a signal arrives.
 *
 * @param config Resolved configuration.
 * @returns Exit code: 0 after a clean stop, 1 when it could not start, 2 when it cannot listen where the
 *   configuration says (a port in use, an address this machine lacks), cannot reach or log in to its
 *   PostgreSQL database, this runtime cannot serve UDP, the bus does not answer at start, or another
 *   server has this node's id (at start, or later: it stops).
 */
export async function runServer(config: ServerConfig): Promise<number> {
  const metrics = new MetricsPort(config);
  const log = new Logger({
    format: config.log_format,
    limit: { linesPerSecond: config.log_lines_per_second, burst: config.log_lines_burst },
    ...(metrics.observe ? { observe: metrics.observe } : {}),
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
  let store: UserStore | undefined;
  let shared: OpenedSharedParts | undefined;
  let server: AuthchatServer;
  try {
    await ensureIdentity(paths, config, log);
    await warnOnLoosePermissions(
      [paths.keyFile, paths.sealPrivateFile].map((path) => ({
        path,
        mask: 0o077,
        event: "key_permissions",
        advice: "chmod 600",
      })),
      log,
    );
    const identity = await loadServerIdentity(paths, { tls: needsCertificate(config) });
    store = await openUserStore(config.database, { poolSize: config.database_pool_size });
    // After opening: SQLite has made the -wal and -shm files by now (with the database file's mode).
    await warnOnLoosePermissions(dataPaths(config), log);
    shared = await openSharedParts(config, { log });
    const bus = shared.bus;
    if (bus) {
      bus.onConnection((up) => {
        if (!up) metrics.metrics?.counters.inc(BUS_ERRORS, { op: "connection_lost" });
      });
    }
    const counted = metrics.store(store);
    metrics.open(counted, log, {
      ...(bus ? { node: bus.nodeId, bus: () => bus.nc.flush() } : {}),
    });
    server = await AuthchatServer.start({
      config,
      identity,
      store: counted,
      log,
      parts: metrics.parts(shared.parts),
    });
    metrics.serving(server);
  } catch (err) {
    await metrics.close();
    await shared?.close();
    await store?.close();
    // An error line is written at once, so it comes before the message below.
    log.error("start_failed", { error: (err as Error).message });
    // A port taken, an address this machine lacks, a database or bus out of reach, or another live node with
    // this node's id is the configuration's (or the operator's) to change (exit 2); the message names the
    // key, the database or the bus, without passwords.
    if (
      err instanceof ListenError || err instanceof DatabaseUnavailableError ||
      err instanceof BusUnavailableError ||
      err instanceof NodeIdConflictError
    ) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    console.error(`error: cannot start the server: ${(err as Error).message}`);
    return 1;
  }
  // Installed until the stop is over: a repeated signal must not kill the process half-way (see the module).
  const signals = new StopSignals(log);
  const ready = server.listeningLine + metrics.readyField;
  console.log(ready);
  log.always("info", "listening", {
    line: ready,
    database: redactDatabaseUrl(config.database),
    ...(shared.bus
      ? { bus: config.bus!.split(",").map((url) => shownUrl(url.trim())).join(","), node: shared.bus.nodeId }
      : {}),
  });
  // Another process taking this node's id stops it like a signal, with the status of a configuration error.
  const stop = await Promise.race([
    signals.requested.then((signal) => ({ signal, code: 0 })),
    shared.failed.then((err) => {
      console.error(`error: ${err.message}`);
      return { signal: "node_id_conflict", code: 2 };
    }),
  ]);
  log.always("info", "stopping", { signal: stop.signal });
  metrics.stopping();
  try {
    // The server first (its sessions say goodbye), then the shared parts, then the bus.
    await server.shutdown();
    await shared.close();
  } finally {
    await metrics.close();
    signals.close();
  }
  return stop.code;
}
