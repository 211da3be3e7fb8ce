import assert from "node:assert/strict";
import { join } from "node:path";
import { ConnectError } from "../../lib/client/connect_error.ts";
import { KnownHosts, TrustError } from "../../lib/client/known_hosts.ts";
import { openConnection } from "../../lib/client/open_connection.ts";
import { openUdpSession, puzzleProgressLine } from "../../lib/client/open_udp_session.ts";
import type { HandshakeCounts, OpenedUdpSession } from "../../lib/client/open_udp_session.ts";
import { mintServerCertificate } from "../../lib/crypto/certificate.ts";
import { fingerprint } from "../../lib/crypto/fingerprint.ts";
import { withTempDir } from "../_temp_dir.ts";
import { FakeUdpServer } from "./_fake_udp_server.ts";
import type { FakeUdpServerOptions } from "./_fake_udp_server.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function endpoint(port: number, timeoutMs = 5000) {
  return { host: "127.0.0.1", port, tls: false, udp: true, timeoutMs };
}

/** Write through the session and read the echo back. */
async function echoes(opened: OpenedUdpSession, text: string): Promise<string> {
  await opened.stream.write(encoder.encode(text));
  const buffer = new Uint8Array(text.length);
  let got = 0;
  while (got < text.length) {
    const n = await opened.stream.read(buffer.subarray(got));
    assert(n !== null, "the session ended before the echo");
    got += n;
  }
  return decoder.decode(buffer);
}

/** Close the session and wait until its socket is closed. */
async function closeSession(opened: OpenedUdpSession): Promise<string> {
  opened.stream.close();
  return await opened.stream.ended;
}

async function withServer(
  options: FakeUdpServerOptions,
  run: (server: FakeUdpServer, knownHosts: KnownHosts) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const server = await FakeUdpServer.start(options);
    try {
      await run(server, new KnownHosts(join(dir, "known_hosts")));
    } finally {
      await server.close();
    }
  });
}

Deno.test("openUdpSession follows a RETRY, trusts on first use and carries bytes both ways", async () => {
  await withServer({}, async (server, knownHosts) => {
    const counts: HandshakeCounts = { initsSent: 0, retries: 0, ignored: 0 };
    const seen: string[] = [];
    const opened = await openUdpSession(endpoint(server.port), {
      knownHosts,
      onNewKey: (kind, name, fp) => seen.push(`${kind} ${name} ${fp}`),
    }, { counts });
    try {
      const expected = await fingerprint(server.certificate.certDer);
      assert.equal(opened.certFingerprint, expected);
      assert.equal(opened.channelBindingType, "authchat-udp-exporter");
      assert.equal(opened.channelBinding?.length, 32);
      assert.deepEqual(seen, [`udp 127.0.0.1:${server.port} ${expected}`]);
      assert.equal(await knownHosts.lookup(`127.0.0.1:${server.port}`, "udp"), expected);
      assert.equal(counts.retries, 1);
      assert.equal(await echoes(opened, "hello over udp"), "hello over udp");
    } finally {
      assert.equal(await closeSession(opened), "closed");
    }
    assert.equal(server.counts.sessions, 1);
  });
});

Deno.test("openConnection with udp opens a UDP session", async () => {
  await withServer({}, async (server, knownHosts) => {
    const opened = await openConnection(endpoint(server.port), { knownHosts });
    try {
      assert.equal(opened.channelBindingType, "authchat-udp-exporter");
      assert.equal(await echoes(opened as OpenedUdpSession, "x"), "x");
    } finally {
      await closeSession(opened as OpenedUdpSession);
    }
  });
});

Deno.test("openUdpSession solves the proof of work a RETRY asks", async () => {
  await withServer({ difficulty: 10 }, async (server, knownHosts) => {
    const counts: HandshakeCounts = { initsSent: 0, retries: 0, ignored: 0 };
    const opened = await openUdpSession(endpoint(server.port), { knownHosts }, { counts });
    try {
      assert.equal(counts.retries, 1);
      assert.equal(await echoes(opened, "worked"), "worked");
    } finally {
      await closeSession(opened);
    }
  });
});

