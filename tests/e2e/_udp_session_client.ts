/**
 * A UDP session client for end-to-end tests, built from the library's parts rather than the CLI: the
 * handshake (INIT, RETRY with proof of work, ACCEPT, FINISH) over a real socket bound to any 127/8 address,
 * then a {@linkcode UdpSessionStream} under a {@linkcode RawClient}, so tests speak the protocol's
 * messages over it as over TCP. Every wait is bounded, so a server that does not answer fails the test.
 *
 * @module
 */

import { decodeRetry, encodeInit, RETRY_TYPE } from "../../lib/codec/udp_init.ts";
import { ACCEPT_TYPE, RECORD_TYPE } from "../../lib/codec/udp_session_datagram.ts";
import { ClientHandshake } from "../../lib/crypto/udp_client_handshake.ts";
import { solvePuzzle } from "../../lib/crypto/udp_puzzle.ts";
import type { EstablishedSession } from "../../lib/crypto/udp_session_keys.ts";
import { CLIENT_KEEPALIVE_MS, UdpSessionStream } from "../../lib/transport/udp_session_stream.ts";
import { RawClient } from "./_raw_client.ts";

/** How long the handshake waits for each answer before sending again. */
const RESEND_MS = 400;
/** Sends of one handshake datagram before giving up. */
const TRIES = 12;

/** Datagrams received, handed out in order with a timeout. */
class Inbox {
  #queue: Uint8Array[] = [];
  #wake: (() => void) | null = null;
  #closed = false;

