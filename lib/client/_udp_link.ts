/**
 * The client's UDP socket for one session: bound to an ephemeral port of the server address's family,
 * sending to that one address, and handing what arrives from the server's port to one handler at a time
 * (the handshake's queue, then the session stream). Every datagram it passes on is authenticated or
 * checked further up (the RETRY's echo, the ACCEPT's signature, the RECORD's tag); the port check only
 * spares that work for strays.
 *
 * @module
 */

/** Longest datagram read: every datagram of a UDP session is at most 1200 bytes; a longer one is dropped. */
const RECEIVE_BYTES = 1500;

/** Where the server is, resolved. */
export interface LinkAddress {
  /** An IP address. */
  hostname: string;
  /** UDP port. */
  port: number;
}

/** One UDP socket to one server address. */
export class UdpLink {
  #conn: Deno.DatagramConn;
  #to: Deno.NetAddr;
  #handler: (datagram: Uint8Array) => void;
  #queue: Uint8Array[] = [];
  #waiter: ((datagram: Uint8Array | null) => void) | null = null;
  #closed = false;
  /** Resolves once the socket is closed and its receive loop has stopped. */
  readonly closed: Promise<void>;

  /**
   * Bind a socket on an ephemeral port for the server's address family and start receiving.
   *
   * @param to The server's resolved address.
   */
  constructor(to: LinkAddress) {
    this.#to = { transport: "udp", hostname: to.hostname, port: to.port };
    this.#conn = Deno.listenDatagram({
      transport: "udp",
      hostname: to.hostname.includes(":") ? "::" : "0.0.0.0",
      port: 0,
    });
    this.#handler = (datagram) => this.#enqueue(datagram.slice());
    this.closed = this.#receiveLoop();
  }

  async #receiveLoop(): Promise<void> {
    const buffer = new Uint8Array(RECEIVE_BYTES);
    try {
      for (;;) {
        const [data, from] = await this.#conn.receive(buffer);
        if ((from as Deno.NetAddr).port !== this.#to.port || data.length > 1200) continue;
        try {
          this.#handler(data);
        } catch {
          // A handler never throws on content; a bug in one must not stop the session's receiving.
        }
      }
    } catch {
      // Closed (BadResource, Interrupted), or a socket error: either way nothing more arrives.
    } finally {
      this.close();
      this.#waiter?.(null);
      this.#waiter = null;
    }
  }

  #enqueue(datagram: Uint8Array): void {
    if (this.#waiter !== null) {
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter(datagram);
      return;
    }
    // A handshake reads every datagram it gets soon; a bound keeps a flood from piling up meanwhile.
    if (this.#queue.length < 64) this.#queue.push(datagram);
  }

  /**
   * The next datagram from the server, while no handler is set (the handshake).
   *
   * @param timeoutMs Longest wait.
   * @returns A copy of the datagram, or `null` when none arrived in time or the socket closed.
   */
  next(timeoutMs: number): Promise<Uint8Array | null> {
    const queued = this.#queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#closed) return Promise.resolve(null);
    const { promise, resolve } = Promise.withResolvers<Uint8Array | null>();
    const timer = setTimeout(() => {
      this.#waiter = null;
      resolve(null);
    }, Math.max(0, timeoutMs));
    this.#waiter = (datagram) => {
      clearTimeout(timer);
      resolve(datagram);
    };
    return promise;
  }

  /**
   * From now on hand every datagram to `handler` (it must not keep the bytes: they are reused); what the
   * handshake left queued is dropped.
   *
   * @param handler Takes one datagram.
   */
  route(handler: (datagram: Uint8Array) => void): void {
    this.#queue = [];
    this.#handler = handler;
  }

  /**
   * Send one datagram to the server.
   *
   * @param datagram The bytes.
   * @returns When the socket took it.
   */
  async send(datagram: Uint8Array): Promise<void> {
    await this.#conn.send(datagram, this.#to);
  }

  /**
   * Send one datagram, ignoring failures: a datagram that cannot be sent is one lost, which the reliable
   * layer repairs (or the dead timeout ends).
   *
   * @param datagram The bytes.
   */
  sendLater(datagram: Uint8Array): void {
    if (this.#closed) return;
    this.#conn.send(datagram, this.#to).catch(() => {});
  }

  /** Close the socket (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}
