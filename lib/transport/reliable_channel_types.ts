/**
 * Types a `ReliableChannel` shares with its sender and receiver halves.
 *
 * @module
 */

/** Counters of a `ReliableChannel`. */
export interface ReliableChannelStats {
  /** DATA packets transmitted for the first time. */
  sent: number;
  /** DATA packets transmitted again (on timeout or fast retransmit). */
  retransmitted: number;
  /** Distinct DATA packets accepted. */
  received: number;
  /** DATA packets received again (each is re-acknowledged). */
  duplicates: number;
  /** Packets ignored as malformed, including ACKs of data never sent. */
  malformed: number;
  /** DATA packets dropped for lying beyond the receive window. */
  outOfWindow: number;
}

/** A message not yet wholly acknowledged, as `ReliableChannel.unacknowledged()` lists it. */
export interface UnacknowledgedMessage {
  /** The number `ReliableChannel.send` returned. */
  id: number;
  /** A copy of the message. */
  message: Uint8Array<ArrayBuffer>;
}
