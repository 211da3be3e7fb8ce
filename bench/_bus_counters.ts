/**
 * The message counters of a NATS server, from its monitoring endpoint (`/varz`): the cluster bench reads them
 * before and after its logins.
 *
 * @module
 */

/** What the NATS server counted, over all its clients. */
export interface BusCounters {
  /** Messages it received. */
  inMsgs: number;
  /** Messages it delivered. */
  outMsgs: number;
}

/**
 * The message counters of a NATS server (`/varz` of its monitoring endpoint).
 *
 * @param monitor `http://host:port` of the endpoint.
 * @returns Its counters.
 */
export async function busCounters(monitor: string): Promise<BusCounters> {
  const response = await fetch(new URL("/varz", monitor));
  if (!response.ok) throw new Error(`${monitor}/varz answered ${response.status}`);
  const varz = await response.json() as { in_msgs: number; out_msgs: number };
  return { inMsgs: varz.in_msgs, outMsgs: varz.out_msgs };
}
