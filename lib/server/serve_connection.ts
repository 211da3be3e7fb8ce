/**
 * Runs one stream connection: frames in, a session engine in the middle,
 * frames out, and a timer for the session's deadline.
 *
 * @module
 */

import { encodeMessage, errorMessage } from "../codec/messages.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import type { ByteStream } from "../transport/byte_stream.ts";
import { FramedStream } from "../transport/framed_stream.ts";
import { Session } from "./session.ts";
import type { ConnectionInfo, SessionContext } from "./session_context.ts";

/** The longest delay `setTimeout` takes as given (2^31 - 1 ms); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Frames of messages sent to many sessions at once (presence notices are one object for all): encoded once.
 */
const shared = new WeakMap<object, Uint8Array>();

function encodeOnce(message: Parameters<typeof encodeMessage>[0]): Uint8Array {
  if ("id" in message && message.id !== undefined) return encodeMessage(message);
  let bytes = shared.get(message);
  if (!bytes) {
    bytes = encodeMessage(message);
    shared.set(message, bytes);
  }
  return bytes;
}

/**
 * Serve a connection until either side closes it.
 *
 * @param conn The byte stream.
 * @param info What is known about the connection.
 * @param ctx The server's shared state.
 * @returns Resolves when the connection is closed and forgotten.
 */
export async function serveConnection(
  conn: ByteStream,
  info: ConnectionInfo,
  ctx: SessionContext,
): Promise<void> {
  const framed = new FramedStream(conn);
  const session = new Session(ctx, info, (output) => {
    if (output.kind === "close") return void framed.close();
    let bytes: Uint8Array;
    try {
      bytes = encodeOnce(output.message);
    } catch (err) {
      // A reply that cannot be framed must not take the connection down with it.
      ctx.log.error("encode_failed", {
        session: session.id,
        op: output.message.op,
        error: (err as Error).message,
      });
      const id = "id" in output.message ? output.message.id : undefined;
      bytes = encodeMessage(errorMessage(new ProtocolError("INTERNAL", "Reply too large to send"), id));
    }
    framed.send(bytes).catch(() => {});
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let firesAt = Infinity;
  // Activity mostly moves the deadline later: a timer due earlier is kept (when it fires, the session
  // checks its real deadline and the timer is set again), so a busy connection does not reset it per message.
  const arm = () => {
    if (session.closed) {
      clearTimeout(timer);
      firesAt = Infinity;
      return;
    }
    const deadline = session.deadline;
    if (timer !== undefined && firesAt <= deadline + 1) return;
    clearTimeout(timer);
    // A timer's delay is at most 2^31 - 1 ms (about 24.8 days; a longer one fires at once): a deadline
    // further away is reached in steps, each firing early and setting the timer again.
    const delay = Math.min(Math.max(0, deadline - ctx.now()) + 1, MAX_TIMER_MS);
    firesAt = ctx.now() + delay;
    timer = setTimeout(() => {
      timer = undefined;
      firesAt = Infinity;
      session.tick(ctx.now());
      arm();
    }, delay);
  };
  arm();
  let reason = "peer closed";
  try {
    for (let payload; (payload = await framed.nextPayload()) !== null;) {
      await session.receive(payload);
      // Backpressure: read the next request only once the replies to this one are written, so a
      // client that sends without reading cannot make the server buffer replies without bound.
      await framed.flushed();
      if (session.closed) break;
      arm();
    }
    if (framed.error) {
      reason = framed.error.code;
      session.fail(framed.error);
    } else if (session.closed) {
      reason = "closed";
    }
  } catch (err) {
    reason = session.closed ? "closed" : `error: ${(err as Error).message.split("\n")[0]}`;
  } finally {
    clearTimeout(timer);
    session.disconnected(reason);
    await framed.close();
  }
}
