import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, loadServerConfig } from "../../lib/server/server_config.ts";
import type { ConfigSources } from "../../lib/server/server_config.ts";
import { readConfigFile } from "../../lib/server/config_file.ts";

/** Load with no file (so a config/authchat.yaml in the working directory plays no part). */
function load(sources: Omit<ConfigSources, "file"> = {}) {
  return loadServerConfig({ file: "/dev/null", ...sources });
}

/** The ConfigError a load fails with. */
async function refusal(promise: Promise<unknown>): Promise<ConfigError> {
  const err = await promise.then(() => null, (e) => e);
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
  assert.ok(!err.message.includes("\n"), `one line: ${err.message}`);
  return err;
}

async function withFile<T>(text: string, use: (path: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "authchat.yaml");
    await Deno.writeTextFile(path, text);
    return await use(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadServerConfig refuses tls_port equal to tcp_port, wherever each came from", async () => {
  const err = await refusal(load({ flags: { tcp_port: 2000, tls_port: 2000 } }));
  assert.equal(err.key, "tls_port");
  assert.equal(
    err.message,
    "Invalid configuration tls_port: 2000 is tcp_port too: TLS and plain TCP need a port each " +
      "(set another tls_port or tcp_port)",
  );
  const fromEnv = await refusal(load({ env: (name) => name === "AUTHCHAT_TLS_PORT" ? "1991" : undefined }));
  assert.equal(fromEnv.key, "tls_port");
});

Deno.test("loadServerConfig lets tcp_port and tls_port match when either is off or 0, and UDP share TCP's", async () => {
  assert.equal((await load({ flags: { tcp_port: 0, tls_port: 0 } })).tls_port, 0);
  assert.equal((await load({ flags: { tcp_port: 2000, tls_port: 2000, tls: false } })).tcp_port, 2000);
  assert.equal((await load({ flags: { tcp_port: 2000, tls_port: 2000, tcp: false } })).tls_port, 2000);
  const defaults = await load();
  assert.equal(defaults.udp_port, defaults.tcp_port);
});

Deno.test("loadServerConfig refuses a host name that does not resolve, naming host", async () => {
  const err = await refusal(load({ flags: { host: "no-such-host.invalid" } }));
  assert.equal(err.key, "host");
  assert.match(
    err.message,
    /^Invalid configuration host: cannot resolve no-such-host\.invalid \(no such name\): give an address/,
  );
  assert.equal((await load({ flags: { host: "localhost" } })).host, "localhost");
  assert.equal((await load({ flags: { host: "::1" } })).host, "::1");
});

Deno.test("loadServerConfig leaves the metrics port off unless a file, variable or flag sets it", async () => {
  const defaults = await load();
  assert.equal(defaults.metrics_port, null);
  assert.equal(defaults.metrics_host, "127.0.0.1");
  assert.equal((await load({ flags: { metrics_port: 0 } })).metrics_port, 0);
  const fromEnv = await load({ env: (name) => name === "AUTHCHAT_METRICS_PORT" ? "9464" : undefined });
  assert.equal(fromEnv.metrics_port, 9464);
  await withFile("metrics_port: 9465\nmetrics_host: 0.0.0.0\n", async (file) => {
    const config = await loadServerConfig({ file });
    assert.equal(config.metrics_port, 9465);
    assert.equal(config.metrics_host, "0.0.0.0");
  });
  await withFile("metrics_port:\n", async (file) => {
    assert.equal((await loadServerConfig({ file })).metrics_port, null, "an empty value leaves it off");
  });
  const bad = await refusal(load({ env: (name) => name === "AUTHCHAT_METRICS_PORT" ? "70000" : undefined }));
  assert.equal(bad.key, "AUTHCHAT_METRICS_PORT");
});

Deno.test("loadServerConfig refuses a metrics port that is the TCP or TLS port on the same host", async () => {
  const err = await refusal(load({ flags: { tcp_port: 2000, metrics_port: 2000 } }));
  assert.equal(err.key, "metrics_port");
  assert.equal(
    err.message,
    "Invalid configuration metrics_port: 2000 is tcp_port too on 127.0.0.1: the metrics port needs a port of its own",
  );
  assert.equal((await refusal(load({ flags: { tls_port: 2001, metrics_port: 2001 } }))).key, "metrics_port");
  // Another address, a transport that is off, or UDP's number (another protocol) are fine.
  assert.equal(
    (await load({ flags: { tcp_port: 2000, metrics_port: 2000, metrics_host: "::1" } })).metrics_port,
    2000,
  );
  assert.equal(
    (await load({ flags: { tcp_port: 2000, metrics_port: 2000, tcp: false } })).metrics_port,
    2000,
  );
  assert.equal((await load({ flags: { udp_port: 2002, metrics_port: 2002 } })).metrics_port, 2002);
});

