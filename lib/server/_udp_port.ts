/**
 * The server's UDP port: one socket for the rendezvous and relay (docs/PROTOCOL.md 15–19) and the UDP
 * sessions (20), its receive loop, the timer that forgets abandoned handshakes, and its part of the
 * server's shutdown (the socket stays open while UDP sessions say goodbye).
 *
 * @module
 */

import { MAX_DATAGRAM } from "../codec/datagram.ts";
import type { ServerIdentity } from "../crypto/server_identity.ts";
import { raceTimeout } from "../transport/race_timeout.ts";
import type { LogFields, Logger } from "./logger.ts";
import type { RelayRouting } from "./relay_routing.ts";
import type { ServerConfig } from "./server_config.ts";
import { Rendezvous } from "./udp_rendezvous.ts";
import type { Outgoing } from "./udp_rendezvous.ts";
import { udpSessionLogFields } from "./udp_session_stats.ts";
import { isSessionDatagram, type UdpEstablished, type UdpSessions } from "./udp_sessions.ts";
import { createUdpSessions } from "./_udp_session_setup.ts";

/** How often abandoned UDP handshakes are looked for (each lives 20 s): an idle server forgets them too. */
const UDP_EXPIRY_MS = 5_000;

/** What {@linkcode UdpPort.open} needs beside the socket. */
export interface UdpPortOptions {
  config: ServerConfig;
  identity: ServerIdentity;
  /** The store's mock secret (the UDP cookies' master derives from it). */
  mockSecret: Uint8Array<ArrayBuffer>;
  /** The relay's routing across nodes, when there are several. */
  relay?: RelayRouting;
  log: Logger;
  /** A UDP session's handshake is done: serve it (the server tracks it as a connection). */
  onEstablished(session: UdpEstablished): void;
}

/**
 * The UDP socket and everything on it. Made by {@linkcode UdpPort.open}, started by
 * {@linkcode UdpPort.start}; {@linkcode UdpPort.stop} then {@linkcode UdpPort.close} at shutdown.
 */
export class UdpPort {
  /** The rendezvous and relay (PROTOCOL 15–19). */
  readonly rendezvous: Rendezvous;
  /** The UDP sessions, when `udp_sessions` is on. */
  readonly sessions: UdpSessions | null;
  #socket: Deno.DatagramConn;
  #log: Logger;
  #relay: RelayRouting | undefined;
  #stopping = false;
  /** The receive loop: it runs on while UDP sessions say goodbye, until the socket closes. */
  #loopDone: Promise<void> = Promise.resolve();
  /** Forgets abandoned UDP handshakes when no INIT or FINISH comes to do it (their keys, their ACCEPTs). */
  #expiryTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(socket: Deno.DatagramConn, options: UdpPortOptions, sessions: UdpSessions | null) {
    this.#socket = socket;
    this.#log = options.log;
    this.#relay = options.relay;
    this.rendezvous = new Rendezvous({
      relayPerSecond: options.config.relay_per_second,
      ...(options.relay ? { routing: options.relay } : {}),
    });
    this.rendezvous.port = this.address.port;
    this.sessions = sessions;
  }

  /**
   * Take a bound socket: the rendezvous, and the UDP sessions when they are on. Nothing is received
   * before {@linkcode UdpPort.start}.
   *
   * @param socket The bound socket (closed by this port from now on, or by the caller if this throws).
   * @param options Configuration, identity and callbacks.
   * @returns The port.
   * @throws {TypeError} When UDP sessions are on and the certificate cannot sign handshakes.
   */
  static async open(socket: Deno.DatagramConn, options: UdpPortOptions): Promise<UdpPort> {
    const sessions = options.config.udp_sessions
      ? await createUdpSessions({
        config: options.config,
        identity: options.identity,
        mockSecret: options.mockSecret,
        transmit: (out) => void socket.send(out.bytes, { transport: "udp", ...out }).catch(() => {}),
        onEstablished: options.onEstablished,
      })
      : null;
    return new UdpPort(socket, options, sessions);
  }

  /** The bound address. */
  get address(): Deno.NetAddr {
    return this.#socket.addr as Deno.NetAddr;
  }

  /** Start receiving, expiring half-open sessions and delivering what other nodes relay here. */
  start(): void {
    const sessions = this.sessions;
    if (sessions) this.#expiryTimer = setInterval(() => sessions.expire(Date.now()), UDP_EXPIRY_MS);
    const rendezvous = this.rendezvous;
    this.#relay?.serve({
      deliver: (datagram) =>
        void rendezvous.deliver(datagram).then((out) => this.#send(out))
          .catch((err) => this.#log.error("udp_error", { error: (err as Error).message })),
      reassign: () => rendezvous.reassign(),
    });
    this.#loopDone = this.#loop();
  }

  /**
   * The shutdown's first step: no new UDP session and no rendezvous answer from now on; the socket
   * closes now when there are no UDP sessions, else at {@linkcode UdpPort.close}, after their goodbyes.
   */
  stop(): void {
    this.#stopping = true;
    clearInterval(this.#expiryTimer);
    this.sessions?.stop();
    if (!this.sessions) this.#closeSocket();
  }

  /**
   * The shutdown's last step: end the UDP sessions' streams still open (their CLOSEs go out), close the
   * socket and wait for the receive loop to end.
   */
  async close(): Promise<void> {
    if (this.sessions) {
      // Their CLOSEs go out before the socket closes; a stream's end is then a microtask or a poll away.
      await raceTimeout(this.sessions.closeAll(), 1000);
      this.#closeSocket();
    }
    await this.#loopDone;
  }

  /** Close the socket at once (a server whose start failed after binding it). */
  abort(): void {
    this.#closeSocket();
  }

  /** The `udp_stats` line's fields: what the rendezvous and the UDP sessions dropped, and why. */
  get statsFields(): LogFields {
    return { ...this.rendezvous.stats, ...(this.sessions ? udpSessionLogFields(this.sessions.stats) : {}) };
  }

  #closeSocket(): void {
    try {
      this.#socket.close();
    } catch {
      // Already closed.
    }
  }

  async #loop(): Promise<void> {
    const socket = this.#socket;
    // One buffer for every read: the rendezvous and the UDP sessions read (or copy) a datagram before they
    // await anything.
    const buffer = new Uint8Array(MAX_DATAGRAM + 1);
    const { sessions, rendezvous } = this;
    // Until the socket closes: while stopping, UDP sessions still need their acknowledgements to say BYE.
    for (;;) {
      let received: [Uint8Array, Deno.Addr];
      try {
        received = await socket.receive(buffer);
      } catch (err) {
        if (this.#stopping || err instanceof Deno.errors.BadResource) return;
        this.#log.warn("udp_receive_failed", { error: (err as Error).message });
        continue;
      }
      const [bytes, addr] = received;
      const from = addr as Deno.NetAddr;
      if (sessions !== null && isSessionDatagram(bytes)) {
        sessions.receive(bytes, from, Date.now()).then((out) => this.#send(out, true));
        continue;
      }
      if (this.#stopping) continue;
      // Handled without waiting, so one datagram's MAC check does not hold up the next.
      rendezvous.receive(bytes, from, Date.now()).then((out) => this.#send(out))
        .catch((err) => this.#log.error("udp_error", { error: (err as Error).message }));
    }
  }

  #send(out: Outgoing[], whileStopping = false): void {
    if (this.#stopping && !whileStopping) return;
    for (const o of out) {
      this.#socket.send(o.bytes, { transport: "udp", hostname: o.hostname, port: o.port }).catch(() => {});
    }
  }
}
