/**
 * A TCP proxy that can be cut and mended: one node's way to NATS, so a test can take the bus away from
 * that node alone while the server and the other nodes carry on.
 *
 * @module
 */

/** Forwards 127.0.0.1:port to a target; {@linkcode cut} drops every connection and refuses new ones. */
export class CutProxy {
  #listener: Deno.TcpListener;
  #target: { hostname: string; port: number };
  #conns = new Set<Deno.TcpConn>();
  #tasks = new Set<Promise<void>>();
  #accepting: Promise<void>;
  #cut = false;

  /**
   * Listen on a free port of 127.0.0.1.
   *
   * @param target Where to forward.
   */
  constructor(target: { hostname: string; port: number }) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The proxy's URL, `nats://127.0.0.1:port`. */
  get url(): string {
    return `nats://127.0.0.1:${(this.#listener.addr as Deno.NetAddr).port}`;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return;
      }
      if (this.#cut) {
        conn.close();
        continue;
      }
      const task = this.#serve(conn);
      this.#tasks.add(task);
      void task.finally(() => this.#tasks.delete(task));
    }
  }

  async #serve(client: Deno.TcpConn): Promise<void> {
    this.#conns.add(client);
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect(this.#target);
    } catch {
      this.#close(client);
      return;
    }
    this.#conns.add(server);
    await Promise.all([this.#pipe(client, server), this.#pipe(server, client)]);
  }

  async #pipe(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        let done = 0;
        while (done < n) done += await to.write(buf.subarray(done, n));
      }
    } catch {
      // Either side closed.
    }
    this.#close(from);
    this.#close(to);
  }

  #close(conn: Deno.TcpConn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Drop every connection and refuse new ones until {@linkcode mend}. */
  async cut(): Promise<void> {
    this.#cut = true;
    for (const conn of [...this.#conns]) this.#close(conn);
    await Promise.all([...this.#tasks]);
  }

  /** Let connections through again. */
  mend(): void {
    this.#cut = false;
  }

  /** Stop. */
  async close(): Promise<void> {
    this.#listener.close();
    await this.cut();
    await this.#accepting;
  }
}
