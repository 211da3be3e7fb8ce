/**
 * The client's UDP side: a {@linkcode PeerLink} per peer, made on a send or
 * an incoming handshake after a server lookup, identity pinning, and send
 * promises that settle on acknowledgement or timeout. The socket, rendezvous
 * and relay wrapping are in `_chat_socket.ts`, the bounds on lookups in
 * `_peer_lookups.ts`, the per-link queue of work in `_link_queue.ts`, the
 * waiting sends in `_pending_sends.ts`.
 *
 * @module
 */

import { prepareUsername } from "../auth/username.ts";
import { decodeBase64 } from "../codec/base64.ts";
import type { PeerDatagram } from "../codec/datagram.ts";
import { importUdpKey } from "../crypto/datagram_tag.ts";
import type { UdpKey } from "../crypto/datagram_tag.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { identityFingerprint } from "../crypto/identity_key.ts";
import { ChatSocket } from "./_chat_socket.ts";
import { DeliveryLog } from "./_delivery_log.ts";
import { LinkQueue } from "./_link_queue.ts";
import { remember } from "./_memo.ts";
import {
  ForgedHandshake,
  hs1Check,
  isUserKey,
  LookupsBusy,
  PeerKeyChangedError,
  PeerLookups,
} from "./_peer_lookups.ts";

export { PeerKeyChangedError } from "./_peer_lookups.ts";
export type { ChatControl, ChatNodeOptions, ChatNodeStats } from "./chat_node_options.ts";
import type { ChatNodeOptions, ChatNodeStats } from "./chat_node_options.ts";
import { PeerLink } from "./peer_link.ts";
import { PendingSends } from "./_pending_sends.ts";
import type { SendLink } from "./_pending_sends.ts";
import type { PeerPath } from "./peer_link.ts";

interface LinkState extends SendLink {
  link: PeerLink;
  /** The user's key and name as stored. */
  key: string;
  name: string;
  /** The identity key the link was made with. */
  peerKey: Uint8Array;
  queue: LinkQueue;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** When the server was last asked where the peer is, and whether it is being asked now. */
  lookedUpAt: number;
  lookingUp: boolean;
}

/**
 * Sends to a peer unacknowledged this long make the node ask the server again where the peer is: the
 * session that received them may have ended while the user stays online with another one.
 */
const REFRESH_MS = 1500;
/** Peers whose delivered messages are remembered past their link; the oldest log goes first. */
const MAX_LOGS = 1024;

