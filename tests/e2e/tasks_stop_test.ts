import assert from "node:assert/strict";
import { join } from "node:path";
import { groupProcesses, installKeys, seedUsers, ServerProcess, tempDir } from "./_harness.ts";
import { hello, RawClient, scramLogin } from "./_raw_client.ts";

const PASSWORD = "Ctrl-C-stops-it-cleanly-42";

Deno.test("deno task start stops cleanly on a Ctrl-C to its whole process group, ten times in a row", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { alice: PASSWORD });
  for (let run = 1; run <= 10; run++) {
    const server = await ServerProcess.start(data, { via: "task" });
    await using client = await RawClient.connect(server.tcpPort);
    try {
      const greeting = await hello(client);
      await scramLogin(client, {
        user: "alice",
        password: PASSWORD,
        mechanisms: greeting.mechanisms as string[],
      });
      // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group (deno task, the
      // launcher, the server), and deno task and the launcher each pass theirs on as well.
      Deno.kill(-server.pid, "SIGINT");
      assert.deepEqual(await client.reply(), { op: "BYE", code: "SHUTDOWN", reason: "Server shutting down" });
      await client.expectClosed();
      const status = await server.exited();
      assert.equal(status.code, 0, `run ${run}: ${server.stderr}`);
      assert.match(server.stderr, /INFO stopping signal=SIGINT/, `run ${run}`);
      assert.match(server.stderr, /INFO shutdown sessions_left=0/, `run ${run}`);
      assert.doesNotMatch(server.stderr, /already_stopping|forced_exit/, `run ${run}`);
      assert.deepEqual(await groupProcesses(server.pid), [], `run ${run}: processes left behind`);
    } finally {
      await server.kill();
    }
  }
});

Deno.test("the launcher passes SIGTERM and SIGHUP sent to it alone on to the server and exits after it", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  for (const signal of ["SIGTERM", "SIGHUP"] as const) {
    const server = await ServerProcess.start(data, { via: "task" });
    try {
      const group = await groupProcesses(server.pid);
      const launcher = group.find((p) => p.args.some((a) => a.endsWith("cmd/launch.ts")));
      assert.ok(launcher, JSON.stringify(group));
      Deno.kill(launcher.pid, signal);
      const status = await server.exited();
      assert.equal(status.code, 0, server.stderr);
      assert.match(server.stderr, new RegExp(`INFO stopping signal=${signal}`));
      assert.match(server.stderr, /INFO shutdown sessions_left=0/);
      assert.deepEqual(await groupProcesses(server.pid), []);
    } finally {
      await server.kill();
    }
  }
});
