/**
 * Two {@linkcode PeerLink}s joined by a simulated network on a fake clock: datagrams can be dropped,
 * duplicated, delayed (hence reordered), rewritten or captured, on the direct path and the relay alike.
 *
 * @module
 */

import assert from "node:assert/strict";
import { decodeDatagram } from "../../lib/codec/datagram.ts";
import type { PeerDatagram } from "../../lib/codec/datagram.ts";
import { generateIdentity } from "../../lib/crypto/identity_key.ts";
import type { Identity } from "../../lib/crypto/identity_key.ts";
import { PeerLink } from "../../lib/client/peer_link.ts";
import type { LinkOutput, PeerLinkOptions, PeerPath } from "../../lib/client/peer_link.ts";
import { prng } from "../transport/_lossy_link.ts";

/** The two ends. */
export type Name = "alice" | "bob";

/** Per-datagram behaviour of the network. */
export interface Conditions {
  drop: number;
  duplicate: number;
  maxDelayMs: number;
}

/** Tuning shared by both links (names, keys and addresses are filled in). */
export type LinkTuning = Omit<PeerLinkOptions, "me" | "peer" | "identity" | "peerKey" | "direct" | "relayId">;

/** Where each end is: its direct address and its relay id. */
export const ADDRESS: Record<Name, { hostname: string; port: number; relayId: number }> = {
  alice: { hostname: "198.51.100.1", port: 4001, relayId: 1 },
  bob: { hostname: "198.51.100.2", port: 4002, relayId: 2 },
};

interface Flight {
  at: number;
  to: Name;
  from: Name;
  bytes: Uint8Array;
  path: PeerPath;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What one end of the simulation saw. */
export interface End {
  link: PeerLink;
  identity: Identity;
  delivered: string[];
  acked: number[];
  sessionEvents: string[];
}

/**
 * The simulation. `filter` sees every datagram a link emits and returns the bytes to carry (possibly
 * altered) or `null` to drop it; `captured` keeps every emitted datagram in order.
 */
export class PeerSim {
  now = 1_000;
  ends: Record<Name, End>;
  conditions: Conditions = { drop: 0, duplicate: 0, maxDelayMs: 0 };
  filter: ((from: Name, out: LinkOutput) => Uint8Array | null) | null = null;
  captured: { from: Name; out: LinkOutput }[] = [];
  random: () => number;
  #flights: Flight[] = [];
  #tuning: Record<Name, LinkTuning>;

  private constructor(ends: Record<Name, End>, tuning: Record<Name, LinkTuning>, seed: number) {
    this.ends = ends;
    this.#tuning = tuning;
    this.random = prng(seed);
  }

  /**
   * Make two links that know each other's keys and addresses.
   *
   * @param tuning Options for both links, or per link.
   * @param seed PRNG seed of the network.
   * @returns The simulation.
   */
  static async create(
    tuning: LinkTuning | Record<Name, LinkTuning> = {},
    seed = 1,
  ): Promise<PeerSim> {
    const both = "alice" in tuning ? tuning as Record<Name, LinkTuning> : { alice: tuning, bob: tuning };
    const identities = { alice: await generateIdentity(), bob: await generateIdentity() };
    const ends = {} as Record<Name, End>;
    const sim = new PeerSim(ends, both as Record<Name, LinkTuning>, seed);
    for (const name of ["alice", "bob"] as const) ends[name] = sim.#makeEnd(name, identities);
    return sim;
  }

  #makeEnd(name: Name, identities: Record<Name, Identity>): End {
    const other = name === "alice" ? "bob" : "alice";
    const { hostname, port, relayId } = ADDRESS[other];
    const end: End = {
      link: null!,
      identity: identities[name],
      delivered: [],
      acked: [],
      sessionEvents: [],
    };
    end.link = new PeerLink({
      ...this.#tuning[name],
      me: name,
      peer: other,
      identity: identities[name],
      peerKey: identities[other].publicKey,
      direct: { hostname, port },
      relayId,
      onSession: (id, alive) => end.sessionEvents.push(`${alive ? "+" : "-"}${id}`),
    });
    return end;
  }

