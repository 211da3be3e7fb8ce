/**
 * `proxy_protocol_from` with a real server: connections from a trusted balancer (127.0.0.2 here) are
 * served as the clients their PROXY protocol v2 headers name — for the limits by address as for the log —
 * over TCP and TLS; a header from anyone else is not believed; a balancer's connection without a valid
 * header is closed and logged, and nothing else is disturbed.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeProxyV2 } from "../../lib/codec/proxy_header.ts";
import { encodeFrame } from "../../lib/codec/frame.ts";
import { installKeys, seedUsers, ServerProcess, tempDir } from "./_harness.ts";
import { hello, RawClient, scramAttempt, tlsHello } from "./_raw_client.ts";

const BALANCER = "127.0.0.2";
const ALICE = { user: "alice", password: "tulip orbit canyon 7" };

async function proxiedServer(env: Record<string, string> = {}) {
  const dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  const server = await ServerProcess.start(data, { env: { AUTHCHAT_PROXY_PROTOCOL_FROM: BALANCER, ...env } });
  return {
    server,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await dir[Symbol.asyncDispose]();
    },
  };
}

/** The balancer's header for a client at `address` on the server's port. */
function header(address: string, port: number): Uint8Array {
  return encodeProxyV2({ address, port: 40_000 }, {
    address: address.includes(":") ? "::1" : "127.0.0.1",
    port,
  });
}

/** A connection from the balancer to the TCP port that sent this header (or other bytes) first. */
async function fromBalancer(port: number, first: Uint8Array): Promise<RawClient> {
  const c = await RawClient.connect(port, { from: BALANCER });
  await c.sendBytes(first);
  return c;
}

/** One wrong guess at alice as `client` behind the balancer: the code of the reply. */
async function guessAs(server: ServerProcess, client: string): Promise<string> {
  await using c = await fromBalancer(server.tcpPort, header(client, server.tcpPort));
  const greeting = await hello(c);
  const attempt = {
    user: ALICE.user,
    password: `guess ${crypto.randomUUID()}`,
    mechanisms: greeting.mechanisms as string[],
  };
  return String((await scramAttempt(c, attempt)).reply.code);
}

Deno.test("authchat server serves a trusted balancer's connections as the clients their PROXY headers name, over TCP and TLS", async () => {
  await using s = await proxiedServer({ AUTHCHAT_BACKOFF_BASE: "300" });
  const { server } = s;
  // Five wrong guesses from one client behind the balancer put that client in backoff, and only it: the
  // source counters count the clients, not the balancer they all come through.
  for (let i = 0; i < 5; i++) assert.equal(await guessAs(server, "203.0.113.7"), "AUTH_FAILED");
  assert.equal(await guessAs(server, "203.0.113.7"), "RATE_LIMITED");
  assert.equal(await guessAs(server, "2001:db8::8"), "AUTH_FAILED", "another client of the same balancer");

  const overTls = await tlsHello(server.tlsPort, BALANCER, header("203.0.113.9", server.tlsPort));
  assert.equal(overTls?.op, "HELLO", JSON.stringify(overTls));
  assert.deepEqual(overTls?.mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);

  // A LOCAL header (the balancer speaking for itself) leaves the balancer's own address.
  await using local = await fromBalancer(
    server.tcpPort,
    new Uint8Array([...header("203.0.113.1", 1).subarray(0, 12), 0x20, 0, 0, 0]),
  );
  await hello(local);

  const log = await server.settledLog();
  assert.match(log, /connect session=\d+ ip=203\.0\.113\.7 transport=tcp/);
  assert.match(log, /connect session=\d+ ip=2001:db8::8 transport=tcp/);
  assert.match(log, /connect session=\d+ ip=203\.0\.113\.9 transport=tls/);
  assert.match(log, /connect session=\d+ ip=127\.0\.0\.2 transport=tcp/);
  assert.doesNotMatch(log, /proxy_header_invalid/);
});

Deno.test("authchat server believes no PROXY header from an address outside proxy_protocol_from", async () => {
  await using s = await proxiedServer();
  const { server } = s;
  // From 127.0.0.1, the header is what it is there: bytes that are no frame.
  await using c = await RawClient.connect(server.tcpPort);
  await c.sendBytes(header("203.0.113.66", server.tcpPort));
  const reply = await c.next();
  assert.equal(reply?.code, "FRAME_TOO_LARGE", JSON.stringify(reply));
  await c.expectClosed();
  assert.equal(await tlsHello(server.tlsPort, "127.0.0.1", header("203.0.113.66", server.tlsPort)), null);
  // And without a header it is served as itself, as ever.
  assert.equal((await tlsHello(server.tlsPort, "127.0.0.1", null))?.op, "HELLO");
  const log = await server.settledLog();
  assert.doesNotMatch(log, /203\.0\.113\.66/);
  assert.match(log, /connect session=\d+ ip=127\.0\.0\.1 transport=tls/);
});

Deno.test("authchat server closes a trusted balancer's connection whose PROXY header is missing, malformed, cut short or late", async () => {
  await using s = await proxiedServer({ AUTHCHAT_AUTH_TIMEOUT: "1" });
  const { server } = s;
  const helloFrame = encodeFrame(new TextEncoder().encode('{"op":"HELLO","version":1,"id":1}'));
  const cases: [Uint8Array, RegExp][] = [
    [helloFrame, /bad signature/],
    [new TextEncoder().encode("PROXY TCP4 203.0.113.7 127.0.0.1 40000 1991\r\n"), /bad signature/],
    [header("203.0.113.7", 1).subarray(0, 20), /Connection ended inside its PROXY header/],
    [new Uint8Array(0), /No PROXY header within 1000 ms/],
  ];
  for (const [first, expected] of cases) {
    await using c = await fromBalancer(server.tcpPort, first);
    // Cut short: the balancer stops sending (half-close) after those bytes; silent: it sends nothing.
    if (expected.source.includes("ended")) await c.closeWrite();
    await c.expectClosed(5000);
    assert.match(await server.settledLog(), expected);
  }
  assert.equal(
    await tlsHello(server.tlsPort, BALANCER, null),
    null,
    "a TLS handshake where the header belongs",
  );
  const log = await server.settledLog();
  assert.match(
    log,
    /WARN proxy_header_invalid ip=127\.0\.0\.2 transport=tls error="Not a PROXY protocol v2 header: bad signature"/,
  );
  assert.match(
    log,
    /WARN proxy_header_invalid ip=127\.0\.0\.2 transport=tcp error="No PROXY header within 1000 ms"/,
  );
  // The server goes on serving everyone.
  await using after = await fromBalancer(server.tcpPort, header("203.0.113.7", server.tcpPort));
  await hello(after);
  assert.equal((await server.stop()).code, 0, server.stderr);
});
