import assert from "node:assert/strict";
import { join } from "node:path";
import { ServerProcess, tempDir } from "./_harness.ts";

/** The permission warnings of a server log, as `event file mode` (the file relative to `dir`). */
function permissionWarnings(log: string, dir: string): string[] {
  return [...log.matchAll(/ (\w+_permissions) file=(\S+) mode=(\d+) advice="([^"]+)"/g)]
    .map(([, event, file, mode, advice]) => `${event} ${file!.replace(dir, "D")} ${mode} ${advice}`)
    .sort();
}

Deno.test("authchat server warns at start when others can read or write its data directory, database, -wal, -shm or keys", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  // The first start makes everything private: nothing to warn about.
  const fresh = await ServerProcess.start(data, { args: ["--log-format", "text"] });
  try {
    assert.deepEqual(permissionWarnings(await fresh.settledLog(), data), []);
  } finally {
    assert.equal((await fresh.stop()).code, 0, fresh.stderr);
  }
  assert.equal((await Deno.stat(join(data, "authchat.db"))).mode! & 0o777, 0o600);

  // An operator's copy or umask loosened them. SQLite makes the -wal and -shm with the database's mode.
  await Deno.chmod(data, 0o755);
  await Deno.chmod(join(data, "authchat.db"), 0o644);
  await Deno.chmod(join(data, "seal-private.pem"), 0o640);
  const loose = await ServerProcess.start(data, { args: ["--log-format", "text"] });
  try {
    assert.deepEqual(permissionWarnings(await loose.settledLog(), data), [
      "data_dir_permissions D 0755 chmod 700",
      "database_permissions D/authchat.db 0644 chmod 600",
      "database_permissions D/authchat.db-shm 0644 chmod 600",
      "database_permissions D/authchat.db-wal 0644 chmod 600",
      "key_permissions D/seal-private.pem 0640 chmod 600",
    ]);
  } finally {
    assert.equal((await loose.stop()).code, 0, loose.stderr);
  }

  // Group-writable alone is as bad; a directory others may only traverse (0711) is not warned about.
  await Deno.chmod(data, 0o711);
  await Deno.chmod(join(data, "authchat.db"), 0o620);
  await Deno.chmod(join(data, "seal-private.pem"), 0o600);
  const group = await ServerProcess.start(data, { args: ["--log-format", "text"] });
  try {
    const warnings = permissionWarnings(await group.settledLog(), data);
    assert.ok(warnings.includes("database_permissions D/authchat.db 0620 chmod 600"), warnings.join("\n"));
    assert.ok(!warnings.some((w) => w.startsWith("data_dir_permissions")), warnings.join("\n"));
  } finally {
    assert.equal((await group.stop()).code, 0, group.stderr);
  }
});
