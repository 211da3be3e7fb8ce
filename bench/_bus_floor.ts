/**
 * The bus's floor for the cluster's latencies: a 256-byte message published on NATS to another process and
 * published back, one every millisecond, as the relay carries a datagram between two nodes (a relayed
 * message and its acknowledgement cross the bus once each way). Core NATS, no JetStream, no authchat.
 *
 * @module
 */

import { connect } from "@nats-io/transport-node";
import { paced, percentile } from "./_measure.ts";

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
