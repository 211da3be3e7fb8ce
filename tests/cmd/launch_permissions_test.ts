import assert from "node:assert/strict";
import { permissionFlags } from "../../cmd/_launch_permissions.ts";
import { UsageError } from "../../cmd/_usage_error.ts";
import { loadServerConfig } from "../../lib/server/server_config.ts";
import type { ServerConfig } from "../../lib/server/server_config.ts";

const CWD = "/repo";

function config(values: Partial<ServerConfig> = {}): Promise<ServerConfig> {
  return loadServerConfig({ file: "/dev/null", flags: values });
}

/** The paths of one `--allow-*=` flag, or `null` when the flag is absent. */
function granted(flags: string[], name: string): string[] | null {
  const flag = flags.find((f) => f.startsWith(`--${name}=`));
  return flag === undefined ? null : flag.slice(name.length + 3).split(",");
}

Deno.test("permissionFlags gives the server its config, data, database, keys and /dev/null (the descriptor probe), and writes only data", async () => {
  const cfg = await config({ data_dir: "/srv/data" });
  const keys = [cfg.tls_cert, cfg.tls_key, cfg.seal_private_key, cfg.seal_public_key];
  const flags = permissionFlags({ command: "server", config: cfg, existingKeys: keys }, CWD);
  assert.deepEqual(flags, [
    "--v8-flags=--max-semi-space-size=4",
    "--unstable-net",
    "--allow-net",
    "--allow-read=/repo/config/authchat.yaml,/srv/data,/srv/data/authchat.db,/srv/data/server-cert.pem," +
    "/srv/data/server-key.pem,/srv/data/seal-private.pem,/srv/data/seal-public.pem,/dev/null",
    "--allow-write=/srv/data",
    "--allow-env=AUTHCHAT_*,LOG_TOKENS,LOG_STREAM",
  ]);
});

Deno.test("permissionFlags lets a server on a bus read the host name only when its node id defaults to it", async () => {
  const request = async (values: Partial<ServerConfig>) => {
    const cfg = await config(values);
    const keys = [cfg.tls_cert, cfg.tls_key, cfg.seal_private_key, cfg.seal_public_key];
    return permissionFlags({ command: "server", config: cfg, existingKeys: keys }, CWD);
  };
  assert.ok(!(await request({})).some((f) => f.startsWith("--allow-sys")), "no bus: no host name");
  const onBus = await request({ bus: "nats://10.0.0.1:4222" });
  assert.equal(onBus.at(-1), "--allow-sys=hostname");
  assert.ok(onBus.includes("--allow-net"), "the bus is on the network");
  const named = await request({ bus: "nats://10.0.0.1:4222", node_id: "chat1" });
  assert.ok(!named.some((f) => f.startsWith("--allow-sys")), "a node id given: no host name");
});

Deno.test("permissionFlags lets the server write only the directories of key files still missing", async () => {
  const cfg = await config({
    data_dir: "data",
    database: "/var/lib/authchat/users.db",
    tls_cert: "/etc/authchat/cert.pem",
    tls_key: "/etc/authchat/key.pem",
    seal_private_key: "/etc/seal/private.pem",
    seal_public_key: "/etc/seal/public.pem",
  });
  const firstStart = permissionFlags({
    command: "server",
    config: cfg,
    configFile: "my.yaml",
    existingKeys: [],
  }, CWD);
  assert.deepEqual(granted(firstStart, "allow-read"), [
    "/repo/my.yaml",
    "/repo/data",
    "/var/lib/authchat",
    "/var/lib/authchat/users.db",
    "/etc/authchat/cert.pem",
    "/etc/authchat/key.pem",
    "/etc/seal/private.pem",
    "/etc/seal/public.pem",
    "/dev/null",
  ]);
  assert.deepEqual(granted(firstStart, "allow-write"), [
    "/repo/data",
    "/var/lib/authchat",
    "/etc/authchat",
    "/etc/seal",
  ]);
  const later = permissionFlags({
    command: "server",
    config: cfg,
    configFile: "my.yaml",
    existingKeys: [cfg.tls_cert, cfg.tls_key, cfg.seal_private_key, cfg.seal_public_key],
  }, CWD);
  assert.deepEqual(granted(later, "allow-write"), ["/repo/data", "/var/lib/authchat"]);
});

Deno.test("permissionFlags gives seed its input files to read, never to write, and no network", async () => {
  const cfg = await config({ data_dir: "/tmp/d" });
  const flags = permissionFlags({
    command: "seed",
    config: cfg,
    configFile: "/etc/a.yaml",
    inputs: ["../users.txt", "/x/pg.txt", undefined],
  }, CWD);
  assert.deepEqual(flags, [
    "--allow-read=/etc/a.yaml,/tmp/d,/tmp/d/authchat.db,/users.txt,/x/pg.txt",
    "--allow-write=/tmp/d",
    "--allow-env=AUTHCHAT_*,LOG_TOKENS,LOG_STREAM",
  ]);
});

Deno.test("permissionFlags gives keygen its data directory only", () => {
  assert.deepEqual(permissionFlags({ command: "keygen", data: "./data" }, CWD), [
    "--allow-read=/repo/data",
    "--allow-write=/repo/data",
  ]);
});

