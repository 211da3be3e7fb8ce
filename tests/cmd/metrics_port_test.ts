import assert from "node:assert/strict";
import { join } from "node:path";
import { MetricsPort } from "../../cmd/_metrics_port.ts";
import {
  generateServerIdentity,
  identityPaths,
  loadServerIdentity,
} from "../../lib/crypto/server_identity.ts";
import { AuthchatServer } from "../../lib/server/authchat_server.ts";
import { localSharedParts } from "../../lib/server/local_parts.ts";
import { Logger } from "../../lib/server/logger.ts";
import { loadServerConfig } from "../../lib/server/server_config.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import { withTempDir } from "../_temp_dir.ts";

async function health(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  return `${response.status} ${await response.text()}`;
}

Deno.test("MetricsPort off passes every part through and serves nothing", async () => {
  const config = await loadServerConfig({ file: "/dev/null" });
  const port = new MetricsPort(config);
  const store = SqliteUserStore.open(":memory:");
  try {
    const parts = localSharedParts(config);
    assert.equal(port.observe, undefined);
    assert.equal(port.metrics, null);
    assert.equal(port.store(store), store);
    assert.equal(port.parts(parts), parts);
    port.open(store, new Logger({ write: () => {} }));
    assert.equal(port.readyField, "");
    await port.close();
  } finally {
    store.close();
  }
});

Deno.test("MetricsPort's /healthz says starting, then ok while the server serves, then what failed once it stops", async () => {
  await withTempDir(async (dir) => {
    const paths = identityPaths(dir);
    await generateServerIdentity(paths);
    const config = await loadServerConfig({
      file: "/dev/null",
      flags: { tcp_port: 0, tls: false, udp: false, scram_iterations: 4096, metrics_port: 0 },
    });
    const lines: string[] = [];
    const port = new MetricsPort(config, { node: "node-a" });
    const log = new Logger({ write: (line) => lines.push(line), now: () => 0, observe: port.observe! });
    const store = port.store(SqliteUserStore.open(join(dir, "authchat.db")));
    port.open(store, log);
    try {
      const metricsPort = Number(/^ metrics=127\.0\.0\.1:(\d+)$/.exec(port.readyField)?.[1]);
      assert.ok(metricsPort > 0, port.readyField);
      assert.match(
        lines.join("\n"),
        new RegExp(`INFO metrics_listening address=127\\.0\\.0\\.1:${metricsPort}`),
      );
      assert.equal(await health(metricsPort), "503 unhealthy\nserver: failed: starting\nstore: ok\n");
      const server = await AuthchatServer.start({
        config,
        identity: await loadServerIdentity(paths, { tls: false }),
        store,
        log,
        parts: port.parts(localSharedParts(config)),
      });
      port.serving(server);
      // The report of a second ago is reused: wait it out.
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(await health(metricsPort), "200 ok\nserver: ok\nstore: ok\n");
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, /^authchat_node_info\{node="node-a",version="\d+\.\d+\.\d+"\} 1$/m);
      port.stopping();
      // The server closes the store as it stops; the metrics port is still open until it is closed.
      await server.shutdown();
      await new Promise((r) => setTimeout(r, 1100));
      assert.equal(
        await health(metricsPort),
        "503 unhealthy\nserver: failed: stopping\nstore: failed: Database closed\n",
      );
      const after = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(
        after,
        /^authchat_database_errors_total\{op="ping"\} 1$/m,
        "the failed ping is a database error",
      );
    } finally {
      await port.close();
      store.close();
    }
  }, "authchat-metrics-port-");
});
