/**
 * The connection a node keeps to NATS, shared by every part that joins the
 * nodes (presence, ending sessions, relay routing, the abuse limits): one
 * client connection, this node's id, subjects under one prefix, and JetStream
 * key-value buckets. Names and keys taken from users are encoded into tokens
 * NATS accepts ({@linkcode busToken}): a user name may hold `.`, `*`, `>` or
 * spaces, which are subject syntax.
 *
 * @module
 */

import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";

import { BusUnavailableError, shownUrl } from "./bus_errors.ts";
import { KvWrites } from "./_kv_writes.ts";

export type { NatsConnection } from "@nats-io/transport-node";
export type { KV } from "@nats-io/kv";
export { BusUnavailableError, shownUrl } from "./bus_errors.ts";

/** What {@linkcode NatsBus.connect} needs. */
export interface NatsBusOptions {
  /** Server URLs, `nats://host:port`, one or more. */
  servers: string[];
  /** This node's id (unique among the nodes; shown to the others and in NATS's connection list). */
  nodeId: string;
  /** Subject and bucket prefix (default `authchat`): nodes with another prefix do not see each other. */
  prefix?: string;
  /** Longest wait for the first connection, in ms (default 5000). */
  connectTimeoutMs?: number;
}

/**
 * A name or key as one subject token or key-value key: base64url of its UTF-8, without padding (only
 * `A–Z a–z 0–9 - _`, never empty: the empty string is `_`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { busToken } from "./nats_bus.ts";
 * assert(busToken("a.b*c >") === "YS5iKmMgPg");
 * assert(busToken("") === "_");
 * ```
 *
 * @param text Any text.
 * @returns The token.
 */
export function busToken(text: string): string {
  let token = tokens.get(text);
  if (token === undefined) {
    token = text === "" ? "_" : UTF8.encode(text).toBase64({ alphabet: "base64url", omitPadding: true });
    // Names come from clients: a bounded memory of the latest, forgotten all at once when full.
    if (tokens.size >= MAX_TOKENS) tokens.clear();
    tokens.set(text, token);
  }
  return token;
}

const UTF8 = new TextEncoder();

/**
 * Tokens {@linkcode busToken} has made lately: a login alone asks for its source's and account's several
 * times (limits, budgets, presence), about a fortieth of a node's CPU when each was encoded again.
 */
const tokens = new Map<string, string>();

/** Most tokens remembered. */
const MAX_TOKENS = 4096;

/**
 * One node's connection to NATS.
 *
 * @example
 * ```ts ignore
 * const bus = await NatsBus.connect({ servers: ["nats://127.0.0.1:4222"], nodeId: "node-1" });
 * bus.nc.publish(bus.subject("hello"), "hi");
 * await bus.close();
 * ```
 */
export class NatsBus {
  /** The client connection. */
  readonly nc: NatsConnection;
  /** This node's id. */
  readonly nodeId: string;
  /** Subject and bucket prefix. */
  readonly prefix: string;
  /** Compare-and-swap writes of entries, answered on a subscription of this node's own. */
  readonly writes: KvWrites;
  #kvm: Kvm;
  #buckets = new Map<string, Promise<KV>>();
  #up = true;
  #listeners = new Set<(connected: boolean) => void>();

  private constructor(nc: NatsConnection, nodeId: string, prefix: string) {
    this.nc = nc;
    this.nodeId = nodeId;
    this.prefix = prefix;
    this.#kvm = new Kvm(nc);
    this.writes = new KvWrites(nc);
    void this.#watch();
  }

