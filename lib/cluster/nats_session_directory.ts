/**
 * Ending a user's sessions on every node, for `PASSWD` and `DELETE`.
 *
 * Design. Every node listens on the subject `<prefix>.sessions.end`. To end a
 * user's sessions elsewhere, a node first reads the `live` bucket up to its
 * end (node_liveness.ts: so it knows every node that announced itself before
 * the password changed — a node that announces itself later has no session
 * of the old password, since logins check the store), then publishes
 * `{"id","from","user","code","reason"}` with a reply subject of its own, and
 * waits until **every other live incarnation has answered**
 * `{"id","node","inc","ended"}` or **is gone** (stopped, declared dead after
 * 6 s of silence, or replaced by a new incarnation). The request is published
 * again every heartbeat (1 s) to the nodes that have not answered, so a lost
 * message only costs time; a node ends the sessions of one request id once and
 * answers repeats with the same count, so a session logged in with the new
 * password is never ended by a late repeat.
 *
 * A node that does not answer is waited for until it answers or is declared
 * dead; that is safe because of the fence (node_liveness.ts): a node that has
 * lost the bus for 3.5 s ends its own logged-in sessions and refuses logins,
 * and the others declare it dead only after 6 s. So "done" is never a lie.
 * The worst wait is about 7 s (a node that died just before).
 *
 * A node that keeps its heartbeat but never answers (a bug, a subscription
 * lost) is waited for at most `answerWithinMs` (10 s: the worst wait above
 * and a margin); then the wait fails with `UNAVAILABLE` and the
 * {@linkcode UNCONFIRMED} message. The change is committed by then; that
 * node's sessions of the old password end at its next re-check of sessions
 * against the store (lib/server/session_recheck.ts), within `session_recheck`.
 *
 * When the asking node itself loses the bus, it is fenced before it can be
 * sure of anything: its own sessions end (`BYE UNAVAILABLE`, the one that
 * asked included) and the wait fails with `UNAVAILABLE`. The password change
 * (or deletion) is committed in the store by then; the client never heard
 * "done", and should log in again (with the new password, if the old one
 * fails) and check.
 *
 * Anyone who can publish on the bus can end sessions: the bus is part of the
 * server and must be reachable only by its nodes.
 *
 * @module
 */

import { createInbox } from "@nats-io/transport-node";
import type { Subscription } from "@nats-io/transport-node";
import type { ByeCode } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { Logger } from "../server/logger.ts";
import type { SessionDirectory, SessionsHere } from "../server/shared_parts.ts";
import type { NatsBus } from "./nats_bus.ts";
import { BusLostError } from "./node_liveness.ts";
import type { NodeLiveness, NodeRef } from "./node_liveness.ts";

/** The `BYE` reason of the sessions a node ends when it has lost the bus. */
export const CUT_OFF_REASON =
  "This server lost touch with the other server nodes: log in again (to another node, " +
  "or here once it is back)";

/** The `UNAVAILABLE` message of a login refused while the node has lost the bus. */
export const LOGIN_REFUSED =
  "This server has lost touch with the other server nodes and cannot log anyone in " +
  "until it is back: try again shortly, or another node";

/** How long a node remembers the requests it served, ms (repeats of older ones are served again). */
const REMEMBER_MS = 120_000;

/** Longest user key, reason and id accepted from the bus (characters). */
const MAX_FIELD = 4096;

const BYE_CODES: ReadonlySet<string> = new Set<ByeCode>(["PASSWORD_CHANGED", "ACCOUNT_DELETED"]);

interface EndRequest {
  id: string;
  from: string;
  user: string;
  code: ByeCode;
  reason: string;
}

interface Waiting {
  id: string;
  /** Incarnations not heard from yet, by node token. */
  missing: Map<string, NodeRef>;
  ended: number;
  done: () => void;
  fail: (err: Error) => void;
}

function isText(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= MAX_FIELD;
}

