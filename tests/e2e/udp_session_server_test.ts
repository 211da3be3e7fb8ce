import assert from "node:assert/strict";
import { join } from "node:path";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { encodeInit } from "../../lib/codec/udp_init.ts";
import { installKeys, seedUsers, ServerProcess, tempDir } from "./_harness.ts";
import { hello, type RawClient, type Reply } from "./_raw_client.ts";
import { UdpProbe, UdpSessionClient } from "./_udp_session_client.ts";

const ALICE = { user: "alice", password: "tulip orbit canyon 7" };

/** LOGIN and PROOF with SCRAM-SHA-256-PLUS bound to `binding`, over `raw`. */
async function plusLogin(
  raw: RawClient,
  mechanisms: string[],
  binding: Uint8Array<ArrayBuffer>,
  relayTo?: RawClient,
): Promise<{ reply: Reply; scram: ScramClient }> {
  const scram = new ScramClient({
    username: ALICE.user,
    password: ALICE.password,
    serverMechanisms: mechanisms,
    channelBinding: binding,
    channelBindingType: "authchat-udp-exporter",
  });
  assert.equal(scram.mechanism, "SCRAM-SHA-256-PLUS");
  const to = relayTo ?? raw;
  const challenge = await to.request({ op: "LOGIN", id: 2, mechanism: scram.mechanism, data: scram.first });
  assert.equal(challenge.op, "CHALLENGE", JSON.stringify(challenge));
  const reply = await to.request({ op: "PROOF", id: 3, data: await scram.final(String(challenge.data)) });
  return { reply, scram };
}

/** The `udp_stats` line of a JSON log. */
function udpStats(log: string): Record<string, number> {
  const line = log.trim().split("\n").map((l) => JSON.parse(l)).find((e) => e.event === "udp_stats");
  assert.ok(line, `no udp_stats line in ${log}`);
  return line;
}

