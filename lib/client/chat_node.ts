/**
 * The client's UDP side: a {@linkcode PeerLink} per peer, made on a send or
 * an incoming handshake after a server lookup, identity pinning, and send
 * promises that settle on acknowledgement or timeout. The socket, rendezvous
 * and relay wrapping are in `_chat_socket.ts`, the bounds on lookups in
 * `_peer_lookups.ts`.
 *
 * @module
 */

import { prepareUsername } from "../auth/username.ts";
import { decodeBase64 } from "../codec/base64.ts";
import { importUdpKey } from "../codec/datagram.ts";
import type { PeerDatagram } from "../codec/datagram.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { identityFingerprint } from "../crypto/identity_key.ts";
import type { Identity } from "../crypto/identity_key.ts";
import type { ReliableChannelOptions } from "../transport/reliable_channel.ts";
import type { PeerInfo } from "./authchat_client.ts";
import type { KnownPeers } from "./known_peers.ts";
import { ChatSocket } from "./_chat_socket.ts";
import { ForgedHandshake, hs1Check, isUserKey, LookupsBusy, PeerLookups } from "./_peer_lookups.ts";
import { PeerLink } from "./peer_link.ts";
import type { PeerPath } from "./peer_link.ts";

/** What the node needs from the logged-in control connection. */
export interface ChatControl {
  /** Our account name as stored. */
  user: string;
  /** Our identity key. */
  identity: Identity;
  /** UDP credentials from LOGIN. */
  udp: { port: number; handle: string; relayId: number; key: Uint8Array<ArrayBuffer> };
  /**
   * Ask the server where a user is.
   *
   * @param user The user.
   * @returns The PEER reply.
   */
  peer(user: string): Promise<PeerInfo>;
}

/** Options of {@linkcode ChatNode.start}. */
export interface ChatNodeOptions {
  /** The control connection's credentials and lookups. */
  control: ChatControl;
  /** Server host (the UDP rendezvous is on the same host). */
  serverHost: string;
  /** Pins of peers' identity keys, and the name of this server in that file. */
  knownPeers: KnownPeers;
  /** The server's name in the pin file (`host:port`). */
  serverName: string;
  /** A message arrived. */
  onMessage(from: string, text: string): void;
  /** Something the user must see (a refused key change). */
  onWarning(line: string): void;
  /** Send through the relay only (default false). */
  relayOnly?: boolean;
  /** How long a send may take before it fails (default 10 s). */
  sendTimeoutMs?: number;
  /** How long the rendezvous may take (default 5 s). */
  rendezvousTimeoutMs?: number;
  /** Without a reply this long on the direct path, use the relay (default 800 ms). */
  directTimeoutMs?: number;
  /** Reliable channel tuning (tests). */
  reliable?: ReliableChannelOptions;
  /** Cipher rekey threshold (tests). */
  rekeyAfter?: number;
}

/** Counters of a node: datagrams dropped and why. */
export interface ChatNodeStats {
  malformed: number;
  badServerTag: number;
  unknownSession: number;
  unknownSender: number;
  forged: number;
  replayed: number;
  badSignature: number;
  /** HS1s from users with no link dropped unchecked: too many server lookups were under way. */
  lookupsBusy: number;
  delivered: number;
}

interface PendingSend {
  resolve(): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
  link: PeerLink;
}

interface LinkState {
  link: PeerLink;
  name: string;
  chain: Promise<void>;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A key-changed refusal. */
export class PeerKeyChangedError extends Error {
  /**
   * Make the error.
   *
   * @param user The peer.
   * @param fingerprint The new key's fingerprint.
   */
  constructor(user: string, fingerprint: string) {
    super(
      `WARNING: the identity key of ${user} has CHANGED (now ${fingerprint}). Someone may be impersonating ` +
        `them, or they made a new key. Compare safety numbers with "fingerprint ${user}" over another channel, ` +
        `then run "trust ${user}" to accept it. Nothing was sent.`,
    );
    this.name = "PeerKeyChangedError";
  }
}

/**
 * The UDP side of a logged-in client.
 *
 * @example
 * ```ts ignore
 * const node = await ChatNode.start({ control, serverHost: "127.0.0.1", knownPeers, serverName, onMessage, onWarning });
 * await node.send("bob", "hi"); // resolves once bob's client acknowledged it
 * await node.close();
 * ```
 */
export class ChatNode {
  #o: ChatNodeOptions;
  #socket: ChatSocket;
  #peers: PeerLookups;
  #me: string;
  #links = new Map<string, LinkState>();
  #bySession = new Map<string, LinkState>();
  /** Links being made, and whether an incoming HS1 asked for it (such a lookup is made only once). */
  #lookups = new Map<string, { made: Promise<LinkState>; incoming: boolean }>();
  #pending = new Map<number, PendingSend>();
  #nextId = 1;
  #closed = false;
  /** Key-change warnings already shown: a peer retrying its handshake must not repeat them. */
  #warned = new Set<string>();
  #stats = {
    unknownSession: 0,
    unknownSender: 0,
    forged: 0,
    replayed: 0,
    badSignature: 0,
    lookupsBusy: 0,
    delivered: 0,
  };