Deno.test("permissionFlags gives the client its files to read, and its trust files (not their directories) to read and write", () => {
  const flags = permissionFlags({
    command: "client",
    inputs: ["pw", undefined, "/ca/cert.pem", ""],
    trustFiles: [
      "/home/a/.config/authchat/known_hosts",
      "/home/a/.config/authchat/known_peers",
      "/home/a/.config/authchat/device_tokens",
    ],
    missingDirs: [],
  }, CWD);
  const trust = [
    "/home/a/.config/authchat/known_hosts",
    "/home/a/.config/authchat/known_peers",
    "/home/a/.config/authchat/.known_peers.tmp",
    "/home/a/.config/authchat/device_tokens",
    "/home/a/.config/authchat/.device_tokens.tmp",
  ];
  assert.deepEqual(flags, [
    "--unstable-net",
    "--allow-net",
    `--allow-read=/repo/pw,/ca/cert.pem,${trust.join(",")}`,
    `--allow-write=${trust.join(",")}`,
    "--allow-env=HOME,XDG_CONFIG_HOME,AUTHCHAT_CONFIG_DIR,LOG_TOKENS,LOG_STREAM",
  ]);
  // Files named in a directory that holds other things (the home directory, /): the directory stays closed.
  const named = permissionFlags({
    command: "client",
    inputs: [],
    trustFiles: ["/kh", "kp", "/dt"],
    missingDirs: [],
  }, CWD);
  assert.deepEqual(granted(named, "allow-write"), ["/kh", "/repo/kp", "/repo/.kp.tmp", "/dt", "/.dt.tmp"]);
  // A directory that does not exist yet is made by the client: it may write there.
  const fresh = permissionFlags({
    command: "client",
    inputs: [],
    trustFiles: ["/new/kh", "/new/kp", undefined],
    missingDirs: ["/new"],
  }, CWD);
  assert.deepEqual(granted(fresh, "allow-write"), ["/new/kh", "/new/kp", "/new/.kp.tmp", "/new"]);
  const bare = permissionFlags(
    { command: "client", inputs: [], trustFiles: [undefined, undefined, undefined], missingDirs: [] },
    CWD,
  );
  assert.equal(granted(bare, "allow-read"), null);
  assert.equal(granted(bare, "allow-write"), null);
});

Deno.test("permissionFlags grants no directory for an in-memory database", async () => {
  const cfg = await config({ data_dir: "/d", database: ":memory:" });
  const flags = permissionFlags({ command: "seed", config: cfg, inputs: [] }, CWD);
  assert.deepEqual(granted(flags, "allow-write"), ["/d"]);
  assert.ok(!granted(flags, "allow-read")!.some((p) => p === CWD || p.includes("memory")));
});

Deno.test("permissionFlags refuses a path containing a comma, which Deno cannot name", async () => {
  assert.throws(
    () => permissionFlags({ command: "keygen", data: "/tmp/a,b" }, CWD),
    (err: unknown) =>
      err instanceof UsageError && /Cannot grant access to \/tmp\/a,b: .*comma/.test(err.message),
  );
  const cfg = await config({ data_dir: "/d" });
  assert.throws(
    () => permissionFlags({ command: "seed", config: cfg, inputs: ["users,old.txt"] }, CWD),
    UsageError,
  );
});

Deno.test("permissionFlags gives a server on PostgreSQL no file of the database, and the PG* variables", async () => {
  const cfg = await config({ data_dir: "/srv/data", database: "postgres://app:s3cret@db.example:6543/chat" });
  const keys = [cfg.tls_cert, cfg.tls_key, cfg.seal_private_key, cfg.seal_public_key];
  const flags = permissionFlags({ command: "server", config: cfg, existingKeys: keys }, CWD);
  assert.deepEqual(flags, [
    "--v8-flags=--max-semi-space-size=4",
    "--unstable-net",
    "--allow-net",
    "--allow-read=/repo/config/authchat.yaml,/srv/data,/srv/data/server-cert.pem," +
    "/srv/data/server-key.pem,/srv/data/seal-private.pem,/srv/data/seal-public.pem,/dev/null",
    "--allow-write=/srv/data",
    "--allow-env=AUTHCHAT_*,LOG_TOKENS,LOG_STREAM,PG*",
  ]);
  assert.ok(!flags.some((f) => f.includes("postgres") || f.includes("s3cret")));
});

Deno.test("permissionFlags gives seed on PostgreSQL the database's host and port only, and no file of it", async () => {
  const cfg = await config({ data_dir: "/tmp/d", database: "postgresql://app@db.example/chat" });
  const flags = permissionFlags({ command: "seed", config: cfg, inputs: ["/x/users.txt"] }, CWD);
  assert.deepEqual(flags, [
    "--allow-net=db.example:5432",
    "--allow-read=/repo/config/authchat.yaml,/tmp/d,/x/users.txt",
    "--allow-write=/tmp/d",
    "--allow-env=AUTHCHAT_*,LOG_TOKENS,LOG_STREAM,PG*",
  ]);
  const v6 = await config({ data_dir: "/tmp/d", database: "postgres://app:pw@[::1]:5999/chat" });
  const v6Flags = permissionFlags({ command: "seed", config: v6, inputs: [] }, CWD);
  assert.equal(v6Flags[0], "--allow-net=[::1]:5999");
});
