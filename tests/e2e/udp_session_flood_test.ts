import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeInit } from "../../lib/codec/udp_init.ts";
import { installKeys, seedUsers, ServerProcess, tempDir } from "./_harness.ts";
import { hello, scramLogin } from "./_raw_client.ts";
import { UdpSessionClient } from "./_udp_session_client.ts";

const ALICE = { user: "alice", password: "tulip orbit canyon 7" };
const SOURCES = 10_000;
const PER_SOURCE = 10;

/** The server's resident set, in kB. */
async function rssKb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  assert.ok(match, "no VmRSS in /proc/<pid>/status");
  return Number(match[1]);
}

/** The i-th flood source: 127.1.0.1 onwards (Linux loopback answers the whole 127/8). */
function source(i: number): string {
  return `127.${1 + (i >> 16)}.${(i >> 8) & 0xff}.${(i & 0xff) || 1}`;
}

/**
 * Send `PER_SOURCE` first INITs from each of `SOURCES` addresses, each with its own `client_random`, as a
 * spoofing attacker would (the test can bind every 127/8 address, so it needs no raw sockets).
 */
async function flood(port: number, sources: { from: number; to: number }): Promise<number> {
  const target = { transport: "udp" as const, hostname: "127.0.0.1", port };
  const init = encodeInit({ clientRandom: new Uint8Array(32), clientShare: new Uint8Array(32).fill(9) });
  let sent = 0;
  for (let i = sources.from; i < sources.to; i++) {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: source(i), port: 0 });
    try {
      for (let j = 0; j < PER_SOURCE; j++) {
        new DataView(init.buffer).setUint32(4, sent);
        await socket.send(init, target);
        sent++;
      }
    } finally {
      socket.close();
    }
  }
  return sent;
}

Deno.test("authchat server under a flood of 100,000 spoofed INITs: flat memory, and a real UDP login gets in", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  // A low handshake threshold, so the flood surely makes the server ask for proof of work.
  const server = await ServerProcess.start(data, {
    env: { AUTHCHAT_LOG_FORMAT: "json", AUTHCHAT_UDP_HANDSHAKE_THRESHOLD: "100" },
  });
  try {
    // Warm up (one login, and a small flood from other sources), so what is measured is what the flood
    // keeps, not the code paths and the heap a server grows into at its first sessions and first load.
    await using warm = await UdpSessionClient.connect(server.udpPort);
    await hello(warm.raw);
    await warm.close();
    await flood(server.udpPort, { from: SOURCES, to: SOURCES + 1_000 });
    const before = await rssKb(server.pid);
    const flooding = flood(server.udpPort, { from: 0, to: SOURCES });
    let login: { difficulty: number; user: unknown };
    try {
      // Into the flood, then a real client logs in.
      await new Promise((resolve) => setTimeout(resolve, 500));
      await using c = await UdpSessionClient.connect(server.udpPort, { from: "127.0.0.77" });
      await hello(c.raw);
      const { reply } = await scramLogin(c.raw, { ...ALICE, mechanisms: ["SCRAM-SHA-256"] });
      login = { difficulty: c.difficulty, user: reply.user };
    } finally {
      const sent = await flooding;
      assert.equal(sent, SOURCES * PER_SOURCE);
    }
    assert.equal(login.user, "alice");
    const after = await rssKb(server.pid);
    const grownKb = after - before;
    assert.ok(grownKb < 10 * 1024, `RSS grew by ${grownKb} kB (from ${before} kB to ${after} kB)`);
    console.log(`flood: RSS ${before} -> ${after} kB, the login paid difficulty ${login.difficulty}`);
  } finally {
    await server.stop();
  }
  const stats = server.stderr.trim().split("\n").map((l) => JSON.parse(l)).find((e) =>
    e.event === "udp_stats"
  );
  assert.ok(stats.session_retry_no_cookie > 10_000, `RETRYs: ${stats.session_retry_no_cookie}`);
  assert.ok(stats.session_opened >= 2);
  assert.equal(stats.session_half_open, 0, "the flood opened no half-open session");
});
