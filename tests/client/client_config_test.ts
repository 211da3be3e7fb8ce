import assert from "node:assert/strict";
import { join } from "node:path";
import { loadClientConfig } from "../../lib/client/client_config.ts";
import { ConfigError } from "../../lib/server/config_file.ts";
import { withTempDir } from "../_temp_dir.ts";

function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  return withTempDir(body, "authchat-client-config-");
}

const noEnv = () => undefined;

Deno.test("loadClientConfig takes flags over the file over defaults, and file paths from the file's directory", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "c.yaml");
    await Deno.writeTextFile(
      file,
      "host: chat.example\nport: 2000\ntls: true\nuser: alice\npassword_file: alice.pw\njson: true\n",
    );
    const { config, file: read } = loadClientConfig({
      file,
      env: noEnv,
      flags: { port: 3000, json: false, new_password_file: "new.pw" },
    });
    assert.equal(read, file);
    assert.deepEqual(config, {
      host: "chat.example",
      port: 3000,
      tls: true,
      udp: false,
      user: "alice",
      password_file: join(dir, "alice.pw"),
      new_password_file: "new.pw",
      json: false,
      relay: false,
      keep_going: false,
    });
  });
});

Deno.test("loadClientConfig reads client.yaml from the configuration directory when present", async () => {
  await withDir(async (dir) => {
    const env = (name: string) =>
      name === "XDG_CONFIG_HOME" ? dir : name === "HOME" ? "/nonexistent" : undefined;
    assert.deepEqual(loadClientConfig({ env }), {
      config: { host: "127.0.0.1", tls: false, udp: false, relay: false, json: false, keep_going: false },
      file: null,
    });
    await Deno.mkdir(join(dir, "authchat"));
    await Deno.writeTextFile(join(dir, "authchat", "client.yaml"), "keep_going: true\nknown_peers: peers\n");
    const { config, file } = loadClientConfig({ env });
    assert.equal(file, join(dir, "authchat", "client.yaml"));
    assert.equal(config.keep_going, true);
    assert.equal(config.known_peers, join(dir, "authchat", "peers"));
    const named = loadClientConfig({ env: () => dir, file: "/dev/null" });
    assert.equal(named.config.keep_going, false, "--config replaces the default file");
  });
});

Deno.test("loadClientConfig reports one error naming the key, flag or file", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "c.yaml");
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ["prot: 1991\n", {}, /^Invalid configuration prot: unknown key in .*c\.yaml: did you mean port\?$/],
      ["colour: red\n", {}, /^Invalid configuration colour: unknown key in .*c\.yaml$/],
      ["port: 70000\n", {}, /^Invalid configuration port in .*c\.yaml: 70000 is not within 1\.\.65535$/],
      ["tls: maybe\n", {}, /^Invalid configuration tls in .*c\.yaml: expected true or false$/],
      [
        "port: [1\n",
        {},
        /^Invalid configuration port: not valid YAML in .*c\.yaml at line 2 \(the end of the file\): /,
      ],
      ["fingerprint: SHA256:nope\n", {}, /^Invalid configuration fingerprint in .*: expected SHA256: and 43/],
      ["", { port: 0 }, /^Invalid configuration --port: 0 is not within 1\.\.65535$/],
      [
        "ca: ca.pem\n",
        {},
        /^Invalid configuration ca in .*c\.yaml: a CA applies to TLS and UDP sessions: add --tls/,
      ],
      [
        "udp: true\n",
        { tls: true },
        /^Invalid configuration udp in .*c\.yaml and --tls: a UDP session is encrypted/,
      ],
      [
        "",
        { udp: true, tls: true },
        /^Invalid configuration --udp and --tls: a UDP session is encrypted and/,
      ],
      [
        `tls: true\nca: ca.pem\n`,
        { fingerprint: `SHA256:${"A".repeat(43)}` },
        /^Invalid configuration ca in .*c\.yaml and --fingerprint: pin the server with one of them, not both$/,
      ],
    ];
    for (const [text, flags, expected] of cases) {
      await Deno.writeTextFile(file, text);
      assert.throws(
        () => loadClientConfig({ file, env: noEnv, flags }),
        (err: unknown) =>
          err instanceof ConfigError && expected.test(err.message) && !err.message.includes("\n"),
        `${JSON.stringify(text)} ${JSON.stringify(flags)}`,
      );
    }
    assert.throws(
      () => loadClientConfig({ file: join(dir, "missing.yaml"), env: noEnv }),
      /Invalid configuration .*missing\.yaml: cannot read the file/,
    );
  });
});
