import assert from "node:assert/strict";
import { join } from "node:path";
import { childArgs, clientLaunchFlags, launchFlags, permissionRequest } from "../../cmd/_launch_plan.ts";
import type { LaunchContext } from "../../cmd/_launch_plan.ts";
import { ConfigError, loadServerConfig } from "../../lib/server/server_config.ts";

function context(env: Record<string, string> = {}, existing: string[] = []): LaunchContext {
  return { env: (name) => env[name], cwd: "/work", exists: (path) => existing.includes(path) };
}

Deno.test("permissionRequest resolves the server's paths with the real loader: flags, environment, file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "authchat.yaml");
    await Deno.writeTextFile(file, "data_dir: /from-file\ntls_cert: /etc/cert.pem\ndatabase: /db/users.db\n");
    const env = { AUTHCHAT_TLS_KEY: "/env/key.pem" };
    const request = await permissionRequest(
      ["server", "--config", file, "--data", "/from-flag", "--tcp-port", "0"],
      context(env, ["/etc/cert.pem"]),
    );
    assert.equal(request?.command, "server");
    if (request?.command !== "server") return;
    assert.equal(request.configFile, file);
    assert.deepEqual(
      request.config,
      await loadServerConfig({
        file,
        env: (n) => env[n as keyof typeof env],
        flags: { data_dir: "/from-flag", tcp_port: 0 },
      }),
    );
    assert.equal(request.config.data_dir, "/from-flag");
    assert.equal(request.config.tls_cert, "/etc/cert.pem");
    assert.equal(request.config.tls_key, "/env/key.pem");
    assert.equal(request.config.database, "/db/users.db");
    assert.deepEqual(request.existingKeys, ["/etc/cert.pem"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("permissionRequest collects seed's input files and keygen's directory", async () => {
  const seed = await permissionRequest(
    [
      "seed",
      "--config",
      "/dev/null",
      "--from",
      "u.txt",
      "--import-verifiers=pg.txt",
      "--user",
      "x",
      "--password-file",
      "../pw",
    ],
    context(),
  );
  assert.ok(seed?.command === "seed");
  assert.deepEqual(seed.inputs, ["u.txt", "pg.txt", "../pw"]);
  assert.equal(seed.config.data_dir, "./data");
  assert.deepEqual(await permissionRequest(["keygen"], context()), { command: "keygen", data: "./data" });
  assert.deepEqual(await permissionRequest(["keygen", "--data", "k", "--days", "3"], context()), {
    command: "keygen",
    data: "k",
  });
});

Deno.test("permissionRequest finds the client's trust files where the client looks for them", async () => {
  const fromDir = await permissionRequest(
    ["client", "--tls", "--ca", "c.pem", "--password-file", "pw"],
    context({
      AUTHCHAT_CONFIG_DIR: "/cfg",
      HOME: "/home/a",
    }),
  );
  assert.deepEqual(fromDir, {
    command: "client",
    inputs: ["pw", undefined, "c.pem", "/cfg/client.yaml"],
    trustFiles: ["/cfg/known_hosts", "/cfg/known_peers", "/cfg/device_tokens"],
    missingDirs: ["/cfg"],
  });
  // A directory that exists already is not the client's to make.
  const existing = await permissionRequest(
    ["client", "--known-hosts", "/srv/kh", "--known-peers", "/home/a/kp"],
    context({ HOME: "/home/a" }, ["/home/a"]),
  );
  assert.ok(existing?.command === "client");
  // (The device tokens' default directory does not exist yet.)
  assert.deepEqual(existing.missingDirs, ["/srv", "/home/a/.config/authchat"]);
  const given = await permissionRequest(
    ["client", "--known-hosts", "/k/h", "--exec", "--known-peers"],
    context({}),
  );
  assert.ok(given?.command === "client");
  // "--known-peers" above is the value of --exec, not an option: the real parser tells them apart.
  assert.deepEqual(given.trustFiles, ["/k/h", undefined, undefined]);
  const home = await permissionRequest(["client"], context({ HOME: "/home/b" }));
  assert.ok(home?.command === "client");
  assert.deepEqual(home.trustFiles, [
    "/home/b/.config/authchat/known_hosts",
    "/home/b/.config/authchat/known_peers",
    "/home/b/.config/authchat/device_tokens",
  ]);
  const tokens = await permissionRequest(["client", "--device-tokens", "/t/dt"], context({}));
  assert.ok(tokens?.command === "client");
  assert.deepEqual(tokens.trustFiles, [undefined, undefined, "/t/dt"]);
  assert.deepEqual(tokens.missingDirs, ["/t"]);
});

Deno.test("permissionRequest grants the files a client.yaml names, from the file's own directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = join(dir, "cfg");
    await Deno.mkdir(cfg);
    await Deno.writeTextFile(
      join(cfg, "client.yaml"),
      "tls: true\nca: certs/ca.pem\npassword_file: ../pw\nknown_hosts: /elsewhere/known_hosts\n",
    );
    const byDefault = await permissionRequest(["client"], context({ AUTHCHAT_CONFIG_DIR: cfg }));
    assert.deepEqual(byDefault, {
      command: "client",
      inputs: [join(dir, "pw"), undefined, join(cfg, "certs/ca.pem"), join(cfg, "client.yaml")],
      trustFiles: ["/elsewhere/known_hosts", join(cfg, "known_peers"), join(cfg, "device_tokens")],
      missingDirs: ["/elsewhere", cfg],
    });
    // A named file relative to the child's working directory, its paths relative to itself; flags win.
    const named = await permissionRequest(
      ["client", "--config", "cfg/client.yaml", "--password-file", "mine"],
      { ...context({ HOME: "/home/c" }), cwd: dir },
    );
    assert.ok(named?.command === "client");
    assert.deepEqual(named.inputs, ["mine", undefined, join(cfg, "certs/ca.pem"), join(cfg, "client.yaml")]);
    // The client's own configuration errors come from the launcher too, worded as the client words them.
    await Deno.writeTextFile(join(cfg, "client.yaml"), "prot: 1\n");
    await assert.rejects(
      permissionRequest(["client"], context({ AUTHCHAT_CONFIG_DIR: cfg })),
      (err: unknown) =>
        err instanceof ConfigError && /^Invalid configuration prot: unknown key/.test(err.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("permissionRequest selects nothing for help, version and usage errors", async () => {
  for (
    const args of [
      ["--help"],
      ["--version"],
      ["server", "--help"],
      ["help", "seed"],
      ["client", "--port", "70000"],
      ["keygen", "--bogus"],
      ["nonsense"],
      [],
    ]
  ) {
    assert.equal(await permissionRequest(args, context()), null, args.join(" "));
    assert.deepEqual(await launchFlags(args, context()), [], args.join(" "));
  }
});

Deno.test("permissionRequest fails with the loader's own message on an invalid configuration", async () => {
  const env = { AUTHCHAT_TCP_PORT: "99999" };
  const expected = await loadServerConfig({ file: "/dev/null", env: (n) => env[n as keyof typeof env] }).then(
    () => null,
    (err: Error) => err.message,
  );
  assert.ok(expected !== null);
  await assert.rejects(
    permissionRequest(["server", "--config", "/dev/null"], context(env)),
    (err: unknown) => err instanceof ConfigError && err.message === expected,
  );
  await assert.rejects(
    permissionRequest(["seed", "--config", "/nonexistent/x.yaml"], context()),
    /Invalid configuration \/nonexistent\/x\.yaml: cannot read the file/,
  );
});

Deno.test("clientLaunchFlags gives the same flags as launchFlags, at once", async () => {
  const env = { XDG_CONFIG_HOME: "/x" };
  const args = ["--tls", "--ca", "/c.pem", "--new-password-file", "n.pw"];
  assert.deepEqual(
    clientLaunchFlags(args, context(env)),
    await launchFlags(["client", ...args], context(env)),
  );
  assert.deepEqual(clientLaunchFlags(["--help"], context(env)), []);
});

Deno.test("childArgs runs the script quietly, without prompts, under its own configuration or none", () => {
  assert.deepEqual(
    childArgs(["--allow-net"], { path: "/r/mod.ts", config: "/r/deno.json" }, ["client", "--tls"]),
    [
      "run",
      "--quiet",
      "--no-prompt",
      "--config=/r/deno.json",
      "--allow-net",
      "/r/mod.ts",
      "client",
      "--tls",
    ],
  );
  assert.deepEqual(childArgs([], { path: "/d/authchat.js", config: null }, ["--help"]), [
    "run",
    "--quiet",
    "--no-prompt",
    "--no-config",
    "/d/authchat.js",
    "--help",
  ]);
});

Deno.test("permissionRequest refuses a misspelt AUTHCHAT_ variable when it may list the environment", async () => {
  const env = { AUTHCHAT_TCP_PROT: "2000" };
  const listed = { ...context(env), envNames: () => Object.keys(env) };
  await assert.rejects(
    permissionRequest(["server", "--config", "/dev/null"], listed),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.message ===
        "Invalid configuration AUTHCHAT_TCP_PROT: unknown variable: did you mean AUTHCHAT_TCP_PORT?",
  );
  // Without the list (a process that may read only AUTHCHAT_* names) there is no check.
  assert.equal((await permissionRequest(["seed", "--config", "/dev/null"], context(env)))?.command, "seed");
});
