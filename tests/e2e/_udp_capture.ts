/**
 * The capturing UDP proxy of the end-to-end chat tests: it sits between the clients and the server and
 * records every datagram in each direction, so a test can search the wire for what must not be there.
 * Its TCP counterpart is `TcpProxy` with `capture: true` (../_tcp_proxy.ts).
 *
 * @module
 */

import type { Capture } from "../_tcp_proxy.ts";

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
