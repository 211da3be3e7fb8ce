/**
 * One peer of the chat, sans I/O: the signed X25519 handshake, per-session
 * AES-256-GCM ciphers, one reliable channel per session, and the choice of
 * path (direct, or the server's relay when the direct path does not deliver).
 * The node around it owns the socket, the clock and the server lookups. See
 * docs/PROTOCOL.md, "Direct messages".
 *
 * @module
 */

import { TokenBucket } from "../auth/token_bucket.ts";
import type { DataDatagram, Hs1Datagram, Hs2Datagram, PeerDatagram } from "../codec/datagram.ts";
import type { Identity } from "../crypto/identity_key.ts";
import type { EphemeralKeyPair } from "../crypto/peer_session.ts";
import type { ReliableChannelOptions } from "../transport/reliable_channel.ts";
import { answerHs1, finishHs2, hs1Authentic, hs2Authentic, makeHs1 } from "./_link_handshake.ts";
import { DeliveryLog } from "./_delivery_log.ts";
import { LinkSessions } from "./_link_sessions.ts";
import type { LinkSession, QueuedMessage } from "./_link_sessions.ts";
import { decodeNumbered, encodeNumbered, INSTANCE_BYTES, MESSAGE_HEADER_BYTES } from "./_message_header.ts";

/** How datagrams reach a peer. */
export type PeerPath =
  | { kind: "direct"; hostname: string; port: number }
  | { kind: "relay"; relayId: number };

/** A peer datagram to send. */
export interface LinkOutput {
  path: PeerPath;
  bytes: Uint8Array<ArrayBuffer>;
}

/** Options of {@linkcode PeerLink}. */
export interface PeerLinkOptions {
  /** Our user key (lower-cased name). */
  me: string;
  /** The peer's user key. */
  peer: string;
  /** Our identity key. */
  identity: Identity;
  /** The peer's identity public key, already checked against the pin. */
  peerKey: Uint8Array<ArrayBuffer>;
  /** The peer's direct address, when known. */
  direct: { hostname: string; port: number } | null;
  /** The peer's relay id, when known. */
  relayId: number | null;
  /** Without a reply this long on the direct path, use the relay (default 800 ms). */
  directTimeoutMs?: number;
  /** Without a reply this long while data is outstanding, start a new handshake (default 3000 ms). */
  rehandshakeMs?: number;
  /** Rekey threshold of the ciphers (default: the cipher's). */
  rekeyAfter?: number;
  /** Reliable channel tuning. */
  reliable?: ReliableChannelOptions;
  /** Never send directly, only through the relay (default false). */
  relayOnly?: boolean;
  /** Told when a session id starts or stops being ours, so DATA can be routed here. */
  onSession?: (sessionId: string, alive: boolean) => void;
  /**
   * What was delivered from this peer (default: a log of this link's own). A node passes the peer's log to
   * every link it makes to them, so a link made anew still drops what an earlier one delivered.
   */
  deliveryLog?: DeliveryLog;
}

/** Counters of a {@linkcode PeerLink}. */
export interface PeerLinkStats {
  handshakes: number;
  badSignature: number;
  unexpected: number;
  forged: number;
  replayed: number;
  relayFallbacks: number;
  /** Authentic HS1s beyond the handshake budget (replays of old ones), dropped unanswered. */
  overBudget: number;
  /** Messages delivered before (on another session), dropped. */
  repeated: number;
  /** Authentic messages too short for their header, or numbered 0, dropped. */
  badHeader: number;
}

interface Initiation {
  eph: EphemeralKeyPair;
  hs1: Uint8Array<ArrayBuffer>;
  startedAt: number;
  nextAt: number;
  rtoMs: number;
  /** A new handshake after silence replaces the old session and takes over its messages. */
  replace: boolean;
}

/** HS1s whose HS2 is kept, so their retransmissions (or replays) are answered without new work. */
const MAX_ANSWERED = 16;
/** New sessions an authentic HS1 may start: this many at once, then one per `HS1_REFILL_MS`. */
const HS1_BURST = 8;
const HS1_REFILL_MS = 500;

/**
 * The link to one peer.
 *
 * @example
 * ```ts ignore
 * const link = new PeerLink({ me: "alice", peer: "bob", identity, peerKey, direct, relayId });
 * link.send(new TextEncoder().encode("hi"), 1);
 * for (const out of await link.poll(Date.now())) socket.send(out.bytes, out.path);
 * ```
 */
