/**
 * Reading the PROXY protocol v2 header (lib/codec/proxy_header.ts) off a connection from a trusted load
 * balancer (`proxy_protocol_from`), before anything else on it — frames on the TCP port, the TLS handshake
 * on the TLS port — within a time limit. Exactly the header's bytes are read, so what follows is left for
 * the session or for TLS. A connection from anyone else is left alone: its own address is its client's.
 *
 * @module
 */

import type { Socket } from "node:net";
import type { Logger } from "./logger.ts";
import type { TransportName } from "./session_context.ts";
import type { TrustedProxies } from "./trusted_proxies.ts";
import { parseProxyV2, PROXY_V2_PREFIX_LENGTH, proxyV2BodyLength } from "../codec/proxy_header.ts";
import type { ProxySource } from "../codec/proxy_header.ts";

/** Reads exactly `n` bytes; `null` when the stream ends first. */
export type ExactReader = (n: number) => Promise<Uint8Array | null>;

/**
 * Read and parse a header, giving up after `timeoutMs` (then `abort` is called, which must make the pending
 * read end: close the connection).
 *
 * @param read Reads exact byte counts.
 * @param timeoutMs Longest wait for the whole header.
 * @param abort Ends the pending read.
 * @returns The client the header names, or `null` when it names none (`LOCAL`, or no address family).
 * @throws {TypeError} When the bytes are not a header, the stream ends before one, or time runs out.
 */
export async function readProxyHeader(
  read: ExactReader,
  timeoutMs: number,
  abort: () => void,
): Promise<ProxySource | null> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort();
  }, timeoutMs);
  try {
    const prefix = await read(PROXY_V2_PREFIX_LENGTH);
    if (prefix === null) throw new TypeError("Connection ended before its PROXY header");
    const length = proxyV2BodyLength(prefix);
    const body = length === 0 ? new Uint8Array(0) : await read(length);
    if (body === null) throw new TypeError("Connection ended inside its PROXY header");
    const header = new Uint8Array(PROXY_V2_PREFIX_LENGTH + length);
    header.set(prefix);
    header.set(body, PROXY_V2_PREFIX_LENGTH);
    return parseProxyV2(header);
  } catch (err) {
    if (timedOut) throw new TypeError(`No PROXY header within ${timeoutMs} ms`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Exact reads from a `Deno.Conn`.
 *
 * @param conn The connection.
 * @returns The reader.
 */
export function connReader(conn: Deno.Conn): ExactReader {
  return async (n) => {
    const bytes = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const got = await conn.read(bytes.subarray(filled));
      if (got === null) return null;
      filled += got;
    }
    return bytes;
  };
}

/**
 * Exact reads from a `node:net` socket, leaving it paused with the rest unread (for `tls.Server` to take
 * over).
 *
 * @param socket The socket.
 * @returns The reader.
 */
export function socketReader(socket: Socket): ExactReader {
  return (n) =>
    new Promise((resolve, reject) => {
      const done = () => {
        socket.off("readable", attempt);
        socket.off("end", ended);
        socket.off("close", ended);
        socket.off("error", failed);
      };
      function attempt(): void {
        const chunk = socket.read(n) as Uint8Array | null;
        if (chunk === null) return;
        done();
        // At the end of the stream read() returns what is left, even if shorter.
        resolve(chunk.length === n ? new Uint8Array(chunk) : null);
      }
      function ended(): void {
        done();
        resolve(null);
      }
      function failed(err: Error): void {
        done();
        reject(err);
      }
      socket.on("readable", attempt);
      socket.once("end", ended);
      socket.once("close", ended);
      socket.once("error", failed);
      attempt();
    });
}

/** The PROXY headers of the balancers' connections on one server. */
export class ProxyHeaders {
  #proxies: TrustedProxies;
  #timeoutMs: number;
  #log: Logger;
  #pending = new Set<() => void>();
  #stopped = false;

  /**
   * Read the headers of these balancers' connections.
   *
   * @param proxies The balancers.
   * @param options Longest wait for a header, and the log (`proxy_header_invalid` lines).
   */
  constructor(proxies: TrustedProxies, options: { timeoutMs: number; log: Logger }) {
    this.#proxies = proxies;
    this.#timeoutMs = options.timeoutMs;
    this.#log = options.log;
  }

  /**
   * Whether a connection from this address must begin with a header.
   *
   * @param address The connection's remote address.
   * @returns Whether it is a balancer's.
   */
  expects(address: string): boolean {
    return this.#proxies.has(address);
  }

  /**
   * Read a header off a connection (one {@linkcode ProxyHeaders.expects} said must carry one).
   *
   * @param conn The connection.
   * @param proxy Its remote address (the balancer's).
   * @param transport Its transport, for the log.
   * @returns The client's address (the balancer's own for a header naming none), or `null` when the header
   *   was missing, malformed or late: then the connection is closed and the log says why.
   */
  async fromConn(conn: Deno.Conn, proxy: string, transport: TransportName): Promise<string | null> {
    const close = () => {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    };
    return await this.#read(connReader(conn), close, proxy, transport);
  }

  /**
   * Read a header off a `node:net` socket, as {@linkcode ProxyHeaders.fromConn} does.
   *
   * @param socket The socket, before anyone else read from it.
   * @param proxy Its remote address.
   * @param transport Its transport, for the log.
   * @returns The client's address, or `null` (the socket destroyed).
   */
  fromSocket(socket: Socket, proxy: string, transport: TransportName): Promise<string | null> {
    return this.#read(socketReader(socket), () => socket.destroy(), proxy, transport);
  }

  async #read(
    read: ExactReader,
    close: () => void,
    proxy: string,
    transport: TransportName,
  ): Promise<string | null> {
    this.#pending.add(close);
    try {
      const source = await readProxyHeader(read, this.#timeoutMs, close);
      if (!this.#stopped) return source?.address ?? proxy;
      close();
      return null;
    } catch (err) {
      if (!this.#stopped) {
        this.#log.warn("proxy_header_invalid", { ip: proxy, transport, error: (err as Error).message });
      }
      close();
      return null;
    } finally {
      this.#pending.delete(close);
    }
  }

  /** The server stops: close the connections whose header has not come yet, and every one from now on. */
  stop(): void {
    this.#stopped = true;
    for (const close of this.#pending) close();
  }
}
