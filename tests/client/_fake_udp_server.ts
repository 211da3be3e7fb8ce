/**
 * A UDP session server for client tests, built from the server's own engines (UdpAdmission,
 * ServerHandshake, UdpSessionStream) on a real socket on 127.0.0.1 (or another address), port 0. It echoes what a session
 * sends. Hooks make it misbehave as a test needs: ask a fixed difficulty, send a forged RETRY first, lose
 * FINISHes, or answer nothing at all.
 *
 * @module
 */

import { decodeRetry, encodeRetry, INIT_TYPE } from "../../lib/codec/udp_init.ts";
import { FINISH_TYPE, RECORD_TYPE } from "../../lib/codec/udp_session_datagram.ts";
import { mintServerCertificate } from "../../lib/crypto/certificate.ts";
import type { MintedCertificate } from "../../lib/crypto/certificate.ts";
import { UdpCookies } from "../../lib/crypto/udp_cookie.ts";
import { DelegatedSigner } from "../../lib/crypto/udp_delegated_credential.ts";
import { ServerHandshake } from "../../lib/crypto/udp_server_handshake.ts";
import { importUdpSigningKey } from "../../lib/crypto/udp_server_signature.ts";
import type { UdpSigningKey } from "../../lib/crypto/udp_server_signature.ts";
import { UdpAdmission } from "../../lib/server/udp_admission.ts";
import { UdpSessionStream } from "../../lib/transport/udp_session_stream.ts";

/** How the fake server behaves. */
export interface FakeUdpServerOptions {
  /** The certificate it signs with (default a fresh ECDSA one). */
  certificate?: MintedCertificate;
  /** The difficulty its RETRYs ask (default 0). */
  difficulty?: number;
  /** Before answering an INIT, send a RETRY with another echo asking for this difficulty. */
  forgedRetryDifficulty?: number;
  /** Lose this many FINISHes. */
  dropFinishes?: number;
  /** Lose the first fragment of this many ACCEPTs sent. */
  dropAccepts?: number;
  /** Answer nothing. */
  silent?: boolean;
  /** The address to listen on (default 127.0.0.1). */
  hostname?: string;
  /** Sign with a delegated Ed25519 key whose credential is made by this clock, Unix ms (default: direct). */
  credentialNow?: number;
}

/** What the fake server received and sent. */
export interface FakeUdpCounts {
  inits: number;
  retries: number;
  accepts: number;
  finishes: number;
  sessions: number;
}

/** The fake server. */
export class FakeUdpServer {
  readonly certificate: MintedCertificate;
  readonly counts: FakeUdpCounts = { inits: 0, retries: 0, accepts: 0, finishes: 0, sessions: 0 };
  /** The proof of work of the last INIT admitted, as a number (the solver counts from 0). */
  lastPowNonce = -1;
  #conn: Deno.DatagramConn;
  #options: FakeUdpServerOptions;
  #key: UdpSigningKey;
  #admission: UdpAdmission;
  #handshakes = new Map<string, ServerHandshake>();
  #streams: UdpSessionStream[] = [];
  #echoes: Promise<void>[] = [];
  #loop: Promise<void>;
  #dropFinishes: number;
  #dropAccepts: number;