  async #watch(): Promise<void> {
    for await (const status of this.nc.status()) {
      const up = status.type === "disconnect" ? false : status.type === "reconnect" ? true : this.#up;
      if (up === this.#up) continue;
      this.#up = up;
      for (const listener of this.#listeners) listener(up);
    }
    this.#up = false;
  }

  /**
   * Be told when the connection goes down or comes back.
   *
   * @param listener Called with `false` on a lost connection, `true` when it is back.
   * @returns Stops the telling.
   */
  onConnection(listener: (connected: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Connect (the client then reconnects by itself, without end, after a lost connection).
   *
   * @param options Servers, node id, prefix.
   * @returns The connected bus.
   * @throws {BusUnavailableError} When no server answers in time, naming the servers (without passwords).
   */
  static async connect(options: NatsBusOptions): Promise<NatsBus> {
    try {
      const nc = await connect({
        servers: options.servers,
        name: `authchat ${options.nodeId}`,
        timeout: options.connectTimeoutMs ?? 5000,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        // A connection that silently stops carrying anything (a cut cable) is noticed in about 4 s, not the
        // client's default 4 minutes, so the node reconnects soon after its fence (node_liveness.ts).
        pingInterval: 2000,
        maxPingOut: 2,
        // Without it the client makes two Errors (stack traces) for every request, in case it fails: a
        // third of the CPU a node spends on the NATS limits of a login (docs/BENCHMARKS.md). Its failures
        // are told by message (BusUnavailableError), never by that stack.
        noAsyncTraces: true,
      });
      return new NatsBus(nc, options.nodeId, options.prefix ?? "authchat");
    } catch (err) {
      throw new BusUnavailableError(
        `cannot connect to NATS at ${options.servers.map(shownUrl).join(", ")}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  /**
   * A subject under the prefix.
   *
   * @param tokens Its tokens, already valid (encode names with {@linkcode busToken}).
   * @returns `prefix.token.token…`.
   */
  subject(...tokens: string[]): string {
    return [this.prefix, ...tokens].join(".");
  }

  /**
   * A bucket's full name: `<prefix>_<name>` (its stream is `KV_` and that).
   *
   * @param name The bucket's name under the prefix.
   * @returns The full name.
   */
  bucketName(name: string): string {
    return `${this.prefix}_${name}`;
  }

  /**
   * A JetStream key-value bucket under the prefix, made when missing (once per bus).
   *
   * @param name Bucket name (`A–Z a–z 0–9 - _`).
   * @param options `ttlMs`: entries expire this long after their last write; `history`: values kept per key.
   * @returns The bucket.
   */
  kv(name: string, options: { ttlMs?: number; history?: number } = {}): Promise<KV> {
    const full = this.bucketName(name);
    let bucket = this.#buckets.get(full);
    if (!bucket) {
      bucket = this.#create(full, {
        ...(options.ttlMs === undefined ? {} : { ttl: options.ttlMs }),
        ...(options.history === undefined ? {} : { history: options.history }),
      });
      // A failure is not remembered: the next call tries again.
      bucket.catch(() => this.#buckets.delete(full));
      this.#buckets.set(full, bucket);
    }
    return bucket;
  }

  /**
   * Make or open a bucket. Nodes starting together on a fresh NATS make the same streams at the same moment,
   * and JetStream (2.9) may refuse one of them with "subjects overlap with an existing stream" (10065) or
   * "stream name already in use" (10058) while the other's is being made: once it is, opening it succeeds,
   * so those two are tried again, twice, 100 and 200 ms later. Anything else fails at once.
   */
  async #create(full: string, options: { ttl?: number; history?: number }): Promise<KV> {
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#kvm.create(full, options);
      } catch (err) {
        const code = (err as { code?: unknown })?.code;
        const racing = (err as Error)?.name === "JetStreamApiError" && (code === 10065 || code === 10058);
        if (!racing || attempt >= 3 || this.nc.isClosed()) throw err;
        await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
      }
    }
  }

  /** Whether the connection is up now (not closed, not reconnecting). */
  get connected(): boolean {
    return this.#up && !this.nc.isClosed() && !this.nc.isDraining();
  }

  /** Drain (let what was published go out) and close. */
  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close();
    }
  }
}
