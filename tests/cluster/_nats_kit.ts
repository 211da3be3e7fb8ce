/**
 * Several "nodes" in one process on one real nats-server: each with its own
 * bus connection, liveness, presence and session directory, as
 * lib/cluster/open_shared_parts.ts assembles them, with short timings. A node
 * can stop cleanly, die (its connection dropped without a word), or lose the
 * bus for a while through a proxy that refuses it. {@linkcode TestCluster}
 * holds the nodes of one test and cleans up after them.
 *
 * @module
 */

import type { ServerMessageOf } from "../../lib/codec/messages.ts";
import type { ByeCode } from "../../lib/codec/messages.ts";
import { NatsBus } from "../../lib/cluster/nats_bus.ts";
import { NatsPresence } from "../../lib/cluster/nats_presence.ts";
import { NatsSessionDirectory } from "../../lib/cluster/nats_session_directory.ts";
import { NodeLiveness } from "../../lib/cluster/node_liveness.ts";
import type { LivenessTiming } from "../../lib/cluster/node_liveness.ts";
import { Logger } from "../../lib/server/logger.ts";
import type { OnlineUser, PresenceMember } from "../../lib/server/presence.ts";
import { natsUrlOrSkip } from "../_cluster_services.ts";
import { TcpProxy } from "../_tcp_proxy.ts";

/**
 * The NATS server the cluster tests use (tests/_cluster_services.ts: skipped without it, failing when required).
 *
 * @returns The URL, or `undefined`.
 */
export function natsUrl(): string | undefined {
  return natsUrlOrSkip();
}

/** Short timings, so a death is found in under 2 s. */
export const FAST: LivenessTiming = { heartbeatMs: 200, fenceAfterMs: 1000, deadAfterMs: 1600 };

/** A session stand-in that records its notices. */
export interface Member extends PresenceMember {
  seen: ServerMessageOf<"PRESENCE">[];
}

let nextMember = 1;

/** A fresh member. */
export function member(): Member {
  const seen: ServerMessageOf<"PRESENCE">[] = [];
  return { id: nextMember++, seen, notify: (m) => seen.push(m) };
}

/** A user as presence shows them. */
export function user(name: string, identityKey: Uint8Array | null = null): OnlineUser {
  return { key: name.toLowerCase(), name, identityKey, fingerprint: identityKey ? `SHA256:${name}` : null };
}

/** `"alice online"` for each notice. */
export function notices(m: Member): string[] {
  return m.seen.map((n) => `${n.user} ${n.state}`);
}

/**
 * Wait until `check` holds, polling; fail with `what` after `timeoutMs` (a guard against a hang, not a
 * speed target).
 */
