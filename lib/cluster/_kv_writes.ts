/**
 * Compare-and-swap writes of key-value entries, their acknowledgements
 * answered on one subscription of the node's own.
 *
 * `kv.put` goes through nats-core's `request`, which for every write makes a
 * timer, a subscription entry and, whatever the outcome, an `Error` (its
 * stack trace included) before JetStream's acknowledgement is even parsed:
 * about 80 µs of a node's CPU a write, against 40 µs here (measured with 16
 * writes under way). The writes are the same messages: the entry's subject
 * `$KV.<bucket>.<key>`, the `Nats-Expected-Last-Subject-Sequence` header, a
 * reply subject; JetStream answers `{"stream","seq"}` or `{"error"}` there, or
 * the server a status 503 when no stream takes the subject.
 *
 * The writes asked for during one turn of the event loop are sent together at
 * its end (`setImmediate`): nats-core flushes what is published in one
 * microtask checkpoint as one socket write, and the logins a node serves in
 * one turn are handled in many. Sent one by one, a cluster login cost 0.65
 * writes to NATS's socket (each waking the server); together, 0.3, and NATS a
 * third less CPU (docs/BENCHMARKS.md).
 *
 * Nothing here times out: the caller bounds each write (lib/cluster/_kv_cells.ts)
 * and forgets it when it gives up ({@linkcode PendingWrite.cancel}), so a reply
 * that never comes leaves nothing behind, and a write given up on before it was
 * sent is not sent.
 *
 * @module
 */

import { createInbox, headers } from "@nats-io/transport-node";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { BusUnavailableError } from "./bus_errors.ts";

/** JetStream's codes for "the key's latest revision is not the one expected". */
const WRONG_LAST_SEQUENCE: ReadonlySet<number> = new Set([10071, 10164]);

/** A write under way. */
export interface PendingWrite {
  /** The entry's new revision, or `null` when the key's latest revision was not the one expected. */
  readonly result: Promise<number | null>;
  /** Forget the write (its reply, should it come, is ignored). */
  cancel(): void;
}

interface Waiting {
  resolve: (revision: number | null) => void;
  reject: (err: Error) => void;
}

/** A write waiting for the end of the event loop's turn. */
interface Unsent {
  id: string;
  subject: string;
  key: string;
  value: Uint8Array;
  rev: number;
}

/** JetStream's answer to a publish. */
interface PubAck {
  seq?: unknown;
  error?: { err_code?: unknown; description?: unknown } | null;
}

/**
 * Compare-and-swap writes on one connection.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * import { KvWrites } from "./_kv_writes.ts";
 * const nc = await connect({ servers: ["nats://127.0.0.1:4222"] });
 * const writes = new KvWrites(nc);
 * // The bucket must exist (made by the KV API); 0: the key must hold nothing yet.
 * const revision = await writes.put("authchat_limits", "s.key", new Uint8Array([1]), 0).result;
 * await nc.close();
 * ```
 */
export class KvWrites {
  #nc: NatsConnection;
  #inbox: string;
  #subscription: Subscription | undefined;
  #waiting = new Map<string, Waiting>();
  /** Writes asked for and not sent yet: sent at the end of the event loop's turn. */
  #unsent: Unsent[] = [];
  #next = 0;

  /**
   * Write on a connection.
   *
   * @param nc The connection (closing it ends the subscription).
   */
  constructor(nc: NatsConnection) {
    this.#nc = nc;
    this.#inbox = createInbox();
  }

  /** Writes waiting to be sent or for their reply. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * Write a key of a bucket, on condition that its latest revision is `rev`.
   *
   * @param bucket The bucket's full name (the stream is `KV_<bucket>`; it must exist).
   * @param key The key (letters, digits, `-_=/.`, no leading or trailing dot).
   * @param value The new value.
   * @param rev The revision the key must be at (0: it must hold nothing).
   * @returns The write under way: its result rejects with {@linkcode BusUnavailableError} when the
   *   connection cannot send it, no stream takes the subject, or JetStream refuses it otherwise.
   */
  put(bucket: string, key: string, value: Uint8Array, rev: number): PendingWrite {
    const id = (this.#next++).toString(36);
    const result = new Promise<number | null>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
    });
    this.#unsent.push({ id, subject: `$KV.${bucket}.${key}`, key, value, rev });
    if (this.#unsent.length === 1) setImmediate(() => this.#send());
    return { result, cancel: () => void this.#waiting.delete(id) };
  }

  /**
   * Send the writes asked for since the last call, in order, but not those given up on meanwhile: after
   * the event loop's turn, so the writes of every request it served go to NATS in one socket write.
   */
  #send(): void {
    for (const { id, subject, key, value, rev } of this.#unsent.splice(0)) {
      if (!this.#waiting.has(id)) continue;
      try {
        this.#subscription ??= this.#nc.subscribe(`${this.#inbox}.*`, {
          callback: (err, msg) => {
            if (!err) this.#answer(msg);
          },
        });
        const h = headers();
        h.set("Nats-Expected-Last-Subject-Sequence", String(rev));
        this.#nc.publish(subject, value, { reply: `${this.#inbox}.${id}`, headers: h });
      } catch (err) {
        this.#settle(id)?.reject(
          new BusUnavailableError(
            `NATS could not take a write of ${key}: ${(err as Error)?.message ?? err}`,
            {
              cause: err,
            },
          ),
        );
      }
    }
  }

  #settle(id: string): Waiting | undefined {
    const waiting = this.#waiting.get(id);
    this.#waiting.delete(id);
    return waiting;
  }

  #answer(msg: Msg): void {
    const waiting = this.#settle(msg.subject.slice(this.#inbox.length + 1));
    if (!waiting) return;
    let outcome: number | null | Error;
    try {
      outcome = outcomeOf(msg);
    } catch (err) {
      // nats-core calls the subscription from its parser: a throw would end the connection's reading.
      outcome = new BusUnavailableError(
        `NATS answered a write in a form not understood: ${(err as Error)?.message}`,
      );
    }
    if (outcome instanceof Error) waiting.reject(outcome);
    else waiting.resolve(outcome);
  }
}

/**
 * What an answer to a write says: its new revision, `null` for a key at another revision, or why it failed
 * (an answer of any other form than JetStream's is a failure: the write may or may not have landed).
 */
function outcomeOf(msg: Msg): number | null | BusUnavailableError {
  if (msg.data.length === 0 && msg.headers?.code === 503) {
    return new BusUnavailableError("NATS has no stream for the write (is JetStream on?)");
  }
  let ack: unknown;
  try {
    ack = msg.json();
  } catch {
    return new BusUnavailableError("NATS answered a write with something other than JSON");
  }
  if (typeof ack !== "object" || ack === null) {
    return new BusUnavailableError("NATS answered a write without its revision");
  }
  const { error, seq } = ack as PubAck;
  if (error !== undefined) {
    const code = typeof error === "object" ? error?.err_code : undefined;
    if (typeof code === "number" && WRONG_LAST_SEQUENCE.has(code)) return null;
    const why = typeof error === "object" ? error?.description ?? code : error;
    return new BusUnavailableError(`NATS refused a write: ${String(why ?? "no reason given")}`);
  }
  if (typeof seq === "number" && Number.isSafeInteger(seq) && seq > 0) return seq;
  return new BusUnavailableError("NATS answered a write without its revision");
}