export class PeerLink {
  #o: PeerLinkOptions;
  #sessions: LinkSessions;
  #init: Initiation | null = null;
  #answered = new Map<string, { hs2: Uint8Array<ArrayBuffer> }>();
  #queue: QueuedMessage[] = [];
  #outbox: LinkOutput[] = [];
  #path: PeerPath | null;
  #relayOnly: boolean;
  #lastHeard = 0;
  /** Since when messages have been queued or unacknowledged without a break, or `null`. */
  #waitingSince: number | null = null;
  /** The queue cannot move into a session until something arrives (a full channel, or an old one draining). */
  #blocked = false;
  #delivered: Uint8Array<ArrayBuffer>[] = [];
  #acked: number[] = [];
  /** Closed links ignore whatever was still queued for them: no new session, nothing sent. */
  #closed = false;
  #stats = {
    handshakes: 0,
    badSignature: 0,
    unexpected: 0,
    relayFallbacks: 0,
    overBudget: 0,
    repeated: 0,
    badHeader: 0,
  };
  /** Numbers our messages across sessions; random, so a restarted client's messages are not repeats. */
  #instance = crypto.getRandomValues(new Uint8Array(INSTANCE_BYTES));
  #lastNumber = 0;
  #log: DeliveryLog;
  /** Replayed HS1s are authentic, and each would cost an X25519 exchange and a session: they are budgeted. */
  #hs1Budget = new TokenBucket({ perMinute: 60_000 / HS1_REFILL_MS, burst: HS1_BURST, key: () => "" });

  /**
   * Make a link; nothing is sent until there is something to send or a handshake arrives.
   *
   * @param options Names, keys and addresses.
   */
  constructor(options: PeerLinkOptions) {
    this.#o = options;
    this.#log = options.deliveryLog ?? new DeliveryLog();
    // Channels carry each message with its header.
    const reliable = { ...options.reliable, maxMessage: this.#maxMessage + MESSAGE_HEADER_BYTES };
    this.#sessions = new LinkSessions({ ...options, reliable }, (messages) => {
      // Whatever a session gave back goes out again, in the order it was first sent.
      this.#blocked = false;
      if (messages.length === 0) return;
      this.#queue.push(...messages);
      this.#queue.sort((a, b) => a.id - b.id);
    });
    this.#relayOnly = (options.relayOnly ?? false) && options.relayId !== null;
    this.#path = options.direct && !this.#relayOnly
      ? { kind: "direct", ...options.direct }
      : options.relayId !== null
      ? { kind: "relay", relayId: options.relayId }
      : null;
  }

  /** Counters. */
  get stats(): PeerLinkStats {
    return { ...this.#stats, ...this.#sessions.cipherStats };
  }

  /** The path datagrams take now. */
  get path(): PeerPath | null {
    return this.#path;
  }

  /** The peer's relay id, when known. */
  get relayId(): number | null {
    return this.#o.relayId;
  }

  /**
   * Queue a message.
   *
   * @param bytes The message (at most 64 KiB).
   * @param id The caller's id, reported by {@linkcode takeAcknowledged}; ids must grow in send order
   *   (messages taken back from a dropped session are queued again in id order).
   * @throws {RangeError} When the message is too large.
   */
  send(bytes: Uint8Array, id: number): void {
    const max = this.#maxMessage;
    if (bytes.length > max) throw new RangeError(`Message too large: ${bytes.length} bytes exceeds ${max}`);
    // Numbered once: a message queued again on another session keeps its number, so the peer knows it.
    this.#queue.push({ id, bytes: encodeNumbered(this.#instance, ++this.#lastNumber, bytes) });
  }

  get #maxMessage(): number {
    return this.#o.reliable?.maxMessage ?? 65536;
  }

  /**
   * The server told us where the peer is now. A new relay id means a new login of the peer (a
   * restarted client): its sessions are gone, so ours are dropped and their messages sent again.
   *
   * @param peer Direct address and relay id from PEER.
   */
  updatePeer(peer: { direct: { hostname: string; port: number }; relayId: number }): void {
    const restarted = this.#o.relayId !== null && peer.relayId !== this.#o.relayId;
    this.#o.relayId = peer.relayId;
    this.#o.direct = peer.direct;
    if (restarted) {
      this.#dropSessions();
      this.#relayOnly = this.#o.relayOnly ?? false;
    }
    this.#path = this.#relayOnly
      ? { kind: "relay", relayId: peer.relayId }
      : { kind: "direct", ...peer.direct };
  }

  /**
   * Handle a datagram from the peer (HS1 and HS2 routed by name, DATA by session id).
   *
   * @param d The decoded datagram.
   * @param path Where it came from.
   * @param now Current time in ms.
   */
  async receive(d: PeerDatagram, path: PeerPath, now: number): Promise<void> {
    if (this.#closed) return;
    // Whatever arrives may unblock the queue (acknowledgements, a new session): worth one more poll.
    this.#blocked = false;
    if (d.type === "HS1") return await this.#onHs1(d, path, now);
    if (d.type === "HS2") return await this.#onHs2(d, path, now);
    await this.#onData(d, path, now);
  }

  /**
   * What to send now: handshakes, and each session's packets sealed.
   *
   * @param now Current time in ms.
   * @returns Datagrams and their paths.
   */
  async poll(now: number): Promise<LinkOutput[]> {
    if (this.#closed) return [];
    const out = this.#outbox;
    this.#outbox = [];
    this.#sessions.judgeSuspects(now);
    this.#feedCurrent(now);
    const current = this.#sessions.current;
    const busy = [...this.#sessions.all()].filter((s) => s.ids.size > 0);
    const waiting = this.#queue.length > 0 || busy.length > 0;
    // Silence is counted from when there was something to hear about: not across an idle spell.
    this.#waitingSince = waiting ? this.#waitingSince ?? now : null;
    if (!this.#init && !this.#sessions.suspecting && waiting) {
      if (!current) await this.#initiate(now, false);
      else if (current.cipher.needsRekey) await this.#initiate(now, false);
      else if (now - this.#heardSince(busy, current) > (this.#o.rehandshakeMs ?? 3000)) {
        // Silence on a session carrying our messages: the peer may have restarted and lost it (even
        // if it talks to us on a newer session of its own).
        await this.#initiate(now, true);
      }
    }
    this.#maybeFallBack(now, waiting);
    const init = this.#init;
    if (init && now >= init.nextAt && this.#path) {
      out.push({ path: this.#path, bytes: init.hs1 });
      init.rtoMs = Math.min(init.rtoMs * 2, 2000);
      init.nextAt = now + init.rtoMs;
    }
    if (this.#path) {
      for (const session of this.#sessions.all()) {
        for (const packet of session.channel.poll(now)) {
          out.push({ path: this.#path, bytes: await session.cipher.seal(packet) });
        }
      }
    }
    this.#sessions.expire(now);
    return out;
  }

  /** When {@linkcode poll} must run again, or `null` when nothing is pending. */
  nextWakeup(): number | null {
    if (this.#outbox.length > 0 || (this.#queue.length > 0 && !this.#blocked)) return 0;
    let next: number | null = this.#init?.nextAt ?? this.#sessions.takeoverAt;
    for (const s of this.#sessions.all()) {
      const w = s.channel.nextWakeup();
      if (w !== null && (next === null || w < next)) next = w;
    }
    return next;
  }

  /** Messages received, in order, each once. */
  takeDelivered(): Uint8Array<ArrayBuffer>[] {
    const out = this.#delivered;
    this.#delivered = [];
    return out;
  }

  /** Ids of messages the peer acknowledged, each only once it was delivered (it and all before it). */
  takeAcknowledged(): number[] {
    const out = this.#acked;
    this.#acked = [];
    return out;
  }

  /** Forget every session and every message (the peer went offline, or the link was given up), for good. */
  close(): void {
    this.#closed = true;
    this.#dropSessions();
    this.#queue = [];
    this.#outbox = [];
  }

  #feedCurrent(now: number): void {
    const current = this.#sessions.current;
    this.#blocked = this.#queue.length > 0;
    // A session due for a rekey takes no new messages: they wait for the new handshake.
    if (!current?.confirmed || current.cipher.needsRekey || this.#queue.length === 0) return;
    // Messages still unacknowledged on an older session go first: two sessions would not keep the order.
    for (const s of this.#sessions.all()) if (s !== current && s.ids.size > 0) return;
    while (this.#queue.length > 0) {
      const next = this.#queue[0]!;
      try {
        if (current.ids.size === 0) current.busySince = now;
        current.ids.set(current.channel.send(next.bytes), next);
      } catch {
        return; // The channel is full; the rest waits for acknowledgements.
      }
      this.#queue.shift();
    }
    this.#blocked = false;
  }

  /** Since when a session carrying our messages (the current one when none does) has been silent. */
  #heardSince(busy: LinkSession[], current: LinkSession): number {
    const since = (s: LinkSession) => Math.max(s.lastHeard, s.busySince);
    const heard = busy.length > 0 ? Math.min(...busy.map(since)) : current.lastHeard;
    return Math.max(heard, this.#waitingSince ?? heard);
  }

  #maybeFallBack(now: number, waiting: boolean): void {
    if (this.#relayOnly || this.#o.relayId === null) return;
    const limit = this.#o.directTimeoutMs ?? 800;
    const stalledInit = this.#init !== null && now - this.#init.startedAt > limit;
    const current = this.#sessions.current;
    const heard = Math.max(this.#lastHeard, current?.lastHeard ?? 0, this.#waitingSince ?? 0);
    const stalledData = waiting && current !== null && !this.#init && now - heard > limit &&
      (current.channel.stats.retransmitted > 0);
    if (!stalledInit && !stalledData && this.#path !== null) return;
    this.#relayOnly = true;
    this.#stats.relayFallbacks++;
    this.#path = { kind: "relay", relayId: this.#o.relayId };
    if (this.#init) this.#init.nextAt = now;
  }

  async #initiate(now: number, replace: boolean): Promise<void> {
    const { eph, hs1 } = await makeHs1(this.#o);
    this.#init = { eph, hs1, startedAt: now, nextAt: now, rtoMs: 250, replace };
  }

  async #onHs1(d: Hs1Datagram, path: PeerPath, now: number): Promise<void> {
    if (d.from !== this.#o.peer || d.to !== this.#o.me) return void this.#stats.unexpected++;
    if (!await hs1Authentic(this.#o, d)) return void this.#stats.badSignature++;
    const replyPath = this.#relayOnly && this.#path ? this.#path : path;
    const key = d.eph.toHex();
    const answered = this.#answered.get(key);
    // A retransmitted HS1 gets the same HS2; a replayed one gets nothing new either.
    if (answered) return void this.#outbox.push({ path: replyPath, bytes: answered.hs2 });
    if (this.#hs1Budget.take("", now) !== 0) return void this.#stats.overBudget++;
    const { keys, hs2 } = await answerHs1(this.#o, d);
    this.#answered.set(key, { hs2 });
    if (this.#answered.size > MAX_ANSWERED) this.#answered.delete(this.#answered.keys().next().value!);
    // Not confirmed: a replayed HS1 makes a session nobody can use. The first authentic DATA confirms it.
    this.#sessions.add(keys, false, now);
    this.#stats.handshakes++;
    this.#path ??= path;
    this.#outbox.push({ path: replyPath, bytes: hs2 });
  }

  async #onHs2(d: Hs2Datagram, path: PeerPath, now: number): Promise<void> {
    const init = this.#init;
    if (!init) return void this.#stats.unexpected++;
    const verdict = await hs2Authentic(this.#o, init.eph, d);
    if (verdict !== "ok") return void this.#stats[verdict]++;
    if (this.#init !== init) return;
    this.#init = null;
    const keys = await finishHs2(this.#o, init.eph, d);
    const session = this.#sessions.add(keys, true, now);
    this.#sessions.current = session;
    this.#stats.handshakes++;
    this.#heard(path, now);
    // After silence, the old sessions get one more rehandshakeMs to be heard before this one takes over.
    if (init.replace) {
      this.#sessions.suspectOthers(session, init.startedAt, now, now + (this.#o.rehandshakeMs ?? 3000));
    }
  }

  async #onData(d: DataDatagram, path: PeerPath, now: number): Promise<void> {
    const session = this.#sessions.get(d.session.toHex());
    if (!session) return void this.#stats.unexpected++;
    const plaintext = await session.cipher.open(d);
    if (!plaintext || this.#sessions.get(session.id) !== session) return;
    session.confirmed = true;
    session.lastHeard = now;
    // The peer uses a newer session (it rekeyed or restarted): follow it, so both ends converge on one
    // session and older ones drain and expire instead of piling up.
    const current = this.#sessions.current;
    if (!current || session.serial > current.serial) this.#sessions.current = session;
    this.#heard(path, now);
    session.channel.receive(plaintext, now);
    for (const bytes of session.channel.takeDelivered()) {
      const message = decodeNumbered(bytes);
      if (!message) this.#stats.badHeader++;
      else if (!this.#log.accept(message.instance, message.number)) this.#stats.repeated++;
      else this.#delivered.push(message.body);
    }
    for (const n of session.channel.takeAcknowledged()) session.acked.add(n);
    for (const [n, m] of session.ids) {
      if (!session.acked.delete(n)) break;
      session.ids.delete(n);
      this.#acked.push(m.id);
    }
  }

  #heard(path: PeerPath, now: number): void {
    this.#lastHeard = now;
    // Only authenticated, fresh datagrams move the path; the relay, once needed, is kept.
    if (!this.#relayOnly) this.#path = path;
  }

  #dropSessions(): void {
    this.#sessions.dropAll();
    this.#init = null;
    this.#answered.clear();
  }
}
