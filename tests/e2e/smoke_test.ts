import assert from "node:assert/strict";
import { join } from "node:path";
import { installKeys, runCli, seedUsers, ServerProcess, tempDir } from "./_harness.ts";

Deno.test("server and client log in over TLS", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { alice: "tulip orbit canyon 7" });
  await using server = await ServerProcess.start(data);
  await Deno.writeTextFile(join(dir.path, "pw"), "tulip orbit canyon 7\n");
  const result = await runCli("client", [
    "--tls",
    "--port",
    String(server.tlsPort),
    "--user",
    "alice",
    "--password-file",
    join(dir.path, "pw"),
    "--exec",
    "login",
    "--exec",
    "is_logged",
  ], { env: { XDG_CONFIG_HOME: dir.path } });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /logged in as alice\nlogged in as alice/);
});