Deno.test("openUdpSession reports the progress of a proof of work that takes over a second", async () => {
  await withServer({ difficulty: 16 }, async (server, knownHosts) => {
    const lines: string[] = [];
    // Each look at the clock (one per 4096 hashes) is a second later: progress is due at every look.
    let clock = 0;
    const opened = await openUdpSession(endpoint(server.port), { knownHosts }, {
      puzzleClock: () => (clock += 1000),
      onPuzzleProgress: (p) => lines.push(puzzleProgressLine(p)),
    });
    try {
      // Progress is looked at after each batch of 4096 hashes: none is due when the first batch found it.
      if (server.lastPowNonce < 4096) {
        assert.deepEqual(lines, []);
      } else {
        assert(lines.length >= 1 && lines.length <= server.lastPowNonce / 4096, `${lines.length} lines`);
        assert.match(lines[0]!, /^Proof of work: 0\.0 M of 0\.1 M hashes expected, \d+ s$/);
      }
      assert.equal(await echoes(opened, "paid"), "paid");
    } finally {
      await closeSession(opened);
    }
  });
});

Deno.test("openUdpSession refuses a difficulty above its cap before any work", async () => {
  await withServer({ difficulty: 25 }, async (server, knownHosts) => {
    const progress: unknown[] = [];
    const err = await openUdpSession(endpoint(server.port), { knownHosts }, {
      onPuzzleProgress: (p) => progress.push(p),
    }).then(() => null, (e: unknown) => e);
    assert(err instanceof ConnectError, String(err));
    assert.equal(err.failure, "pow_refused");
    assert.equal(
      err.message,
      `Cannot connect to 127.0.0.1:${server.port}: Proof of work refused: the server asked for 25 leading ` +
        "zero bits, above this client's cap of 24",
    );
    assert.deepEqual(progress, []);
    // No second INIT: nothing was solved or sent after the RETRY.
    assert.equal(server.counts.inits, 1);
  });
});

Deno.test("openUdpSession ignores a forged RETRY (not its INIT's echo)", async () => {
  await withServer({ forgedRetryDifficulty: 30 }, async (server, knownHosts) => {
    const counts: HandshakeCounts = { initsSent: 0, retries: 0, ignored: 0 };
    const opened = await openUdpSession(endpoint(server.port), { knownHosts }, { counts });
    try {
      assert(counts.ignored >= 1, `ignored ${counts.ignored}`);
      assert.equal(counts.retries, 1);
      assert.equal(await echoes(opened, "still here"), "still here");
    } finally {
      await closeSession(opened);
    }
  });
});

Deno.test("openUdpSession refuses a changed server certificate (known_hosts udp) and sends no FINISH", async () => {
  await withServer({}, async (server, knownHosts) => {
    const other = await mintServerCertificate({ days: 1 });
    const name = `127.0.0.1:${server.port}`;
    await knownHosts.remember(name, "udp", await fingerprint(other.certDer));
    const err = await openUdpSession(endpoint(server.port), { knownHosts }).then(() => null, (e) => e);
    assert(err instanceof TrustError, String(err));
    assert.match(err.message, /WARNING: THE SERVER UDP SESSION CERTIFICATE OF 127\.0\.0\.1:\d+ HAS CHANGED!/);
    assert.match(err.message, new RegExp(`remove the line for ${name.replaceAll(".", "\\.")} udp`));
    assert.equal(server.counts.finishes, 0);
  });
});

Deno.test("openUdpSession refuses a certificate that does not match --fingerprint", async () => {
  await withServer({}, async (server) => {
    const pinned = await fingerprint((await mintServerCertificate({ days: 1 })).certDer);
    const err = await openUdpSession(endpoint(server.port), { fingerprint: pinned }).then(
      () => null,
      (e) => e,
    );
    assert(err instanceof TrustError, String(err));
    assert.match(
      err.message,
      /^Server certificate of 127\.0\.0\.1:\d+ does not match --fingerprint: expected /,
    );
    assert.equal(server.counts.finishes, 0);
  });
});

