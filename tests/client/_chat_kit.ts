/**
 * An in-process server with UDP on, logged-in users each running a {@linkcode ChatNode}, and a lossy UDP
 * proxy to put between two of them.
 *
 * @module
 */

import { join } from "node:path";
import { AuthchatClient } from "../../lib/client/authchat_client.ts";
import type { PeerInfo } from "../../lib/client/authchat_client.ts";
import { ChatNode } from "../../lib/client/chat_node.ts";
import type { ChatNodeOptions } from "../../lib/client/chat_node.ts";
import { KnownHosts } from "../../lib/client/known_hosts.ts";
import { KnownPeers } from "../../lib/client/known_peers.ts";
import {
  generateServerIdentity,
  identityPaths,
  loadServerIdentity,
} from "../../lib/crypto/server_identity.ts";
import { AuthchatServer } from "../../lib/server/authchat_server.ts";
import { Logger } from "../../lib/server/logger.ts";
import { loadServerConfig } from "../../lib/server/server_config.ts";
import { SqliteUserStore } from "../../lib/store/sqlite_user_store.ts";
import { prng } from "../transport/_lossy_link.ts";
import { localSharedParts } from "../../lib/server/local_parts.ts";

export const PASSWORD = "violet harbor engine 42";

/** A logged-in user with a running node, and what reached it. */
export interface ChatUser {
  name: string;
  client: AuthchatClient;
  node: ChatNode;
  knownPeers: KnownPeers;
  messages: { from: string; text: string }[];
  warnings: string[];
}

/** Options of one user's node. */
export type UserOptions =
  & Partial<Omit<ChatNodeOptions, "control" | "knownPeers" | "serverName" | "onMessage" | "onWarning">>
  & {
    /** Send to the server's UDP port through this port instead (a proxy). */
    serverUdpPort?: number;
    /** Wrap the PEER lookup (to point the node at a proxy). */
    wrapPeer?: (peer: (user: string) => Promise<PeerInfo>) => (user: string) => Promise<PeerInfo>;
  };

/** The running server and its users. */
export interface ChatKit {
  server: AuthchatServer;
  serverName: string;
  /** Register (optional), log in and start a node. */
  join(name: string, options?: UserOptions & { register?: boolean }): Promise<ChatUser>;
  /** Register an account without logging it in. */
  register(name: string): Promise<void>;
}

/**
 * Run `body` against a server on port 0 in a temporary directory; every node, client and the server are
 * closed afterwards.
 *
 * @param body The test.
 */
