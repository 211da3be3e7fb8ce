/**
 * A TCP proxy to a local port that can be paused: while paused it moves no byte either way (the connections
 * stay open), as a network that drops everything would. The relay tests put one between a node and NATS to
 * cut that node off without touching the NATS server the other nodes share.
 *
 * @module
 */

/** A pausable TCP proxy on a free port of 127.0.0.1. */
export class PausableProxy {
  #listener: Deno.TcpListener;
  #target: number;
  #conns = new Set<Deno.TcpConn>();
  #tasks = new Set<Promise<void>>();
  #accepting: Promise<void>;
  #resumed: PromiseWithResolvers<void> | null = null;

  /**
   * Listen.
   *
   * @param target The port to forward to.
   */
  constructor(target: number) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The proxy's URL for a NATS client. */
  get url(): string {
    return `nats://127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}`;
  }

  /** Stop moving bytes. */
  pause(): void {
    this.#resumed ??= Promise.withResolvers<void>();
  }

  /** Move bytes again (what was held goes on in order). */
  resume(): void {
    this.#resumed?.resolve();
    this.#resumed = null;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return;
      }
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
      this.#conns.add(conn).add(upstream);
      for (const [from, to] of [[conn, upstream], [upstream, conn]] as const) {
        const task = this.#pipe(from, to).finally(() => this.#tasks.delete(task));
        this.#tasks.add(task);
      }
    }
  }

  async #pipe(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        while (this.#resumed) await this.#resumed.promise;
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
    } catch {
      // Closed.
    }
    for (const conn of [from, to]) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  /** Close the listener and every connection. */
  async close(): Promise<void> {
    this.resume();
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
    await this.#accepting;
    await Promise.all(this.#tasks);
  }
}
