import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultKnownHostsPath, KnownHosts, TrustError } from "../../lib/client/known_hosts.ts";

const A = "SHA256:" + "A".repeat(43);
const B = "SHA256:" + "B".repeat(43);

Deno.test("KnownHosts remembers a new key, accepts it again and refuses a changed one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const hosts = new KnownHosts(join(dir, "nested", "known_hosts"));
    assert.equal(await hosts.verify("h:1", "tls", A), "new");
    assert.equal(await hosts.verify("h:1", "tls", A), "known");
    assert.equal(await hosts.verify("h:1", "seal", B), "new", "kinds are separate");
    assert.equal(await hosts.verify("h:2", "tls", B), "new", "ports are separate");
    await assert.rejects(hosts.verify("h:1", "tls", B), (err: Error) => {
      assert.ok(err instanceof TrustError);
      assert.match(err.message, /WARNING: THE SERVER TLS CERTIFICATE OF h:1 HAS CHANGED!/);
      assert.match(err.message, new RegExp(`Expected ${A}`));
      return true;
    });
    assert.equal((await Deno.stat(join(dir, "nested", "known_hosts"))).mode! & 0o777, 0o600);
    assert.equal((await Deno.readTextFile(join(dir, "nested", "known_hosts"))).split("\n").length, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("KnownHosts ignores comments, blank and malformed lines", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "known_hosts");
    await Deno.writeTextFile(
      file,
      `# comment\n\nh:1 tls not-a-fingerprint\nh:1 ftp ${A}\r\nh:3 seal ${A} # trailing\n`,
    );
    const hosts = new KnownHosts(file);
    assert.equal(await hosts.lookup("h:1", "tls"), undefined);
    assert.equal(await hosts.lookup("h:3", "seal"), A);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("defaultKnownHostsPath prefers AUTHCHAT_CONFIG_DIR, then XDG_CONFIG_HOME, then HOME", () => {
  assert.equal(
    defaultKnownHostsPath({ AUTHCHAT_CONFIG_DIR: "/a", XDG_CONFIG_HOME: "/x", HOME: "/h" }),
    "/a/known_hosts",
  );
  assert.equal(defaultKnownHostsPath({ XDG_CONFIG_HOME: "/x", HOME: "/h" }), "/x/authchat/known_hosts");
  assert.equal(defaultKnownHostsPath({ HOME: "/h" }), "/h/.config/authchat/known_hosts");
  assert.throws(() => defaultKnownHostsPath({}), /set HOME/);
});
