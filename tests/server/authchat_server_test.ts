import assert from "node:assert/strict";
import { join } from "node:path";
import { AuthchatClient, ConnectionClosedError } from "../../lib/client/authchat_client.ts";
import { KnownHosts } from "../../lib/client/known_hosts.ts";
import {
  generateServerIdentity,
  identityPaths,
  loadServerIdentity,
} from "../../lib/crypto/server_identity.ts";
import { decodeBase64 } from "../../lib/codec/base64.ts";
import { decodeDatagram, encodeRdv } from "../../lib/codec/datagram.ts";
import { importUdpKey, tagDatagram, verifyDatagram } from "../../lib/crypto/datagram_tag.ts";
import { AuthchatServer } from "../../lib/server/authchat_server.ts";
import { Logger } from "../../lib/server/logger.ts";
import { loadServerConfig } from "../../lib/server/server_config.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import { RawClient, scramAttempt } from "../e2e/_raw_client.ts";
import { localSharedParts } from "../../lib/server/local_parts.ts";

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
  options: {
    authTimeout?: number;
    passwordMinLength?: number;
    maxUnauthenticated?: number;
    maxConnections?: number;
  },
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
        ...(options.passwordMinLength ? { password_min_length: options.passwordMinLength } : {}),
        ...(options.maxUnauthenticated ? { max_unauthenticated_per_ip: options.maxUnauthenticated } : {}),
        ...(options.maxConnections ? { max_connections: options.maxConnections } : {}),
      },
    });
    const logs: string[] = [];
    const server = await AuthchatServer.start({
      config,
      identity: await loadServerIdentity(paths, { tls: true }),
      store: SqliteUserStore.open(join(dir, "authchat.db")),
      log: new Logger({ write: (l) => logs.push(l) }),
      parts: localSharedParts(config),
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

Deno.test("AuthchatServer HELLO announces scram_iterations and password_min_length from its configuration", async () => {
  await withServer({ passwordMinLength: 13 }, async ({ server }) => {
    await using raw = await RawClient.connect(server.addresses.tcp!.port);
    const hello = await raw.request({ op: "HELLO", version: 1, id: 1 });
    assert.equal(hello.iterations, 4096);
    assert.equal(hello.password_min_length, 13);
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

/** Datagrams in arrival order, one pending receive at a time: a wait that times out keeps its receive. */
class DatagramInbox {
  #socket: Deno.DatagramConn;
  #pending: Promise<Uint8Array | null> | null = null;

  constructor(socket: Deno.DatagramConn) {
    this.#socket = socket;
  }

  /** The next datagram, or null when none arrives within `ms`. */
  async next(ms: number): Promise<Uint8Array | null> {
    // Closing the socket rejects the receive still pending at the end of the test.
    this.#pending ??= this.#socket.receive().then(([bytes]) => bytes, () => null);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(resolve, ms, "timeout"));
    try {
      const got = await Promise.race([this.#pending, timeout]);
      if (got === "timeout") return null;
      this.#pending = null;
      return got;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Close the socket and settle the pending receive. */
  async close(): Promise<void> {
    this.#socket.close();
    await this.#pending;
  }
}

Deno.test("AuthchatServer answers an RDV on its UDP port for a session logged in over TCP, and nothing else", async () => {
  await withServer({}, async ({ server, tcpClient }) => {
    const registrar = await tcpClient();
    await registrar.register("alice", PASSWORD);
    await registrar.close();
    await using raw = await RawClient.connect(server.addresses.tcp!.port);
    const hello = await raw.request({ op: "HELLO", version: 1, id: 1 });
    const mechanisms = hello.mechanisms as string[];
    const { reply: login, scram } = await scramAttempt(raw, {
      user: "alice",
      password: PASSWORD,
      mechanisms,
    });
    assert.equal(login.op, "LOGIN");
    scram.verify(String(login.data));
    const udp = login.udp as { port: number; handle: string; relay_id: number };
    assert.equal(udp.port, server.addresses.udp!.port);
    const key = await importUdpKey(scram.sessionKey!);
    const handle = decodeBase64(udp.handle)!;
    const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    const inbox = new DatagramInbox(socket);
    try {
      const to = { transport: "udp" as const, hostname: "127.0.0.1", port: udp.port };
      await socket.send(new TextEncoder().encode("not a datagram"), to);
      await socket.send(
        await tagDatagram(await importUdpKey(new Uint8Array(32)), encodeRdv({ handle, counter: 0 })),
        to,
      );
      assert.equal(await inbox.next(300), null, "garbage and forgeries get no answer");
      await socket.send(await tagDatagram(key, encodeRdv({ handle, counter: 1 })), to);
      const bytes = await inbox.next(5000);
      assert.ok(bytes, "an RDV_ACK arrives");
      const ack = decodeDatagram(bytes);
      assert.equal(ack.type, "RDV_ACK");
      if (ack.type !== "RDV_ACK") return;
      assert.equal(await verifyDatagram(key, ack), true);
      assert.equal(ack.observed, `127.0.0.1:${(socket.addr as Deno.NetAddr).port}`);
      assert.deepEqual(server.rendezvous!.endpointOf("alice"), {
        relayId: udp.relay_id,
        hostname: "127.0.0.1",
        port: (socket.addr as Deno.NetAddr).port,
      });
      assert.equal(server.rendezvous!.stats.malformed, 1);
      assert.equal(server.rendezvous!.stats.badTag, 1);
    } finally {
      await inbox.close();
    }
  });
});

Deno.test("AuthchatServer counts TLS handshakes under way against the cap on connections not logged in, and sheds the oldest", async () => {
  await withServer({ maxUnauthenticated: 2 }, async ({ server, logs }) => {
    const tlsPort = server.addresses.tls!.port;
    const closedSoon = async (conn: Deno.Conn) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        conn.read(new Uint8Array(16)).then((n) => n === null, () => true),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), 3000)),
      ]);
      clearTimeout(timer);
      return closed;
    };
    // Two connections that never start their handshake hold both slots.
    const idle = [
      await Deno.connect({ hostname: "127.0.0.1", port: tlsPort }),
      await Deno.connect({ hostname: "127.0.0.1", port: tlsPort }),
    ];
    const third = await Deno.connect({ hostname: "127.0.0.1", port: tlsPort });
    try {
      assert.equal(await closedSoon(idle[0]!), true, "the oldest handshake makes room for a third");
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(server.registry.unauthenticatedFrom("127.0.0.1"), 2, "the third holds a slot");
      await using tcp = await RawClient.connect(server.addresses.tcp!.port);
      const greeting = await tcp.request({ op: "HELLO", id: 1, version: 1 });
      assert.equal(greeting.op, "HELLO", "plain TCP is served too, making room the same way");
      assert.equal(await closedSoon(idle[1]!), true);
      assert.ok(
        logs.some((l) =>
          / ended ip=127\.0\.0\.1 transport=tls handshake=true code=TOO_MANY_CONNECTIONS/.test(l)
        ),
      );
    } finally {
      for (const c of [...idle, third]) c.close();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.registry.unauthenticatedFrom("127.0.0.1"), 0, "the slots are free once they close");
  });
});

/** Wait until the registry counts this many connections (the server sees a connection after the client). */
async function connectionsReach(server: AuthchatServer, count: number): Promise<void> {
  for (let tries = 0; server.registry.connections !== count; tries++) {
    assert.ok(tries < 500, `${server.registry.connections} connections, not ${count}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("AuthchatServer logs its cap on connections, sheds the oldest not logged in there, and refuses when all are logged in", async () => {
  await withServer({ maxConnections: 2 }, async ({ server, logs, tcpClient }) => {
    assert.match(
      logs.join("\n"),
      / INFO connection_cap max_connections=2 configured=true free_descriptors=\d+ /,
    );
    const alice = await tcpClient();
    try {
      assert.equal(await alice.register("alice", PASSWORD), "alice");
      assert.equal(await alice.login("alice", PASSWORD), "alice");
      await using waiting = await RawClient.connect(server.addresses.tcp!.port);
      await waiting.request({ op: "HELLO", version: 1, id: 1 });
      // At the cap: a newcomer gets in, the connection not logged in makes room.
      await using newcomer = await RawClient.connect(server.addresses.tcp!.port);
      const bye = await waiting.reply();
      assert.equal(bye.op, "BYE");
      assert.equal(bye.code, "SERVER_FULL");
      assert.match(
        String(bye.reason),
        /^Server full: this connection, not logged in, made room for a newer one/,
      );
      await waiting.expectClosed();
      const greeting = await newcomer.request({ op: "HELLO", version: 1, id: 1 });
      await scramLoginRaw(newcomer, greeting);
      // Both connections are logged in: nobody is shed, a newcomer is refused with a message it can read.
      await using refused = await RawClient.connect(server.addresses.tcp!.port);
      assert.deepEqual(await refused.reply(), {
        op: "ERROR",
        code: "TOO_MANY_CONNECTIONS",
        message: "Server full: all 2 connections are logged in; try again later",
        fatal: true,
      });
      await refused.expectClosed();
      // On TLS there is no channel yet to say it in: the connection is closed.
      const tls = await Deno.connect({ hostname: "127.0.0.1", port: server.addresses.tls!.port });
      try {
        assert.equal(await tls.read(new Uint8Array(16)).catch(() => null), null);
      } finally {
        tls.close();
      }
      assert.deepEqual(await alice.isLogged(), { loggedIn: true, user: "alice" });
      assert.match(logs.join("\n"), / INFO ended session=\d+ ip=127\.0\.0\.1 code=SERVER_FULL/);
      assert.match(
        logs.join("\n"),
        / WARN connection_refused ip=127\.0\.0\.1 transport=tcp code=TOO_MANY_CONNECTIONS cap=server/,
      );
      assert.match(
        logs.join("\n"),
        / WARN connection_refused ip=127\.0\.0\.1 transport=tls code=TOO_MANY_CONNECTIONS cap=server/,
      );
    } finally {
      await alice.close();
    }
  });
});

Deno.test("AuthchatServer sheds a TLS handshake under way like a connection not logged in", async () => {
  await withServer({ maxConnections: 2 }, async ({ server, logs }) => {
    const handshake = await Deno.connect({ hostname: "127.0.0.1", port: server.addresses.tls!.port });
    try {
      await connectionsReach(server, 1);
      await using first = await RawClient.connect(server.addresses.tcp!.port);
      await first.request({ op: "HELLO", version: 1, id: 1 });
      await using second = await RawClient.connect(server.addresses.tcp!.port);
      // The handshake was the oldest: it is closed, and both plain connections are served.
      assert.equal(await handshake.read(new Uint8Array(16)).catch(() => null), null);
      assert.equal((await second.request({ op: "HELLO", version: 1, id: 1 })).op, "HELLO");
      assert.equal((await first.request({ op: "IS_LOGGED", id: 2 })).logged_in, false);
      assert.match(
        logs.join("\n"),
        / INFO ended ip=127\.0\.0\.1 transport=tls handshake=true code=SERVER_FULL/,
      );
    } finally {
      handshake.close();
    }
  });
});

/** Log alice in on a raw connection that said HELLO. */
async function scramLoginRaw(client: RawClient, greeting: Record<string, unknown>): Promise<void> {
  const mechanisms = greeting.mechanisms as string[];
  const { reply } = await scramAttempt(client, { user: "alice", password: PASSWORD, mechanisms });
  assert.equal(reply.op, "LOGIN", JSON.stringify(reply));
}
