/**
 * The shared services the cluster tests need (PostgreSQL, NATS, HAProxy), found through environment
 * variables that `.ci/services.sh start` prints and `.ci/run` sets:
 *
 * - `AUTHCHAT_TEST_POSTGRES`: a `postgres://` URL of a role that may CREATE DATABASE;
 * - `AUTHCHAT_TEST_NATS`: a `nats://host:port` URL of a server with JetStream;
 * - `AUTHCHAT_TEST_HAPROXY`: the path of the haproxy binary;
 * - `AUTHCHAT_TEST_REQUIRE_CLUSTER=1`: a missing service fails the tests that need it instead of skipping them.
 *
 * Register such a test with {@linkcode clusterTest}: without its services it is skipped (Deno's `ignore`)
 * and one line on stderr says which and why; `.ci/run` fails on such a line or an ignored test.
 *
 * @module
 */

import postgres from "postgres";

/** A shared service a test may need. */
export type ClusterService = "postgres" | "nats" | "haproxy";

/** The line that starts every skip notice (`.ci/run` searches its log for it). */
export const SKIP_NOTICE = "cluster test skipped";

const VARIABLES: Record<ClusterService, { name: string; what: string }> = {
  postgres: { name: "AUTHCHAT_TEST_POSTGRES", what: "a postgres:// URL of a role that may CREATE DATABASE" },
  nats: { name: "AUTHCHAT_TEST_NATS", what: "a nats://host:port URL of a server with JetStream" },
  haproxy: { name: "AUTHCHAT_TEST_HAPROXY", what: "the path of the haproxy binary" },
};

function variable(service: ClusterService): string | undefined {
  const value = Deno.env.get(VARIABLES[service].name);
  return value === undefined || value === "" ? undefined : value;
}

/**
 * The PostgreSQL URL the tests may use (its role may create databases).
 *
 * @returns The URL, or `undefined` when none is set.
 */
export function postgresUrl(): string | undefined {
  return variable("postgres");
}

/**
 * The NATS server the tests may use.
 *
 * @returns `nats://host:port`, or `undefined` when none is set.
 */
export function natsUrl(): string | undefined {
  return variable("nats");
}

/**
 * The haproxy binary the tests may run.
 *
 * @returns Its path, or `undefined` when none is set.
 */
export function haproxyPath(): string | undefined {
  return variable("haproxy");
}

/**
 * Whether a missing service must fail the tests that need it (`AUTHCHAT_TEST_REQUIRE_CLUSTER=1`, as CI sets).
 *
 * @returns `true` when the services are required.
 */
export function clusterRequired(): boolean {
  return Deno.env.get("AUTHCHAT_TEST_REQUIRE_CLUSTER") === "1";
}

/**
 * The services of `needs` that are not available.
 *
 * @param needs The services a test needs.
 * @returns Those whose variable is not set.
 */
export function missingServices(needs: readonly ClusterService[]): ClusterService[] {
  return needs.filter((service) => variable(service) === undefined);
}

/** Why a test cannot run: what to set, or the script that sets it. */
function whyMissing(missing: readonly ClusterService[]): string {
  const vars = missing.map((s) => `${VARIABLES[s].name} (${VARIABLES[s].what})`).join(", ");
  return `set ${vars}, or run eval "$(.ci/services.sh start)" first`;
}

/** Options of {@linkcode clusterTest}: Deno's test options but its name, function and `ignore`. */
export type ClusterTestOptions = Omit<Deno.TestDefinition, "name" | "fn" | "ignore">;

/**
 * Register a test that needs shared services. Without them it is skipped (and says so on stderr), unless
 * `AUTHCHAT_TEST_REQUIRE_CLUSTER=1`: then it fails, naming what is missing.
 *
 * @example
 * ```ts ignore
 * import { clusterTest, postgresUrl } from "./_cluster_services.ts";
 * clusterTest("PostgresUserStore opens a fresh database", ["postgres"], async () => {
 *   console.log(postgresUrl());
 * });
 * ```
 *
 * @param name The test's name.
 * @param needs The services it needs.
 * @param fn The test.
 * @param options Other Deno test options (sanitizers, permissions).
 */
