/**
 * Bad input on the UDP session port (docs/PROTOCOL.md §20): malformed, truncated, oversized, forged,
 * expired, moved, replayed and out-of-window handshake and session datagrams. Each row sends its datagrams
 * to one real server; nothing it sends may be answered, the session it targets (if any) keeps working, and
 * a real UDP login follows every row. At the end the server's `udp_stats` line and its metrics must show
 * every row's drops under the row's reason.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeRetry, encodeInit, RETRY_TYPE } from "../../lib/codec/udp_init.ts";
import { ACCEPT_TYPE, encodeFinish, RECORD_TYPE } from "../../lib/codec/udp_session_datagram.ts";
import { ClientHandshake } from "../../lib/crypto/udp_client_handshake.ts";
import { proofBits, solvePuzzle } from "../../lib/crypto/udp_puzzle.ts";
import { parseExposition, sampleValue } from "../server/_parse_exposition.ts";
import { ALICE, goodRawLogin } from "./_bad_input_kit.ts";
import { installKeys, seedUsers, ServerProcess, tempDir } from "./_harness.ts";
import { hello, scramLogin } from "./_raw_client.ts";
import { UdpProbe, UdpSessionClient } from "./_udp_session_client.ts";

/** How long a row waits for an answer that must not come. */
const SILENCE_MS = 300;
/** The server's handshake threshold here: low, so a row can raise the load and get a puzzle. */
const HANDSHAKE_THRESHOLD = 20;

/** What a row runs with; everything it opens is closed after it. */
class UdpEnv {
  readonly port: number;
  #probes: UdpProbe[] = [];
  #quiet: UdpProbe[] = [];
  #clients: UdpSessionClient[] = [];

  constructor(port: number) {
    this.port = port;
  }

  /** A fresh socket; `quiet`: nothing may arrive on it after the row's last send. */
  probe(from = "127.0.0.1", quiet = true): UdpProbe {
    const probe = new UdpProbe(this.port, from);
    this.#probes.push(probe);
    if (quiet) this.#quiet.push(probe);
    return probe;
  }

  /** From now on nothing may arrive on `probe`. */
  quiet(probe: UdpProbe): void {
    this.#quiet.push(probe);
  }

  /** An established session. */
  async session(): Promise<UdpSessionClient> {
    const client = await UdpSessionClient.connect(this.port);
    this.#clients.push(client);
    return client;
  }

  /** A cookie for these INIT fields from the probe's source, with what the RETRY asked. */
  async retry(probe: UdpProbe, fields: { clientRandom: Uint8Array; clientShare: Uint8Array }) {
    return decodeRetry(await probe.exchange(encodeInit(fields), RETRY_TYPE));
  }

  /** A half-open session: INIT, RETRY, INIT with the cookie, ACCEPT; no FINISH sent. */
  async halfOpen() {
    const probe = this.probe("127.0.0.1", false);
    const handshake = await ClientHandshake.start();
    const fields = { clientRandom: handshake.init.clientRandom, clientShare: handshake.init.clientShare };
    const retry = await this.retry(probe, fields);
    const powNonce = await solvePuzzle(retry.cookie, retry.difficulty);
    const accept = await probe.exchange(
      encodeInit({ ...fields, cookie: retry.cookie, powNonce }),
      ACCEPT_TYPE,
    );
    const accepted = await handshake.receiveAccept(accept);
    assert.ok(accepted.kind === "accepted", JSON.stringify(accepted));
    this.quiet(probe);
    return { probe, accepted };
  }