  private constructor(certificate: MintedCertificate, key: UdpSigningKey, options: FakeUdpServerOptions) {
    this.certificate = certificate;
    this.#key = key;
    this.#options = options;
    this.#dropFinishes = options.dropFinishes ?? 0;
    this.#dropAccepts = options.dropAccepts ?? 0;
    const difficulty = options.difficulty ?? 0;
    this.#admission = new UdpAdmission({
      cookies: new UdpCookies(crypto.getRandomValues(new Uint8Array(32))),
      difficulty: { current: () => difficulty },
    });
    this.#conn = Deno.listenDatagram({
      transport: "udp",
      hostname: options.hostname ?? "127.0.0.1",
      port: 0,
    });
    this.#loop = this.#run();
  }

  /**
   * Start a server.
   *
   * @param options Its behaviour.
   * @returns The server, listening.
   */
  static async start(options: FakeUdpServerOptions = {}): Promise<FakeUdpServer> {
    const certificate = options.certificate ?? await mintServerCertificate({ days: 1 });
    const key = await importUdpSigningKey(certificate.certPem, certificate.keyPem);
    return new FakeUdpServer(certificate, key, options);
  }

  /** The UDP port. */
  get port(): number {
    return (this.#conn.addr as Deno.NetAddr).port;
  }

  async #run(): Promise<void> {
    try {
      for (;;) {
        const [data, from] = await this.#conn.receive();
        await this.#handle(data, from as Deno.NetAddr);
      }
    } catch {
      // Closed.
    }
  }

  #send(datagram: Uint8Array, to: Deno.NetAddr): void {
    this.#conn.send(datagram, to).catch(() => {});
  }

  async #handle(data: Uint8Array, from: Deno.NetAddr): Promise<void> {
    const source = `${from.hostname}:${from.port}`;
    if (data[2] === INIT_TYPE) {
      this.counts.inits++;
      if (this.#options.silent) return;
      if (this.#options.forgedRetryDifficulty !== undefined) {
        const forged = encodeRetry({
          echo: crypto.getRandomValues(new Uint8Array(32)),
          cookie: crypto.getRandomValues(new Uint8Array(29)),
          difficulty: this.#options.forgedRetryDifficulty,
        });
        this.#send(forged, from);
      }
      const decision = await this.#admission.decide(data, { hostname: from.hostname, port: from.port });
      if (decision.kind === "retry") {
        this.counts.retries++;
        decodeRetry(decision.bytes);
        this.#send(decision.bytes, from);
        return;
      }
      if (decision.kind !== "admit") return;
      this.lastPowNonce = Number(
        new DataView(decision.init.powNonce.buffer, decision.init.powNonce.byteOffset).getBigUint64(0),
      );
      const key = `${source}/${decision.init.clientRandom.toHex()}`;
      let handshake = this.#handshakes.get(key);
      if (handshake === undefined) {
        const credentialNow = this.#options.credentialNow;
        const responded = credentialNow === undefined
          ? await ServerHandshake.respond(decision.init, this.#key)
          : await ServerHandshake.respond(decision.init, new DelegatedSigner(this.#key), {
            now: credentialNow,
          });
        if (!responded.ok) return;
        handshake = responded.handshake;
        this.#handshakes.set(key, handshake);
        this.#handshakes.set(source, handshake);
      }
      const accepts = handshake.acceptDatagrams;
      if (this.#dropAccepts > 0) {
        this.#dropAccepts--;
        accepts.shift();
      }
      for (const accept of accepts) {
        this.counts.accepts++;
        this.#send(accept, from);
      }
      return;
    }
    if (data[2] === FINISH_TYPE) {
      this.counts.finishes++;
      if (this.#dropFinishes > 0) {
        this.#dropFinishes--;
        return;
      }
      const handshake = this.#handshakes.get(source);
      const finished = handshake?.receiveFinish(data);
      if (!finished?.ok) return;
      this.counts.sessions++;
      const stream = new UdpSessionStream({
        records: finished.session.records,
        send: (datagram) => this.#send(datagram, from),
      });
      this.#streams.push(stream);
      this.#echoes.push(echo(stream));
      return;
    }
    if (data[2] === RECORD_TYPE) {
      for (const stream of this.#streams) stream.receive(data);
    }
  }

  /** Stop: end every session, close the socket. */
  async close(): Promise<void> {
    for (const stream of this.#streams) stream.close();
    await Promise.all(this.#streams.map((s) => s.ended));
    await Promise.all(this.#echoes);
    this.#conn.close();
    await this.#loop;
  }
}

async function echo(stream: UdpSessionStream): Promise<void> {
  const buffer = new Uint8Array(65536);
  try {
    for (;;) {
      const n = await stream.read(buffer);
      if (n === null) return;
      await stream.write(buffer.subarray(0, n));
    }
  } catch {
    // Closed while writing.
  }
}
