import assert from "node:assert/strict";
import { Logger } from "../../lib/server/logger.ts";
import { SessionRegistry } from "../../lib/server/session_registry.ts";
import {
  BUS_ERRORS,
  LOGINS,
  REGISTRATIONS,
  REQUEST_ERRORS,
  ServerMetrics,
} from "../../lib/server/server_metrics.ts";
import { Rendezvous } from "../../lib/server/udp_rendezvous.ts";
import type { RendezvousStats } from "../../lib/server/udp_rendezvous.ts";
import { parseExposition, sampleValue } from "./_parse_exposition.ts";

/** Metrics fed by a logger as the server's is, with the rate limit the server has by default. */
function kit(): { metrics: ServerMetrics; log: Logger } {
  const metrics = new ServerMetrics();
  const log = new Logger({
    write: () => {},
    now: () => 0,
    limit: { linesPerSecond: 10, burst: 20 },
    schedule: () => () => {},
    observe: metrics.observe,
  });
  return { metrics, log };
}

Deno.test("ServerMetrics counts logins by result from the log's events, those the log leaves out included", () => {
  const { metrics, log } = kit();
  for (let i = 0; i < 100; i++) log.info("login_failed", { user: "alice", code: "AUTH_FAILED" });
  log.info("login_failed", { user: "alice", code: "RATE_LIMITED" });
  log.info("login_ok", { user: "bob", transport: "tcp" });
  log.error("internal_error", { code: "INTERNAL", op: "LOGIN", error: "disk I/O error" });
  log.info("passwd_failed", { code: "AUTH_FAILED" });
  const c = metrics.counters;
  assert.equal(c.value(LOGINS, { result: "failed" }), 101, "100 wrong passwords and an internal error");
  assert.equal(c.value(LOGINS, { result: "rate_limited" }), 1);
  assert.equal(c.value(LOGINS, { result: "ok" }), 1);
  assert.equal(c.value(REQUEST_ERRORS, { op: "login", code: "AUTH_FAILED" }), 100);
  assert.equal(c.value(REQUEST_ERRORS, { op: "login", code: "INTERNAL" }), 1);
  assert.equal(c.value(REQUEST_ERRORS, { op: "passwd", code: "AUTH_FAILED" }), 1, "not a login");
});

Deno.test("ServerMetrics counts registrations, connections and endings, and leaves events without a code alone", () => {
  const { metrics, log } = kit();
  log.info("register", { user: "carol" });
  log.info("register_failed", { code: "USER_EXISTS" });
  log.info("connect", { session: 1, transport: "tls" });
  log.warn("connection_refused", { cap: "server", code: "TOO_MANY_CONNECTIONS" });
  log.info("ended", { session: 1, code: "SERVER_FULL" });
  log.warn("accept_failed", { transport: "tcp", error: "Too many open files" });
  log.warn("udp_receive_failed", { error: "x" });
  const parsed = parseExposition(metrics.render());
  assert.equal(sampleValue(parsed, REGISTRATIONS), 1);
  assert.equal(sampleValue(parsed, REQUEST_ERRORS, { op: "register", code: "USER_EXISTS" }), 1);
  assert.equal(sampleValue(parsed, "authchat_connections_accepted_total", { transport: "tls" }), 1);
  assert.equal(sampleValue(parsed, "authchat_connections_refused_total", { cap: "server" }), 1);
  assert.equal(sampleValue(parsed, "authchat_connections_ended_total", { code: "SERVER_FULL" }), 1);
  assert.deepEqual(
    parsed.get(REQUEST_ERRORS)!.samples.map((s) => s.labels.op),
    ["register"],
    "accept_failed and udp_receive_failed are no requests",
  );
});

Deno.test("ServerMetrics reads sessions, connections and the UDP counters of a serving server at each scrape", async () => {
  const metrics = new ServerMetrics();
  const before = parseExposition(metrics.render());
  assert.deepEqual(before.get("authchat_sessions")!.samples, [], "nothing before the server serves");
  assert.deepEqual(before.get("authchat_node_info")!.samples, []);
  const registry = new SessionRegistry({
    maxUnauthenticatedPerIp: 9,
    maxConnectionsPerIp: 9,
    maxConnections: 50,
  });
  const rendezvous = new Rendezvous({ relayPerSecond: 10 });
  metrics.serving({ registry, rendezvous }, { id: "node-1", version: "0.1.0" });
  const tcp = { id: 1, peerAddress: "192.0.2.1", transport: "tcp", end() {} };
  registry.add(tcp);
  registry.add({ id: 2, peerAddress: "192.0.2.1", transport: "tls", end() {} });
  registry.setUser(tcp, "alice");
  // Two datagrams that are not authchat's, dropped as malformed.
  await rendezvous.receive(new Uint8Array([1, 2, 3]), { hostname: "192.0.2.9", port: 9 }, 0);
  await rendezvous.receive(new Uint8Array(0), { hostname: "192.0.2.9", port: 9 }, 0);
  const parsed = parseExposition(metrics.render());
  assert.equal(sampleValue(parsed, "authchat_node_info", { node: "node-1", version: "0.1.0" }), 1);
  assert.equal(sampleValue(parsed, "authchat_sessions", { transport: "tcp", state: "logged_in" }), 1);
  assert.equal(sampleValue(parsed, "authchat_sessions", { transport: "tls", state: "not_logged_in" }), 1);
  assert.equal(sampleValue(parsed, "authchat_connections"), 2);
  assert.equal(sampleValue(parsed, "authchat_connections_max"), 50);
  assert.equal(sampleValue(parsed, "authchat_udp_dropped_total", { reason: "malformed" }), 2);
  assert.equal(sampleValue(parsed, "authchat_relay_datagrams_total"), 0);
  assert.equal(sampleValue(parsed, "authchat_udp_rendezvous_total"), 0);
  // Every counter of the rendezvous is shown: three metrics of their own (rendezvous, relayed and
  // forwarded), the others as drop reasons.
  const stats: (keyof RendezvousStats)[] = Object.keys(rendezvous.stats) as (keyof RendezvousStats)[];
  assert.equal(parsed.get("authchat_udp_dropped_total")!.samples.length, stats.length - 3);
  assert.equal(sampleValue(parsed, "authchat_relay_forwarded_total"), 0);
});

Deno.test("ServerMetrics takes bus errors from whoever counts them, and shows every family with HELP and TYPE", () => {
  const metrics = new ServerMetrics();
  metrics.counters.inc(BUS_ERRORS, { op: "presence" });
  metrics.counters.inc(BUS_ERRORS, { op: "presence" });
  const parsed = parseExposition(metrics.render());
  assert.equal(sampleValue(parsed, BUS_ERRORS, { op: "presence" }), 2);
  for (const [name, family] of parsed) {
    assert.ok(name.startsWith("authchat_"), name);
    assert.ok(family.help.length > 0, name);
    assert.equal(family.type, name.endsWith("_total") ? "counter" : "gauge", name);
  }
  assert.ok(parsed.has("authchat_database_errors_total"));
  assert.ok(parsed.has("authchat_presence_notices_total"));
});