  /** Check the silence, check the sessions still work, close everything. */
  async close(): Promise<void> {
    try {
      for (const probe of this.#quiet) {
        const got = await probe.next(SILENCE_MS);
        assert.equal(got, null, `the server answered: ${got?.slice(0, 3)}`);
      }
      for (const client of this.#clients) assert.equal((await hello(client.raw, 77)).op, "HELLO");
    } finally {
      for (const client of this.#clients) await client.close();
      for (const probe of this.#probes) await probe.close();
    }
  }
}

interface UdpRow {
  name: string;
  /** The reason the row's datagrams are counted under: `<stage>_<reason>` (`udp_stats`: `session_drop_…`). */
  reason: string;
  /** How many drops the row makes (default 1). */
  count?: number;
  run(env: UdpEnv): Promise<void>;
}

function fields(seed: number) {
  return { clientRandom: new Uint8Array(32).fill(seed), clientShare: new Uint8Array(32).fill(seed ^ 0x5a) };
}

/** A cookie of `slot` (current by default) with tags that are not the server's. */
function forgedCookie(slotOffset: number, length = 29): Uint8Array {
  const cookie = crypto.getRandomValues(new Uint8Array(length));
  if (length >= 5) {
    new DataView(cookie.buffer).setUint32(0, Math.floor(Date.now() / 10_000) + slotOffset);
    cookie[4] = 0;
  }
  return cookie;
}

/** Send `bytes` from a fresh quiet socket. */
function fromNowhere(bytes: () => Uint8Array): (env: UdpEnv) => Promise<void> {
  return (env) => env.probe().send(bytes());
}

const ROWS: UdpRow[] = [
  {
    name: "INIT cut to 100 bytes",
    reason: "init_malformed",
    run: fromNowhere(() => encodeInit(fields(1)).subarray(0, 100)),
  },
  {
    name: "INIT of 1201 bytes",
    reason: "init_malformed",
    run: fromNowhere(() => {
      const init = new Uint8Array(1201);
      init.set(encodeInit(fields(2)));
      return init;
    }),
  },
  {
    name: "INIT with a non-zero padding byte",
    reason: "init_malformed",
    run: fromNowhere(() => {
      const init = encodeInit(fields(3));
      init[1199] = 1;
      return init;
    }),
  },
  {
    name: "INIT with a pow_nonce but no cookie",
    reason: "init_malformed",
    run: fromNowhere(() => {
      const init = encodeInit(fields(4));
      init[70] = 1;
      return init;
    }),
  },
  {
    name: "1200 random bytes behind an INIT prefix and version",
    reason: "init_malformed",
    run: fromNowhere(() => {
      const init = crypto.getRandomValues(new Uint8Array(1200));
      init.set([0xac, 0x01, 0x30, 0x01]);
      return init;
    }),
  },
  {
    name: "INIT of version 2",
    reason: "init_bad_version",
    run: fromNowhere(() => {
      const init = encodeInit(fields(5));
      init[3] = 2;
      return init;
    }),
  },
  {
    name: "INIT with a forged cookie of the current slot",
    reason: "init_bad_cookie",
    run: fromNowhere(() => encodeInit({ ...fields(6), cookie: forgedCookie(0) })),
  },
  {
    name: "INIT with a cookie of 28 bytes",
    reason: "init_bad_cookie",
    run: fromNowhere(() => encodeInit({ ...fields(7), cookie: forgedCookie(0, 28) })),
  },
  {
    name: "INIT with a cookie from a slot ahead",
    reason: "init_bad_cookie",
    run: fromNowhere(() => encodeInit({ ...fields(8), cookie: forgedCookie(3) })),
  },
  {
    name: "INIT with an expired cookie",
    reason: "init_expired_cookie",
    run: fromNowhere(() => encodeInit({ ...fields(9), cookie: forgedCookie(-3) })),
  },
  {
    name: "INIT with a genuine cookie whose tag was altered",
    reason: "init_moved_cookie",
    run: async (env) => {
      const probe = env.probe("127.0.0.1", false);
      const retry = await env.retry(probe, fields(10));
      const cookie = retry.cookie.slice();
      cookie[6]! ^= 1;
      env.quiet(probe);
      await probe.send(encodeInit({ ...fields(10), cookie }));
    },
  },
  {
    name: "INIT with a cookie minted for another address",
    reason: "init_moved_cookie",
    run: async (env) => {
      const retry = await env.retry(env.probe("127.0.0.30", false), fields(11));
      await env.probe("127.0.0.31").send(encodeInit({ ...fields(11), cookie: retry.cookie }));
    },
  },
  {
    name: "INIT with a proof of work below the cookie's difficulty",
    reason: "init_weak_pow",
    run: async (env) => {
      const probe = env.probe("127.0.0.40", false);
      // Raise the load past the threshold, then take a cookie that asks for work and do too little.
      let retry = await env.retry(probe, fields(12));
      for (let i = 0; retry.difficulty === 0 && i < 10 * HANDSHAKE_THRESHOLD; i++) {
        retry = await env.retry(probe, fields(12));
      }
      assert.ok(retry.difficulty > 0, "the load did not raise the difficulty");
      const powNonce = new Uint8Array(8);
      while (proofBits(retry.cookie, powNonce) >= retry.difficulty) powNonce[7]!++;
      // Late RETRYs of the burst may still arrive: let them, then nothing more.
      while (await probe.next(SILENCE_MS) !== null);
      env.quiet(probe);
      await probe.send(encodeInit({ ...fields(12), cookie: retry.cookie, powNonce }));
    },
  },
  {
    name: "INIT admitted with a low-order (all zero) client_share",
    reason: "init_bad_init",
    run: async (env) => {
      const probe = env.probe("127.0.0.50", false);
      const zero = { clientRandom: new Uint8Array(32).fill(13), clientShare: new Uint8Array(32) };
      const retry = await env.retry(probe, zero);
      env.quiet(probe);
      await probe.send(
        encodeInit({
          ...zero,
          cookie: retry.cookie,
          powNonce: await solvePuzzle(retry.cookie, retry.difficulty),
        }),
      );
    },
  },
  {
    name: "FINISH of 8 bytes",
    reason: "finish_malformed",
    run: fromNowhere(() => new Uint8Array([0xac, 0x01, 0x33, 1, 2, 3, 4, 5])),
  },
  {
    name: "FINISH of 60 bytes for a half-open connection",
    reason: "finish_malformed",
    run: async (env) => {
      const { probe, accepted } = await env.halfOpen();
      const long = new Uint8Array(60);
      long.set(accepted.finish);
      await probe.send(long);
    },
  },
  {
    name: "FINISH for a connection id nobody has",
    reason: "finish_unknown_connection",
    run: fromNowhere(() => encodeFinish(crypto.getRandomValues(new Uint8Array(8)), new Uint8Array(32))),
  },
  {
    name: "FINISH with the wrong verify_data",
    reason: "finish_bad_finish",
    run: async (env) => {
      const { probe, accepted } = await env.halfOpen();
      const bad = accepted.finish.slice();
      bad[bad.length - 1]! ^= 1;
      await probe.send(bad);
    },
  },
  {
    name: "RECORD of 9 bytes",
    reason: "record_truncated",
    run: fromNowhere(() => new Uint8Array([0xac, 0x01, 0x34, 1, 2, 3, 4, 5, 6])),
  },
  {
    name: "RECORD cut to 30 bytes for a live session",
    reason: "record_truncated",
    run: async (env) => {
      const c = await env.session();
      await c.socket.send(c.session.records.seal(new Uint8Array(8)).subarray(0, 30), target(env));
    },
  },
  {
    name: "RECORD of 1201 bytes for a live session",
    reason: "record_malformed",
    run: async (env) => {
      const c = await env.session();
      const big = new Uint8Array(1201);
      big.set(c.session.records.seal(new Uint8Array(8)));
      await c.socket.send(big, target(env));
    },
  },
  {
    name: "RECORD with one bit of its tag flipped",
    reason: "record_forged",
    run: async (env) => {
      const c = await env.session();
      const record = c.session.records.seal(new Uint8Array(8));
      record[record.length - 1]! ^= 1;
      await c.socket.send(record, target(env));
    },
  },
  {
    name: "RECORD with one bit of its counter flipped",
    reason: "record_forged",
    run: async (env) => {
      const c = await env.session();
      const record = c.session.records.seal(new Uint8Array(8));
      record[18]! ^= 0x20;
      await c.socket.send(record, target(env));
    },
  },
  {
    name: "RECORD replayed",
    reason: "record_replayed",
    run: async (env) => {
      const c = await env.session();
      const record = c.session.records.seal(new Uint8Array([0x7f]));
      await c.socket.send(record, target(env));
      await c.socket.send(record, target(env));
    },
  },
  {
    name: "genuine RECORD from another address than its session's (the session does not move)",
    reason: "record_moved",
    run: async (env) => {
      const c = await env.session();
      await env.probe("127.0.0.60").send(c.session.records.seal(new Uint8Array([0x7f])));
    },
  },
  {
    name: "genuine FINISH from another address than the admitted INIT's",
    reason: "finish_moved",
    run: async (env) => {
      const { accepted } = await env.halfOpen();
      await env.probe("127.0.0.61").send(accepted.finish);
    },
  },
  {
    name: "RECORD 70 counters behind the newest",
    reason: "record_out_of_window",
    run: async (env) => {
      const c = await env.session();
      const sealed = Array.from({ length: 70 }, () => c.session.records.seal(new Uint8Array([0x7f])));
      await c.socket.send(sealed[69]!, target(env));
      await c.socket.send(sealed[0]!, target(env));
    },
  },
  {
    name: "RECORD for a connection id nobody has",
    reason: "record_unknown_connection",
    run: fromNowhere(() => {
      const record = crypto.getRandomValues(new Uint8Array(100));
      record.set([0xac, 0x01, RECORD_TYPE]);
      return record;
    }),
  },
  {
    name: "RECORD before the session's FINISH",
    reason: "record_not_established",
    run: async (env) => {
      const { probe, accepted } = await env.halfOpen();
      await probe.send(accepted.session.records.seal(new Uint8Array([0x7f])));
    },
  },
  {
    name: "authenticated RECORD that carries no packet of the reliable layer",
    reason: "record_bad_packet",
    run: async (env) => {
      const c = await env.session();
      await c.socket.send(c.session.records.seal(new Uint8Array([0x7f, 1, 2])), target(env));
    },
  },
];

function target(env: UdpEnv): Deno.NetAddr {
  return { transport: "udp", hostname: "127.0.0.1", port: env.port };
}

/** Reasons other traffic adds to (clients' extra CLOSE copies and FINISH resends): counted at least. */
const NOISY = new Set([
  "record_unknown_connection",
  "finish_duplicate",
  "record_closed",
  "record_bad_packet",
]);

async function goodUdpLogin(port: number): Promise<void> {
  await using c = await UdpSessionClient.connect(port, { from: "127.0.0.99" });
  const greeting = await hello(c.raw);
  const { reply } = await scramLogin(c.raw, { ...ALICE, mechanisms: greeting.mechanisms as string[] });
  assert.equal(reply.user, "alice");
  assert.deepEqual(await c.raw.request({ op: "CLOSE", id: 9 }), { op: "CLOSE", id: 9 });
  await c.raw.expectClosed();
}

Deno.test("authchat server drops bad UDP session datagrams, counts each by reason, and keeps serving", async (t) => {
  assert.ok(ROWS.length >= 20);
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  const server = await ServerProcess.start(data, {
    args: ["--metrics-port", "0"],
    env: {
      AUTHCHAT_LOG_FORMAT: "json",
      AUTHCHAT_LOGINS_PER_MINUTE_PER_ACCOUNT: "100000",
      AUTHCHAT_LOG_LINES_PER_SECOND: "0",
      AUTHCHAT_UDP_HANDSHAKE_THRESHOLD: String(HANDSHAKE_THRESHOLD),
    },
  });
  const expected = new Map<string, number>();
  let stopped = false;
  try {
    for (const [index, row] of ROWS.entries()) {
      await t.step(`${row.name} → ${row.reason}`, async () => {
        const env = new UdpEnv(server.udpPort);
        try {
          await row.run(env);
        } finally {
          await env.close();
        }
        expected.set(row.reason, (expected.get(row.reason) ?? 0) + (row.count ?? 1));
        await goodUdpLogin(server.udpPort);
        if (index % 8 === 7) await goodRawLogin(server.tcpPort);
      });
    }
    await goodRawLogin(server.tcpPort);
    const metricsPort = Number(/metrics=\S+:(\d+)/.exec(server.line)?.[1]);
    // Past the metrics' cache of a second, so the scrape sees every row.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const metrics = parseExposition(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
    for (const [reason, count] of expected) {
      if (reason === "record_bad_packet") continue; // Counted when the session ends: checked in udp_stats.
      const value = sampleValue(metrics, "authchat_udp_dropped_total", { reason }) ?? 0;
      assert.ok(value >= count, `metrics: ${reason} is ${value}, expected ${count}`);
    }
    const status = await server.stop("SIGTERM");
    stopped = true;
    assert.equal(status.code, 0, server.stderr);
  } finally {
    if (!stopped) await server.stop();
  }
  const events = server.stderr.trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(!events.some((e) => e.level === "error"), `errors logged: ${server.stderr}`);
  const stats = events.find((e) => e.event === "udp_stats");
  assert.ok(stats, "no udp_stats line");
  for (const [reason, count] of expected) {
    const value = stats[`session_drop_${reason}`] ?? 0;
    if (NOISY.has(reason)) assert.ok(value >= count, `${reason}: ${value} < ${count}`);
    else assert.equal(value, count, `udp_stats ${reason}`);
  }
  assert.equal(stats.session_drop_init_internal, undefined, "no server fault");
});
