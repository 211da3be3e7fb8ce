/**
 * The sessions of one {@linkcode PeerLink}: which one carries new messages, when an old one is evicted,
 * expired or retired (its messages queued again), and the takeover of a silent session's messages by the
 * session of a new handshake.
 *
 * @module
 */

import { DatagramCipher } from "../crypto/datagram_cipher.ts";
import type { deriveSessionKeys } from "../crypto/peer_session.ts";
import { ReliableChannel } from "../transport/reliable_channel.ts";
import type { ReliableChannelOptions } from "../transport/reliable_channel.ts";

/** A message of ours and the caller's id for it. */
export interface QueuedMessage {
  id: number;
  bytes: Uint8Array;
}

/** One session with the peer: its cipher, its reliable channel and the messages of ours it carries. */
export interface LinkSession {
  id: string;
  cipher: DatagramCipher;
  channel: ReliableChannel;
  /** May carry new messages: we initiated it, or authentic DATA arrived on it. */
  confirmed: boolean;
  /**
   * Channel message number → our message, in send order, until it is reported acknowledged: only once it
   * and every earlier one are, since the channel acknowledges a message beyond a hole (SACK) before the
   * peer can deliver it, and a session dropped with a hole never delivers what follows it.
   */
  ids: Map<number, QueuedMessage>;
  /** Channel message numbers acknowledged but behind an unacknowledged one. */
  acked: Set<number>;
  /** When authentic DATA last arrived on it. */
  lastHeard: number;
  /** When it last went from carrying none of our messages to carrying some. */
  busySince: number;
  /** Creation order: the newest session both sides have confirmed carries new messages. */
  serial: number;
}

/** What {@linkcode LinkSessions} needs of the link's options. */
export interface LinkSessionsOptions {
  rekeyAfter?: number;
  reliable?: ReliableChannelOptions;
  onSession?: (sessionId: string, alive: boolean) => void;
}

type SessionKeys = Awaited<ReturnType<typeof deriveSessionKeys>>;

/** Sessions kept before unused and quiet ones are dropped early. */
const MAX_SESSIONS = 4;
/** Sessions kept at most: past this even a busy one goes (its messages are sent again). */
const HARD_MAX_SESSIONS = 16;
/** Unheard this long, with nothing of ours on it, a session is drained at both ends: the peer retransmits
 * far more often than this while it has data outstanding. */
const QUIET_MS = 10_000;
const EXPIRY_MS = 60_000;

/** The sessions of one peer link. */
export class LinkSessions {
  /** The session new messages go on, once confirmed. */
  current: LinkSession | null = null;
  #o: LinkSessionsOptions;
  #requeue: (messages: QueuedMessage[]) => void;
  #sessions = new Map<string, LinkSession>();
  #serial = 0;
  #retired = { forged: 0, replayed: 0 };
  /** After a handshake that followed silence: old sessions silent since `since`, retired at `until`. */
  #suspects: { since: number; until: number; sessions: Set<LinkSession> } | null = null;

  /**
   * @param options Cipher and channel tuning, and who to tell about session ids.
   * @param requeue Called whenever a session goes, with the messages it had not delivered for sure.
   */
  constructor(options: LinkSessionsOptions, requeue: (messages: QueuedMessage[]) => void) {
    this.#o = options;
    this.#requeue = requeue;
  }

  /** Forged and replayed datagrams counted by every cipher, past and present. */
  get cipherStats(): { forged: number; replayed: number } {
    let { forged, replayed } = this.#retired;
    for (const s of this.#sessions.values()) {
      forged += s.cipher.stats.forged;
      replayed += s.cipher.stats.replayed;
    }
    return { forged, replayed };
  }

  /** When the takeover of silent sessions' messages is due, or `null` when none is pending. */
  get takeoverAt(): number | null {
    return this.#suspects?.until ?? null;
  }

  /** Every session, oldest first. */
  all(): IterableIterator<LinkSession> {
    return this.#sessions.values();
  }

  /** The session with this id. */
  get(id: string): LinkSession | undefined {
    return this.#sessions.get(id);
  }

