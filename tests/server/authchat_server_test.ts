import assert from "node:assert/strict";
import { join } from "node:path";
import { AuthchatClient, ConnectionClosedError } from "../../lib/client/authchat_client.ts";
import { KnownHosts } from "../../lib/client/known_hosts.ts";
import {
  generateServerIdentity,
  identityPaths,
  loadServerIdentity,
} from "../../lib/crypto/server_identity.ts";
import { AuthchatServer } from "../../lib/server/authchat_server.ts";
import { Logger } from "../../lib/server/logger.ts";
import { loadServerConfig } from "../../lib/server/server_config.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";

const PASSWORD = "violet harbor engine 42";

interface Running {
  server: AuthchatServer;
  logs: string[];
  certPem: string;
  /** Connect over plain TCP with trust on first use, recording server events. */
  tcpClient(events?: string[]): Promise<AuthchatClient>;
}

/** Run `body` against a server on port 0 in a temporary directory; always shut down and clean up. */
async function withServer(
  options: { authTimeout?: number },
  body: (running: Running) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const paths = identityPaths(dir);
    await generateServerIdentity(paths);
    const config = await loadServerConfig({
      file: "/dev/null",
      flags: {
        tcp_port: 0,
        tls_port: 0,
        udp_port: 0,
        scram_iterations: 4096,
        auth_timeout: options.authTimeout ?? 30,
      },
    });
    const logs: string[] = [];
    const server = await AuthchatServer.start({
      config,
      identity: await loadServerIdentity(paths, { tls: true }),
      store: SqliteUserStore.open(join(dir, "authchat.db")),
      log: new Logger({ write: (l) => logs.push(l) }),
    });
    const knownHosts = new KnownHosts(join(dir, "known_hosts"));
    try {
      await body({
        server,
        logs,
        certPem: await Deno.readTextFile(paths.certFile),
        tcpClient: (events = []) =>
          AuthchatClient.connect({
            host: "127.0.0.1",
            port: server.addresses.tcp!.port,
            tls: false,
            trust: { knownHosts },
            onEvent: (e) => events.push(e.op === "BYE" ? e.code : e.state),
          }),
      });
    } finally {
      await server.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("AuthchatClient registers, logs in and changes passwords against AuthchatServer over TCP and TLS", async () => {
  await withServer({}, async ({ server, certPem, tcpClient }) => {
    const tcp = await tcpClient();
    assert.equal(tcp.canBind, false);
    assert.equal(await tcp.register("alice", PASSWORD), "alice");
    assert.equal(await tcp.login("Alice", PASSWORD), "alice");
    assert.equal((await tcp.access()).user, "alice");
    await tcp.passwd(PASSWORD, "second pass phrase 9");
    const tls = await AuthchatClient.connect({
      host: "127.0.0.1",
      port: server.addresses.tls!.port,
      tls: true,
      trust: { ca: certPem },
    });
    assert.equal(tls.canBind, true);
    assert.equal(tls.info.mechanisms[0], "SCRAM-SHA-256-PLUS");
    await assert.rejects(tls.login("alice", PASSWORD), /wrong user name or password/);
    assert.equal(await tls.login("alice", "second pass phrase 9"), "alice");
    assert.deepEqual(await tls.isLogged(), { loggedIn: true, user: "alice" });
    await tls.logout();
    assert.deepEqual(await tls.isLogged(), { loggedIn: false });
    await tls.close();
    await tcp.close();
    await tcp.close();
  });
});

Deno.test("AuthchatClient fails pending and later requests when the server says BYE", async () => {
  await withServer({ authTimeout: 0.3 }, async ({ server, tcpClient }) => {
    const events: string[] = [];
    const client = await tcpClient(events);
    await new Promise((r) => setTimeout(r, 600));
    assert.deepEqual(events, ["AUTH_TIMEOUT"]);
    await assert.rejects(client.isLogged(), (err: Error) => {
      assert.ok(err instanceof ConnectionClosedError);
      assert.match(err.message, /Server ended the session: Not logged in within 0\.3 s/);
      return true;
    });
    assert.equal(server.registry.size, 0);
    await client.close();
  });
});

Deno.test("AuthchatServer shutdown ends sessions with BYE SHUTDOWN and closes the store", async () => {
  await withServer({}, async ({ server, logs, tcpClient }) => {
    const events: string[] = [];
    const client = await tcpClient(events);
    assert.match(
      server.listeningLine,
      /^authchat listening tcp=127\.0\.0\.1:\d+ tls=127\.0\.0\.1:\d+ udp=127\.0\.0\.1:\d+$/,
    );
    const udpPort = server.addresses.udp!.port;
    assert.notEqual(udpPort, 0);
    assert.equal(server.rendezvous?.port, udpPort);
    assert.ok(server.listeningLine.endsWith(`udp=127.0.0.1:${udpPort}`));
    await server.shutdown();
    await assert.rejects(client.hello(), ConnectionClosedError);
    assert.deepEqual(events, ["SHUTDOWN"]);
    assert.match(logs.at(-1)!, /shutdown sessions_left=0/);
    await client.close();
  });
});
