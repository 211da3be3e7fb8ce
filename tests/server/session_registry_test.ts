import assert from "node:assert/strict";
import { ENDED_MEMORY_MS, SessionRegistry } from "../../lib/server/session_registry.ts";
import type { RegisteredSession } from "../../lib/server/session_registry.ts";

/** A session that records how it was ended. */
class FakeSession implements RegisteredSession {
  static #next = 1;
  readonly id = FakeSession.#next++;
  ended: string | null = null;
  constructor(readonly name: string, readonly peerAddress = "192.0.2.1") {}
  end(code: string): void {
    this.ended ??= code;
  }
}

/** The sessions of one test, by name, in a registry with a cap in all. */
class Connections {
  readonly reg: SessionRegistry;
  readonly byName = new Map<string, FakeSession>();

  constructor(maxConnections: number) {
    this.reg = new SessionRegistry({
      maxUnauthenticatedPerIp: 1000,
      maxConnectionsPerIp: 1000,
      maxConnections,
    });
  }

  get(name: string): FakeSession {
    return this.byName.get(name)!;
  }

  /** The named sessions show a valid device token, each of an account of its own, as a LOGIN would. */
  showToken(...names: string[]): void {
    for (const name of names) this.reg.holdsToken(this.get(name), `account of ${name}`);
  }

  /**
   * A connection arrives and gets a session; returns the name of the session shed to make room, if any
   * (removed, as its close would).
   */
  connect(name: string, address = "192.0.2.1"): string | null {
    const live = [...this.byName.values()].filter((s) => s.ended === null);
    assert.equal(this.reg.admit(address), null, `${name} is let in`);
    const shed = live.filter((s) => s.ended !== null);
    assert.ok(shed.length <= 1, "at most one is shed per newcomer");
    for (const s of shed) this.reg.remove(s);
    const session = new FakeSession(name, address);
    this.byName.set(name, session);
    this.reg.add(session);
    return shed[0]?.name ?? null;
  }

  /** Connect, and log in at once. */
  connectAndLogIn(name: string): string | null {
    const shed = this.connect(name);
    this.reg.setUser(this.get(name), name);
    return shed;
  }
}

Deno.test("SessionRegistry lets connections in below the cap without shedding any", () => {
  const c = new Connections(3);
  assert.deepEqual(["a", "b", "c"].map((n) => c.connect(n)), [null, null, null]);
  assert.equal(c.reg.connections, 3);
});

Deno.test("SessionRegistry sheds the oldest connection not logged in at the cap, with BYE SERVER_FULL", () => {
  const c = new Connections(3);
  for (const name of ["a", "b", "c"]) c.connect(name);
  assert.equal(c.connect("d"), "a");
  assert.equal(c.get("a").ended, "SERVER_FULL");
  assert.equal(c.reg.connections, 3);
  assert.deepEqual(["e", "f", "g"].map((n) => c.connect(n)), ["b", "c", "d"]);
});

Deno.test("SessionRegistry stops counting a shed session at once, before its connection is gone", () => {
  const c = new Connections(2);
  c.connect("a");
  c.connect("b");
  assert.equal(c.reg.admit("192.0.2.1"), null);
  assert.equal(c.get("a").ended, "SERVER_FULL");
  assert.equal(c.reg.connections, 1, "a is on its way out");
  assert.equal(c.reg.size, 1, "and forgotten at once: the close that follows finds it gone");
  c.reg.remove(c.get("a"));
  assert.equal(c.reg.connections, 1, "its later removal counts nothing twice");
  assert.equal(c.reg.admit("192.0.2.1"), null);
  assert.equal(c.get("b").ended, null, "room was there: nobody else is shed");
});

Deno.test("SessionRegistry never sheds a logged-in session, and refuses newcomers when all are logged in", () => {
  const c = new Connections(3);
  c.connectAndLogIn("alice");
  c.connect("b");
  c.connectAndLogIn("carol");
  assert.equal(c.connectAndLogIn("dave"), "b");
  assert.deepEqual(c.reg.admit("198.51.100.1"), {
    cap: "server",
    message: "Server full: all 3 connections are logged in; try again later",
  });
  assert.ok(["alice", "carol", "dave"].every((n) => c.get(n).ended === null));
  assert.equal(c.reg.shedOne(), false);
});

