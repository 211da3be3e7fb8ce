import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultDeviceTokensPath, DeviceTokens } from "../../lib/client/device_tokens.ts";
import { privateFileWorkDir } from "../../lib/client/private_file.ts";
import { withTempDir } from "../_temp_dir.ts";

const T1 = new Uint8Array(73).fill(1).toBase64();
const T2 = new Uint8Array(73).fill(2).toBase64();

Deno.test("DeviceTokens keeps one token per server and account, replacing it in place", async () => {
  await withTempDir(async (dir) => {
    const tokens = new DeviceTokens(join(dir, "device_tokens"));
    assert.equal(await tokens.get("h:1", "alice"), undefined, "no file yet");
    await tokens.put("h:1", "alice", T1);
    await tokens.put("h:1", "bob", T1);
    await tokens.put("h:2", "alice", T2);
    await tokens.put("h:1", "alice", T2);
    assert.equal(await tokens.get("h:1", "alice"), T2);
    assert.equal(await tokens.get("h:1", "bob"), T1);
    assert.equal(await tokens.get("h:2", "alice"), T2, "servers are separate");
    assert.equal(await tokens.get("h:1", "carol"), undefined);
    assert.equal(
      await Deno.readTextFile(tokens.path),
      `h:1 alice ${T2}\nh:1 bob ${T1}\nh:2 alice ${T2}\n`,
    );
  });
});

Deno.test("DeviceTokens.forget drops an account's token and keeps the rest", async () => {
  await withTempDir(async (dir) => {
    const tokens = new DeviceTokens(join(dir, "device_tokens"));
    await tokens.forget("h:1", "alice");
    await assert.rejects(Deno.stat(tokens.path), Deno.errors.NotFound, "nothing to forget: no file made");
    await tokens.put("h:1", "alice", T1);
    await tokens.put("h:1", "bob", T2);
    await tokens.forget("h:1", "alice");
    assert.equal(await tokens.get("h:1", "alice"), undefined);
    assert.equal(await Deno.readTextFile(tokens.path), `h:1 bob ${T2}\n`);
  });
});

Deno.test("DeviceTokens writes the file 0600 in a 0700 directory, through its own work directory", async () => {
  await withTempDir(async (dir) => {
    const tokens = new DeviceTokens(join(dir, "nested", "device_tokens"));
    await tokens.put("h:1", "alice", T1);
    assert.equal((await Deno.stat(join(dir, "nested"))).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(tokens.path)).mode! & 0o777, 0o600);
    await Deno.chmod(tokens.path, 0o644);
    await tokens.put("h:1", "alice", T2);
    assert.equal((await Deno.stat(tokens.path)).mode! & 0o777, 0o600, "a rewrite restores 0600");
    assert.deepEqual([...Deno.readDirSync(join(dir, "nested"))].map((e) => e.name), ["device_tokens"]);
    assert.equal(privateFileWorkDir(tokens.path), join(dir, "nested", ".device_tokens.tmp"));
  });
});

Deno.test("DeviceTokens keeps comments and lines it cannot read, and reads none of them", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "device_tokens");
    const foreign = `# mine\n\nh:1 alice not-base64!\nh:1 alice ${T1} extra\nh:1 bob\n`;
    await Deno.writeTextFile(path, foreign);
    const tokens = new DeviceTokens(path);
    assert.equal(await tokens.get("h:1", "alice"), undefined);
    assert.equal(await tokens.get("h:1", "bob"), undefined);
    await tokens.put("h:1", "alice", T2);
    assert.equal(await Deno.readTextFile(path), `${foreign}h:1 alice ${T2}\n`);
  });
});

Deno.test("DeviceTokens refuses a field that would not read back as itself", async () => {
  await withTempDir(async (dir) => {
    const tokens = new DeviceTokens(join(dir, "device_tokens"));
    for (
      const [server, user, token] of [["", "a", T1], ["h:1", "a b", T1], ["#h", "a", T1], ["h:1", "a", "x y"]]
    ) {
      assert.throws(() => tokens.put(server!, user!, token!), TypeError, `${server}|${user}|${token}`);
    }
    await assert.rejects(Deno.stat(tokens.path), Deno.errors.NotFound);
    await tokens.put("h:1", "#bob", T1);
    assert.equal(await tokens.get("h:1", "#bob"), T1, "a user key may start with #, as in known_peers");
  });
});

Deno.test("DeviceTokens loses no token when puts race", async () => {
  await withTempDir(async (dir) => {
    const tokens = new DeviceTokens(join(dir, "device_tokens"));
    await Promise.all(Array.from({ length: 20 }, (_, i) => tokens.put("h:1", `user${i}`, T1)));
    for (let i = 0; i < 20; i++) assert.equal(await tokens.get("h:1", `user${i}`), T1);
  });
});

Deno.test("defaultDeviceTokensPath lies beside known_hosts in the configuration directory", () => {
  assert.equal(defaultDeviceTokensPath({ AUTHCHAT_CONFIG_DIR: "/c" }), "/c/device_tokens");
  assert.equal(defaultDeviceTokensPath({ XDG_CONFIG_HOME: "/x" }), "/x/authchat/device_tokens");
  assert.throws(() => defaultDeviceTokensPath({}), TypeError);
});