  /** Add the session of a completed handshake, evicting old ones over the limit. */
  add(keys: SessionKeys, confirmed: boolean, now: number): LinkSession {
    const id = keys.sessionId.toHex();
    const session: LinkSession = {
      id,
      cipher: new DatagramCipher(
        keys,
        this.#o.rekeyAfter === undefined ? {} : { rekeyAfter: this.#o.rekeyAfter },
      ),
      channel: new ReliableChannel(this.#o.reliable ?? {}),
      confirmed,
      ids: new Map(),
      acked: new Set(),
      lastHeard: now,
      busySince: now,
      serial: this.#serial++,
    };
    this.#sessions.set(id, session);
    this.#o.onSession?.(id, true);
    this.#evict(session, now);
    return session;
  }

  /**
   * A handshake started at `startedAt` after silence completed with `session`. The peer answers, so it is
   * alive. If it restarted, the old sessions stay silent and their unacknowledged messages must go out again
   * on the new one; if it only seemed silent (a burst of loss, or our own process stalled), they are heard
   * from again and resending would duplicate. So they get until `until` to be heard.
   */
  suspectOthers(session: LinkSession, startedAt: number, now: number, until: number): void {
    const quiet = [...this.#sessions.values()].filter((s) =>
      s !== session && s.ids.size > 0 && s.lastHeard <= startedAt
    );
    if (quiet.length > 0) this.#suspects = { since: now, until, sessions: new Set(quiet) };
  }

  /** Whether sessions are on probation after a handshake that followed silence. */
  get suspecting(): boolean {
    return this.#suspects !== null;
  }

  /** Retire the suspects not heard from by the deadline, once it passed. */
  judgeSuspects(now: number): void {
    const suspects = this.#suspects;
    if (!suspects) return;
    for (const s of suspects.sessions) {
      const alive = s.lastHeard > suspects.since || s.ids.size === 0 || !this.#sessions.has(s.id);
      if (alive) suspects.sessions.delete(s);
    }
    if (suspects.sessions.size > 0 && now < suspects.until) return;
    for (const s of suspects.sessions) this.#retire(s);
    this.#suspects = null;
  }

  /** Sessions replaced by a newer one are dropped once idle for a minute, or quiet when there are many. */
  expire(now: number): void {
    for (const s of [...this.#sessions.values()]) {
      if (s !== this.current && this.#idle(s, now, EXPIRY_MS)) this.#remove(s);
    }
    this.#evict(null, now);
  }

  /** Retire every session (the peer restarted or went away). */
  dropAll(): void {
    for (const session of [...this.#sessions.values()]) this.#retire(session);
    this.#suspects = null;
  }

  /**
   * Over the limit, sessions quiet for a while go; a session the peer may still use is kept (dropping it
   * would lose what it buffered and acknowledged) up to a hard limit, where unused sessions (such as those
   * of replayed HS1s) go first.
   */
  #evict(keep: LinkSession | null, now: number): void {
    while (this.#sessions.size > MAX_SESSIONS) {
      const others = [...this.#sessions.values()].filter((s) => s !== this.current && s !== keep);
      const victim = others.find((s) => this.#idle(s, now, QUIET_MS)) ??
        (this.#sessions.size > HARD_MAX_SESSIONS ? others.find((s) => !s.confirmed) ?? others[0] : undefined);
      if (!victim) return;
      this.#retire(victim);
    }
  }

  #idle(s: LinkSession, now: number, ms: number): boolean {
    return s.ids.size === 0 && s.channel.nextWakeup() === null && now - s.lastHeard >= ms;
  }

  /** Remove a session, handing back the messages it has not delivered for sure. */
  #retire(session: LinkSession): void {
    if (this.#sessions.has(session.id)) this.#remove(session, [...session.ids.values()]);
  }

  #remove(session: LinkSession, messages: QueuedMessage[] = []): void {
    if (!this.#sessions.delete(session.id)) return;
    this.#retired.forged += session.cipher.stats.forged;
    this.#retired.replayed += session.cipher.stats.replayed;
    if (this.current === session) this.current = null;
    this.#o.onSession?.(session.id, false);
    this.#requeue(messages);
  }
}