  /**
   * Replace one end by a fresh link with the same identity: a restarted client.
   *
   * @param name The end.
   */
  restart(name: Name): void {
    const other = name === "alice" ? "bob" : "alice";
    this.#flights = this.#flights.filter((f) => f.to !== name);
    this.ends[name] = this.#makeEnd(name, {
      [name]: this.ends[name].identity,
      [other]: this.ends[other].identity,
    } as Record<Name, Identity>);
  }

  /**
   * Queue a text message.
   *
   * @param from The sender.
   * @param text The message.
   * @param id The sender's id for it.
   */
  send(from: Name, text: string, id: number): void {
    this.ends[from].link.send(encoder.encode(text), id);
  }

  /**
   * Hand one datagram to an end as if it came from the other end over `path`.
   *
   * @param to The receiver.
   * @param bytes The datagram.
   * @param path How it came (default: directly from the other end).
   */
  async inject(to: Name, bytes: Uint8Array, path?: PeerPath): Promise<void> {
    const from = to === "alice" ? "bob" : "alice";
    const d = decodeDatagram(bytes);
    assert.ok(d.type === "HS1" || d.type === "HS2" || d.type === "DATA");
    const end = this.ends[to];
    await end.link.receive(d as PeerDatagram, path ?? direct(from), this.now);
    this.#collect(end);
  }

  /** Poll both links once at the current time and put what they emit on the network. */
  async pollAll(): Promise<void> {
    for (const name of ["alice", "bob"] as const) {
      const end = this.ends[name];
      for (const out of await end.link.poll(this.now)) this.#emit(name, out);
      this.#collect(end);
    }
  }

  #emit(from: Name, out: LinkOutput): void {
    this.captured.push({ from, out });
    const bytes = this.filter ? this.filter(from, out) : out.bytes;
    if (bytes === null) return;
    const to = from === "alice" ? "bob" : "alice";
    const { drop, duplicate, maxDelayMs } = this.conditions;
    if (this.random() < drop) return;
    const copies = this.random() < duplicate ? 2 : 1;
    // Where the receiver sees it coming from: the sender's address, or the relay with its relay id.
    const path: PeerPath = out.path.kind === "direct"
      ? direct(from)
      : { kind: "relay", relayId: ADDRESS[from].relayId };
    for (let i = 0; i < copies; i++) {
      this.#flights.push({ at: this.now + this.random() * maxDelayMs, to, from, bytes, path });
    }
  }

  #collect(end: End): void {
    end.delivered.push(...end.link.takeDelivered().map((b) => decoder.decode(b)));
    end.acked.push(...end.link.takeAcknowledged());
  }

  /**
   * Run until `done` holds: deliver due datagrams, poll both links, jump to the next event.
   *
   * @param done The goal.
   * @param limitMs Simulated time allowed.
   * @param stopAt Stop at this time at the latest (for a caller's timer), even when not done.
   * @returns The simulated time it took.
   */
  async run(done: () => boolean, limitMs = 60_000, stopAt = Infinity): Promise<number> {
    const start = this.now;
    let stuck = 0;
    while (!done() && this.now < stopAt) {
      assert.ok(this.now - start <= limitMs, `Not done within ${limitMs} ms of simulated time`);
      const due = this.#flights.filter((f) => f.at <= this.now).sort((a, b) => a.at - b.at);
      this.#flights = this.#flights.filter((f) => f.at > this.now);
      for (const f of due) await this.inject(f.to, f.bytes, f.path);
      await this.pollAll();
      if (done()) break;
      let next = Infinity;
      for (const f of this.#flights) next = Math.min(next, f.at);
      for (const { link } of Object.values(this.ends)) next = Math.min(next, link.nextWakeup() ?? Infinity);
      if (stopAt < Infinity) next = Math.min(next, stopAt);
      assert.ok(next < Infinity, "Simulation stalled: nothing in flight and no link wants to wake up");
      // A link that keeps asking to be polled now, without anything changing, spins its caller's loop.
      stuck = next <= this.now && this.#flights.every((f) => f.at > this.now) ? stuck + 1 : 0;
      assert.ok(stuck < 100, "A link asks to be polled again immediately without making progress");
      this.now = Math.max(this.now, next);
    }
    return this.now - start;
  }

  /** Datagrams captured so far of one kind from one end. */
  capturedOf(from: Name, type: "HS1" | "HS2" | "DATA"): LinkOutput[] {
    return this.captured.filter((c) => c.from === from && decodeDatagram(c.out.bytes).type === type)
      .map((c) => c.out);
  }

  /** Let simulated time pass with nothing delivered. */
  idle(ms: number): void {
    this.now += ms;
  }
}

/** The direct path from an end. */
export function direct(from: Name): PeerPath {
  return { kind: "direct", hostname: ADDRESS[from].hostname, port: ADDRESS[from].port };
}