  push(bytes: Uint8Array): void {
    this.#queue.push(bytes);
    this.#wake?.();
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  /** The next datagram, or `null` after `ms` or once closed. */
  async next(ms: number): Promise<Uint8Array | null> {
    if (this.#queue.length > 0) return this.#queue.shift()!;
    if (this.#closed) return null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#wake = null;
    return this.#queue.shift() ?? null;
  }
}

/** Options of {@linkcode UdpSessionClient.connect}. */
export interface UdpConnectOptions {
  /** Local address to send from (any of 127.0.0.0/8; default 127.0.0.1). */
  from?: string;
  /** Server address (default 127.0.0.1). */
  host?: string;
}

/** One UDP session with the server, with a {@linkcode RawClient} over it. */
export class UdpSessionClient {
  /** Speak the protocol over the session. */
  readonly raw: RawClient;
  /** The handshake's result: the channel binding, the record layer. */
  readonly session: EstablishedSession;
  /** The difficulty the server asked (0 for none). */
  readonly difficulty: number;
  /** The FINISH datagram the handshake sent. */
  readonly finish: Uint8Array<ArrayBuffer>;
  /** The session's stream. */
  readonly stream: UdpSessionStream;
  #socket: Deno.DatagramConn;
  #loop: Promise<void>;

  private constructor(
    socket: Deno.DatagramConn,
    loop: Promise<void>,
    stream: UdpSessionStream,
    session: EstablishedSession,
    difficulty: number,
    finish: Uint8Array<ArrayBuffer>,
  ) {
    this.finish = finish;
    this.#socket = socket;
    this.#loop = loop;
    this.stream = stream;
    this.session = session;
    this.difficulty = difficulty;
    this.raw = RawClient.over({
      read: (b) => stream.read(b),
      write: (d) => stream.write(d),
      closeWrite: () => Promise.resolve(stream.close()),
      close: () => stream.close(),
    });
  }

  /**
   * Run the handshake with a server's UDP port.
   *
   * @param port The server's UDP port.
   * @param options Local and server address.
   * @returns The client, its session established.
   * @throws {Error} When the server does not answer.
   */
  static async connect(port: number, options: UdpConnectOptions = {}): Promise<UdpSessionClient> {
    const server = { transport: "udp" as const, hostname: options.host ?? "127.0.0.1", port };
    const socket = Deno.listenDatagram({ transport: "udp", hostname: options.from ?? "127.0.0.1", port: 0 });
    const inbox = new Inbox();
    let deliver: (bytes: Uint8Array) => void = (bytes) => inbox.push(bytes);
    const loop = (async () => {
      try {
        for (;;) {
          const [bytes] = await socket.receive();
          deliver(bytes);
        }
      } catch {
        // The socket closed.
      } finally {
        inbox.close();
      }
    })();
    try {
      const handshake = await ClientHandshake.start();
      const fields = { clientRandom: handshake.init.clientRandom, clientShare: handshake.init.clientShare };
      const exchange = async (datagram: Uint8Array, type: number): Promise<Uint8Array> => {
        for (let i = 0; i < TRIES; i++) {
          await socket.send(datagram, server);
          for (let got; (got = await inbox.next(RESEND_MS)) !== null;) {
            if (got[2] === type) return got;
          }
        }
        throw new Error(`UDP handshake: no answer of type ${type} from port ${port}`);
      };
      let retry = decodeRetry(await exchange(encodeInit(fields), RETRY_TYPE));
      let accepted;
      for (let attempt = 0; accepted === undefined; attempt++) {
        if (attempt > 3) throw new Error("UDP handshake: too many RETRYs");
        const powNonce = await solvePuzzle(retry.cookie, retry.difficulty);
        const init = encodeInit({ ...fields, cookie: retry.cookie, powNonce });
        let again = false;
        for (let i = 0; i < TRIES && accepted === undefined && !again; i++) {
          await socket.send(init, server);
          for (let got; (got = await inbox.next(RESEND_MS)) !== null;) {
            if (got[2] === RETRY_TYPE) {
              retry = decodeRetry(got);
              again = true;
              break;
            }
            if (got[2] !== ACCEPT_TYPE) continue;
            const result = await handshake.receiveAccept(got);
            if (result.kind === "accepted") {
              accepted = result;
              break;
            }
          }
        }
        if (accepted === undefined && !again) throw new Error("UDP handshake: no ACCEPT");
      }
      const stream = new UdpSessionStream({
        records: accepted.session.records,
        send: (d) => void socket.send(d, server).catch(() => {}),
        untilConfirmed: accepted.finish,
        keepaliveMs: CLIENT_KEEPALIVE_MS,
      });
      deliver = (bytes) => {
        if (bytes[2] === RECORD_TYPE) stream.receive(bytes);
      };
      // Records that arrived while the handshake finished.
      for (let got; (got = await inbox.next(0)) !== null;) deliver(got);
      return new UdpSessionClient(socket, loop, stream, accepted.session, retry.difficulty, accepted.finish);
    } catch (err) {
      socket.close();
      await loop;
      throw err;
    }
  }

  /** The socket, to send raw datagrams from the session's source (tests of what the server drops). */
  get socket(): Deno.DatagramConn {
    return this.#socket;
  }

  /** Close the session (CLOSE after what was written is acknowledged, at most the linger) and the socket. */
  async close(): Promise<void> {
    await this.raw.close();
    this.stream.close();
    await this.stream.ended;
    try {
      this.#socket.close();
    } catch {
      // Closed already.
    }
    await this.#loop;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A bare UDP socket with an inbox, for tests that send the server hand-made datagrams. */
export class UdpProbe {
  readonly socket: Deno.DatagramConn;
  readonly target: Deno.NetAddr;
  #inbox = new Inbox();
  #loop: Promise<void>;

  /**
   * Bind a socket.
   *
   * @param port The server's UDP port on 127.0.0.1.
   * @param from Local address (default 127.0.0.1).
   */
  constructor(port: number, from = "127.0.0.1") {
    this.target = { transport: "udp", hostname: "127.0.0.1", port };
    const socket = this.socket = Deno.listenDatagram({ transport: "udp", hostname: from, port: 0 });
    this.#loop = (async () => {
      try {
        for (;;) this.#inbox.push((await socket.receive())[0]);
      } catch {
        // Closed.
      } finally {
        this.#inbox.close();
      }
    })();
  }

  /** Send one datagram to the server. */
  async send(bytes: Uint8Array): Promise<void> {
    await this.socket.send(bytes, this.target);
  }

  /** The next datagram from the server, or `null` after `ms`. */
  next(ms: number): Promise<Uint8Array | null> {
    return this.#inbox.next(ms);
  }

  /** Send and wait for an answer of `type`, sending again a few times; fails when none comes. */
  async exchange(bytes: Uint8Array, type: number): Promise<Uint8Array> {
    for (let i = 0; i < TRIES; i++) {
      await this.send(bytes);
      for (let got; (got = await this.next(RESEND_MS)) !== null;) if (got[2] === type) return got;
    }
    throw new Error(`No answer of type ${type}`);
  }

  async close(): Promise<void> {
    try {
      this.socket.close();
    } catch {
      // Closed.
    }
    await this.#loop;
  }
}