/** A request from the bus; `null` when it is malformed (dropped and logged). */
function parseRequest(data: Uint8Array): EndRequest | null {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(new TextDecoder().decode(data));
  } catch {
    return null;
  }
  const { id, from, user, code, reason } = value ?? {};
  if (!isText(id) || !isText(from) || !isText(user) || !isText(reason)) return null;
  if (typeof code !== "string" || !BYE_CODES.has(code)) return null;
  return { id, from, user, code: code as ByeCode, reason };
}

/** The `UNAVAILABLE` message of a wait for the other nodes that ran out of time. */
export const UNCONFIRMED = "Not every server node confirmed in time that the sessions ended";

/** Options of {@linkcode NatsSessionDirectory}. */
export interface NatsSessionDirectoryOptions {
  /** Where requests and failures are logged. */
  log?: Logger;
  /**
   * Longest wait for the other nodes' answers, ms (default: `deadAfterMs` and four heartbeats of the
   * liveness timing, 10 s by default: more than a node that just died takes to be declared dead).
   */
  answerWithinMs?: number;
}

/**
 * Ends sessions on every node of one bus, and this node's when it loses the bus.
 *
 * @example
 * ```ts ignore
 * const liveness = new NodeLiveness(bus);
 * const sessions = new NatsSessionDirectory(bus, liveness);
 * await liveness.start();
 * sessions.serve({ endUser: (key, code, reason) => registry.endUser(key, null, code, reason), endAll });
 * const ended = await sessions.endElsewhere("bob", "PASSWORD_CHANGED", "Password changed: log in again");
 * ```
 */
export class NatsSessionDirectory implements SessionDirectory {
  #bus: NatsBus;
  #liveness: NodeLiveness;
  #log: Logger | undefined;
  #answerWithinMs: number;
  #here: SessionsHere | null = null;
  #subscription: Subscription | null = null;
  /** Requests served: how many sessions each ended, and when. */
  #served = new Map<string, { ended: number; at: number }>();
  #waiting = new Set<Waiting>();
  #closed = false;

  /**
   * Make the directory; it acts on requests once {@linkcode NatsSessionDirectory.serve} is called.
   *
   * @param bus The node's bus connection.
   * @param liveness This node's liveness.
   * @param options Log.
   */
  constructor(bus: NatsBus, liveness: NodeLiveness, options: NatsSessionDirectoryOptions = {}) {
    this.#bus = bus;
    this.#liveness = liveness;
    this.#log = options.log;
    const { deadAfterMs, heartbeatMs } = liveness.timing;
    this.#answerWithinMs = options.answerWithinMs ?? deadAfterMs + 4 * heartbeatMs;
    liveness.listen({
      nodeGone: (ref) => {
        for (const waiting of [...this.#waiting]) {
          if (waiting.missing.get(ref.node)?.incarnation !== ref.incarnation) continue;
          waiting.missing.delete(ref.node);
          if (waiting.missing.size === 0) waiting.done();
        }
      },
      fenced: () => this.#cutOff(),
      // Requests published while this node was away are lost to it: its sessions are re-checked against
      // the store (the safety net, lib/server/session_recheck.ts).
      rejoined: () => this.#here?.recheck?.(),
    });
  }

  #subject(): string {
    return this.#bus.subject("sessions", "end");
  }

  serve(here: SessionsHere): void {
    this.#here = here;
    if (this.#subscription || this.#closed) return;
    this.#subscription = this.#bus.nc.subscribe(this.#subject(), {
      callback: (err, msg) => {
        if (err) return;
        const request = parseRequest(msg.data);
        if (!request) {
          this.#log?.warn("bus_bad_message", { subject: msg.subject });
          return;
        }
        if (request.from === this.#liveness.node || !msg.reply) return;
        const ended = this.#endHere(request);
        msg.respond(JSON.stringify({
          id: request.id,
          node: this.#liveness.node,
          inc: this.#liveness.incarnation,
          ended,
        }));
      },
    });
  }

