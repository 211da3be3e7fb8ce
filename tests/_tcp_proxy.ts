/**
 * The one TCP proxy of the tests: it sits between a client and a real service (the authchat server,
 * PostgreSQL, NATS) on a free port of 127.0.0.1 and lets a test play the network:
 * - {@linkcode TcpProxy.pause} / {@linkcode TcpProxy.resume}: a network that drops everything; the
 *   connections stay open, no byte moves either way, what was held goes on in order afterwards;
 * - {@linkcode TcpProxy.cut} / {@linkcode TcpProxy.restore}: a service that went away; every connection is
 *   dropped and new ones are refused (the port stops listening) until restored, on the same port: a
 *   PostgreSQL client then fails at once, where one accepted and closed at once retries to its deadline;
 * - `capture: true`: every byte of every connection is recorded by direction ({@linkcode TcpProxy.flows}),
 *   so a test can search the wire for what must not be there.
 *
 * The service itself keeps running and is never imitated.
 *
 * @module
 */

/** The bytes one proxied flow carried, by direction. */
export interface Capture {
  /** Client to service. */
  up: Uint8Array[];
  /** Service to client. */
  down: Uint8Array[];
}

/**
 * Concatenate chunks.
 *
 * @param chunks The chunks, in order.
 * @returns One array holding them all.
 */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Default ports of the URL schemes the tests proxy, for URLs that leave the port out. */
const DEFAULT_PORTS: Record<string, number> = { "nats:": 4222, "postgres:": 5432, "postgresql:": 5432 };

/** Where a proxy forwards to: a service URL, a host and port, or a port of 127.0.0.1. */
export type ProxyTarget = string | { hostname: string; port: number } | number;

/** A TCP proxy to one service, with the network under the test's control. */
export class TcpProxy {
  /** One entry per accepted connection (only with `capture: true`). */
  readonly flows: Capture[] = [];
  #target: { hostname: string; port: number };
  #targetUrl: string | null;
  #capture: boolean;
  #port: number;
  #listener: Deno.TcpListener | null;
  #conns = new Set<Deno.TcpConn>();
  #tasks = new Set<Promise<void>>();
  #held: PromiseWithResolvers<void> | null = null;

  /**
   * Listen on a free port of 127.0.0.1.
   *
   * @param target The service: its URL (`nats://…`, `postgres://…`), its host and port, or a local port.
   * @param options `capture` records every byte in {@linkcode flows}.
   */
  constructor(target: ProxyTarget, options: { capture?: boolean } = {}) {
    if (typeof target === "number") {
      this.#target = { hostname: "127.0.0.1", port: target };
      this.#targetUrl = null;
    } else if (typeof target === "string") {
      const parsed = new URL(target);
      this.#target = {
        hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: Number(parsed.port || DEFAULT_PORTS[parsed.protocol]),
      };
      this.#targetUrl = target;
    } else {
      this.#target = target;
      this.#targetUrl = null;
    }
    this.#capture = options.capture ?? false;
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#listener = listener;
    this.#port = (listener.addr as Deno.NetAddr).port;
    this.#track(this.#accept(listener));
  }

  /** The proxy's port (the same after a restore). */
  get port(): number {
    return this.#port;
  }

  /**
   * The service's URL through the proxy (same scheme, credentials and path), or `tcp://127.0.0.1:port`
   * when the proxy was given no URL.
   */
  get url(): string {
    if (this.#targetUrl === null) return `tcp://127.0.0.1:${this.#port}`;
    const through = new URL(this.#targetUrl);
    through.hostname = "127.0.0.1";
    through.port = String(this.#port);
    return through.href;
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
      this.#track(this.#serve(client));
    }
  }

  async #serve(client: Deno.TcpConn): Promise<void> {
    this.#conns.add(client);
    const flow: Capture = { up: [], down: [] };
    if (this.#capture) this.flows.push(flow);
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect(this.#target);
    } catch {
      this.#drop(client);
      return;
    }
    this.#conns.add(server);
    await Promise.all([this.#pipe(client, server, flow.up), this.#pipe(server, client, flow.down)]);
    this.#drop(client);
    this.#drop(server);
  }

  /** Copy one direction; an end of stream is passed on as a half-close, an error drops both sides. */
  async #pipe(from: Deno.TcpConn, to: Deno.TcpConn, record: Uint8Array[]): Promise<void> {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        const chunk = buf.slice(0, n);
        if (this.#capture) record.push(chunk);
        while (this.#held) await this.#held.promise;
        for (let done = 0; done < chunk.length;) done += await to.write(chunk.subarray(done));
      }
      await to.closeWrite();
    } catch {
      // Cut, or either side closed: end both.
      this.#drop(from);
      this.#drop(to);
    }
  }

  #drop(conn: Deno.TcpConn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Stop moving bytes, either way; the connections stay open. */
  pause(): void {
    this.#held ??= Promise.withResolvers<void>();
  }

  /** Move bytes again: what was held goes on in order. */
  resume(): void {
    this.#held?.resolve();
    this.#held = null;
  }

  /** Drop every connection and refuse new ones, until {@linkcode restore}. */
  async cut(): Promise<void> {
    this.#listener?.close();
    this.#listener = null;
    for (const conn of [...this.#conns]) this.#drop(conn);
    // Wake the pumps held by a pause, so they see their connection gone; the pause itself stays.
    if (this.#held) {
      this.#held.resolve();
      this.#held = Promise.withResolvers<void>();
    }
    await Promise.all([...this.#tasks]);
  }

  /** Listen again, on the same port. */
  restore(): void {
    if (this.#listener) return;
    const listener = Deno.listen({ hostname: "127.0.0.1", port: this.#port });
    this.#listener = listener;
    this.#track(this.#accept(listener));
  }

  /**
   * Wait until some connection has carried bytes matching a pattern in one direction (needs `capture`).
   *
   * @param direction `up` (client to service) or `down` (service to client).
   * @param pattern What to find in the bytes read as UTF-8 (frames hold JSON after a binary header).
   * @param timeoutMs Time limit.
   * @throws {Error} When nothing matches in time.
   */
  async waitFor(direction: keyof Capture, pattern: RegExp, timeoutMs = 15_000): Promise<void> {
    const decoder = new TextDecoder();
    const deadline = Date.now() + timeoutMs;
    // The pumps record chunks without signalling; polling every few ms is simple and close enough.
    while (!this.flows.some((f) => pattern.test(decoder.decode(concat(f[direction]))))) {
      if (Date.now() > deadline) {
        throw new Error(`No ${direction} bytes matching ${pattern} within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Stop for good: close the port and every connection, and wait for the pumps. */
  async close(): Promise<void> {
    this.resume();
    await this.cut();
    this.resume();
  }

  /** Close on dispose. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