Deno.test("SessionRegistry sheds those that showed no device token first, then those that did, oldest first", () => {
  const c = new Connections(5);
  for (const name of ["t1", "p1", "t2", "p2", "p3"]) c.connect(name);
  c.showToken("t1", "t2");
  // Each newcomer logs in at once, so only the first five are ever shed.
  const order = ["n1", "n2", "n3", "n4", "n5"].map((n) => c.connectAndLogIn(n));
  assert.deepEqual(order, ["p1", "p2", "p3", "t1", "t2"]);
  assert.equal(c.reg.admit("198.51.100.1")?.cap, "server");
});

Deno.test("SessionRegistry keeps token holders oldest first whatever the moment their flag was seen", () => {
  const c = new Connections(4);
  for (const name of ["a", "b", "c", "d"]) c.connect(name);
  c.showToken("a");
  assert.equal(c.connectAndLogIn("n1"), "b", "a showed a token: b, the oldest without, goes");
  c.showToken("c", "d");
  assert.deepEqual(["n2", "n3", "n4"].map((n) => c.connectAndLogIn(n)), ["a", "c", "d"]);
});

Deno.test("SessionRegistry counts a session that logs out as not logged in since its logout", () => {
  const c = new Connections(3);
  c.connectAndLogIn("a");
  c.connect("b");
  c.connect("c");
  c.reg.setUser(c.get("a"), null);
  assert.deepEqual(["n1", "n2", "n3"].map((n) => c.connectAndLogIn(n)), ["b", "c", "a"]);
});

Deno.test("SessionRegistry counts held slots (TLS handshakes) against the cap and sheds them like sessions", () => {
  const c = new Connections(2);
  let shedHandshakes = 0;
  const release = c.reg.hold("192.0.2.9", () => {
    shedHandshakes++;
    release();
  });
  c.connect("a");
  assert.equal(c.reg.connections, 2);
  assert.equal(c.connect("b"), null, "no session was shed");
  assert.equal(shedHandshakes, 1, "the handshake was the oldest");
  assert.equal(c.reg.connections, 2);
  assert.equal(c.reg.unauthenticatedFrom("192.0.2.9"), 0, "its slot per address is free again");
  release();
  assert.equal(c.reg.connections, 2, "a second release changes nothing");
});

Deno.test("SessionRegistry applies the per-address caps before the cap in all, shedding the address's own", () => {
  const reg = new SessionRegistry({ maxUnauthenticatedPerIp: 1, maxConnectionsPerIp: 5, maxConnections: 1 });
  const a = new FakeSession("a");
  const b = new FakeSession("b", "192.0.2.2");
  reg.add(a);
  // At its address's cap, the address's own connection makes room, not another address's.
  assert.equal(reg.admit(a.peerAddress), null);
  assert.equal(a.ended, "TOO_MANY_CONNECTIONS");
  assert.equal(reg.connections, 0, "a shed session stops counting at once");
  reg.add(b);
  // Logged in at both caps: nothing may be shed, and the per-address cap is the one that refuses.
  reg.setUser(b, "bob");
  const c = new FakeSession("c", "192.0.2.2");
  assert.equal(reg.admit(c.peerAddress)?.cap, "server");
  const d = new FakeSession("d");
  assert.equal(reg.admit(d.peerAddress)?.cap, "server");
  assert.equal(b.ended, null);
});

Deno.test("SessionRegistry has no cap in all unless given one", () => {
  const reg = new SessionRegistry({ maxUnauthenticatedPerIp: 1000, maxConnectionsPerIp: 1000 });
  for (let i = 0; i < 500; i++) {
    assert.equal(reg.admit("192.0.2.1"), null);
    reg.add(new FakeSession(`s${i}`));
  }
  assert.equal(reg.maxConnections, Infinity);
  assert.equal(reg.connections, 500);
});

