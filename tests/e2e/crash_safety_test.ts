import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import postgres from "postgres";
import { clusterTest, freshPostgresDatabase } from "../_cluster_services.ts";
import { installKeys, runCli, ServerProcess, tempDir } from "./_harness.ts";
import { clientVerifier, hello, RawClient, sealVerifier } from "./_raw_client.ts";

const CONNECTIONS = 8;
const BURST_MS = 1200;
const PASSWORD = "violet harbor 4821 lantern";

/** Whether an error only says the connection is gone (what the kill does to requests in flight). */
function connectionEnded(err: unknown): boolean {
  return err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.NotConnected ||
    (err instanceof Error && err.message.startsWith("The server closed the connection"));
}

/**
 * Register users on one connection until it dies: HELLO for a fresh seal nonce, then a REGISTER with
 * the verifier of {@linkcode PASSWORD} sealed. The verifier is computed once per connection, as the
 * server stores whatever well-formed verifier it is sent. A name goes into `acked` only once its
 * REGISTER reply has arrived.
 */
async function registerUntilKilled(client: RawClient, connection: number, acked: string[]): Promise<number> {
  let sent = 0;
  let verifier: string | undefined;
  try {
    for (let i = 0;; i++) {
      const greeting = await hello(client);
      const user = `burst${connection}_${i}`;
      verifier ??= await clientVerifier(PASSWORD, greeting);
      const sealed = await sealVerifier(greeting, { op: "REGISTER", user, verifier });
      sent++;
      const reply = await client.request({ op: "REGISTER", id: 2, user, sealed });
      assert.deepEqual(reply, { op: "REGISTER", id: 2, user }, `REGISTER of ${user} refused`);
      acked.push(user);
    }
  } catch (err) {
    if (!connectionEnded(err)) throw err;
  }
  return sent;
}

/** The SQLite file's integrity check and the names it holds. */
function sqliteNames(file: string): Set<string> {
  const db = new DatabaseSync(file);
  try {
    const check = db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[];
    assert.deepEqual(check.map((r) => r.integrity_check), ["ok"]);
    const rows = db.prepare("SELECT name_key FROM users").all() as { name_key: string }[];
    return new Set(rows.map((r) => r.name_key));
  } finally {
    db.close();
  }
}

/** The names a PostgreSQL database holds. */
async function postgresNames(url: string): Promise<Set<string>> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ name_key: string }[]>`SELECT name_key FROM users`;
    return new Set(rows.map((r) => r.name_key));
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Register on 8 connections at once, kill -9 the server mid-burst, and check that every acknowledged
 * registration is stored and logs in after a restart: on the SQLite file of the data directory, or on a
 * PostgreSQL database (`databaseUrl`).
 */
async function killDuringBurst(databaseUrl?: string): Promise<void> {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const env: Record<string, string> = databaseUrl === undefined ? {} : { AUTHCHAT_DATABASE: databaseUrl };
  const acked: string[] = [];
  let sent = 0;
  {
    await using server = await ServerProcess.start(data, {
      env: { ...env, AUTHCHAT_REGISTRATIONS_PER_MINUTE: "100000" },
    });
    const clients: RawClient[] = [];
    try {
      for (let n = 0; n < CONNECTIONS; n++) clients.push(await RawClient.connect(server.tcpPort));
      const bursts = clients.map((client, n) => registerUntilKilled(client, n, acked));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise((resolve) => timer = setTimeout(resolve, BURST_MS));
      clearTimeout(timer);
      const status = await server.kill();
      assert.equal(status.signal, "SIGKILL");
      sent = (await Promise.all(bursts)).reduce((a, b) => a + b, 0);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
  }
  assert.ok(acked.length >= 36, `only ${acked.length} registrations acknowledged before the kill`);
  // Requests were still in flight when the server died (else the kill proved little).
  assert.ok(sent > acked.length, `sent ${sent}, acknowledged ${acked.length}`);

  const stored = databaseUrl === undefined
    ? sqliteNames(join(data, "authchat.db"))
    : await postgresNames(databaseUrl);
  const lost = acked.filter((user) => !stored.has(user.toLowerCase()));
  assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged users lost`);
  assert.ok(stored.size <= sent, `${stored.size} users stored, only ${sent} sent`);

  const user = acked[acked.length - 1]!;
  const passwordFile = join(dir.path, "pw");
  await Deno.writeTextFile(passwordFile, `${PASSWORD}\n`);
  await using server = await ServerProcess.start(data, { env });
  const result = await runCli(
    "client",
    ["--port", String(server.tcpPort), "--user", user, "--password-file", passwordFile, "--exec", "login"],
    { env: { XDG_CONFIG_HOME: dir.path } },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, new RegExp(`^logged in as ${user}$`, "m"));
  const status = await server.stop();
  assert.equal(status.code, 0, server.stderr);
}

Deno.test("authchat server keeps every acknowledged registration after kill -9 during a burst", () =>
  killDuringBurst());

clusterTest(
  "authchat server on PostgreSQL keeps every acknowledged registration after kill -9 during a burst",
  ["postgres"],
  async () => {
    await using db = await freshPostgresDatabase();
    await killDuringBurst(db.url);
  },
);
