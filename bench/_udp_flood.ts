/**
 * A flood of first datagrams (`INIT`s without a cookie, docs/PROTOCOL.md §20.1) from many spoofed sources:
 * one UDP socket per source address in 127.0.0.0/8 (Linux's loopback answers for the whole range), each
 * sending well-formed 1200-byte `INIT`s (256 different `client_random`s in turn), paced in 1 ms ticks (in
 * 10 ms ticks its bursts alone overflowed the server socket's receive buffer). The sockets never
 * read: the `RETRY`s the server sends back fill their buffers and the kernel drops the rest, as a spoofed
 * source would never see them.
 *
 * @module
 */

import { encodeInit } from "../lib/codec/udp_init.ts";

/** What {@linkcode udpFlood} did. */
export interface FloodResult {
  /** Datagrams sent. */
  sent: number;
  /** Sends the kernel refused (a full socket buffer). */
  failed: number;
  /** How long it ran, in seconds. */
  seconds: number;
}

/** Options of {@linkcode udpFlood}. */
export interface FloodOptions {
  /** The server's UDP port on 127.0.0.1. */
  port: number;
  /** `INIT`s a second. */
  perSecond: number;
  /** Source addresses, 1..65536: 127.10.0.1 onwards. */
  sources: number;
  /** Stops the flood. */
  signal: AbortSignal;
}

const TICK_MS = 1;

/**
 * The `i`th flood source address: 127.10.0.1, 127.10.0.2, … (never .0 or .255 in the last byte).
 *
 * @param i 0-based.
 * @returns The address.
 */
export function floodSource(i: number): string {
  const n = i + Math.floor(i / 254) * 2 + 1;
  return `127.10.${Math.floor(n / 256) % 256}.${n % 256}`;
}

/**
 * Send `INIT`s until the signal aborts.
 *
 * @param o Where, how fast, from how many sources.
 * @returns What was sent.
 */
export async function udpFlood(o: FloodOptions): Promise<FloodResult> {
  const sockets = Array.from(
    { length: o.sources },
    (_, i) => Deno.listenDatagram({ hostname: floodSource(i), port: 0, transport: "udp" }),
  );
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port: o.port };
  // Distinct attempts in turn; a buffer is not touched while a send of it may be under way.
  const inits = Array.from(
    { length: 256 },
    () =>
      encodeInit({
        clientRandom: crypto.getRandomValues(new Uint8Array(32)),
        clientShare: new Uint8Array(32),
      }),
  );
  const started = performance.now();
  let sent = 0;
  let failed = 0;
  let next = 0;
  try {
    while (!o.signal.aborted) {
      // As many as the elapsed time calls for: a late tick catches up, so the rate holds on average.
      const due = Math.floor((performance.now() - started) / 1000 * o.perSecond) - sent - failed;
      const sends: Promise<unknown>[] = [];
      for (let k = 0; k < due; k++) {
        const socket = sockets[next % sockets.length]!;
        const init = inits[next++ % inits.length]!;
        sends.push(socket.send(init, to).then(() => sent++, () => failed++));
      }
      await Promise.all(sends);
      await new Promise((resolve) => setTimeout(resolve, TICK_MS));
    }
  } finally {
    for (const socket of sockets) socket.close();
  }
  return { sent, failed, seconds: (performance.now() - started) / 1000 };
}