Deno.test("SessionRegistry sheds from the address holding the most connections not logged in, oldest first", () => {
  const c = new Connections(6);
  c.connect("lone", "203.0.113.1");
  for (const name of ["x1", "x2", "x3"]) c.connect(name, "198.51.100.7");
  for (const name of ["y1", "y2"]) c.connect(name, "198.51.100.8");
  // A flood that reconnects everything it loses never reaches the client alone on its address.
  const shed = [];
  for (let i = 0; i < 6; i++) shed.push(c.connect(`z${i}`, i % 2 === 0 ? "198.51.100.7" : "198.51.100.8"));
  assert.deepEqual(shed, ["x1", "x2", "y1", "x3", "y2", "z0"]);
  assert.equal(c.get("lone").ended, null);
});

Deno.test("SessionRegistry counts an IPv6 /64 as one address when it picks whom to shed", () => {
  const c = new Connections(3);
  c.connect("lone", "2001:db8:1::1");
  c.connect("a", "2001:db8:2::1");
  c.connect("b", "2001:db8:2::2");
  assert.equal(c.connect("n", "2001:db8:3::1"), "a");
});

Deno.test("SessionRegistry sheds a lone client only when every address holds as few", () => {
  const c = new Connections(3);
  for (const [name, address] of [["p", "192.0.2.1"], ["q", "192.0.2.2"], ["r", "192.0.2.3"]]) {
    c.connect(name!, address);
  }
  assert.equal(c.connect("s", "192.0.2.4"), "p", "all hold one: the address that got there first");
});

Deno.test("SessionRegistry puts one session per account ahead for its token: the last to get one", () => {
  const c = new Connections(3);
  c.connect("b", "192.0.2.1");
  c.connect("a", "192.0.2.1");
  c.connect("t", "192.0.2.1");
  c.reg.holdsToken(c.get("b"), "bob");
  c.reg.holdsToken(c.get("a"), "mallory");
  // t has no token: it goes first, after the shedder has looked at (and set aside) a and b.
  assert.equal(c.connect("n", "192.0.2.3"), "t");
  c.reg.remove(c.get("n"));
  assert.equal(c.connect("c", "192.0.2.4"), null, "room in all");
  // Another session gets a token of mallory's: a no longer counts as holding one.
  c.reg.holdsToken(c.get("c"), "mallory");
  assert.equal(c.connect("d", "192.0.2.5"), "a", "a, not b: b still holds bob's token");
  assert.equal(c.get("b").ended, null);
  // Losing its token (its account deleted) puts a session behind too.
  c.reg.holdsToken(c.get("b"), null);
  c.reg.holdsToken(c.get("d"), "dora");
  assert.equal(c.connect("e", "192.0.2.6"), "b");
  // And a session gone leaves its token to nobody: the next one of that account is ahead again.
  c.reg.remove(c.get("c"));
  c.reg.holdsToken(c.get("e"), "mallory");
  c.connect("f", "192.0.2.7");
  assert.equal(c.connect("g", "192.0.2.8"), "f");
});

Deno.test("SessionRegistry counts an IPv6 /48 as one address when it picks whom to shed in all", () => {
  // An attacker with a /48 (65,536 /64s: what many providers give one customer) connects from a new /64
  // each time, one connection each: counted per /64 it would hold as few as the client alone on its
  // address, which, older, would be shed first.
  const c = new Connections(4);
  c.connect("lone", "192.0.2.1");
  c.connect("ipv6 lone", "2001:db8:1::1");
  for (let i = 1; i <= 40; i++) {
    c.connect(`x${i}`, `2001:db8:ff:${i.toString(16)}::1`);
    assert.equal(c.get("lone").ended, null, `the lone client stays (round ${i})`);
    assert.equal(c.get("ipv6 lone").ended, null, `so does one alone in its /48 (round ${i})`);
  }
});

