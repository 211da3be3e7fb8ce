/**
 * An in-process server (plain TCP and UDP on port 0) whose store a test reads and writes directly, with
 * clients logged in to it; and the helpers the tests of {@linkcode AuthchatClient}'s accounts share.
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
import { AuthchatServer } from "../../lib/server/authchat_server.ts";
import { Logger } from "../../lib/server/logger.ts";
import { loadServerConfig } from "../../lib/server/server_config.ts";
import type { AccountSettings } from "../../lib/store/create_account.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";

/** How the tests create accounts in the store: the fewest iterations, the default shortest password. */
export const ACCOUNT_SETTINGS: AccountSettings = { iterations: 4096, minPasswordLength: 10 };

/** The running server, as a test sees it. */
export interface StoreServer {
  /** The server's store. */
  store: SqliteUserStore;
  /** The server's UDP rendezvous port. */
  udpPort: number;
  /**
   * Connect a new client (trust on first use, no keepalive) and log it in; it is closed after the test.
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
 * Run `body` against a server in a temporary directory; its clients, the server and the directory are
 * closed and removed afterwards.
 *
 * @param body The test.
 */
export async function withServer(body: (server: StoreServer) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clients: AuthchatClient[] = [];
  const paths = identityPaths(dir);
  await generateServerIdentity(paths);
  const store = SqliteUserStore.open(join(dir, "authchat.db"));
  const server = await AuthchatServer.start({
    config: await loadServerConfig({
      file: "/dev/null",
      flags: { tcp_port: 0, tls: false, udp_port: 0, scram_iterations: 4096 },
    }),
    identity: await loadServerIdentity(paths, { tls: false }),
    store,
    log: new Logger({ write: () => {} }),
  });
  const knownHosts = new KnownHosts(join(dir, "known_hosts"));
  try {
    await body({
      store,
      udpPort: server.addresses.udp!.port,
      async login(user, password, options = {}) {
        const client = await AuthchatClient.connect({
          host: "127.0.0.1",
          port: server.addresses.tcp!.port,
          tls: false,
          trust: { knownHosts },
          keepaliveMs: 0,
          ...options,
        });
        clients.push(client);
        await client.login(user, password);
        return client;
      },
    });
  } finally {
    for (const client of clients) await client.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
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
