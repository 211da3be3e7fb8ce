/**
 * A TCP relay in front of a real service (PostgreSQL, NATS) that a test can cut and restore: cut, it drops
 * every connection through it and refuses new ones, as a service that went away does; restored, it
 * listens on the same port again. The service itself keeps running and is never imitated.
 *
 * @module
 */

/** A relay from a free port of 127.0.0.1 to a service, with the outage under the test's control. */
export class OutageProxy {
  #target: { hostname: string; port: number };
  #port: number;
  #listener: Deno.TcpListener | null;
  #conns = new Set<Deno.TcpConn>();
  #tasks = new Set<Promise<void>>();

  private constructor(target: { hostname: string; port: number }, listener: Deno.TcpListener) {
    this.#target = target;
    this.#listener = listener;
    this.#port = (listener.addr as Deno.NetAddr).port;
    this.#track(this.#accept(listener));
  }

  /**
   * Start relaying to a service.
   *
   * @param target Its host and port.
   * @returns The relay, listening.
   */
  static start(target: { hostname: string; port: number }): OutageProxy {
    return new OutageProxy(target, Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  }

  /** The relay's port (the same after a restore). */
  get port(): number {
    return this.#port;
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    void task.finally(() => this.#tasks.delete(task));
  }

  async #accept(listener: Deno.TcpListener): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await listener.accept();
      } catch {
        return;
      }
      this.#track(this.#relay(client));
    }
  }

  async #relay(client: Deno.TcpConn): Promise<void> {
    this.#conns.add(client);
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect(this.#target);
    } catch {
      this.#drop(client);
      return;
    }
    this.#conns.add(server);
    const pipe = async (from: Deno.TcpConn, to: Deno.TcpConn) => {
      try {
        await from.readable.pipeTo(to.writable, { preventClose: true });
      } catch {
        // Cut, or the other side went: both go.
      }
      this.#drop(from);
      this.#drop(to);
    };
    await Promise.all([pipe(client, server), pipe(server, client)]);
  }

  #drop(conn: Deno.TcpConn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Drop every connection and refuse new ones, until {@linkcode restore}. */
  async cut(): Promise<void> {
    this.#listener?.close();
    this.#listener = null;
    for (const conn of [...this.#conns]) this.#drop(conn);
    await Promise.all([...this.#tasks]);
  }

  /** Listen again, on the same port. */
  restore(): void {
    if (this.#listener) return;
    const listener = Deno.listen({ hostname: "127.0.0.1", port: this.#port });
    this.#listener = listener;
    this.#track(this.#accept(listener));
  }

  /** Stop for good. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.cut();
  }
}

/**
 * A copy of a service URL that goes through a relay instead (same scheme, credentials and path).
 *
 * @param url The service's URL.
 * @param port The relay's port on 127.0.0.1.
 * @returns The URL through the relay.
 */
export function throughProxy(url: string, port: number): string {
  const through = new URL(url);
  through.hostname = "127.0.0.1";
  through.port = String(port);
  return through.href;
}

/**
 * The host and port a service URL names.
 *
 * @param url The URL.
 * @returns Host and port.
 */
export function urlTarget(url: string): { hostname: string; port: number } {
  const parsed = new URL(url);
  return { hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"), port: Number(parsed.port) };
}