Deno.test("openUdpSession checks --ca: the certificate itself, and its subjectAltName against the host", async () => {
  await withServer({}, async (server) => {
    const ca = server.certificate.certPem;
    const opened = await openUdpSession(endpoint(server.port), { ca });
    await closeSession(opened);
    const other = await mintServerCertificate({ days: 1 });
    const err = await openUdpSession(endpoint(server.port), { ca: other.certPem }).then(() => null, (e) => e);
    assert(err instanceof TrustError, String(err));
    assert.match(err.message, /is not trusted by --ca: it is not signed by the CA file's certificates/);
  });
});

Deno.test("openUdpSession gives up with a clear error when nothing answers", async () => {
  await withServer({ silent: true }, async (server, knownHosts) => {
    const counts: HandshakeCounts = { initsSent: 0, retries: 0, ignored: 0 };
    const err = await openUdpSession(endpoint(server.port, 700), { knownHosts }, {
      counts,
      retransmitMs: 100,
    })
      .then(() => null, (e) => e);
    assert(err instanceof ConnectError, String(err));
    assert.equal(err.failure, "timeout");
    assert.match(err.message, /^Cannot connect to 127\.0\.0\.1:\d+: no answer over UDP within 0\.7 s/);
    // Resent with backoff: 0, 100, 300 ms (then 700 is past the deadline).
    assert(counts.initsSent >= 2 && server.counts.inits >= 2, JSON.stringify(counts));
  });
});

Deno.test("openUdpSession says to check the clock when the server's credential is out of date by it", async () => {
  // The server's clock (the credential's) ten days behind this machine's: every ACCEPT is refused.
  await withServer({ credentialNow: Date.now() - 10 * 86_400_000 }, async (server, knownHosts) => {
    const err = await openUdpSession(endpoint(server.port, 700), { knownHosts }, { retransmitMs: 100 })
      .then(() => null, (e) => e);
    assert(err instanceof ConnectError, String(err));
    assert.equal(err.failure, "timeout");
    assert.match(
      err.message,
      /the server answered, but the credential it signs handshakes with is out of date/,
    );
    assert.match(err.message, /check this machine's clock/);
    assert(server.counts.accepts >= 1);
    assert.equal(server.counts.finishes, 0, "nothing is sent for a refused ACCEPT");
  });
  // Within the grace (a day past its end, by this clock), the same server is taken.
  await withServer({ credentialNow: Date.now() - 3 * 86_400_000 }, async (server, knownHosts) => {
    const opened = await openUdpSession(endpoint(server.port), { knownHosts }, { retransmitMs: 100 });
    try {
      assert.equal(await echoes(opened, "a day late"), "a day late");
    } finally {
      assert.equal(await closeSession(opened), "closed");
    }
    assert.equal(server.counts.sessions, 1);
  });
});

Deno.test("openUdpSession resends FINISH until the server's first RECORD (a FINISH lost)", async () => {
  await withServer({ dropFinishes: 1 }, async (server, knownHosts) => {
    const opened = await openUdpSession(endpoint(server.port), { knownHosts }, {
      stream: { reliable: { initialRtoMs: 50 } },
    });
    try {
      assert.equal(await echoes(opened, "after a lost finish"), "after a lost finish");
      assert(server.counts.finishes >= 2, `finishes ${server.counts.finishes}`);
      assert.equal(server.counts.sessions, 1);
    } finally {
      await closeSession(opened);
    }
  });
});

Deno.test("openUdpSession reaches a server on IPv6, and a name through the resolver", async () => {
  await withServer({ hostname: "::1" }, async (server, knownHosts) => {
    const opened = await openUdpSession({ ...endpoint(server.port), host: "::1" }, { knownHosts });
    try {
      assert.equal(await echoes(opened, "v6"), "v6");
      assert.equal(await knownHosts.lookup(`[::1]:${server.port}`, "udp"), opened.certFingerprint);
    } finally {
      await closeSession(opened);
    }
  });
  await withServer({}, async (server, knownHosts) => {
    // localhost may resolve to ::1 first; the IPv4 address is chosen, where this server listens.
    const opened = await openUdpSession({ ...endpoint(server.port), host: "localhost" }, { knownHosts });
    try {
      assert.equal(await echoes(opened, "by name"), "by name");
    } finally {
      await closeSession(opened);
    }
  });
});

Deno.test("openUdpSession names a host that does not resolve", async () => {
  const err = await openUdpSession({ ...endpoint(1991), host: "no-such-host.invalid" }, {}).then(
    () => null,
    (e) => e,
  );
  assert(err instanceof ConnectError, String(err));
  assert.equal(err.failure, "unknown_host");
});

Deno.test("openUdpSession gathers an ACCEPT in two fragments, sending INIT again when one is lost", async () => {
  const certificate = await mintServerCertificate({ days: 1, rsa: true });
  await withServer({ certificate, dropAccepts: 2 }, async (server, knownHosts) => {
    const counts: HandshakeCounts = { initsSent: 0, retries: 0, ignored: 0 };
    const opened = await openUdpSession(endpoint(server.port), { knownHosts }, { counts, retransmitMs: 50 });
    try {
      assert.equal(opened.certFingerprint, await fingerprint(certificate.certDer));
      // The first INIT drew the RETRY; its repeat and one more drew ACCEPTs missing a fragment.
      assert(counts.initsSent >= 4, JSON.stringify(counts));
      assert.equal(await echoes(opened, "rsa"), "rsa");
    } finally {
      await closeSession(opened);
    }
  });
});