export async function withChat(body: (kit: ChatKit) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const nodes: ChatNode[] = [];
  const clients: AuthchatClient[] = [];
  let server: AuthchatServer | null = null;
  try {
    const paths = identityPaths(dir);
    await generateServerIdentity(paths);
    const config = await loadServerConfig({
      file: "/dev/null",
      // Chat over the UDP port needs no UDP sessions (which would need the certificate loaded).
      flags: { tcp_port: 0, tls: false, udp_port: 0, udp_sessions: false, scram_iterations: 4096 },
    });
    server = await AuthchatServer.start({
      config,
      identity: await loadServerIdentity(paths, { tls: false }),
      store: SqliteUserStore.open(join(dir, "authchat.db")),
      log: new Logger({ write: () => {} }),
      parts: localSharedParts(config),
    });
    const running = server;
    const port = running.addresses.tcp!.port;
    const serverName = `127.0.0.1:${port}`;
    const knownHosts = new KnownHosts(join(dir, "known_hosts"));
    const connect = async () => {
      const client = await AuthchatClient.connect({
        host: "127.0.0.1",
        port,
        tls: false,
        trust: { knownHosts },
      });
      clients.push(client);
      return client;
    };
    const kit: ChatKit = {
      server: running,
      serverName,
      async register(name) {
        const client = await connect();
        await client.register(name, PASSWORD);
        await client.close();
      },
      async join(name, options = {}) {
        const { register = true, wrapPeer, serverUdpPort, ...nodeOptions } = options;
        const client = await connect();
        if (register) await client.register(name, PASSWORD);
        await client.login(name, PASSWORD);
        const chat = client.chat;
        if (!chat?.identity || !chat.udp) throw new Error(`No chat credentials for ${name}`);
        const peer = (u: string) => client.peer(u);
        const knownPeers = new KnownPeers(join(dir, name, "known_peers"));
        const user = { name, client, knownPeers, messages: [], warnings: [] } as Omit<ChatUser, "node">;
        const node = await ChatNode.start({
          ...nodeOptions,
          control: {
            user: chat.user,
            identity: chat.identity,
            udp: serverUdpPort === undefined ? chat.udp : { ...chat.udp, port: serverUdpPort },
            peer: wrapPeer?.(peer) ?? peer,
          },
          serverHost: "127.0.0.1",
          knownPeers,
          serverName,
          onMessage: (from, text) => user.messages.push({ from, text }),
          onWarning: (line) => user.warnings.push(line),
        });
        nodes.push(node);
        return { ...user, node } as ChatUser;
      },
    };
    await body(kit);
  } finally {
    for (const node of nodes) await node.close();
    for (const client of clients) await client.close();
    await server?.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Per-datagram behaviour of the proxy. */
export interface ProxyConditions {
  drop: number;
  duplicate: number;
  maxDelayMs: number;
}

type Direction = "toAlice" | "toBob";

/**
 * A UDP proxy between alice and bob: each side's PEER answer about the other is rewritten to point at the
 * proxy socket facing it, and the proxy forwards to the address of the original answer, dropping,
 * duplicating and delaying (hence reordering) datagrams with a seeded PRNG.
 */
export class LossyUdpProxy {
  conditions: ProxyConditions;
  /** Sees every datagram before the conditions apply; returning false drops it. */
  tap: ((direction: Direction, bytes: Uint8Array) => boolean) | null = null;
  stats = { toAlice: 0, toBob: 0, dropped: 0, duplicated: 0 };
  #facing: Record<"alice" | "bob", Deno.DatagramConn>;
  #target: Record<Direction, Deno.NetAddr | null> = { toAlice: null, toBob: null };
  #random: () => number;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #sends = new Set<Promise<void>>();
  #loops: Promise<void>[];

  constructor(conditions: ProxyConditions, seed: number) {
    this.conditions = conditions;
    this.#random = prng(seed);
    const listen = () => Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    this.#facing = { alice: listen(), bob: listen() };
    this.#loops = [this.#pump(this.#facing.alice, "toBob"), this.#pump(this.#facing.bob, "toAlice")];
  }

  /**
   * Wrap one side's PEER lookup so the other side's address is this proxy.
   *
   * @param side Whose lookup it is.
   * @returns The wrapper.
   */
  wrapFor(side: "alice" | "bob"): NonNullable<UserOptions["wrapPeer"]> {
    const direction: Direction = side === "alice" ? "toBob" : "toAlice";
    const facing = (this.#facing[side].addr as Deno.NetAddr).port;
    return (peer) => async (user) => {
      const info = await peer(user);
      this.#target[direction] = { transport: "udp", hostname: info.address, port: info.port };
      return { ...info, address: "127.0.0.1", port: facing };
    };
  }

  async #pump(from: Deno.DatagramConn, direction: Direction): Promise<void> {
    const out = direction === "toBob" ? this.#facing.bob : this.#facing.alice;
    for (;;) {
      let bytes: Uint8Array;
      try {
        [bytes] = await from.receive();
      } catch {
        return;
      }
      const target = this.#target[direction];
      if (!target || (this.tap && !this.tap(direction, bytes))) continue;
      const { drop, duplicate, maxDelayMs } = this.conditions;
      if (this.#random() < drop) {
        this.stats.dropped++;
        continue;
      }
      const copies = this.#random() < duplicate ? 2 : 1;
      if (copies === 2) this.stats.duplicated++;
      for (let i = 0; i < copies; i++) {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          this.stats[direction]++;
          const sent: Promise<void> = out.send(bytes, target).then(() => {}, () => {})
            .finally(() => this.#sends.delete(sent));
          this.#sends.add(sent);
        }, this.#random() * maxDelayMs);
        this.#timers.add(timer);
      }
    }
  }

  /** Stop forwarding and close both sockets. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await Promise.allSettled([...this.#sends]);
    this.#facing.alice.close();
    this.#facing.bob.close();
    await Promise.all(this.#loops);
  }
}

/**
 * Wait until `done` holds, checking every 20 ms.
 *
 * @param done The condition.
 * @param what What is awaited, for the error.
 * @param timeoutMs How long to wait.
 */
export async function until(done: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Bob and alice talking through a lossless proxy (its `tap` sees their datagrams), and an attacker. */
export interface WatchedPair {
  bob: ChatUser;
  alice: ChatUser;
  proxy: LossyUdpProxy;
  /** Send a datagram to bob's socket from a third party's. */
  toBob(bytes: Uint8Array): Promise<number>;
}

/**
 * Join bob and alice through a proxy, with an attacker's socket aimed at bob; all closed afterwards.
 *
 * @param kit The running kit.
 * @param body The test.
 */
export async function withWatchedPair(
  kit: ChatKit,
  body: (pair: WatchedPair) => Promise<void>,
): Promise<void> {
  const proxy = new LossyUdpProxy({ drop: 0, duplicate: 0, maxDelayMs: 0 }, 1);
  const attacker = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    const bob = await kit.join("bob", { wrapPeer: proxy.wrapFor("bob") });
    const alice = await kit.join("alice", { wrapPeer: proxy.wrapFor("alice") });
    const toBob = (bytes: Uint8Array) => {
      const endpoint = kit.server.rendezvous!.endpointOf("bob")!;
      return attacker.send(bytes, { transport: "udp", hostname: endpoint.hostname, port: endpoint.port });
    };
    await body({ bob, alice, proxy, toBob });
  } finally {
    attacker.close();
    await proxy.close();
  }
}
