/**
 * The bus's floor for the cluster's latencies: a 256-byte message published on NATS to another process and
 * published back, one every millisecond, as the relay carries a datagram between two nodes (a relayed
 * message and its acknowledgement cross the bus once each way). Core NATS, no JetStream, no authchat.
 *
 * And the relay's whole path with nothing of authchat on it ({@linkcode relayHop}, {@linkcode udpEcho}):
 * UDP to a process, NATS to another, UDP to a third that echoes, and the same way back: five processes that
 * must each wake in turn, as the sender, the two nodes, NATS and the receiver of a relayed message do.
 *
 * @module
 */

import { connect } from "@nats-io/transport-node";
import { paced, percentile } from "./_measure.ts";
import { udpPacedP99 } from "./_floor_scenarios.ts";

/**
 * Publish back on `<subject>.pong` whatever arrives on `<subject>.ping`, until `done` settles.
 *
 * @param url The NATS server.
 * @param subject The subjects' prefix.
 * @param ready Called once the subscription is in place.
 * @param done Settles when the echo may stop.
 */
export async function busEcho(
  url: string,
  subject: string,
  ready: () => void,
  done: Promise<void>,
): Promise<void> {
  const nc = await connect({ servers: [url], noAsyncTraces: true });
  try {
    nc.subscribe(`${subject}.ping`, { callback: (_err, msg) => nc.publish(`${subject}.pong`, msg.data) });
    await nc.flush();
    ready();
    await done;
  } finally {
    await nc.close();
  }
}

/**
 * One message every millisecond for `durationMs` to the echo and back, each timed.
 *
 * @param url The NATS server.
 * @param subject The subjects' prefix the echo serves.
 * @param durationMs How long.
 * @returns The p99 round trip, ms.
 * @throws {Error} When more than 1% of the messages do not come back.
 */
export async function busPacedP99(url: string, subject: string, durationMs: number): Promise<number> {
  const nc = await connect({ servers: [url], noAsyncTraces: true });
  try {
    const total = Math.floor(durationMs);
    const sentAt = new Float64Array(total);
    const latencies: number[] = [];
    nc.subscribe(`${subject}.pong`, {
      callback: (_err, msg) => {
        const i = new DataView(msg.data.buffer, msg.data.byteOffset).getUint32(0);
        if (i < total) latencies.push(performance.now() - sentAt[i]!);
      },
    });
    await nc.flush();
    await paced(total, (i) => {
      // A buffer each: the client queues it until its next flush.
      const payload = new Uint8Array(256);
      new DataView(payload.buffer).setUint32(0, i);
      sentAt[i] = performance.now();
      nc.publish(`${subject}.ping`, payload);
    });
    await nc.flush();
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (latencies.length < total * 0.99) {
      throw new Error(`bus floor: ${total - latencies.length} of ${total} messages did not come back`);
    }
    return percentile(latencies, 99);
  } finally {
    await nc.close();
  }
}

/**
 * One bare hop of the relay's floor, until `done` settles.
 *
 * - `first`: a datagram from a client is published on `<subject>.out`; what arrives on `<subject>.back` is
 *   sent to the client that sent last.
 * - `second`: what arrives on `<subject>.out` is sent to the UDP port `echoPort`; a datagram back is
 *   published on `<subject>.back`.
 *
 * @param url The NATS server.
 * @param subject The subjects' prefix.
 * @param side Which hop.
 * @param echoPort The echo's port (the `second` hop's).
 * @param ready Called with its UDP port once it is in place.
 * @param done Settles when the hop may stop.
 */
export async function relayHop(
  url: string,
  subject: string,
  side: "first" | "second",
  echoPort: number | undefined,
  ready: (udpPort: number) => void,
  done: Promise<void>,
): Promise<void> {
  if (side === "second" && echoPort === undefined) {
    throw new Error("relay floor: the second hop needs echoPort");
  }
  const nc = await connect({ servers: [url], noAsyncTraces: true });
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const [inbound, outbound] = side === "first" ? ["back", "out"] : ["out", "back"];
  let peer: Deno.NetAddr | null = side === "second"
    ? { transport: "udp", hostname: "127.0.0.1", port: echoPort! }
    : null;
  try {
    nc.subscribe(`${subject}.${inbound}`, {
      callback: (_err, msg) => {
        // Dropped when no client has sent yet or the socket is closing, as a datagram would be.
        if (peer) socket.send(msg.data, peer).catch(() => {});
      },
    });
    await nc.flush();
    const reader = (async () => {
      // One buffer for every read (see bench/echo_server.ts); NATS gets a copy, sent at its next flush.
      const buffer = new Uint8Array(2048);
      try {
        for (;;) {
          const [bytes, from] = await socket.receive(buffer);
          if (side === "first") peer = from as Deno.NetAddr;
          nc.publish(`${subject}.${outbound}`, bytes.slice());
        }
      } catch {
        // Closed.
      }
    })();
    ready((socket.addr as Deno.NetAddr).port);
    await done;
    socket.close();
    await reader;
  } finally {
    await nc.close();
  }
}

/**
 * Send every datagram back to where it came from, until `done` settles (the relay floor's receiver).
 *
 * @param ready Called with its UDP port once it listens.
 * @param done Settles when the echo may stop.
 */
export async function udpEcho(ready: (udpPort: number) => void, done: Promise<void>): Promise<void> {
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const serving = (async () => {
    // One buffer for every read (see bench/echo_server.ts), free again once the send is done.
    const buffer = new Uint8Array(2048);
    try {
      for (;;) {
        const [bytes, from] = await socket.receive(buffer);
        try {
          await socket.send(bytes, from);
        } catch {
          // That datagram is lost, as UDP may lose one; the next read says whether the socket is closed.
        }
      }
    } catch {
      // Closed.
    }
  })();
  ready((socket.addr as Deno.NetAddr).port);
  await done;
  socket.close();
  await serving;
}

/**
 * The relay floor's figure: datagrams to the first hop, 16 in flight for half a second (the hops are fresh
 * processes: their first thousands of datagrams would time the compiler, as the relay scenario's warm-up
 * keeps its own from doing), then one every millisecond, each timed back.
 *
 * @param port The first hop's UDP port.
 * @param durationMs How long the timed part lasts.
 * @returns The p99 round trip, ms.
 */
export async function relayFloorP99(port: number, durationMs: number): Promise<number> {
  const socket = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port };
  // Index 0xffffffff: a straggler the first hop sends on to the timed part's socket is not counted there.
  const datagram = new Uint8Array(256).fill(0xff);
  const end = performance.now() + 500;
  let back = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.all(Array.from({ length: 16 }, () => socket.send(datagram, to)));
    // Each datagram back sends the next; a lost one only narrows the window.
    const warm = (async () => {
      const buffer = new Uint8Array(2048);
      while (performance.now() < end) {
        await socket.receive(buffer);
        back++;
        await socket.send(datagram, to);
      }
    })();
    warm.catch(() => {}); // Closed below if it is still waiting.
    await Promise.race([warm, new Promise((resolve) => timer = setTimeout(resolve, 5_000))]);
  } finally {
    clearTimeout(timer);
    socket.close();
  }
  if (back === 0) throw new Error("relay floor: no datagram came back through the hops");
  return await udpPacedP99({ port, durationMs });
}