Deno.test("loadServerConfig refuses a metrics host that does not resolve, naming metrics_host", async () => {
  const err = await refusal(load({ flags: { metrics_port: 0, metrics_host: "no-such-host.invalid" } }));
  assert.equal(err.key, "metrics_host");
  assert.match(err.message, /^Invalid configuration metrics_host: cannot resolve no-such-host\.invalid/);
  const off = await load({ flags: { metrics_host: "no-such-host.invalid" } });
  assert.equal(off.metrics_port, null, "not checked while the port is off");
});

Deno.test("loadServerConfig gives the line, column and problem of a YAML syntax error on one line", async () => {
  await withFile("name: demo\nhost: a: b\n", async (path) => {
    const err = await refusal(loadServerConfig({ file: path }));
    assert.equal(err.key, "host");
    assert.equal(
      err.message,
      `Invalid configuration host: not valid YAML in ${path} at line 2, column 7 ("host: a: b"): ` +
        "Nested mappings are not allowed in compact mappings",
    );
  });
  await withFile("name: [unclosed\n", async (path) => {
    const err = await refusal(loadServerConfig({ file: path }));
    assert.match(
      err.message,
      /^Invalid configuration name: not valid YAML in .* at line 2 \(the end of the file\): Flow sequence in block collection must .* end with a \]$/,
    );
  });
  await withFile("tcp_port: 1\ntcp_port: 2\n", async (path) => {
    const err = await refusal(loadServerConfig({ file: path }));
    assert.match(
      err.message,
      /^Invalid configuration tcp_port: not valid YAML in .* at line 2, column 1 \("tcp_port: 2"\): Map keys must be unique$/,
    );
  });
  await withFile("a: 1\n---\nb: 2\n", async (path) => {
    const err = await refusal(loadServerConfig({ file: path }));
    assert.match(err.message, /at line 2, column 1 \("---"\): a second document starts here/);
  });
  await withFile("name: *nowhere\n", async (path) => {
    const err = await refusal(loadServerConfig({ file: path }));
    assert.match(err.message, /not valid YAML: Unresolved alias/);
  });
});

Deno.test("loadServerConfig refuses a misspelt AUTHCHAT_ variable, suggesting the closest name", async () => {
  const set = (names: string[]) => ({ envNames: () => names, env: () => undefined });
  const typo = await refusal(load(set(["PATH", "AUTHCHAT_TCP_PROT"])));
  assert.equal(typo.key, "AUTHCHAT_TCP_PROT");
  assert.equal(
    typo.message,
    "Invalid configuration AUTHCHAT_TCP_PROT: unknown variable: did you mean AUTHCHAT_TCP_PORT?",
  );
  const lower = await refusal(load(set(["authchat_log_format"])));
  assert.match(lower.message, /did you mean AUTHCHAT_LOG_FORMAT\?$/);
  const vague = await refusal(load(set(["AUTHCHAT_PORT"])));
  assert.match(
    vague.message,
    /^Invalid configuration AUTHCHAT_PORT: unknown variable: the server reads AUTHCHAT_/,
  );
  // Every variable the server reads, the client's own, and everything else are fine.
  const valid = [
    "AUTHCHAT_TCP_PORT",
    "AUTHCHAT_SCRAM_ITERATIONS",
    "AUTHCHAT_CONFIG_DIR",
    // The test suite's (.ci/services.sh), which a shell running the tests holds.
    "AUTHCHAT_TEST_POSTGRES",
    "AUTHCHAT_TEST_REQUIRE_CLUSTER",
    "HOME",
    "XAUTHCHAT_X",
  ];
  assert.equal((await load(set(valid))).tcp_port, 1991);
});

Deno.test("loadServerConfig checks variable names only when it is given them", async () => {
  const config = await load({ env: (name) => name === "AUTHCHAT_TCP_PROT" ? "1" : undefined });
  assert.equal(config.tcp_port, 1991, "a variable that sets nothing is ignored without envNames");
});