export async function eventually(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`Timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** {@linkcode eventually} with a check that must wait for something itself. */
export async function eventuallyAsync(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`Timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A random bus prefix: each test has buckets and subjects of its own. */
export function testPrefix(): string {
  return `t${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** Options of {@linkcode TestNode.start}. */
export interface TestNodeOptions {
  /** Liveness timing (default {@linkcode FAST}). */
  timing?: LivenessTiming;
  /** Presence linger, ms (default 0). */
  lingerMs?: number;
  /** Connect through this URL instead (a proxy). */
  via?: string;
  /** How long deletes stay in the bucket, ms (default: the server's). */
  keepDeletesMs?: number;
}

/** One node: bus, liveness, presence and session directory, and what its sessions were told to do. */
export class TestNode {
  readonly bus: NatsBus;
  readonly liveness: NodeLiveness;
  readonly presence: NatsPresence;
  readonly sessions: NatsSessionDirectory;
  /** `user code` of every endUser asked of this node, and its answer. */
  readonly ended: string[] = [];
  /** Sessions per user that endUser reports ending. */
  readonly sessionsOf = new Map<string, number>();
  /** Calls of endAll. */
  endAllCalls = 0;
  /** Calls of recheck (the node is back on the bus). */
  recheckCalls = 0;
  /** Log lines. */
  readonly logs: string[] = [];
  #stopped = false;

  private constructor(bus: NatsBus, options: TestNodeOptions, logs: string[]) {
    this.bus = bus;
    this.logs = logs;
    const log = new Logger({ format: "json", write: (line) => logs.push(line) });
    this.liveness = new NodeLiveness(bus, {
      timing: options.timing ?? FAST,
      log,
      ...(options.keepDeletesMs === undefined ? {} : { keepDeletesMs: options.keepDeletesMs }),
    });
    this.presence = new NatsPresence(this.liveness, { lingerMs: options.lingerMs ?? 0, log });
    this.sessions = new NatsSessionDirectory(bus, this.liveness, { log });
  }

  /**
   * Connect and start a node.
   *
   * @param url The NATS URL.
   * @param prefix The test's prefix.
   * @param nodeId The node's id.
   * @param options Timing, linger, proxy.
   */
  static async start(
    url: string,
    prefix: string,
    nodeId: string,
    options: TestNodeOptions = {},
  ): Promise<TestNode> {
    const bus = await NatsBus.connect({ servers: [options.via ?? url], nodeId, prefix });
    const node = new TestNode(bus, options, []);
    try {
      await node.liveness.start();
    } catch (err) {
      await node.liveness.close();
      await bus.close();
      throw err;
    }
    node.sessions.serve({
      endUser: (key: string, code: ByeCode) => {
        const count = node.sessionsOf.get(key) ?? 0;
        node.ended.push(`${key} ${code}`);
        node.sessionsOf.delete(key);
        return count;
      },
      endAll: () => {
        node.endAllCalls++;
        let count = 0;
        for (const n of node.sessionsOf.values()) count += n;
        node.sessionsOf.clear();
        return count;
      },
      recheck: () => void node.recheckCalls++,
    });
    return node;
  }

  /** Stop cleanly, as the server's composition root does. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.presence.quiet();
    await this.liveness.depart();
    await this.presence.close();
    this.sessions.close();
    await this.liveness.close();
    await this.bus.close();
  }

  /** Die: no goodbye, the connection just drops (as a process killed with -9). */
  async kill(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.presence.quiet();
    this.sessions.close();
    await this.liveness.close();
    await this.bus.nc.close();
  }
}

/**
 * The nodes of one test, on a prefix of their own: on dispose every node is stopped (one that was killed
 * stays dead), the proxy restored and closed, and the test's buckets dropped.
 */
export class TestCluster implements AsyncDisposable {
  /** The NATS URL. */
  readonly url: string;
  /** The test's prefix. */
  readonly prefix: string = testPrefix();
  /** Every node started, in order. */
  readonly nodes: TestNode[] = [];
  #proxy: TcpProxy | null = null;

  private constructor(url: string) {
    this.url = url;
  }

  /**
   * Start nodes `n1` … `n<count>`.
   *
   * @param url The NATS URL.
   * @param count How many nodes.
   * @param options Options of every one of them.
   * @returns The cluster.
   */
  static async start(url: string, count: number, options: TestNodeOptions = {}): Promise<TestCluster> {
    const cluster = new TestCluster(url);
    try {
      for (let i = 1; i <= count; i++) await cluster.add(`n${i}`, options);
    } catch (err) {
      await cluster[Symbol.asyncDispose]();
      throw err;
    }
    return cluster;
  }

  /** A proxy to NATS that a node takes with `{ via: cluster.proxy.url }`, made on first use. */
  get proxy(): TcpProxy {
    return this.#proxy ??= new TcpProxy(this.url);
  }

  /**
   * Start one more node.
   *
   * @param nodeId Its id.
   * @param options Timing, linger, proxy.
   * @returns The node, started.
   */
  async add(nodeId: string, options: TestNodeOptions = {}): Promise<TestNode> {
    const node = await TestNode.start(this.url, this.prefix, nodeId, options);
    this.nodes.push(node);
    return node;
  }

  /** Stop every node, close the proxy, drop the buckets. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#proxy?.resume();
    this.#proxy?.restore();
    for (const node of this.nodes) await node.stop();
    await this.#proxy?.close();
    await dropBuckets(this.url, this.prefix);
  }
}

/**
 * The keys a test's bucket holds now (deleted ones left out).
 *
 * @param url The NATS URL.
 * @param prefix The test's prefix.
 */
export async function bucketKeys(url: string, prefix: string): Promise<string[]> {
  const bus = await NatsBus.connect({ servers: [url], nodeId: "inspect", prefix });
  try {
    const keys: string[] = [];
    for await (const key of await (await bus.kv("live", { history: 1 })).keys()) keys.push(key);
    return keys;
  } finally {
    await bus.close();
  }
}

/**
 * The keys whose latest message in a test's bucket is a delete (their markers).
 *
 * @param url The NATS URL.
 * @param prefix The test's prefix.
 */
export async function deletedKeys(url: string, prefix: string): Promise<string[]> {
  const bus = await NatsBus.connect({ servers: [url], nodeId: "inspect", prefix });
  try {
    const kv = await bus.kv("live", { history: 1 });
    const stream = (await kv.status()).streamInfo.config.name;
    // Every subject the stream holds a message of (a key's value or its marker), then each key's latest.
    const reply = await bus.nc.request(
      `$JS.API.STREAM.INFO.${stream}`,
      JSON.stringify({ subjects_filter: ">" }),
      { timeout: 5000 },
    );
    const subjects = Object.keys(
      reply.json<{ state?: { subjects?: Record<string, number> } }>().state?.subjects ?? {},
    );
    const keys = subjects.map((subject) => subject.split(".").slice(2).join("."));
    const latest = await Promise.all(keys.map((key) => kv.get(key)));
    return keys.filter((_, i) => latest[i] && latest[i]!.operation !== "PUT");
  } finally {
    await bus.close();
  }
}

/**
 * Delete a test's buckets (its streams) on the server.
 *
 * @param url The NATS URL.
 * @param prefix The test's prefix.
 */
export async function dropBuckets(url: string, prefix: string): Promise<void> {
  const bus = await NatsBus.connect({ servers: [url], nodeId: "cleanup", prefix });
  try {
    const kv = await bus.kv("live", { history: 1 });
    await kv.destroy();
  } finally {
    await bus.close();
  }
}
