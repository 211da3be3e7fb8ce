/**
 * An in-process server (TCP, TLS and UDP on port 0) whose store a test reads and writes directly, with
 * clients of it (trusting it on first use) and, if asked, a record of every request its sessions receive;
 * and the helpers the tests of {@linkcode AuthchatClient}'s accounts share.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { AuthchatClient } from "../../lib/client/authchat_client.ts";
import type { ClientCache, ClientOptions } from "../../lib/client/authchat_client.ts";
import { KnownHosts } from "../../lib/client/known_hosts.ts";
import { exportIdentityPrivate } from "../../lib/crypto/identity_key.ts";
import type { Identity } from "../../lib/crypto/identity_key.ts";
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
import type { AccountSettings } from "../../lib/store/create_account.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import { localSharedParts } from "../../lib/server/local_parts.ts";

const decoder = new TextDecoder();

/** How the tests create accounts in the store: the fewest iterations, the default shortest password. */
export const ACCOUNT_SETTINGS: AccountSettings = { iterations: 4096, minPasswordLength: 10 };

/** The running server, as a test sees it. */
export interface StoreServer {
  /** The server's store. */
  store: SqliteUserStore;
  /** The server's identity (its certificate and sealing key). */
  identity: ServerIdentity;
  /** The server's UDP rendezvous port. */
  udpPort: number;
  /** Every frame payload a session of the server received, in order (with `record` only). */
  received: Record<string, unknown>[];
  /**
   * Options for a client of this server (trust on first use, no keepalive timer left behind).
   *
   * @param tls TLS, or plain TCP.
   * @returns The options.
   */
  options(tls: boolean): ClientOptions;
  /**
   * Connect a new client; it is closed after the test.
   *
   * @param tls TLS, or plain TCP.
   * @returns The client.
   */
  connect(tls: boolean): Promise<AuthchatClient>;
  /**
   * Connect a new client over plain TCP and log it in; it is closed after the test.
   *
   * @param user The account.
   * @param password Its password.
   * @param options A cache shared between clients, device tokens, a warning handler, if any.
   * @returns The logged-in client.
   */
  login(
    user: string,
    password: string,
    options?: { cache?: ClientCache } & Pick<ClientOptions, "deviceTokens" | "onWarning">,
  ): Promise<AuthchatClient>;
}

/**
 * Run `body` against a server (TCP, TLS and UDP on port 0) in a temporary directory; its clients, the
 * server and the directory are closed and removed afterwards.
 *
 * @param body The test.
 * @param options `record`: keep every request the server's sessions receive in `received` (what a
 *   session's receive() gets is exactly what the server sees, TLS already removed).
 */
export async function withServer(
  body: (server: StoreServer) => Promise<void>,
  options: { record?: boolean } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clients: AuthchatClient[] = [];
  const received: Record<string, unknown>[] = [];
  const receive = Session.prototype.receive;
  if (options.record) {
    Session.prototype.receive = function (payload: Uint8Array) {
      received.push(JSON.parse(decoder.decode(payload)));
      return receive.call(this, payload);
    };
  }
  try {
    const paths = identityPaths(dir);
    await generateServerIdentity(paths);
    const identity = await loadServerIdentity(paths, { tls: true });
    const store = SqliteUserStore.open(join(dir, "authchat.db"));
    const config = await loadServerConfig({
      file: "/dev/null",
      flags: { tcp_port: 0, tls_port: 0, udp_port: 0, scram_iterations: 4096 },
    });
    const server = await AuthchatServer.start({
      config,
      identity,
      store,
      log: new Logger({ write: () => {} }),
      parts: localSharedParts(config),
    });
    const knownHosts = new KnownHosts(join(dir, "known_hosts"));
    const clientOptions = (tls: boolean): ClientOptions => ({
      host: "127.0.0.1",
      port: tls ? server.addresses.tls!.port : server.addresses.tcp!.port,
      tls,
      trust: { knownHosts },
      keepaliveMs: 0,
    });
    const connect = async (tls: boolean, extra: Partial<ClientOptions> = {}) => {
      const client = await AuthchatClient.connect({ ...clientOptions(tls), ...extra });
      clients.push(client);
      return client;
    };
    try {
      await body({
        store,
        identity,
        udpPort: server.addresses.udp!.port,
        received,
        options: clientOptions,
        connect: (tls) => connect(tls),
        async login(user, password, extra = {}) {
          const client = await connect(false, extra);
          await client.login(user, password);
          return client;
        },
      });
    } finally {
      for (const client of clients) await client.close();
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

/**
 * An identity's private key as hex, to compare two keys (asserting there is one).
 *
 * @param identity The identity.
 * @returns Its private key bytes, in hex.
 */
export async function privateBytes(identity: Identity | null | undefined): Promise<string> {
  assert.ok(identity, "an identity key");
  return (await exportIdentityPrivate(identity)).toHex();
}