const decoder = new TextDecoder();
const encoder = new TextEncoder();

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
  #pending = new PendingSends<LinkState>();
  #nextId = 1;
  #keys = new Map<string, string>();
  /**
   * What each peer's messages delivered so far, kept past a link: a link made anew (the old one was
   * forgotten on a presence notice) must still drop a message an old session of the peer carries again.
   */
  #logs = new Map<string, DeliveryLog>();
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
    overloaded: 0,
    delivered: 0,
    repeated: 0,
  };

  private constructor(options: ChatNodeOptions, udpKey: UdpKey) {
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
    const { malformed, badServerTag, overloaded } = this.#socket.stats;
    const s = { malformed, badServerTag, ...this.#stats };
    s.overloaded += overloaded;
    for (const { link } of this.#links.values()) {
      s.forged += link.stats.forged;
      s.replayed += link.stats.replayed;
      s.badSignature += link.stats.badSignature;
      s.repeated += link.stats.repeated;
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
    const key = this.#userKey(user);
    if (key === this.#me) throw new Error("Cannot send a message to yourself");
    const bytes = encoder.encode(text);
    if (bytes.length > 65536) throw new RangeError(`Message too large: ${bytes.length} bytes exceeds 65536`);
    if (this.#closed) throw new Error("Not delivered: the client is closing");
    let state = await this.#linkFor(key, user);
    // Closed while the server was asked: a timer set now would outlive the node.
    if (this.#closed) throw new Error("Not delivered: the client is closing");
    // The link was forgotten meanwhile (a presence notice): a message on it would go nowhere.
    for (let tries = 0; this.#links.get(key) !== state && tries < 3; tries++) {
      state = await this.#linkFor(key, user);
      if (this.#closed) throw new Error("Not delivered: the client is closing");
    }
    const id = this.#nextId++;
    // Queued first: a refusal (RangeError) leaves no pending send or timer behind.
    state.link.send(bytes, id);
    const timeoutMs = this.#o.sendTimeoutMs ?? 10_000;
    const done = this.#pending.wait(id, state, timeoutMs, () => {
      // The link is given up with everything on it, so nothing reported as not delivered is sent again
      // later; the next send starts afresh from a server lookup.
      this.#drop(
        state,
        (other) =>
          other === id
            ? `Not delivered within ${timeoutMs / 1000} s: ${state.name} did not acknowledge it`
            : `Not delivered: an earlier message to ${state.name} was not acknowledged in time`,
      );
    });
    this.#pump(state);
    return await done;
  }

  /** The user key of a name as typed (SASLprep and lower case), remembered for the names in use. */
  #userKey(user: string): string {
    return this.#keys.get(user) ?? remember(this.#keys, user, prepareUsername(user).key, 1024);
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
    if (state) this.#drop(state, () => `Not delivered: ${why}`);
  }

  /**
   * A user came online (anew, or announced a new identity key): an idle link to them is forgotten, so the
   * next send looks them up afresh. Sends waiting on a link are kept, and the server is asked at once where
   * the user is now: the link moves to a new session, stays if nothing changed, or ends (failing the sends)
   * if the user went away or their key changed. The notice may be the late, coalesced echo of a login the
   * link already follows, so failing the sends would report messages as lost that are being delivered.
   *
   * @param user The user.
   */
  refresh(user: string): void {
    const state = this.#links.get(prepareUsername(user).key);
    if (!state || state.pending === 0) return this.forget(user, `${user} logged in anew`);
    this.#peers.forget(state.key);
    this.#maybeLookUp(state, Date.now(), true);
  }

  /** Close a link and fail its pending sends. */
  #drop(state: LinkState, why: (id: number) => string): void {
    if (this.#links.get(state.key) === state) this.#links.delete(state.key);
    this.#peers.forget(state.key);
    clearTimeout(state.timer);
    state.link.close();
    this.#pending.failLink(state, why);
  }

  /** Close the socket; pending sends fail. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const state of this.#links.values()) clearTimeout(state.timer);
    this.#pending.failAll("Not delivered: the client is closing");
    await this.#socket.close();
    await Promise.allSettled([...this.#links.values()].map((s) => s.queue.settled));
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
    // Each datagram costs an authentication check on the chain: a flood must not queue work without bound
    // ahead of the peer's own datagrams (the reliable layer sends again what is dropped here).
    const queued = target.queue.admit(d.type !== "DATA", async () => {
      try {
        await target.link.receive(d, path, Date.now());
        for (const message of target.link.takeDelivered()) {
          this.#stats.delivered++;
          this.#o.onMessage(target.name, decoder.decode(message));
        }
        this.#settle(target);
      } finally {
        // The last of a burst of datagrams pumps: one acknowledgement then covers them all.
        if (target.queue.idle) this.#pump(target);
      }
    });
    if (!queued) this.#stats.overloaded++;
  }

  #settle(state: LinkState): void {
    this.#pending.acknowledged(state.link.takeAcknowledged());
  }

  #pump(state: LinkState): void {
    state.queue.pump(async () => {
      if (this.#closed || this.#links.get(state.key) !== state) return;
      const now = Date.now();
      for (const out of await state.link.poll(now)) await this.#socket.send(out);
      this.#settle(state);
      this.#maybeLookUp(state, now);
      clearTimeout(state.timer);
      let next = state.link.nextWakeup();
      if (state.pending > 0) {
        const lookup = Math.max(state.progressAt, state.lookedUpAt) + REFRESH_MS;
        next = next === null ? lookup : Math.min(next, lookup);
      }
      if (next !== null && !this.#closed) {
        state.timer = setTimeout(() => this.#pump(state), Math.max(0, next - Date.now()));
      }
    });
  }

  /**
   * Sends stalled: ask the server where the peer is now. A new relay id is a new session of the peer (the
   * one we talked to ended, or the user logged in anew): the link moves to it and sends again what the old
   * one did not acknowledge. A new identity key, or the user gone, ends the link.
   */
  #maybeLookUp(state: LinkState, now: number, force = false): void {
    if (state.pending === 0 || state.lookingUp) return;
    if (!force && (now - state.progressAt < REFRESH_MS || now - state.lookedUpAt < REFRESH_MS)) return;
    state.lookingUp = true;
    state.lookedUpAt = now;
    this.#peers.recheck(state.name, { key: state.peerKey, relayId: state.link.relayId }).then((found) => {
      if (this.#closed || this.#links.get(state.key) !== state || found.kind === "same") return;
      if (found.kind === "gone") return this.#drop(state, () => `Not delivered: ${found.why}`);
      state.queue.run(() => Promise.resolve(state.link.updatePeer(found)));
      this.#pump(state);
    }).finally(() => state.lookingUp = false);
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
    const state: LinkState = {
      link: null!,
      key,
      name: info.user,
      peerKey,
      queue: new LinkQueue(),
      timer: undefined,
      pending: 0,
      progressAt: 0,
      lookedUpAt: Date.now(),
      lookingUp: false,
    };
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
      deliveryLog: this.#deliveryLog(key),
    });
    this.#links.set(key, state);
    return state;
  }

  /** The log of what a peer delivered, kept across its links; the least recently linked peer's goes first. */
  #deliveryLog(key: string): DeliveryLog {
    const log = this.#logs.get(key) ?? new DeliveryLog();
    this.#logs.delete(key);
    return remember(this.#logs, key, log, MAX_LOGS);
  }
}
