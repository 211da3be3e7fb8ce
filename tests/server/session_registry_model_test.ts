/**
 * The session registry against a plain model, over random sequences of what a server does to it:
 * connections (sessions and TLS handshakes) arrive, log in and out, show device tokens (of a few accounts,
 * several sessions each) or lose them, disconnect (twice, or after being shed), handshakes end or turn
 * into sessions, users are ended from elsewhere.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { SessionRegistry } from "../../lib/server/session_registry.ts";
import type { RegisteredSession } from "../../lib/server/session_registry.ts";

/** The addresses connections come from, and the source each is counted under (IPv6 by /64, mapped IPv4 as IPv4). */
const SOURCES: Record<string, string> = {
  "192.0.2.1": "192.0.2.1",
  "192.0.2.2": "192.0.2.2",
  "::ffff:192.0.2.2": "192.0.2.2",
  "2001:db8:1::1": "2001:db8:1:0",
  "2001:db8:1::2": "2001:db8:1:0",
  "2001:db8:1:5::1": "2001:db8:1:5",
  "2001:db8:2::1": "2001:db8:2:0",
};
const ADDRESSES = Object.keys(SOURCES);
const USERS = ["alice", "bob", "carol"];

function source(address: string): string {
  return SOURCES[address]!;
}

let nextId = 1_000_000;

/** The model's state of one run. */
class Model {
  readonly all: Conn[] = [];
  now = 0;
  /** What a shed must agree with: the connection being admitted. */
  admitting: string | null = null;
  /** Of the sessions holding a token of an account, the last to get it: the only one it puts ahead. */
  readonly holder = new Map<string, Conn>();

  ahead(conn: Conn): boolean {
    return conn.tokenOf !== null && this.holder.get(conn.tokenOf) === conn;
  }

  /** A session gets a token of an account, or loses its token. */
  holdToken(conn: Conn, account: string | null): void {
    const behind = (c: Conn) => {
      if (c.user === null) c.since = this.now++;
    };
    const wasAhead = this.ahead(conn);
    if (wasAhead) this.holder.delete(conn.tokenOf!);
    conn.tokenOf = account;
    if (account !== null) {
      const before = this.holder.get(account);
      this.holder.set(account, conn);
      if (before !== undefined && before !== conn) behind(before);
    } else if (wasAhead) {
      behind(conn);
    }
  }

  live(): Conn[] {
    return this.all.filter((c) => c.counted);
  }

  waiting(): Conn[] {
    return this.live().filter((c) => c.user === null);
  }

  /** The registry shed a connection: check it against the rules, then take it out of the model. */
  shed(conn: Conn, code: string): void {
    assert.ok(conn.counted, "only a counted connection is shed");
    assert.equal(conn.user, null, "a logged-in connection is never shed");
    const waiting = this.waiting();
    const tokenless = (c: Conn) => !this.ahead(c);
    const sameClass = waiting.filter((c) => tokenless(c) === tokenless(conn));
    const ofSource = (cs: Conn[]) => cs.filter((c) => source(c.peerAddress) === source(conn.peerAddress));
    assert.ok(
      ofSource(sameClass).every((c) => c.since >= conn.since),
      "the oldest of its class at its address",
    );
    if (code === "TOO_MANY_CONNECTIONS") {
      assert.equal(source(conn.peerAddress), this.admitting, "only the newcomer's address makes room for it");
      assert.ok(tokenless(conn) || ofSource(waiting).every((c) => !tokenless(c)), "tokenless go first");
    } else {
      assert.equal(code, "SERVER_FULL");
      assert.ok(tokenless(conn) || waiting.every((c) => !tokenless(c)), "tokenless go first");
    }
    this.forget(conn);
    conn.ended = code;
  }

  /** A connection leaves the counts. */
  forget(conn: Conn): void {
    if (conn.tokenOf !== null && this.holder.get(conn.tokenOf) === conn) this.holder.delete(conn.tokenOf);
    conn.counted = false;
    conn.user = null;
  }
}

/** A connection of the model: a session or a held slot (a TLS handshake). */
class Conn implements RegisteredSession {
  readonly id = nextId++;
  /** The account whose token it holds, if any. */
  tokenOf: string | null = null;
  /** Its user once logged in. */
  user: string | null = null;
  /** Still counted by the registry (not disconnected, not shed). */
  counted = true;
  /** When it last became not logged in (model time). */
  since: number;
  /** How it was ended, if it was. */
  ended: string | null = null;
  /** A held slot's release. */
  release: (() => void) | null = null;
  constructor(
    readonly model: Model,
    readonly kind: "session" | "hold",
    readonly peerAddress: string,
  ) {
    this.since = model.now++;
  }
  end(code: string): void {
    if (code === "SERVER_FULL" || code === "TOO_MANY_CONNECTIONS") this.model.shed(this, code);
    else this.ended ??= code;
  }
}

