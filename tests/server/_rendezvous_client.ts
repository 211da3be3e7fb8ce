/**
 * The client side of one session registered with a {@linkcode Rendezvous}, for the tests that drive the
 * rendezvous directly (one node, or several over a relay routing): it sends RDV and RELAY datagrams
 * under the session's handle and key, counting up.
 *
 * @module
 */

import { decodeBase64 } from "../../lib/codec/base64.ts";
import { encodeRdv, encodeRelay } from "../../lib/codec/datagram.ts";
import { importUdpKey, tagDatagram } from "../../lib/crypto/datagram_tag.ts";
import type { UdpKey } from "../../lib/crypto/datagram_tag.ts";
import type { Outgoing, Rendezvous, Source } from "../../lib/server/udp_rendezvous.ts";

/** One registered session, as its client sees it. */
export interface RendezvousClient {
  /** The session's id. */
  sessionId: number;
  /** Its relay id. */
  relayId: number;
  /** Its handle, raw. */
  handle: Uint8Array<ArrayBuffer>;
  /** Its datagram key. */
  key: UdpKey;
  /** The address its datagrams come from. */
  from: Source;
  /** The counter of its next datagram. */
  counter: number;
  /** Send an RDV (at `now`, default 1000, from `from`, default its own address). */
  rdv(now?: number, from?: Source): Promise<Outgoing[]>;
  /** Send a RELAY of `inner` to a relay id (at `now`, default 1000). */
  relay(to: number, inner: Uint8Array, now?: number): Promise<Outgoing[]>;
}

let nextPort = 40_000;

/**
 * Register a session and return its client side.
 *
 * @param rendezvous The rendezvous.
 * @param sessionId The session's id.
 * @param user Its user.
 * @param options `from`: its address (default 203.0.113.5 on a port of its own).
 * @returns The client.
 */
export async function registerClient(
  rendezvous: Rendezvous,
  sessionId: number,
  user: string,
  options: { from?: Source } = {},
): Promise<RendezvousClient> {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const { handle, relayId } = await rendezvous.register(sessionId, user, raw);
  const client: RendezvousClient = {
    sessionId,
    relayId,
    handle: decodeBase64(handle)!,
    key: await importUdpKey(raw),
    from: options.from ?? { hostname: "203.0.113.5", port: nextPort++ },
    counter: 0,
    async rdv(now = 1000, from = client.from) {
      const bytes = await tagDatagram(
        client.key,
        encodeRdv({ handle: client.handle, counter: client.counter++ }),
      );
      return await rendezvous.receive(bytes, from, now);
    },
    async relay(to, inner, now = 1000) {
      const bytes = await tagDatagram(
        client.key,
        encodeRelay({ handle: client.handle, counter: client.counter++, to, inner }),
      );
      return await rendezvous.receive(bytes, client.from, now);
    },
  };
  return client;
}
