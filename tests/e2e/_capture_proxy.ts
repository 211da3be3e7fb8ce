/**
 * Capturing proxies for the end-to-end chat tests: a TCP and a UDP proxy
 * that sit between the clients and the server and record every byte passing
 * in each direction, so a test can search the wire for what must not be there.
 *
 * @module
 */

/** The bytes one proxied flow carried, by direction. */
export interface Capture {
  /** Client to server. */
  up: Uint8Array[];
  /** Server to client. */
  down: Uint8Array[];
}

/** Concatenate chunks. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A TCP proxy to a local port that records every byte in both directions, per connection. */
export class TcpCapture {
  /** One entry per accepted connection. */
  readonly flows: Capture[] = [];
  #listener: Deno.TcpListener;
  #target: number;
  #conns = new Set<Deno.TcpConn>();
  #tasks = new Set<Promise<void>>();
  #accepting: Promise<void>;

  /**
   * Listen on a free port of 127.0.0.1.
   *
   * @param target The port to forward to.
   */
  constructor(target: number) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The proxy's port. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return;
      }
      const task = this.#serve(conn);
      this.#tasks.add(task);
      void task.finally(() => this.#tasks.delete(task));
    }
  }

  async #serve(client: Deno.TcpConn): Promise<void> {
    this.#conns.add(client);
    const flow: Capture = { up: [], down: [] };
    this.flows.push(flow);
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
    } catch {
      this.#close(client);
      return;
    }
    this.#conns.add(server);
    await Promise.all([this.#pipe(client, server, flow.up), this.#pipe(server, client, flow.down)]);
    this.#close(client);
    this.#close(server);
  }

  async #pipe(from: Deno.TcpConn, to: Deno.TcpConn, record: Uint8Array[]): Promise<void> {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        const chunk = buf.slice(0, n);
        record.push(chunk);
        for (let done = 0; done < chunk.length;) done += await to.write(chunk.subarray(done));
      }
      await to.closeWrite();
    } catch {
      // Either side closed: end both.
      this.#close(from);
      this.#close(to);
    }
  }

  #close(conn: Deno.TcpConn): void {
    if (!this.#conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Stop listening, cut every connection and wait for the pumps. */
  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    await this.#accepting;
    for (const conn of [...this.#conns]) this.#close(conn);
    await Promise.all([...this.#tasks]);
  }

  /**
   * Wait until some connection has carried bytes matching a pattern in one direction.
   *
   * @param direction `up` (client to server) or `down` (server to client).
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

  /** Close on dispose. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * A UDP proxy to a local port that records every datagram: each client
 * address gets its own upstream socket, as behind a NAT, so the server's
 * replies and relayed datagrams find their way back.
 */
export class UdpCapture {
  /** One entry per client address. */
  readonly flows: Capture[] = [];
  #front: Deno.DatagramConn;
  #target: number;
  #upstreams = new Map<string, { socket: Deno.DatagramConn; flow: Capture; task: Promise<void> }>();
  #closed = false;
  #task: Promise<void>;
  #drop: () => boolean;

  /**
   * Bind a free port of 127.0.0.1.
   *
   * @param target The UDP port to forward to.
   * @param options `drop` decides, for each datagram either way, whether it is lost (it is still recorded).
   */
  constructor(target: number, options: { drop?: () => boolean } = {}) {
    this.#target = target;
    this.#drop = options.drop ?? (() => false);
    this.#front = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
    this.#task = this.#forward();
  }

  /** The proxy's port. */
  get port(): number {
    return (this.#front.addr as Deno.NetAddr).port;
  }

  async #forward(): Promise<void> {
    while (!this.#closed) {
      let bytes: Uint8Array;
      let addr: Deno.NetAddr;
      try {
        const [b, a] = await this.#front.receive(new Uint8Array(65536));
        bytes = b;
        addr = a as Deno.NetAddr;
      } catch {
        return;
      }
      const key = `${addr.hostname}:${addr.port}`;
      let up = this.#upstreams.get(key);
      if (!up) {
        const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
        const flow: Capture = { up: [], down: [] };
        this.flows.push(flow);
        up = { socket, flow, task: this.#back(socket, addr, flow) };
        this.#upstreams.set(key, up);
      }
      up.flow.up.push(bytes.slice());
      if (this.#drop()) continue;
      await up.socket.send(bytes, { transport: "udp", hostname: "127.0.0.1", port: this.#target })
        .catch(() => {});
    }
  }

  async #back(socket: Deno.DatagramConn, client: Deno.NetAddr, flow: Capture): Promise<void> {
    while (!this.#closed) {
      let bytes: Uint8Array;
      try {
        [bytes] = await socket.receive(new Uint8Array(65536));
      } catch {
        return;
      }
      flow.down.push(bytes.slice());
      if (this.#drop()) continue;
      await this.#front.send(bytes, client).catch(() => {});
    }
  }

  /** Close every socket and wait for the forwarders. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const s of [this.#front, ...[...this.#upstreams.values()].map((u) => u.socket)]) {
      try {
        s.close();
      } catch {
        // Already closed.
      }
    }
    await this.#task;
    await Promise.all([...this.#upstreams.values()].map((u) => u.task));
  }
}
