/**
 * The services of `deno task bench --cluster`: a PostgreSQL server and a NATS server with JetStream, either
 * the ones the test variables name (`AUTHCHAT_TEST_POSTGRES`, `AUTHCHAT_TEST_NATS`, and
 * `AUTHCHAT_TEST_NATS_MONITOR` for the message counts) or throwaway ones that `.ci/services.sh` starts and
 * stops; a fresh database for the run, and its counters read before and after a scenario: transactions and
 * rows (`pg_stat_database`). The NATS server's message counts are in _bus_counters.ts.
 *
 * @module
 */

import postgres from "postgres";
import { Kvm } from "@nats-io/kv";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NatsBus } from "../lib/cluster/nats_bus.ts";

const SERVICES_SCRIPT = fileURLToPath(new URL("../.ci/services.sh", import.meta.url));

/** The services a cluster run uses. */
export interface ClusterServices {
  /** URL of a PostgreSQL role that may create databases. */
  postgres: string;
  /** `nats://host:port` of a NATS server with JetStream. */
  nats: string;
  /** `http://host:port` of its monitoring endpoint, `null` when not known (no message counts then). */
  natsMonitor: string | null;
  /** The NATS server's process id when this run started it (its CPU is counted), else `null`. */
  natsPid: number | null;
  /** Whether NATS is shared with others (named by the environment): its `authchat_*` buckets are cleaned. */
  sharedNats: boolean;
  /** Stop what this run started (nothing when the environment named both). */
  stop(): Promise<void>;
}

function env(name: string): string | undefined {
  const value = Deno.env.get(name);
  return value === undefined || value === "" ? undefined : value;
}

async function services(action: string[]): Promise<string> {
  const out = await new Deno.Command("bash", { args: [SERVICES_SCRIPT, ...action], stderr: "piped" })
    .output();
  const stderr = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`.ci/services.sh ${action[0]} failed:\n${stderr}`);
  return new TextDecoder().decode(out.stdout);
}

/**
 * The services named by the environment, or started now for the ones it does not name.
 *
 * @param log Where to say what is used.
 * @returns The services.
 * @throws {Error} When they cannot be started.
 */
export async function clusterServices(log: (line: string) => void): Promise<ClusterServices> {
  const given = { postgres: env("AUTHCHAT_TEST_POSTGRES"), nats: env("AUTHCHAT_TEST_NATS") };
  if (given.postgres !== undefined && given.nats !== undefined) {
    log("cluster: PostgreSQL and NATS from AUTHCHAT_TEST_POSTGRES and AUTHCHAT_TEST_NATS");
    return {
      postgres: given.postgres,
      nats: given.nats,
      natsMonitor: env("AUTHCHAT_TEST_NATS_MONITOR") ?? null,
      natsPid: null,
      sharedNats: true,
      stop: () => Promise.resolve(),
    };
  }
  log("cluster: starting a throwaway PostgreSQL and NATS (.ci/services.sh start)");
  const exports = new Map<string, string>();
  for (const [, name, value] of (await services(["start"])).matchAll(/^export (\w+)=(.*)$/gm)) {
    exports.set(name!, value!);
  }
  const dir = exports.get("AUTHCHAT_TEST_SERVICES_DIR");
  const stop = () => dir === undefined ? Promise.resolve() : services(["stop", dir]).then(() => {});
  const started = {
    postgres: exports.get("AUTHCHAT_TEST_POSTGRES"),
    nats: exports.get("AUTHCHAT_TEST_NATS"),
    monitor: exports.get("AUTHCHAT_TEST_NATS_MONITOR"),
  };
  if (started.postgres === undefined || started.nats === undefined) {
    await stop();
    throw new Error(".ci/services.sh start printed no AUTHCHAT_TEST_POSTGRES or AUTHCHAT_TEST_NATS");
  }
  const natsPid = given.nats === undefined && dir !== undefined
    ? Number(await Deno.readTextFile(join(dir, "nats", "pid")).catch(() => "")) || null
    : null;
  return {
    postgres: given.postgres ?? started.postgres,
    nats: given.nats ?? started.nats,
    natsMonitor: given.nats === undefined
      ? started.monitor ?? null
      : env("AUTHCHAT_TEST_NATS_MONITOR") ?? null,
    natsPid,
    sharedNats: given.nats !== undefined,
    stop,
  };
}

