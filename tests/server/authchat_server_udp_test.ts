import assert from "node:assert/strict";
import { join } from "node:path";
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
import { hello } from "../e2e/_raw_client.ts";
import { UdpSessionClient } from "../e2e/_udp_session_client.ts";

/** A server on port 0 with UDP sessions, in a temporary directory. */
async function startServer(dir: string): Promise<AuthchatServer> {
  const paths = identityPaths(dir);
  await generateServerIdentity(paths);
  const config = await loadServerConfig({
    file: "/dev/null",
    flags: { tcp_port: 0, tls: false, udp_port: 0, scram_iterations: 4096 },
  });
  return await AuthchatServer.start({
    config,
    identity: await loadServerIdentity(paths, { tls: true }),
    store: SqliteUserStore.open(join(dir, "authchat.db")),
    log: new Logger({ write: () => {} }),
    parts: localSharedParts(config),
  });
}

Deno.test("AuthchatServer.shutdown leaves no UDP session behind when a client vanished", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const server = await startServer(dir);
    const c = await UdpSessionClient.connect(server.addresses.udp!.port);
    try {
      assert.equal((await hello(c.raw)).op, "HELLO");
      // The client goes away without a CLOSE: nothing will acknowledge the server's BYE.
      c.socket.close();
      await server.shutdown(100);
      assert.equal(server.udpSessions!.stats.established, 0, "a session outlived the server's shutdown");
    } finally {
      c.stream.close();
      await c.stream.ended;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AuthchatServer binds SCRAM on a UDP session as on TLS: tls-server-end-point and y refused, n accepted", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const server = await startServer(dir);
    try {
      await using c = await UdpSessionClient.connect(server.addresses.udp!.port);
      const greeting = await hello(c.raw);
      assert.deepEqual(greeting.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
      const login = (id: number, mechanism: string, data: string) =>
        c.raw.request({ op: "LOGIN", id, mechanism, data });
      // The TLS binding type names another channel: refused, as PROTOCOL 20.9 says.
      const tlsType = await login(2, "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,n=alice,r=abcdefgh");
      assert.equal(tlsType.code, "CHANNEL_BINDING", JSON.stringify(tlsType));
      assert.equal(tlsType.scram, "unsupported-channel-binding-type", JSON.stringify(tlsType));
      // "y": the client was told the server cannot bind, which it can here: a downgrade.
      const downgrade = await login(3, "SCRAM-SHA-256", "y,,n=alice,r=abcdefgh");
      assert.equal(downgrade.code, "CHANNEL_BINDING", JSON.stringify(downgrade));
      assert.equal(downgrade.scram, "server-does-support-channel-binding", JSON.stringify(downgrade));
      // "n": a client without binding support, as the table of 4.1 accepts on TLS (the authchat client
      // always binds; a relayed exchange cannot turn its p= into n, which its proof covers).
      const unbound = await login(4, "SCRAM-SHA-256", "n,,n=alice,r=abcdefgh");
      assert.equal(unbound.op, "CHALLENGE", JSON.stringify(unbound));
    } finally {
      await server.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
