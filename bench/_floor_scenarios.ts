/**
 * The floors, measured against `echo_server.ts`: a bare TCP connect with one echo, the same over TLS with the
 * TLS client authchat's own client uses (`node:tls`, which the client needs for the server certificate), and
 * UDP ping-pong.
 *
 * @module
 */

import tls from "node:tls";
import { closedLoop, paced, percentile, rate } from "./_measure.ts";

/** Bytes echoed per connection and per datagram. */
const PAYLOAD = new Uint8Array(64).fill(0x61);

async function readExactly(conn: Deno.Conn, n: number): Promise<void> {
  const buffer = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(buffer.subarray(got));
    if (r === null) throw new Error("Connection closed before the echo");
    got += r;
  }
}

/** Send the payload and read its echo back, `n` times in turn. */
async function echoes(conn: Deno.Conn, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await conn.write(PAYLOAD);
    await readExactly(conn, PAYLOAD.length);
  }
}

/**
 * New TCP connections per second, each with one echo.
 *
 * @param options Port, workers and duration.
 * @returns Connections per second.
 */
export async function tcpConnectEcho(
  options: { port: number; clients: number; durationMs: number; roundTrips?: number },
): Promise<number> {
  const roundTrips = options.roundTrips ?? 1;
  const r = await closedLoop({
    durationMs: options.durationMs,
    concurrency: options.clients,
    op: async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: options.port });
      try {
        conn.setNoDelay(true);
        await echoes(conn, roundTrips);
      } finally {
        conn.close();
      }
    },
  });
  return rate(r, "tcp_connect_echo");
}

/**
 * Echo round trips per second on connections that stay open, two per operation (as a login on an open
 * connection has: LOGIN, then PROOF).
 *
 * @param options Port, workers and duration.
 * @returns Operations (pairs of round trips) per second.
 */
export async function tcpOpenRoundTrips(
  options: { port: number; clients: number; durationMs: number },
): Promise<number> {
  const conns = await Promise.all(
    Array.from(
      { length: options.clients },
      () => Deno.connect({ hostname: "127.0.0.1", port: options.port }),
    ),
  );
  try {
    const r = await closedLoop({
      durationMs: options.durationMs,
      concurrency: options.clients,
      op: (worker) => echoes(conns[worker]!, 2),
    });
    return rate(r, "tcp_open_2rt");
  } finally {
    for (const c of conns) c.close();
  }
}

/**
 * The latency of raw UDP round trips at 1,000 per second, paced as the message latency figure is.
 *
 * @param options Port and duration.
 * @returns The p99, in ms.
 */
export async function udpPacedP99(options: { port: number; durationMs: number }): Promise<number> {
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port: options.port };
  const total = Math.floor(options.durationMs);
  const sentAt = new Float64Array(total);
  const latencies = new Float64Array(total).fill(Infinity);
  const reader = (async () => {
    // One buffer for every read (see bench/echo_server.ts): the index is read before the next.
    const buffer = new Uint8Array(2048);
    try {
      for (;;) {
        const [bytes] = await socket.receive(buffer);
        const i = new DataView(bytes.buffer, bytes.byteOffset).getUint32(0);
        if (i < total) latencies[i] = performance.now() - sentAt[i]!;
      }
    } catch {
      // Closed.
    }
  })();
  const datagram = new Uint8Array(256);
  await paced(total, (i) => {
    new DataView(datagram.buffer).setUint32(0, i);
    sentAt[i] = performance.now();
    return socket.send(datagram, to);
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  socket.close();
  await reader;
  return percentile(latencies, 99);
}

function tlsEchoOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
    let got = 0;
    socket.once("secureConnect", () => {
      socket.setNoDelay(true);
      socket.write(PAYLOAD);
    });
    socket.on("data", (chunk: Uint8Array) => {
      got += chunk.length;
      if (got >= PAYLOAD.length) {
        socket.destroy();
        resolve();
      }
    });
    socket.once("error", (err: Error) => {
      socket.destroy();
      reject(err);
    });
  });
}

/**
 * New TLS connections per second, each with one echo.
 *
 * @param options Port, workers and duration.
 * @returns Connections per second.
 */
export async function tlsConnectEcho(
  options: { port: number; clients: number; durationMs: number },
): Promise<number> {
  const r = await closedLoop({
    durationMs: options.durationMs,
    concurrency: options.clients,
    op: () => tlsEchoOnce(options.port),
  });
  return rate(r, "tls_connect_echo");
}

/**
 * UDP round trips per second: each worker has its own socket and one datagram in flight.
 *
 * @param options Port, workers and duration.
 * @returns Round trips per second.
 */
export async function udpPingPong(
  options: { port: number; clients: number; durationMs: number },
): Promise<number> {
  const sockets = Array.from(
    { length: options.clients },
    () => Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" }),
  );
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port: options.port };
  const datagram = new Uint8Array(256).fill(0x62);
  let count = 0;
  const started = performance.now();
  let last = started;
  const end = started + options.durationMs;
  // No timer per round trip (it would cost a third of the figure): a datagram lost on loopback (rare)
  // stalls its worker until the end, when closing the sockets ends every wait.
  const stop = setTimeout(() => sockets.forEach((s) => s.close()), options.durationMs + 1000);
  await Promise.all(sockets.map(async (socket) => {
    const buffer = new Uint8Array(2048);
    try {
      while (performance.now() < end) {
        await socket.send(datagram, to);
        await socket.receive(buffer);
        count++;
        last = performance.now();
      }
    } catch {
      // Closed at the end.
    }
  }));
  const seconds = (last - started) / 1000;
  clearTimeout(stop);
  for (const s of sockets) {
    try {
      s.close();
    } catch {
      // Already closed.
    }
  }
  if (count === 0) throw new Error("udp_pingpong: no round trip completed");
  return count / seconds;
}
