/**
 * An in-process server (TCP and TLS on port 0, in a temporary directory) that records every request its
 * sessions receive, with clients that trust it on first use; closed and removed after the test.
 *
 * @module
 */

import { join } from "node:path";
import { AuthchatClient } from "../../lib/client/authchat_client.ts";
import type { ClientOptions } from "../../lib/client/authchat_client.ts";
import { KnownHosts } from "../../lib/client/known_hosts.ts";
import {
  generateServerIdentity,
  identityPaths,
  loadServerIdentity,
} from "../../lib/crypto/server_identity.ts";
import type { ServerIdentity } from "../../lib/crypto/server_identity.ts";
import { AuthchatServer } from "../../lib/server/authchat_server.ts";
import { Logger } from "../../lib/server/logger.ts";
import { loadServerConfig } from "../../lib/server/server_config.ts";
import { Session } from "../../lib/server/session.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";

const decoder = new TextDecoder();

/** The running server, as a test sees it. */
export interface Running {
  store: SqliteUserStore;
  identity: ServerIdentity;
  /** Every frame payload a session of the server received, in order. */
  received: Record<string, unknown>[];
  connect(tls: boolean): Promise<AuthchatClient>;
  /** Options for a client of this server (trust on first use, no keepalive timer left behind). */
  options(tls: boolean): ClientOptions;
}

/** Run `body` against a recording server (see the module documentation). */
export async function withRecordingServer(body: (running: Running) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const received: Record<string, unknown>[] = [];
  const receive = Session.prototype.receive;
  // What a session's receive() gets is exactly what the server sees: TLS already removed.
  Session.prototype.receive = function (payload: Uint8Array) {
    received.push(JSON.parse(decoder.decode(payload)));
    return receive.call(this, payload);
  };
  const clients: AuthchatClient[] = [];
  try {
    const paths = identityPaths(dir);
    await generateServerIdentity(paths);
    const identity = await loadServerIdentity(paths, { tls: true });
    const store = SqliteUserStore.open(join(dir, "authchat.db"));
    const server = await AuthchatServer.start({
      config: await loadServerConfig({
        file: "/dev/null",
        flags: { tcp_port: 0, tls_port: 0, udp_port: 0, scram_iterations: 4096 },
      }),
      identity,
      store,
      log: new Logger({ write: () => {} }),
    });
    const knownHosts = new KnownHosts(join(dir, "known_hosts"));
    const options = (tls: boolean): ClientOptions => ({
      host: "127.0.0.1",
      port: tls ? server.addresses.tls!.port : server.addresses.tcp!.port,
      tls,
      trust: { knownHosts },
      keepaliveMs: 0,
    });
    try {
      await body({
        store,
        identity,
        received,
        async connect(tls) {
          const client = await AuthchatClient.connect(options(tls));
          clients.push(client);
          return client;
        },
        options,
      });
    } finally {
      for (const c of clients) await c.close();
      await server.shutdown();
    }
  } finally {
    Session.prototype.receive = receive;
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The requests of one kind among those received.
 *
 * @param received What the sessions received.
 * @param op The command.
 * @returns Those requests, in order.
 */
export function requests(received: Record<string, unknown>[], op: string): Record<string, unknown>[] {
  return received.filter((m) => m.op === op);
}