async function startServer(dir: string): Promise<ServerProcess> {
  const data = join(dir, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  return await ServerProcess.start(data, { env: { AUTHCHAT_LOG_FORMAT: "json" } });
}

Deno.test("authchat server: a UDP session logs in with SCRAM-SHA-256-PLUS bound to the handshake", async () => {
  await using dir = await tempDir();
  const server = await startServer(dir.path);
  try {
    const c = await UdpSessionClient.connect(server.udpPort);
    try {
      const greeting = await hello(c.raw);
      const mechanisms = greeting.mechanisms as string[];
      assert.deepEqual(mechanisms, ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
      const { reply, scram } = await plusLogin(c.raw, mechanisms, c.session.channelBinding);
      assert.equal(reply.op, "LOGIN", JSON.stringify(reply));
      assert.equal(reply.user, "alice");
      await scram.verify(String(reply.data));
      const access = await c.raw.request({ op: "ACCESS", id: 4 });
      assert.equal(access.user, "alice", JSON.stringify(access));
      assert.deepEqual(await c.raw.request({ op: "IS_LOGGED", id: 5 }), {
        op: "IS_LOGGED",
        id: 5,
        logged_in: true,
        user: "alice",
      });
      assert.deepEqual(await c.raw.request({ op: "CLOSE", id: 6 }), { op: "CLOSE", id: 6 });
      await c.raw.expectClosed();
    } finally {
      await c.close();
    }
  } finally {
    await server.stop();
  }
  const stats = udpStats(server.stderr);
  assert.equal(stats.session_opened, 1);
  assert.equal(stats.session_retry_no_cookie, 1);
  assert.ok(server.stderr.includes('"transport":"udp"'), "the session ran as a udp connection");
});

Deno.test("authchat server: SCRAM relayed between two UDP handshakes fails with CHANNEL_BINDING", async () => {
  await using dir = await tempDir();
  const server = await startServer(dir.path);
  try {
    // The victim's session (with the attacker, say) and the attacker's own session with the server: the
    // client's proof covers its binding, which the server's session does not have.
    await using victim = await UdpSessionClient.connect(server.udpPort, { from: "127.0.0.20" });
    await using attacker = await UdpSessionClient.connect(server.udpPort, { from: "127.0.0.21" });
    assert.notEqual(victim.session.channelBinding.toHex(), attacker.session.channelBinding.toHex());
    const greeting = await hello(attacker.raw);
    const { reply } = await plusLogin(
      victim.raw,
      greeting.mechanisms as string[],
      victim.session.channelBinding,
      attacker.raw,
    );
    assert.equal(reply.op, "ERROR", JSON.stringify(reply));
    assert.equal(reply.code, "CHANNEL_BINDING", JSON.stringify(reply));
  } finally {
    await server.stop();
  }
});

Deno.test("authchat server counts what it drops on its UDP session port in udp_stats", async () => {
  await using dir = await tempDir();
  const server = await startServer(dir.path);
  try {
    const target = { transport: "udp" as const, hostname: "127.0.0.1", port: server.udpPort };
    await using c = await UdpSessionClient.connect(server.udpPort);
    const record = c.session.records.seal(new Uint8Array([1, 2, 3]));
    const forged = record.slice();
    forged[forged.length - 1]! ^= 1;
    const unknown = record.slice();
    unknown[5]! ^= 0xff;
    const badInit = encodeInit({ clientRandom: new Uint8Array(32), clientShare: new Uint8Array(32) });
    badInit[3] = 9;
    for (const d of [forged, unknown, badInit, record.subarray(0, 10)]) await c.socket.send(d, target);
    // The session still works after them.
    const greeting = await hello(c.raw);
    assert.equal(greeting.op, "HELLO");
  } finally {
    await server.stop();
  }
  const stats = udpStats(server.stderr);
  assert.equal(stats.session_drop_record_forged, 1);
  // The tampered id, and the extra copies of the client's CLOSE after its session is gone.
  assert.ok((stats.session_drop_record_unknown_connection ?? 0) >= 1);
  assert.equal(stats.session_drop_record_truncated, 1);
  assert.equal(stats.session_drop_init_bad_version, 1);
  assert.ok((stats.session_drops ?? 0) >= 4);
});

Deno.test("authchat server says BYE SHUTDOWN to a UDP session when it stops, then closes it", async () => {
  await using dir = await tempDir();
  const server = await startServer(dir.path);
  let stopping: Promise<unknown> | undefined;
  try {
    await using c = await UdpSessionClient.connect(server.udpPort);
    await hello(c.raw);
    stopping = server.stop();
    const bye = await c.raw.reply().catch((err) => assert.fail(`${err}: ${server.stderr}`));
    assert.equal(bye.op, "BYE", JSON.stringify(bye));
    assert.equal(bye.code, "SHUTDOWN");
    await c.raw.expectClosed();
    assert.equal(await c.stream.ended, "peer_closed");
  } finally {
    await (stopping ?? server.stop());
  }
  const stats = udpStats(server.stderr);
  assert.equal(stats.session_ended_closed, 1, "the server closed the stream");
});

Deno.test("authchat server serves UDP sessions with TLS off, and none with --no-udp-sessions", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  // TLS off: the certificate is loaded anyway, for the handshake's signature.
  const noTls = await ServerProcess.start(data, { args: ["--no-tls"], env: { AUTHCHAT_LOG_FORMAT: "json" } });
  try {
    await using c = await UdpSessionClient.connect(noTls.udpPort);
    const greeting = await hello(c.raw);
    const { reply } = await plusLogin(c.raw, greeting.mechanisms as string[], c.session.channelBinding);
    assert.equal(reply.user, "alice", JSON.stringify(reply));
  } finally {
    await noTls.stop();
  }
  const off = await ServerProcess.start(data, {
    args: ["--no-udp-sessions"],
    env: { AUTHCHAT_LOG_FORMAT: "json" },
  });
  try {
    const probe = new UdpProbe(off.udpPort);
    try {
      await probe.send(encodeInit({ clientRandom: new Uint8Array(32), clientShare: new Uint8Array(32) }));
      assert.equal(await probe.next(500), null, "no RETRY without UDP sessions");
    } finally {
      await probe.close();
    }
  } finally {
    await off.stop();
  }
  const stats = udpStats(off.stderr);
  assert.equal(stats.session_opened, undefined);
  assert.equal(stats.malformed, 1, "the INIT went to the rendezvous, which drops it");
});

Deno.test("authchat server applies the per-address cap to UDP sessions as to TCP connections", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  const server = await ServerProcess.start(data, {
    env: { AUTHCHAT_LOG_FORMAT: "json", AUTHCHAT_MAX_CONNECTIONS_PER_IP: "1" },
  });
  try {
    await using first = await UdpSessionClient.connect(server.udpPort, { from: "127.0.0.44" });
    const greeting = await hello(first.raw);
    const { reply } = await plusLogin(
      first.raw,
      greeting.mechanisms as string[],
      first.session.channelBinding,
    );
    assert.equal(reply.user, "alice");
    // Every session of the address is logged in: the next one is refused, over UDP as over TCP.
    await using second = await UdpSessionClient.connect(server.udpPort, { from: "127.0.0.44" });
    const refused = await second.raw.reply();
    assert.equal(refused.op, "ERROR", JSON.stringify(refused));
    assert.equal(refused.code, "TOO_MANY_CONNECTIONS");
    await second.raw.expectClosed();
    assert.equal((await first.raw.request({ op: "ACCESS", id: 4 })).user, "alice");
  } finally {
    await server.stop();
  }
  assert.match(server.stderr, /"event":"connection_refused","ip":"127\.0\.0\.44","transport":"udp"/);
});