  private constructor(options: ChatNodeOptions, udpKey: CryptoKey) {
    this.#o = options;
    const { port, handle } = options.control.udp;
    this.#socket = new ChatSocket({
      serverHost: options.serverHost,
      port,
      handle,
      udpKey,
      onPeer: (d, path) => this.#onPeer(d, path),
    });
    this.#peers = new PeerLookups((user) => options.control.peer(user));
    this.#me = prepareUsername(options.control.user).key;
  }

  /**
   * Bind a UDP socket and prove the session to the server's rendezvous.
   *
   * @param options Control connection, server, pins and callbacks.
   * @returns The running node.
   * @throws {Error} When the server does not acknowledge the rendezvous in time.
   */
  static async start(options: ChatNodeOptions): Promise<ChatNode> {
    const node = new ChatNode(options, await importUdpKey(options.control.udp.key));
    try {
      await node.#socket.rendezvous(options.rendezvousTimeoutMs ?? 5000);
    } catch (err) {
      await node.close();
      throw err;
    }
    return node;
  }

  /** Drop counters, summed over every peer. */
  get stats(): ChatNodeStats {
    const { malformed, badServerTag } = this.#socket.stats;
    const s = { malformed, badServerTag, ...this.#stats };
    for (const { link } of this.#links.values()) {
      s.forged += link.stats.forged;
      s.replayed += link.stats.replayed;
      s.badSignature += link.stats.badSignature;
    }
    return s;
  }

  /**
   * Send a message; resolves when the peer's client acknowledged it.
   *
   * @param user The recipient.
   * @param text The message (at most 64 KiB of UTF-8).
   * @throws {ProtocolError} `UNKNOWN_USER`, `USER_OFFLINE` and other lookup errors.
   * @throws {PeerKeyChangedError} When the recipient's key differs from the pinned one.
   * @throws {Error} When it is not acknowledged within the send timeout.
   */
  async send(user: string, text: string): Promise<void> {
    const key = prepareUsername(user).key;
    if (key === this.#me) throw new Error("Cannot send a message to yourself");
    const bytes = encoder.encode(text);
    if (bytes.length > 65536) throw new RangeError(`Message too large: ${bytes.length} bytes exceeds 65536`);
    if (this.#closed) throw new Error("Not delivered: the client is closing");
    const state = await this.#linkFor(key, user);
    // Closed while the server was asked: a timer set now would outlive the node.
    if (this.#closed) throw new Error("Not delivered: the client is closing");
    const id = this.#nextId++;
    // Queued first: a refusal (RangeError) leaves no pending send or timer behind.
    state.link.send(bytes, id);
    const timeoutMs = this.#o.sendTimeoutMs ?? 10_000;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        state.link.cancel(id);
        reject(new Error(`Not delivered within ${timeoutMs / 1000} s: ${state.name} did not acknowledge it`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer, link: state.link });
    });
    this.#pump(state);
    return await done;
  }

  /**
   * Forget a user's link (they went offline or logged in anew); pending sends to them fail.
   *
   * @param user The user.
   * @param why Text for the failed sends.
   */
  forget(user: string, why: string): void {
    const key = prepareUsername(user).key;
    this.#peers.forget(key);
    const state = this.#links.get(key);
    if (!state) return;
    this.#links.delete(key);
    clearTimeout(state.timer);
    state.link.close();
    for (const [id, p] of this.#pending) {
      if (p.link !== state.link) continue;
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new Error(`Not delivered: ${why}`));
    }
  }

  /** Close the socket; pending sends fail. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const state of this.#links.values()) clearTimeout(state.timer);
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error("Not delivered: the client is closing"));
    }
    this.#pending.clear();
    await this.#socket.close();
    await Promise.allSettled([...this.#links.values()].map((s) => s.chain));
  }

  async #onPeer(d: PeerDatagram, path: PeerPath): Promise<void> {
    let state: LinkState | undefined;
    if (d.type === "DATA") {
      state = this.#bySession.get(d.session.toHex());
      if (!state) return void this.#stats.unknownSession++;
    } else {
      if (d.to !== this.#me || !isUserKey(d.from)) return void this.#stats.unknownSender++;
      state = this.#links.get(d.from);
      if (!state && d.type === "HS1") {
        try {
          state = await this.#linkFor(d.from, d.from, hs1Check(d));
        } catch (err) {
          if (err instanceof ForgedHandshake) return void this.#stats.badSignature++;
          if (err instanceof LookupsBusy) return void this.#stats.lookupsBusy++;
          if (err instanceof PeerKeyChangedError && !this.#warned.has(err.message)) {
            this.#warned.add(err.message);
            this.#o.onWarning(err.message);
          }
          return void this.#stats.unknownSender++;
        }
      }
      if (!state) return void this.#stats.unknownSender++;
    }
    const target = state;
    this.#serialize(target, async () => {
      await target.link.receive(d, path, Date.now());
      for (const message of target.link.takeDelivered()) {
        this.#stats.delivered++;
        this.#o.onMessage(target.name, decoder.decode(message));
      }
      this.#settle(target);
    });
    this.#pump(target);
  }

  #settle(state: LinkState): void {
    for (const id of state.link.takeAcknowledged()) {
      const p = this.#pending.get(id);
      if (!p) continue;
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.resolve();
    }
  }

  /** Run link work one at a time: the link's methods await crypto between steps. */
  #serialize(state: LinkState, work: () => Promise<void>): void {
    state.chain = state.chain.then(work).catch(() => {});
  }

  #pump(state: LinkState): void {
    this.#serialize(state, async () => {
      if (this.#closed || this.#links.get(prepareUsername(state.name).key) !== state) return;
      const now = Date.now();
      for (const out of await state.link.poll(now)) await this.#socket.send(out);
      this.#settle(state);
      clearTimeout(state.timer);
      const next = state.link.nextWakeup();
      if (next !== null && !this.#closed) {
        state.timer = setTimeout(() => this.#pump(state), Math.max(0, next - Date.now()));
      }
    });
  }

  /**
   * The link to a user: looked up at the server, its key checked against the pin. For a link made by an
   * incoming HS1, `check` first verifies the HS1 with the key found, so nothing forged gets pinned; a send
   * that finds such a lookup under way makes its own if that one fails.
   */
  #linkFor(
    key: string,
    name: string,
    check?: (peerKey: Uint8Array<ArrayBuffer>) => Promise<boolean>,
  ): Promise<LinkState> {
    const existing = this.#links.get(key);
    if (existing) return Promise.resolve(existing);
    const under = this.#lookups.get(key);
    if (under) {
      return under.incoming && !check ? under.made.catch(() => this.#linkFor(key, name)) : under.made;
    }
    const made = this.#makeLink(key, name, check).finally(() => this.#lookups.delete(key));
    this.#lookups.set(key, { made, incoming: check !== undefined });
    return made;
  }

  async #makeLink(
    key: string,
    name: string,
    check?: (peerKey: Uint8Array<ArrayBuffer>) => Promise<boolean>,
  ): Promise<LinkState> {
    const info = check ? await this.#peers.forHandshake(key) : await this.#peers.forSend(name);
    const peerKey = decodeBase64(info.key);
    if (!peerKey || peerKey.length !== 32) throw new ProtocolError("BAD_MESSAGE", "Peer key is not 32 bytes");
    if (check && !await check(peerKey)) throw new ForgedHandshake("HS1 signature does not verify");
    if (this.#closed) throw new Error("Not delivered: the client is closing");
    const status = await this.#o.knownPeers.check(this.#o.serverName, key, peerKey);
    if (status === "changed") {
      throw new PeerKeyChangedError(info.user, await identityFingerprint(new Uint8Array(peerKey)));
    }
    if (status === "new") await this.#o.knownPeers.pin(this.#o.serverName, key, peerKey);
    const state: LinkState = { link: null!, name: info.user, chain: Promise.resolve(), timer: undefined };
    state.link = new PeerLink({
      me: this.#me,
      peer: key,
      identity: this.#o.control.identity,
      peerKey: new Uint8Array(peerKey),
      direct: this.#o.relayOnly ? null : { hostname: info.address, port: info.port },
      relayId: info.relay_id,
      ...(this.#o.reliable ? { reliable: this.#o.reliable } : {}),
      ...(this.#o.rekeyAfter === undefined ? {} : { rekeyAfter: this.#o.rekeyAfter }),
      ...(this.#o.directTimeoutMs === undefined ? {} : { directTimeoutMs: this.#o.directTimeoutMs }),
      ...(this.#o.relayOnly ? { relayOnly: true } : {}),
      onSession: (id, alive) => alive ? this.#bySession.set(id, state) : this.#bySession.delete(id),
    });
    this.#links.set(key, state);
    return state;
  }
}