Deno.test("loadServerConfig names the key an unknown file key was likely meant to be", async () => {
  await withFile("tcp_prot: 2000\n", async (path) => {
    const err = await refusal(loadServerConfig({ file: path }));
    assert.equal(
      err.message,
      `Invalid configuration tcp_prot: unknown key in ${path}: did you mean tcp_port?`,
    );
  });
  await withFile("colour: blue\n", async (path) => {
    const err = await refusal(loadServerConfig({ file: path }));
    assert.equal(err.message, `Invalid configuration colour: unknown key in ${path}`);
  });
});

Deno.test("readConfigFile reads a missing optional file as empty and refuses a missing named one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.deepEqual(await readConfigFile(join(dir, "nope.yaml"), { optional: true }), {});
    const err = await refusal(loadServerConfig({ file: join(dir, "nope.yaml") }));
    assert.equal(err.key, join(dir, "nope.yaml"));
    assert.match(err.message, /nope\.yaml: cannot read the file/);
    await Deno.writeTextFile(join(dir, "list.yaml"), "- a\n");
    assert.match((await refusal(readConfigFile(join(dir, "list.yaml")))).message, /expected a mapping/);
    await Deno.writeTextFile(join(dir, "empty.yaml"), "# nothing yet\n");
    assert.deepEqual(await readConfigFile(join(dir, "empty.yaml")), {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadServerConfig takes a database file path or a PostgreSQL URL, from any source", async () => {
  assert.equal((await load({ flags: { data_dir: "/srv/d" } })).database, "/srv/d/authchat.db");
  assert.equal((await load({ flags: { database: "/var/lib/u.db" } })).database, "/var/lib/u.db");
  const url = "postgres://app:s3cret@db.example:5432/chat";
  const fromEnv = await load({ env: (name) => name === "AUTHCHAT_DATABASE" ? url : undefined });
  assert.equal(fromEnv.database, url);
  await withFile("database: postgresql://app@db.example/chat\n", async (file) => {
    assert.equal((await loadServerConfig({ file })).database, "postgresql://app@db.example/chat");
  });
  await withFile("data_base: postgres://app@db/chat\n", async (file) => {
    assert.equal((await loadServerConfig({ file })).database, "postgres://app@db/chat", "the alias too");
  });
});

Deno.test("loadServerConfig refuses a database URL it cannot use, naming the source and never the password", async () => {
  const cases: [string, RegExp][] = [
    [
      "mysql://app:s3cret@db/chat",
      /a URL with the scheme mysql: expected a file path \(SQLite\) or a postgres:\/\//,
    ],
    ["postgres://:s3cret@db/chat", /the URL names no role/],
    ["postgres://app:s3cret@/chat", /names no host|not a valid URL/],
    ["postgres://app:s3cret@db:99999/chat", /not a valid URL/],
    ["postgres://app:s3cret@a,b/chat", /several hosts|not a valid URL/],
    ["postgres://app:s3cret@db/chat?host=/run/postgresql", /host parameter is not supported/],
  ];
  for (const [value, reason] of cases) {
    const fromFlag = await refusal(
      load({ flags: { database: value }, flagNames: { database: "--database" } }),
    );
    assert.equal(fromFlag.key, "--database", value);
    assert.match(fromFlag.message, reason, value);
    assert.ok(!fromFlag.message.includes("s3cret"), fromFlag.message);
    const fromEnv = await refusal(load({ env: (name) => name === "AUTHCHAT_DATABASE" ? value : undefined }));
    assert.equal(fromEnv.key, "AUTHCHAT_DATABASE");
    assert.ok(!fromEnv.message.includes("s3cret"), fromEnv.message);
  }
});

Deno.test("loadServerConfig bounds database_pool_size, 10 by default", async () => {
  assert.equal((await load()).database_pool_size, 10);
  const env = (value: string) => ({
    env: (n: string) => n === "AUTHCHAT_DATABASE_POOL_SIZE" ? value : undefined,
  });
  assert.equal((await load(env("3"))).database_pool_size, 3);
  for (const bad of ["0", "1001", "2.5", "many"]) {
    const err = await refusal(load(env(bad)));
    assert.equal(err.key, "AUTHCHAT_DATABASE_POOL_SIZE", bad);
  }
});

Deno.test("loadServerConfig takes a bus of nats:// URLs and a node_id, and no bus by default", async () => {
  const defaults = await load();
  assert.equal(defaults.bus, null);
  assert.equal(defaults.node_id, null);
  const env = (name: string) =>
    ({ AUTHCHAT_BUS: "nats://10.0.0.1:4222, nats://u:p@10.0.0.2", AUTHCHAT_NODE_ID: "eu-1:1991" })[name];
  const config = await load({ env });
  assert.equal(config.bus, "nats://10.0.0.1:4222, nats://u:p@10.0.0.2");
  assert.equal(config.node_id, "eu-1:1991");
  const fromFile = await withFile(
    "bus: nats://127.0.0.1:4222\nnode_id: chat1\n",
    (file) => loadServerConfig({ file }),
  );
  assert.equal(fromFile.bus, "nats://127.0.0.1:4222");
  assert.equal(fromFile.node_id, "chat1");
});

Deno.test("loadServerConfig refuses a bus that is not nats:// URLs, naming where and hiding a password", async () => {
  const cases: [string, RegExp][] = [
    ["127.0.0.1:4222", /is not a URL/],
    ["http://127.0.0.1:4222", /"http:\/\/127\.0\.0\.1:4222" is not nats:\/\//],
    ["nats://", /is not a URL|names no host/],
    ["nats://a:4222,", /"" is not a URL/],
    ["nats://a:99999", /is not a URL/],
    ["nats://a:4222/path", /has a path/],
    ["nats://app:s3cret@:4222", /names no host|is not a URL/],
    ["nats://app:s3cret@a:4222/x", /"nats:\/\/app:\*\*\*@a:4222\/x" has a path/],
  ];
  for (const [bus, expected] of cases) {
    const flag = await refusal(load({ flags: { bus } }));
    assert.equal(flag.key, "--bus");
    assert.match(flag.message, expected, bus);
    assert.ok(!flag.message.includes("s3cret"), flag.message);
    const env = await refusal(load({ env: (name) => name === "AUTHCHAT_BUS" ? bus : undefined }));
    assert.equal(env.key, "AUTHCHAT_BUS");
  }
  const fromFile = await withFile("bus: [nats://a:4222]\n", (file) => refusal(loadServerConfig({ file })));
  assert.equal(fromFile.key, "bus");
});

Deno.test("loadServerConfig refuses a node_id with characters outside the id's", async () => {
  for (const id of ["", "a b", "node/1", "é", "x".repeat(129)]) {
    const err = await refusal(load({ flags: { node_id: id } }));
    assert.equal(err.key, "--node-id");
    assert.match(err.message, id === "" ? /non-empty/ : /1 to 128 letters, digits and \. _ : @ -/);
  }
});

Deno.test("loadServerConfig takes proxy_protocol_from as addresses and networks, none by default", async () => {
  assert.equal((await load()).proxy_protocol_from, null);
  const env = (name: string) => name === "AUTHCHAT_PROXY_PROTOCOL_FROM" ? "10.0.0.10, fd00::/8" : undefined;
  assert.equal((await load({ env })).proxy_protocol_from, "10.0.0.10, fd00::/8");
  const fromFile = await withFile("proxy_protocol_from: 10.0.0.0/24\n", (file) => loadServerConfig({ file }));
  assert.equal(fromFile.proxy_protocol_from, "10.0.0.0/24");
});

Deno.test("loadServerConfig refuses a proxy_protocol_from that is not addresses and networks, naming the entry", async () => {
  const cases: [string, RegExp][] = [
    ["10.0.0.300", /not "10\.0\.0\.300"/],
    ["lb.example", /not "lb\.example"/],
    ["10.0.0.10,", /not ""/],
    ["10.0.0.0/33", /"10\.0\.0\.0\/33": the prefix length must be 0 to 32/],
    ["fd00::/x", /"fd00::\/x": the prefix length must be 0 to 128/],
    ["10.0.0.0/8/8", /not "10\.0\.0\.0\/8\/8"/],
  ];
  for (const [value, expected] of cases) {
    const err = await refusal(
      load({ env: (name) => name === "AUTHCHAT_PROXY_PROTOCOL_FROM" ? value : undefined }),
    );
    assert.equal(err.key, "AUTHCHAT_PROXY_PROTOCOL_FROM");
    assert.match(err.message, expected, value);
  }
  const list = await withFile(
    "proxy_protocol_from: [10.0.0.10]\n",
    (file) => refusal(loadServerConfig({ file })),
  );
  assert.equal(list.key, "proxy_protocol_from");
});