Deno.test("SessionRegistry.census counts sessions by transport and login, and leaves TLS handshakes out", () => {
  const reg = new SessionRegistry({ maxUnauthenticatedPerIp: 10, maxConnectionsPerIp: 10 });
  const session = (id: number, transport: string | undefined): RegisteredSession => ({
    id,
    peerAddress: "192.0.2.1",
    ...(transport === undefined ? {} : { transport }),
    end() {},
  });
  const [a, b, c, d] = [session(1, "tcp"), session(2, "tcp"), session(3, "tls"), session(4, undefined)];
  for (const s of [a, b, c, d]) reg.add(s);
  reg.setUser(a, "alice");
  reg.setUser(c, "carol");
  reg.hold("192.0.2.2", () => {});
  const census = (): string[] =>
    reg.census().map((e) => `${e.transport} ${e.loggedIn ? "in" : "out"} ${e.count}`).sort();
  assert.deepEqual(census(), ["tcp in 1", "tcp out 1", "tls in 1", "unknown out 1"]);
  assert.equal(reg.connections, 5, "the handshake holds a slot, but is no session");
  reg.remove(a);
  reg.setUser(c, null);
  assert.deepEqual(census(), ["tcp out 1", "tls out 1", "unknown out 1"]);
});

Deno.test("SessionRegistry.endLoggedIn ends every logged-in session and leaves the others", () => {
  const reg = new SessionRegistry({ maxUnauthenticatedPerIp: 10, maxConnectionsPerIp: 10 });
  const [a1, a2, b, anon] = [
    new FakeSession("a1"),
    new FakeSession("a2"),
    new FakeSession("b"),
    new FakeSession("x"),
  ];
  for (const s of [a1, a2, b, anon]) reg.add(s);
  reg.setUser(a1, "alice");
  reg.setUser(a2, "alice");
  reg.setUser(b, "bob");
  assert.equal(reg.endLoggedIn("UNAVAILABLE", "cut off"), 3);
  assert.deepEqual([a1, a2, b, anon].map((s) => s.ended), [
    "UNAVAILABLE",
    "UNAVAILABLE",
    "UNAVAILABLE",
    null,
  ]);
  assert.equal(reg.sessionsOf("alice"), 0);
  assert.equal(reg.endLoggedIn("UNAVAILABLE", "cut off"), 0);
});

Deno.test("SessionRegistry.endedSince tells a login under way whose user's sessions were ended after its mark", () => {
  const reg = new SessionRegistry({ maxUnauthenticatedPerIp: 10, maxConnectionsPerIp: 10 });
  const before = reg.mark();
  reg.endUser("alice", null, "PASSWORD_CHANGED", "x");
  const after = reg.mark();
  assert.equal(reg.endedSince("alice", before), "user", "ended though it had no session");
  assert.equal(reg.endedSince("alice", after), null, "a login begun after it is not concerned");
  assert.equal(reg.endedSince("bob", before), null, "nor is another user");
  reg.endUser("alice", null, "ACCOUNT_DELETED", "y");
  assert.equal(reg.endedSince("alice", after), "user", "each end counts");
  reg.endLoggedIn("UNAVAILABLE", "cut off");
  assert.equal(reg.endedSince("bob", reg.mark() - 1), "all");
  assert.equal(reg.endedSince("bob", reg.mark()), null);
});

Deno.test("SessionRegistry.endedSince forgets ends after ENDED_MEMORY_MS, and then refuses the older marks", () => {
  const clock = { now: 0 };
  const reg = new SessionRegistry({
    maxUnauthenticatedPerIp: 10,
    maxConnectionsPerIp: 10,
    now: () => clock.now,
  });
  const old = reg.mark();
  reg.endUser("alice", null, "PASSWORD_CHANGED", "x");
  const recent = reg.mark();
  clock.now = ENDED_MEMORY_MS + 1;
  // Another end prunes alice's: a mark from before it can no longer tell, so it is refused (any user).
  reg.endUser("bob", null, "PASSWORD_CHANGED", "x");
  assert.equal(reg.endedSince("carol", old), "user");
  assert.equal(reg.endedSince("alice", recent), null, "a mark after the forgotten end is told exactly");
  assert.equal(reg.endedSince("bob", recent), "user");
});
