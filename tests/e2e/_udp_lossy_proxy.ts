/**
 * A lossy UDP proxy for end-to-end tests: it forwards datagrams between clients and a server port on
 * 127.0.0.1, each client address through an upstream socket of its own (as behind a NAT), and on the way,
 * in both directions, drops some, duplicates some and delays each copy by a random time, which reorders
 * them. Seeded, so a failure can be replayed; every timer is cleared on close.
 *
 * @module
 */

import { prng } from "../transport/_lossy_link.ts";

/** How bad the network is. */
export interface LossyProxyOptions {
  /** Chance a datagram is lost (default 0.2). */
  drop?: number;
  /** Chance a datagram is sent twice (default 0.1). */
  duplicate?: number;
  /** Each copy waits a random time up to this long, so later datagrams overtake earlier ones (default 20 ms). */
  maxDelayMs?: number;
  /** Seed of the random choices (default 1). */
  seed?: number;
}

/** What the proxy did. */
export interface LossyProxyCounts {
  /** Datagrams received from either side. */
  received: number;
  dropped: number;
  duplicated: number;
  /** Copies sent after a copy of a datagram received later. */
  reordered: number;
}

interface Upstream {
  socket: Deno.DatagramConn;
  task: Promise<void>;
}

/** The proxy. */
export class UdpLossyProxy {
  readonly counts: LossyProxyCounts = { received: 0, dropped: 0, duplicated: 0, reordered: 0 };
  #front: Deno.DatagramConn;
  #target: number;
  #upstreams = new Map<string, Upstream>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #random: () => number;
  #options: Required<Omit<LossyProxyOptions, "seed">>;
  #closed = false;
  #task: Promise<void>;
  #received = 0;
  #lastSent = 0;

  /**
   * Bind a free port of 127.0.0.1.
   *
   * @param target The server's UDP port.
   * @param options Loss, duplication, delay, seed.
   */
  constructor(target: number, options: LossyProxyOptions = {}) {
    this.#target = target;
    this.#random = prng(options.seed ?? 1);
    this.#options = {
      drop: options.drop ?? 0.2,
      duplicate: options.duplicate ?? 0.1,
      maxDelayMs: options.maxDelayMs ?? 20,
    };
    this.#front = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    this.#task = this.#forward();
  }

  /** The proxy's port: clients connect here. */
  get port(): number {
    return (this.#front.addr as Deno.NetAddr).port;
  }

  /** Pass one datagram on, through the bad network. */
  #pass(bytes: Uint8Array, send: (bytes: Uint8Array) => void): void {
    this.counts.received++;
    const order = ++this.#received;
    if (this.#random() < this.#options.drop) {
      this.counts.dropped++;
      return;
    }
    const copies = this.#random() < this.#options.duplicate ? 2 : 1;
    if (copies === 2) this.counts.duplicated++;
    const data = bytes.slice();
    for (let i = 0; i < copies; i++) {
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        if (this.#closed) return;
        if (order < this.#lastSent) this.counts.reordered++;
        this.#lastSent = Math.max(this.#lastSent, order);
        send(data);
      }, this.#random() * this.#options.maxDelayMs);
      this.#timers.add(timer);
    }
  }

  async #forward(): Promise<void> {
    const buffer = new Uint8Array(65536);
    for (;;) {
      let bytes: Uint8Array;
      let from: Deno.NetAddr;
      try {
        const [b, a] = await this.#front.receive(buffer);
        bytes = b;
        from = a as Deno.NetAddr;
      } catch {
        return;
      }
      const key = `${from.hostname}:${from.port}`;
      let up = this.#upstreams.get(key);
      if (up === undefined) {
        const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
        up = { socket, task: this.#back(socket, from) };
        this.#upstreams.set(key, up);
      }
      const socket = up.socket;
      this.#pass(bytes, (data) => {
        socket.send(data, { transport: "udp", hostname: "127.0.0.1", port: this.#target }).catch(() => {});
      });
    }
  }

  async #back(socket: Deno.DatagramConn, client: Deno.NetAddr): Promise<void> {
    const buffer = new Uint8Array(65536);
    for (;;) {
      let bytes: Uint8Array;
      try {
        [bytes] = await socket.receive(buffer);
      } catch {
        return;
      }
      this.#pass(bytes, (data) => {
        this.#front.send(data, client).catch(() => {});
      });
    }
  }

  /** Stop: clear pending copies, close every socket. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#front.close();
    for (const up of this.#upstreams.values()) up.socket.close();
    await Promise.all([this.#task, ...[...this.#upstreams.values()].map((u) => u.task)]);
  }

  /** Close with `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