/** A database made for the run. */
export interface BenchDatabase {
  /** Its name. */
  name: string;
  /** Its URL, with the role's credentials. */
  url: string;
  /** Drop it, ending the connections still open to it. */
  drop(): Promise<void>;
}

async function withAdmin<T>(url: string, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, fetch_types: false });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Create an empty database for the run.
 *
 * @param adminUrl The URL of a role that may create databases.
 * @returns Its name and URL.
 */
export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `authchat_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  await withAdmin(
    adminUrl,
    (sql) =>
      sql.unsafe(`CREATE DATABASE ${name} ENCODING 'UTF8' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`),
  );
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.href,
    drop: async () => {
      // An autovacuum worker on the database belongs to no role the run's role may end: `WITH (FORCE)` then
      // refuses (42501) until it is done. Tried again, at most five times.
      for (let attempt = 1;; attempt++) {
        try {
          await withAdmin(adminUrl, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
          return;
        } catch (err) {
          if ((err as { code?: unknown })?.code !== "42501" || attempt >= 5) throw err;
          await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
        }
      }
    },
  };
}

/** What PostgreSQL counted for one database. */
export interface DatabaseCounters {
  /** Transactions committed and rolled back (each statement outside a transaction is one). */
  xacts: number;
  /** Rows read: returned by sequential scans and fetched by index scans. */
  rowsRead: number;
  /** Rows inserted, updated and deleted. */
  rowsWritten: number;
}

/**
 * The counters of a database, once no server holds a connection to it and they have settled: a backend adds
 * what it counted to the shared statistics when it goes idle at most once a second, and for certain only
 * when it exits.
 *
 * @param adminUrl The URL of a role that may read the statistics.
 * @param database The database.
 * @returns Its counters.
 * @throws {Error} When connections to it stay open 15 s.
 */
export function databaseCounters(adminUrl: string, database: string): Promise<DatabaseCounters> {
  return withAdmin(adminUrl, async (sql) => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const [open] = await sql<{ n: string }[]>`
        SELECT count(*) AS n FROM pg_stat_activity WHERE datname = ${database} AND pid <> pg_backend_pid()`;
      if (Number(open!.n) === 0) break;
      if (Date.now() > deadline) throw new Error(`Connections to ${database} stay open`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const read = async (): Promise<DatabaseCounters> => {
      const [row] = await sql<{ xacts: string; read: string; written: string }[]>`
        SELECT xact_commit + xact_rollback AS xacts, tup_returned + tup_fetched AS read,
          tup_inserted + tup_updated + tup_deleted AS written
        FROM pg_stat_database WHERE datname = ${database}`;
      if (!row) throw new Error(`No statistics for ${database}`);
      return { xacts: Number(row.xacts), rowsRead: Number(row.read), rowsWritten: Number(row.written) };
    };
    // A backend leaves pg_stat_activity about when it publishes its counts, not surely after: read until
    // two readings a moment apart agree.
    let last = await read();
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const now = await read();
      if (
        now.xacts === last.xacts && now.rowsRead === last.rowsRead && now.rowsWritten === last.rowsWritten
      ) {
        return now;
      }
      last = now;
    }
    return last;
  });
}

/**
 * Remove the key-value buckets of the servers' default prefix (`authchat_…`), so the nodes of the run see no
 * earlier run's nodes, users or counters, and leave none behind.
 *
 * @param url The NATS server.
 * @returns The buckets removed.
 */
export async function cleanBuckets(url: string): Promise<string[]> {
  const bus = await NatsBus.connect({ servers: [url], nodeId: "bench-cleanup" });
  try {
    const kvm = new Kvm(bus.nc);
    const names: string[] = [];
    for await (const status of kvm.list()) {
      if (status.bucket.startsWith(`${bus.prefix}_`)) names.push(status.bucket);
    }
    for (const name of names) await (await kvm.open(name)).destroy();
    return names;
  } finally {
    await bus.close();
  }
}

/**
 * A file listing accounts as `seed --from` reads them (`name:password` lines).
 *
 * @param dir Where to write it.
 * @param accounts The accounts.
 * @returns Its path.
 */
export async function usersFile(
  dir: string,
  accounts: { user: string; password: string }[],
): Promise<string> {
  const path = join(dir, `users-${crypto.randomUUID()}.txt`);
  await Deno.writeTextFile(path, accounts.map((a) => `${a.user}:${a.password}\n`).join(""));
  return path;
}
