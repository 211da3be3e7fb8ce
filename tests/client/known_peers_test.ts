import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultKnownPeersPath, KnownPeers } from "../../lib/client/known_peers.ts";
import { withTempDir } from "../_temp_dir.ts";

const A = new Uint8Array(32).fill(0xaa);
const B = new Uint8Array(32).fill(0xbb);
const A64 = A.toBase64();
const B64 = B.toBase64();

Deno.test("KnownPeers reports new, then match, then changed, without pinning on check", async () => {
  await withTempDir(async (dir) => {
    const peers = new KnownPeers(join(dir, "known_peers"));
    assert.equal(await peers.check("h:1", "bob", A), "new");
    assert.equal(await peers.check("h:1", "bob", A), "new", "check alone pins nothing");
    await assert.rejects(Deno.stat(peers.path), Deno.errors.NotFound);
    await peers.pin("h:1", "bob", A);
    assert.equal(await peers.check("h:1", "bob", A), "match");
    assert.equal(await peers.check("h:1", "bob", B), "changed");
    assert.equal(await peers.check("h:1", "bob", A.subarray(0, 31)), "changed");
    assert.deepEqual(await peers.pinned("h:1", "bob"), A);
    assert.equal(await peers.pinned("h:1", "ann"), undefined);
  });
});

Deno.test("KnownPeers.pin replaces a user's key in place instead of adding a line", async () => {
  await withTempDir(async (dir) => {
    const peers = new KnownPeers(join(dir, "known_peers"));
    await peers.pin("h:1", "ann", A);
    await peers.pin("h:1", "bob", A);
    await peers.pin("h:1", "ann", B);
    assert.equal(await peers.check("h:1", "ann", B), "match");
    assert.equal(await peers.check("h:1", "bob", A), "match");
    assert.equal(await Deno.readTextFile(peers.path), `h:1 ann ${B64}\nh:1 bob ${A64}\n`);
  });
});

Deno.test("KnownPeers scopes entries to the server endpoint", async () => {
  await withTempDir(async (dir) => {
    const peers = new KnownPeers(join(dir, "known_peers"));
    await peers.pin("h:1", "bob", A);
    assert.equal(await peers.check("h:2", "bob", A), "new", "ports are separate");
    assert.equal(await peers.check("g:1", "bob", A), "new", "hosts are separate");
    await peers.pin("h:2", "bob", B);
    assert.deepEqual(await peers.pinned("h:1", "bob"), A);
    assert.deepEqual(await peers.pinned("h:2", "bob"), B);
  });
});

Deno.test("KnownPeers stores user keys as given: case folding is the caller's job", async () => {
  await withTempDir(async (dir) => {
    const peers = new KnownPeers(join(dir, "known_peers"));
    await peers.pin("h:1", "Bob", A);
    assert.equal(await peers.pinned("h:1", "bob"), undefined);
    assert.deepEqual(await peers.pinned("h:1", "Bob"), A);
    assert.equal(await Deno.readTextFile(peers.path), `h:1 Bob ${A64}\n`);
  });
});

Deno.test("KnownPeers.pin creates the directory 0700 and the file 0600", async () => {
  await withTempDir(async (dir) => {
    const peers = new KnownPeers(join(dir, "nested", "known_peers"));
    await peers.pin("h:1", "bob", A);
    assert.equal((await Deno.stat(join(dir, "nested"))).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(peers.path)).mode! & 0o777, 0o600);
    await Deno.chmod(peers.path, 0o644);
    await peers.pin("h:1", "ann", B);
    assert.equal((await Deno.stat(peers.path)).mode! & 0o777, 0o600, "a rewrite restores 0600");
    assert.deepEqual([...Deno.readDirSync(join(dir, "nested"))].map((e) => e.name), ["known_peers"]);
  });
});

Deno.test("KnownPeers keeps comments, blank and malformed lines on rewrite but ignores them", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "known_peers");
    const kept = [
      "# comment",
      "",
      `h:1 bob not-base64!`,
      `h:1 bob ${A.subarray(0, 31).toBase64()}`,
      `h:1 bob ${A64} extra`,
      `#h:1 bob ${A64}`,
      `h:1 bob`,
      `h:1 carol ${A64}\r`,
      `h:1 dave ${A64} # trailing comment`,
    ];
    await Deno.writeTextFile(file, kept.join("\n"));
    const peers = new KnownPeers(file);
    assert.equal(await peers.pinned("h:1", "bob"), undefined);
    assert.deepEqual(await peers.pinned("h:1", "carol"), A);
    assert.deepEqual(await peers.pinned("h:1", "dave"), A);
    await peers.pin("h:1", "bob", B);
    assert.equal(await Deno.readTextFile(file), [...kept, `h:1 bob ${B64}`].join("\n") + "\n");
    await peers.pin("h:1", "dave", B);
    assert.equal(
      await Deno.readTextFile(file),
      [...kept.slice(0, -1), `h:1 dave ${B64}`, `h:1 bob ${B64}`].join("\n") + "\n",
    );
  });
});

Deno.test("KnownPeers.pin collapses duplicate lines for one user into the first", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "known_peers");
    await Deno.writeTextFile(file, `h:1 bob ${A64}\n# between\nh:1 bob ${B64}\n`);
    const peers = new KnownPeers(file);
    assert.deepEqual(await peers.pinned("h:1", "bob"), B, "the last line wins, as in known_hosts");
    await peers.pin("h:1", "bob", A);
    assert.equal(await Deno.readTextFile(file), `h:1 bob ${A64}\n# between\n`);
  });
});

Deno.test("KnownPeers.pin keeps every line when pins run concurrently", async () => {
  await withTempDir(async (dir) => {
    const peers = new KnownPeers(join(dir, "known_peers"));
    const users = Array.from({ length: 20 }, (_, i) => `user${i}`);
    await Promise.all(users.map((u) => peers.pin("h:1", u, A)));
    for (const u of users) assert.equal(await peers.check("h:1", u, A), "match", u);
  });
});

Deno.test("KnownPeers.pin refuses values that would not read back", async () => {
  await withTempDir(async (dir) => {
    const peers = new KnownPeers(join(dir, "known_peers"));
    await assert.rejects(peers.pin("h:1", "bob", A.subarray(0, 31)), RangeError);
    for (
      const [server, user] of [["", "bob"], ["h:1", ""], ["h 1", "bob"], ["h:1", "b\tob"], ["#h:1", "bob"]]
    ) {
      await assert.rejects(peers.pin(server!, user!, A), TypeError, `${server} ${user}`);
    }
    await peers.pin("h:1", "#bob", A);
    assert.deepEqual(await peers.pinned("h:1", "#bob"), A, "a user key may start with #");
  });
});

Deno.test("defaultKnownPeersPath sits beside the known-hosts file", () => {
  assert.equal(defaultKnownPeersPath({ AUTHCHAT_CONFIG_DIR: "/a", HOME: "/h" }), "/a/known_peers");
  assert.equal(defaultKnownPeersPath({ XDG_CONFIG_HOME: "/x", HOME: "/h" }), "/x/authchat/known_peers");
  assert.equal(defaultKnownPeersPath({ HOME: "/h" }), "/h/.config/authchat/known_peers");
  assert.throws(() => defaultKnownPeersPath({}), TypeError);
});