const op = fc.oneof(
  { weight: 6, arbitrary: fc.record({ connect: fc.nat(ADDRESSES.length - 1), hold: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ login: fc.nat(40), user: fc.nat(USERS.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ logout: fc.nat(40) }) },
  {
    weight: 3,
    arbitrary: fc.record({ token: fc.nat(40), account: fc.option(fc.nat(USERS.length - 1), { freq: 4 }) }),
  },
  { weight: 2, arbitrary: fc.record({ disconnect: fc.nat(40) }) },
  { weight: 2, arbitrary: fc.record({ handshakeOver: fc.nat(40), becomesSession: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ endUser: fc.nat(USERS.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ shedOne: fc.constant(true) }) },
);

const caps = fc.record({
  maxUnauthenticatedPerIp: fc.integer({ min: 1, max: 4 }),
  maxConnectionsPerIp: fc.integer({ min: 1, max: 6 }),
  maxConnections: fc.integer({ min: 1, max: 8 }),
});

/** Check every count the registry shows against the model. */
function checkCounts(reg: SessionRegistry, model: Model): void {
  const counted = model.live();
  assert.equal(reg.connections, counted.length, "connections counted");
  assert.equal(reg.size, counted.filter((c) => c.kind === "session").length, "sessions counted");
  for (const address of ADDRESSES) {
    assert.equal(
      reg.unauthenticatedFrom(address),
      counted.filter((c) => c.user === null && source(c.peerAddress) === source(address)).length,
      `not logged in from ${address}`,
    );
  }
  for (const user of USERS) {
    assert.equal(reg.sessionsOf(user), counted.filter((c) => c.user === user).length, `sessions of ${user}`);
  }
}

Deno.test("SessionRegistry keeps its counts and its choice of whom to shed consistent with a plain model", () => {
  fc.assert(
    fc.property(caps, fc.array(op, { maxLength: 80 }), (options, ops) => {
      const reg = new SessionRegistry(options);
      const model = new Model();
      const pick = (i: number) => model.all.length === 0 ? undefined : model.all[i % model.all.length];

      const connect = (address: string, kind: "session" | "hold") => {
        const src = source(address);
        model.admitting = src;
        const refusal = reg.admit(address);
        model.admitting = null;
        const ofSource = model.live().filter((c) => source(c.peerAddress) === src);
        if (refusal !== null) {
          if (refusal.cap === "address") {
            assert.ok(
              ofSource.every((c) => c.user !== null),
              "refused at its address only when all are logged in",
            );
          } else {
            assert.ok(model.waiting().length === 0, "refused in all only when every connection is logged in");
          }
          return;
        }
        assert.ok(ofSource.filter((c) => c.user === null).length < options.maxUnauthenticatedPerIp);
        assert.ok(ofSource.length < options.maxConnectionsPerIp);
        assert.ok(model.live().length < options.maxConnections, "room was made in all");
        const conn = new Conn(model, kind, address);
        model.all.push(conn);
        if (kind === "session") reg.add(conn);
        else conn.release = reg.hold(address, (code) => model.shed(conn, code));
      };

      for (const o of ops) {
        if ("connect" in o) {
          connect(ADDRESSES[o.connect]!, o.hold ? "hold" : "session");
        } else if ("login" in o) {
          const c = pick(o.login);
          if (c?.kind === "session" && c.counted && c.ended === null) {
            c.user = USERS[o.user]!;
            reg.setUser(c, c.user);
          }
        } else if ("logout" in o) {
          const c = pick(o.logout);
          if (c?.kind === "session" && c.counted && c.user !== null) {
            c.user = null;
            c.since = model.now++;
            reg.setUser(c, null);
          }
        } else if ("token" in o) {
          const c = pick(o.token);
          if (c?.kind === "session" && c.counted) {
            const account = o.account === null ? null : USERS[o.account]!;
            model.holdToken(c, account);
            reg.holdsToken(c, account);
          }
        } else if ("disconnect" in o) {
          const c = pick(o.disconnect);
          if (c?.kind === "session") {
            reg.remove(c);
            model.forget(c);
          }
        } else if ("handshakeOver" in o) {
          const c = pick(o.handshakeOver);
          if (c?.kind === "hold") {
            const wasCounted = c.counted;
            c.release!();
            model.forget(c);
            if (wasCounted && o.becomesSession) connect(c.peerAddress, "session");
          }
        } else if ("endUser" in o) {
          const user = USERS[o.endUser]!;
          const targets = model.live().filter((c) => c.user === user);
          for (const c of targets) {
            c.user = null;
            c.since = model.now++;
          }
          assert.equal(reg.endUser(user, null, "ACCOUNT_DELETED", "gone"), targets.length);
          for (const c of targets) assert.equal(c.ended, "ACCOUNT_DELETED");
        } else {
          const before = model.waiting().length;
          assert.equal(reg.shedOne(), before > 0);
          assert.equal(model.waiting().length, Math.max(0, before - 1));
        }
        checkCounts(reg, model);
      }
      // Everything leaves: nothing is left counted, nothing negative.
      for (const c of model.all) {
        if (c.kind === "session") reg.remove(c);
        else c.release!();
        model.forget(c);
      }
      checkCounts(reg, model);
      assert.equal(reg.shedOne(), false);
      for (const address of ADDRESSES) assert.equal(reg.admit(address), null);
    }),
    { numRuns: 3000 },
  );
});