  /** End the sessions of one request, once per request id. */
  #endHere(request: EndRequest): number {
    const now = performance.now();
    for (const [id, { at }] of this.#served) {
      if (now - at <= REMEMBER_MS) break;
      this.#served.delete(id);
    }
    const served = this.#served.get(request.id);
    if (served) return served.ended;
    const ended = this.#here?.endUser(request.user, request.code, request.reason) ?? 0;
    this.#served.set(request.id, { ended, at: now });
    this.#log?.info("ended_elsewhere", { user: request.user, code: request.code, ended_sessions: ended });
    return ended;
  }

  loginsRefused(): string | null {
    return this.#liveness.fenced ? LOGIN_REFUSED : null;
  }

  async endElsewhere(userKey: string, code: ByeCode, reason: string): Promise<number> {
    try {
      await this.#liveness.sync();
    } catch (err) {
      if (err instanceof BusLostError) throw unavailable();
      throw err;
    }
    const missing = new Map(this.#liveness.others().map((ref) => [ref.node, ref]));
    if (missing.size === 0) return 0;
    const id = crypto.randomUUID();
    const inbox = createInbox();
    const request = JSON.stringify({ id, from: this.#liveness.node, user: userKey, code, reason });
    let resend: ReturnType<typeof setInterval> | undefined;
    let deadline: ReturnType<typeof setTimeout> | undefined;
    let subscription: Subscription | undefined;
    try {
      return await new Promise<number>((resolve, reject) => {
        const waiting: Waiting = {
          id,
          missing,
          ended: 0,
          done: () => resolve(waiting.ended),
          fail: reject,
        };
        this.#waiting.add(waiting);
        subscription = this.#bus.nc.subscribe(inbox, {
          callback: (err, msg) => {
            if (err) return;
            const answer = parseAnswer(msg.data);
            if (!answer || answer.id !== id) return;
            if (waiting.missing.get(answer.node)?.incarnation !== answer.inc) return;
            waiting.missing.delete(answer.node);
            waiting.ended += answer.ended;
            if (waiting.missing.size === 0) waiting.done();
          },
        });
        const publish = () => {
          try {
            this.#bus.nc.publish(this.#subject(), request, { reply: inbox });
          } catch {
            // Closed: the fence or the close settles the wait.
          }
        };
        publish();
        resend = setInterval(publish, this.#liveness.timing.heartbeatMs);
        deadline = setTimeout(() => {
          this.#log?.warn("end_elsewhere_unconfirmed", {
            user: userKey,
            code,
            silent_nodes: [...waiting.missing.values()].map((ref) => ref.nodeId).join(","),
          });
          waiting.fail(new ProtocolError("UNAVAILABLE", UNCONFIRMED));
        }, this.#answerWithinMs);
      });
    } finally {
      clearInterval(resend);
      clearTimeout(deadline);
      subscription?.unsubscribe();
      for (const waiting of this.#waiting) if (waiting.id === id) this.#waiting.delete(waiting);
    }
  }

  /** This node lost the bus: end its logged-in sessions, and fail the waits (they cannot vouch for anything). */
  #cutOff(): void {
    const ended = this.#here?.endAll("UNAVAILABLE", CUT_OFF_REASON) ?? 0;
    this.#log?.always("warn", "sessions_cut_off", { ended_sessions: ended });
    for (const waiting of [...this.#waiting]) waiting.fail(unavailable());
  }

  /** Stop serving; waits under way fail with `UNAVAILABLE`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscription?.unsubscribe();
    for (const waiting of [...this.#waiting]) waiting.fail(unavailable());
  }
}

function unavailable(): ProtocolError {
  return new ProtocolError(
    "UNAVAILABLE",
    "This server lost touch with the other server nodes before they confirmed: log in again and check",
  );
}

function parseAnswer(data: Uint8Array): { id: string; node: string; inc: string; ended: number } | null {
  try {
    const { id, node, inc, ended } = JSON.parse(new TextDecoder().decode(data)) ?? {};
    if (!isText(id) || !isText(node) || !isText(inc)) return null;
    if (!Number.isSafeInteger(ended) || ended < 0) return null;
    return { id, node, inc, ended };
  } catch {
    return null;
  }
}
