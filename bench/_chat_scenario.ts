/**
 * Acknowledged end-to-end encrypted messages between two logged-in clients over the direct UDP path:
 * throughput with many sends in flight, and latency at a steady 1,000 messages per second.
 *
 * @module
 */

import { join } from "node:path";
import type { AuthchatClient } from "../lib/client/authchat_client.ts";
import { ChatNode } from "../lib/client/chat_node.ts";
import { KnownPeers } from "../lib/client/known_peers.ts";
import { closedLoop, paced, percentile, rate } from "./_measure.ts";

/** Bytes of each message's text. */
const MESSAGE_BYTES = 256;

/**
 * Start the chat side of a logged-in client.
 *
 * @param client The logged-in client.
 * @param dir Where its pin file goes.
 * @param options `relayOnly`: send through the server's relay only (default: the direct path).
 * @returns The node.
 */
export async function startNode(
  client: AuthchatClient,
  dir: string,
  options: { relayOnly?: boolean } = {},
): Promise<ChatNode> {
  const chat = client.chat;
  if (!chat?.identity || !chat.udp) {
    throw new Error(`No chat credentials: ${chat?.identityError ?? "no UDP"}`);
  }
  return await ChatNode.start({
    control: { user: chat.user, identity: chat.identity, udp: chat.udp, peer: (u) => client.peer(u) },
    serverHost: "127.0.0.1",
    knownPeers: new KnownPeers(join(dir, `known_peers-${chat.user}`)),
    serverName: "bench",
    onMessage: () => {},
    onWarning: (line) => console.error(line),
    ...(options.relayOnly ? { relayOnly: true } : {}),
  });
}

/** What the message scenario found. */
export interface MessagesResult {
  /** Throughput, `NaN` when not measured. */
  perSecond: number;
  p50: number;
  p99: number;
}

/**
 * Send to `peer` one message every millisecond for `durationMs` (latency, send to acknowledgement), then
 * with `window` sends in flight for `durationMs` (throughput). Latency comes first: measured after a
 * saturating run it would mostly show the garbage collector cleaning up after that run.
 *
 * @param node The sender's node.
 * @param peer The receiver.
 * @param options Window and duration; `throughput: false` measures the latency only.
 * @returns Messages per second, and latency percentiles at 1,000 per second.
 */
export async function messages(
  node: ChatNode,
  peer: string,
  options: { window: number; durationMs: number; throughput?: boolean },
): Promise<MessagesResult> {
  const text = "m".repeat(MESSAGE_BYTES);
  // The handshake is not part of the figures, nor the compiler's first passes over the code: a short
  // warm-up first, as any benchmark of a JIT-compiled runtime needs.
  await node.send(peer, "hello");
  await closedLoop({ durationMs: 500, concurrency: 16, op: () => node.send(peer, text) });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const { p50, p99 } = await latency(node, peer, text, options.durationMs);
  if (options.throughput === false) return { perSecond: NaN, p50, p99 };
  const r = await closedLoop({
    durationMs: options.durationMs,
    concurrency: options.window,
    op: () => node.send(peer, text),
  });
  return { perSecond: rate(r, "messages"), p50, p99 };
}

/** One message every millisecond, each timed from send to acknowledgement. */
async function latency(
  node: ChatNode,
  peer: string,
  text: string,
  durationMs: number,
): Promise<{ p50: number; p99: number }> {
  // The measuring side allocates as little as it can: what it keeps alive would be the garbage collector's
  // work, and its pauses, in the very figures it measures.
  const total = Math.floor(durationMs);
  const latencies = new Float64Array(total);
  let done = 0;
  let failed: unknown = null;
  let allDone!: () => void;
  const finished = new Promise<void>((resolve) => allDone = resolve);
  // Not awaited: the next send is due in a millisecond whatever this one does.
  await paced(total, (i) => {
    const t0 = performance.now();
    node.send(peer, text).then(
      () => latencies[i] = performance.now() - t0,
      (err) => failed ??= err,
    ).finally(() => ++done === total && allDone());
  });
  await finished;
  if (failed) throw failed;
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}