export function clusterTest(
  name: string,
  needs: readonly ClusterService[],
  fn: (t: Deno.TestContext) => void | Promise<void>,
  options: ClusterTestOptions = {},
): void {
  const missing = missingServices(needs);
  if (missing.length === 0) {
    Deno.test({ ...options, name, fn });
    return;
  }
  const why = whyMissing(missing);
  if (clusterRequired()) {
    Deno.test({
      ...options,
      name,
      fn() {
        throw new Error(`AUTHCHAT_TEST_REQUIRE_CLUSTER=1 but this test's services are missing: ${why}`);
      },
    });
    return;
  }
  console.error(`${SKIP_NOTICE}: ${JSON.stringify(name)}: needs ${missing.join(", ")}: ${why}`);
  Deno.test({ ...options, name, ignore: true, fn });
}

/** A database made for one test, dropped when disposed. */
export interface TestPostgresDatabase {
  /** Its name (`authchat_test_…`). */
  name: string;
  /** A URL of it, with the test role's credentials. */
  url: string;
  /** Drop it, ending every connection still open to it. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A short-lived connection of the test role to its default database, for administrative statements. */
async function withAdmin<T>(work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const url = postgresUrl();
  if (url === undefined) throw new Error(`No PostgreSQL for the tests: ${whyMissing(["postgres"])}`);
  const sql = postgres(url, { max: 1, onnotice: () => {}, fetch_types: false });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Create an empty database for one test (UTF-8, owned by the test role), dropped on dispose:
 * `await using db = await freshPostgresDatabase();`.
 *
 * @param options The encoding to create it with (default UTF8).
 * @returns Its name and URL.
 * @throws {Error} When no PostgreSQL is set.
 */
export async function freshPostgresDatabase(
  options: { encoding?: "UTF8" | "SQL_ASCII" } = {},
): Promise<TestPostgresDatabase> {
  const name = `authchat_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const encoding = options.encoding ?? "UTF8";
  // template0: the only template a database of another encoding may be copied from.
  await withAdmin((sql) =>
    sql.unsafe(
      `CREATE DATABASE ${name} ENCODING '${encoding}' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`,
    )
  );
  const url = new URL(postgresUrl()!);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.href,
    [Symbol.asyncDispose]: async () => {
      // An autovacuum worker that happens to be on the database belongs to no role the tests' role may end:
      // `WITH (FORCE)` then refuses (insufficient privilege, 42501) until the worker is done, a few
      // milliseconds on these tables. Tried again, at most five times.
      for (let attempt = 1;; attempt++) {
        try {
          await withAdmin((sql) => sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
          return;
        } catch (err) {
          if ((err as { code?: unknown })?.code !== "42501" || attempt >= 5) throw err;
          await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
        }
      }
    },
  };
}

/**
 * End every connection to a database from the server's side (`pg_terminate_backend`), as an administrator
 * or a restart would.
 *
 * @param database The database's name.
 * @returns How many connections were ended.
 */
export function terminateConnections(database: string): Promise<number> {
  return withAdmin(async (sql) => {
    const rows = await sql`
      SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
      WHERE datname = ${database} AND pid <> pg_backend_pid()`;
    return rows.filter((r) => r.ended === true).length;
  });
}

/**
 * How many connections a database has now, by application name.
 *
 * @param database The database's name.
 * @param application The `application_name` the connections set.
 * @returns Their number.
 */
export function countConnections(database: string, application: string): Promise<number> {
  return withAdmin(async (sql) => {
    const [row] = await sql<{ n: string }[]>`
      SELECT count(*) AS n FROM pg_stat_activity WHERE datname = ${database} AND application_name = ${application}`;
    return Number(row!.n);
  });
}

let natsSkipTold = false;

/**
 * The NATS server for a test file that registers its tests itself (`Deno.test({ ignore: !url })`): the URL,
 * or `undefined` after one skip line on stderr; when the services are required, the file fails to load
 * instead, naming what is missing.
 *
 * @returns `nats://host:port`, or `undefined`.
 * @throws {Error} When `AUTHCHAT_TEST_REQUIRE_CLUSTER=1` and `AUTHCHAT_TEST_NATS` is not set.
 */
export function natsUrlOrSkip(): string | undefined {
  const url = natsUrl();
  if (url) return url;
  if (clusterRequired()) {
    throw new Error(
      "AUTHCHAT_TEST_REQUIRE_CLUSTER=1 but AUTHCHAT_TEST_NATS is not set: the NATS tests cannot run",
    );
  }
  if (!natsSkipTold) {
    natsSkipTold = true;
    console.error(
      `${SKIP_NOTICE}: AUTHCHAT_TEST_NATS is not set (a nats://host:port URL of a server with JetStream)`,
    );
  }
  return undefined;
}
