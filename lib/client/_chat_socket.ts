/**
 * The UDP socket of a {@linkcode ChatNode}: the rendezvous with the server, the `RELAY` wrapping of
 * datagrams that take the relay path, and the server's tag on `RDV_ACK` and `RELAYED` checked before a peer
 * datagram is handed on. See docs/PROTOCOL.md, "Rendezvous and relay".
 *
 * @module
 */

import { decodeBase64 } from "../codec/base64.ts";
import { decodeDatagram, encodeRdv, encodeRelay, MAX_DATAGRAM } from "../codec/datagram.ts";
import type { PeerDatagram } from "../codec/datagram.ts";
import { tagDatagram, verifyDatagram } from "../crypto/datagram_tag.ts";
import type { UdpKey } from "../crypto/datagram_tag.ts";
import type { LinkOutput, PeerPath } from "./peer_link.ts";
import { requireDatagramSockets } from "../transport/runtime_features.ts";

/** Datagrams checked at once at most; more are dropped (the reliable layer sends again what matters). */
const MAX_HANDLING = 1024;

/** Options of {@linkcode ChatSocket}. */
export interface ChatSocketOptions {
  /** Server host; the rendezvous and relay listen there on `port`. */
  serverHost: string;
  /** The server's UDP port. */
  port: number;
  /** Our rendezvous handle (base64, from LOGIN). */
  handle: string;
  /** The session's UDP key, from `importUdpKey` (lib/crypto/datagram_tag.ts). */
  udpKey: UdpKey;
  /** A peer datagram arrived, directly or relayed by the server. */
  onPeer(d: PeerDatagram, path: PeerPath): Promise<void>;
}

/** The client's one UDP socket. */
export class ChatSocket {
  /**
   * Datagrams dropped: undecodable or failing to be handled, server datagrams with a bad tag, and datagrams
   * read while too many others were still being checked.
   */
  readonly stats = { malformed: 0, badServerTag: 0, overloaded: 0 };
  #o: ChatSocketOptions;
  #socket: Deno.DatagramConn;
  #handle: Uint8Array<ArrayBuffer>;
  #counter = 0;
  #closed = false;
  #rdvAcked: (() => void) | null = null;
  #refresh: ReturnType<typeof setInterval> | undefined;
  #reader: Promise<void>;
  #handling = new Set<Promise<void>>();

  /**
   * Bind a socket on port 0 and start reading; nothing is sent before {@linkcode rendezvous}.
   *
   * @param options Server, credentials and where peer datagrams go.
   * @throws {Error} When this runtime cannot open UDP sockets (saying which flag is missing).
   */
  constructor(options: ChatSocketOptions) {
    requireDatagramSockets();
    this.#o = options;
    const hostname = options.serverHost.includes(":") ? "::" : "0.0.0.0";
    this.#socket = Deno.listenDatagram({ hostname, port: 0, transport: "udp" });
    this.#handle = decodeBase64(options.handle) ?? new Uint8Array(16);
    this.#reader = this.#read();
  }

  /**
   * Prove the session to the server's rendezvous (`RDV` every 250 ms until `RDV_ACK`), then keep refreshing
   * it every 20 s so a NAT keeps the mapping the server observed.
   *
   * @param timeoutMs How long to wait for `RDV_ACK`.
   * @throws {Error} When the server does not acknowledge in time.
   */
  async rendezvous(timeoutMs: number): Promise<void> {
    const acked = new Promise<void>((resolve) => this.#rdvAcked = resolve);
    const deadline = Date.now() + timeoutMs;
    let ok = false;
    void acked.then(() => ok = true);
    while (!ok && Date.now() < deadline) {
      await this.#sendRdv();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([acked, new Promise((r) => timer = setTimeout(r, 250))]);
      clearTimeout(timer);
    }
    if (!ok) {
      throw new Error(
        `UDP rendezvous with ${this.#o.serverHost}:${this.#o.port} got no answer within ` +
          `${timeoutMs / 1000} s: direct messages are unavailable (is UDP blocked?)`,
      );
    }
    if (this.#closed) return;
    this.#refresh = setInterval(() => this.#sendRdv().catch(() => {}), 20_000);
    Deno.unrefTimer(this.#refresh as unknown as number);
  }

  /**
   * Send a peer datagram along its path: directly, or wrapped in `RELAY` to the server.
   *
   * @param out The datagram and its path.
   */
  async send(out: LinkOutput): Promise<void> {
    if (out.path.kind === "direct") return await this.#sendTo(out.bytes, out.path.hostname, out.path.port);
    const relay = await tagDatagram(
      this.#o.udpKey,
      encodeRelay({ handle: this.#handle, counter: this.#counter++, to: out.path.relayId, inner: out.bytes }),
    );
    await this.#sendTo(relay, this.#o.serverHost, this.#o.port);
  }

  /** Close the socket; resolves once every datagram already read has been handled. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#refresh);
    try {
      this.#socket.close();
    } catch {
      // Already closed.
    }
    await this.#reader;
    // Datagrams still being checked may yet hand work to a link: let them finish first.
    await Promise.allSettled([...this.#handling]);
  }

  async #sendRdv(): Promise<void> {
    const bytes = await tagDatagram(
      this.#o.udpKey,
      encodeRdv({ handle: this.#handle, counter: this.#counter++ }),
    );
    await this.#sendTo(bytes, this.#o.serverHost, this.#o.port);
  }

  async #sendTo(bytes: Uint8Array, hostname: string, port: number): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#socket.send(bytes, { transport: "udp", hostname, port });
    } catch {
      // UDP is best effort; the reliable layer retransmits.
    }
  }

  async #read(): Promise<void> {
    // One buffer for every read: decoding copies the datagram before anything awaits, so the next read may
    // reuse it (a buffer per datagram is garbage the collector pays for at every message).
    const buffer = new Uint8Array(MAX_DATAGRAM + 1);
    while (!this.#closed) {
      let bytes: Uint8Array;
      let addr: Deno.NetAddr;
      try {
        const [b, a] = await this.#socket.receive(buffer);
        bytes = b;
        addr = a as Deno.NetAddr;
      } catch {
        return;
      }
      // Each datagram is checked without waiting for the one before; a flood must not pile up checks.
      if (this.#handling.size >= MAX_HANDLING) {
        this.stats.overloaded++;
        continue;
      }
      const handling: Promise<void> = this.#onDatagram(bytes, addr)
        .catch(() => void this.stats.malformed++)
        .finally(() => this.#handling.delete(handling));
      this.#handling.add(handling);
    }
  }

  async #onDatagram(bytes: Uint8Array, addr: Deno.NetAddr): Promise<void> {
    let d;
    try {
      d = decodeDatagram(bytes);
    } catch {
      return void this.stats.malformed++;
    }
    if (d.type === "RDV_ACK" || d.type === "RELAYED") {
      if (!await verifyDatagram(this.#o.udpKey, d)) return void this.stats.badServerTag++;
      if (d.type === "RDV_ACK") return this.#rdvAcked?.();
      return await this.#o.onPeer(d.peer, { kind: "relay", relayId: d.from });
    }
    if (d.type === "RDV" || d.type === "RELAY") return void this.stats.malformed++;
    await this.#o.onPeer(d, { kind: "direct", hostname: addr.hostname, port: addr.port });
  }
}
