import assert from "node:assert/strict";
import { join } from "node:path";
import { AuthchatClient } from "../../lib/client/authchat_client.ts";
import {
  ConnectError,
  connectErrorFrom,
  describeConnectFailure,
  foreignReplyError,
} from "../../lib/client/connect_error.ts";
import { ConnectionClosedError } from "../../lib/client/_request_channel.ts";
import { KnownHosts, TrustError } from "../../lib/client/known_hosts.ts";
import { encodeFrame } from "../../lib/codec/frame.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";

const TCP = { host: "127.0.0.1", port: 1992, tls: false };
const TLS = { host: "127.0.0.1", port: 1991, tls: true };

/** An error shaped as `node:net` and `node:tls` report them. */
function nodeError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

Deno.test("connectErrorFrom words a refused connection the same for TCP and TLS", () => {
  const tcp = connectErrorFrom(new Deno.errors.ConnectionRefused("Connection refused (os error 111)"), TCP);
  const tls = connectErrorFrom(nodeError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:1991"), TLS);
  assert.equal(tcp?.failure, "refused");
  assert.equal(tls?.failure, "refused");
  assert.equal(tcp?.explanation, tls?.explanation);
  assert.equal(
    tcp?.message,
    "Cannot connect to 127.0.0.1:1992: nothing is listening there (connection refused): start the server " +
      "(deno task start, or authchat server), or check --host and --port",
  );
});

Deno.test("connectErrorFrom names an unknown host from Deno.connect and from node:tls alike", () => {
  const host = { host: "chat.invalid", port: 1991, tls: false };
  const fromDeno = connectErrorFrom(
    new Error("failed to lookup address information: Name or service not known"),
    host,
  );
  const fromNode = connectErrorFrom(nodeError("ENOTFOUND", "getaddrinfo ENOTFOUND chat.invalid"), {
    ...host,
    tls: true,
  });
  assert.equal(fromDeno?.failure, "unknown_host");
  assert.equal(fromNode?.failure, "unknown_host");
  assert.equal(fromDeno?.explanation, "unknown host chat.invalid (the name does not resolve): check --host");
  assert.equal(fromNode?.explanation, fromDeno?.explanation);
});

Deno.test("connectErrorFrom reports timeouts with the timeout used, and unreachable networks", () => {
  const slow = connectErrorFrom(new Deno.errors.TimedOut("TCP connection timed out"), {
    ...TCP,
    timeoutMs: 2500,
  });
  assert.equal(slow?.failure, "timeout");
  assert.match(slow!.explanation, /^no answer within 2\.5 s \(timed out\): check --host and --port/);
  assert.match(connectErrorFrom(new Deno.errors.TimedOut("x"), TCP)!.explanation, /within 10 s/);
  const unreachable = connectErrorFrom(nodeError("ENETUNREACH", "connect ENETUNREACH 10.0.0.1:1992"), TLS);
  assert.equal(unreachable?.failure, "unreachable");
});

Deno.test("connectErrorFrom tells a TLS client it reached a port that does not speak TLS", () => {
  const wrongVersion = nodeError(
    "ERR_SSL_WRONG_VERSION_NUMBER",
    "received corrupt message of type InvalidContentType (SSL routines:ssl3_get_record:wrong version number)",
  );
  const err = connectErrorFrom(wrongVersion, TLS);
  assert.equal(err?.failure, "not_tls");
  assert.equal(
    err?.explanation,
    "it does not speak TLS (a plain TCP authchat port?): drop --tls, or use the TLS port (default 1992)",
  );
  assert.equal(err?.cause, wrongVersion, "the original error is kept");
  assert.equal(connectErrorFrom(wrongVersion, TCP), null, "a plain TCP client sees no TLS records");
  assert.equal(
    connectErrorFrom(nodeError("ERR_SSL_PACKET_LENGTH_TOO_LONG", "packet length too long"), TLS)?.failure,
    "not_tls",
  );
});

Deno.test("connectErrorFrom takes a reset for a peer that hung up, and leaves other errors alone", () => {
  const reset = nodeError(
    "ECONNRESET",
    "Client network socket disconnected before secure TLS connection was established",
  );
  assert.equal(connectErrorFrom(reset, TLS)?.failure, "closed");
  assert.equal(connectErrorFrom(new Deno.errors.ConnectionReset("reset"), TCP)?.failure, "closed");
  assert.equal(connectErrorFrom(new Error("Something else"), TCP), null);
  assert.equal(connectErrorFrom(new TrustError("Key changed"), TLS), null);
  const known = new ConnectError("refused", TCP, "x");
  assert.equal(connectErrorFrom(known, TCP), known);
});

Deno.test("foreignReplyError says a TLS port was reached without --tls", () => {
  const alert = new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
  const err = foreignReplyError(alert, TCP);
  assert.equal(err?.failure, "speaks_tls");
  assert.equal(err?.message, "Cannot connect to 127.0.0.1:1992: it speaks TLS: add --tls");
});

Deno.test("foreignReplyError lets authchat frames through and names other servers", () => {
  assert.equal(foreignReplyError(encodeFrame(new TextEncoder().encode('{"op":"HELLO"}')), TCP), null);
  assert.equal(foreignReplyError(new Uint8Array(0), TCP), null);
  const http = foreignReplyError(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"), TLS);
  assert.equal(http?.failure, "not_authchat");
  assert.match(http!.explanation, /^it speaks HTTP, not authchat: check --port/);
  const ssh = foreignReplyError(new TextEncoder().encode("SSH-2.0-OpenSSH_9.2p1 Debian\r\n"), TCP);
  assert.equal(
    ssh?.explanation,
    'not an authchat server (it answered "SSH-2.0-OpenSSH_9.2p1 Debian"): check --host and --port',
  );
  // Control characters from the peer never reach the terminal.
  const binary = foreignReplyError(new Uint8Array([0x1b, 0x5b, 0x32, 0x4a, 0x07, 0xff]), TCP);
  assert.equal(
    binary?.explanation,
    "not an authchat server (it answered with bytes that are not an authchat frame): check --host and --port",
  );
  const long = foreignReplyError(new TextEncoder().encode("x".repeat(500)), TCP);
  assert.ok(long!.explanation.length < 120, long!.explanation);
});

Deno.test("describeConnectFailure finds the reason behind a closed connection, else keeps the message", () => {
  const behind = new ConnectionClosedError("Connection failed: …", {
    cause: foreignReplyError(new Uint8Array([0x15, 3, 3, 0, 2]), TCP)!,
  });
  assert.equal(
    describeConnectFailure(behind, TCP),
    "Cannot connect to 127.0.0.1:1992: it speaks TLS: add --tls",
  );
  const silent = new ConnectionClosedError("Server did not answer HELLO within 30 s", {
    cause: new Deno.errors.TimedOut("Server did not answer HELLO within 30 s"),
  });
  assert.equal(
    describeConnectFailure(silent, TCP),
    "Cannot connect to 127.0.0.1:1992: no answer to HELLO in time (not an authchat server?): " +
      "check --host and --port",
  );
  assert.equal(
    describeConnectFailure(new TrustError("TLS verification of 127.0.0.1:1991 failed: bad cert"), TLS),
    "Cannot connect to 127.0.0.1:1991: TLS verification of 127.0.0.1:1991 failed: bad cert",
  );
  assert.equal(
    describeConnectFailure(new ProtocolError("UNSUPPORTED_VERSION", "Version 1 is not supported"), TCP),
    "Cannot connect to 127.0.0.1:1992: Version 1 is not supported (UNSUPPORTED_VERSION)",
  );
  assert.equal(
    describeConnectFailure(new Deno.errors.ConnectionRefused("refused"), {
      host: "::1",
      port: 1991,
      tls: false,
    }),
    "Cannot connect to [::1]:1991: nothing is listening there (connection refused): start the server " +
      "(deno task start, or authchat server), or check --host and --port",
  );
});

/** Run a fake peer on port 0 that handles one connection, and connect to it with the real client. */
async function connectTo(
  peer: (conn: Deno.Conn) => Promise<void>,
  options: { tls?: boolean; timeoutMs?: number; requestTimeoutMs?: number } = {},
): Promise<unknown> {
  const dir = await Deno.makeTempDir();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = listener.accept().then(async (conn) => {
    try {
      await peer(conn);
    } finally {
      try {
        conn.close();
      } catch {
        // Closed by the peer function.
      }
    }
  });
  try {
    const client = await AuthchatClient.connect({
      host: "127.0.0.1",
      port: (listener.addr as Deno.NetAddr).port,
      tls: options.tls ?? false,
      trust: { knownHosts: new KnownHosts(join(dir, "known_hosts")) },
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    });
    await client.close();
    return null;
  } catch (err) {
    return err;
  } finally {
    await serving;
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function readSome(conn: Deno.Conn): Promise<void> {
  await conn.read(new Uint8Array(4096));
}

Deno.test("AuthchatClient.connect fails with a ConnectError naming an HTTP server", async () => {
  const err = await connectTo(async (conn) => {
    await readSome(conn);
    await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
  });
  assert.ok(err instanceof ConnectionClosedError, String(err));
  assert.match(
    describeConnectFailure(err, TCP),
    /^Cannot connect to 127\.0\.0\.1:1992: it speaks HTTP, not authchat: check --port/,
  );
});

Deno.test("AuthchatClient.connect fails with a ConnectError for a peer that hangs up at once, on TCP and TLS", async () => {
  for (const tls of [false, true]) {
    const err = await connectTo(() => Promise.resolve(), { tls });
    assert.equal(
      describeConnectFailure(err, TCP),
      "Cannot connect to 127.0.0.1:1992: it closed the connection without answering (not an authchat " +
        "server, or one refusing this address): check --host and --port",
      `tls: ${tls}`,
    );
  }
});

Deno.test("AuthchatClient.connect over TLS to a port answering with authchat frames says it is not TLS", async () => {
  const err = await connectTo(async (conn) => {
    await readSome(conn);
    // What an authchat TCP port answers to a ClientHello: an ERROR frame.
    await conn.write(encodeFrame(new TextEncoder().encode('{"op":"ERROR","code":"FRAME_TOO_LARGE"}')));
  }, { tls: true });
  assert.ok(err instanceof ConnectError, String(err));
  assert.equal(err.failure, "not_tls");
});

Deno.test("AuthchatClient.connect reports a silent peer: no TLS handshake, no answer to HELLO", async () => {
  const silent = (conn: Deno.Conn) => readSome(conn).then(() => readSome(conn));
  const tls = await connectTo(silent, { tls: true, timeoutMs: 300 });
  assert.ok(tls instanceof ConnectError, String(tls));
  assert.equal(tls.failure, "timeout");
  assert.match(tls.explanation, /^no answer within 0\.3 s/);
  const tcp = await connectTo(silent, { requestTimeoutMs: 300 });
  assert.match(describeConnectFailure(tcp, TCP), /no answer to HELLO in time \(not an authchat server\?\)/);
});

Deno.test("AuthchatClient.connect on a port nothing listens on fails with a refused ConnectError", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  for (const tls of [false, true]) {
    const err = await AuthchatClient.connect({ host: "127.0.0.1", port, tls, trust: { ca: "unused" } }).then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof ConnectError, `tls: ${tls}: ${err}`);
    assert.equal(err.failure, "refused", "with --ca too: no certificate was seen, so it is no trust error");
  }
});
