/**
 * Descriptor exhaustion (issue 9, item 1): a server under a low `ulimit -n` flooded with connections from
 * many addresses, each under the per-address caps. It must shed connections that are not logged in
 * instead of failing every accept, keep logins working during the attack, not spin on failed accepts,
 * keep its log small (rate-limited, with counts), and recover when the attack ends.
 *
 * @module
 */

import assert from "node:assert/strict";
import net from "node:net";
import { join } from "node:path";
import { defaultConnectionCap } from "../../lib/server/descriptor_limit.ts";
import { ALICE, goodCliLogin, goodRawLogin } from "./_bad_input_kit.ts";
import { installKeys, seedUsers, ServerProcess, tempDir } from "./_harness.ts";
import { hello, RawClient, scramLogin } from "./_raw_client.ts";
import type { Reply } from "./_raw_client.ts";

/** Lines per second and burst the servers here log with (the defaults, said explicitly). */
const LOG_RATE = 10;
const LOG_BURST = 20;

/**
 * Connections from many source addresses that reconnect as soon as the server closes them, as an
 * attacker holding a server's descriptors would. They read and discard what the server says, noting a
 * `BYE SERVER_FULL`.
 */
class Flood {
  /** Connections established so far. */
  opened = 0;
  /** Connections told `BYE SERVER_FULL`. */
  shed = 0;
  #sockets = new Set<net.Socket>();
  #running = true;
  #closed = new Set<Promise<void>>();
  #waiters: { count: number; resolve(): void }[] = [];

  /**
   * Start the flood.
   *
   * @param targets Ports to connect to, used in turn.
   * @param slots Connections kept open (each reconnects when closed).
   * @param addresses Source addresses, 127.0.0.2 and on.
   */
  constructor(readonly targets: number[], slots: number, readonly addresses: number) {
    for (let i = 0; i < slots; i++) this.#connect(i);
  }

  #connect(slot: number): void {
    if (!this.#running) return;
    const socket = net.connect({
      host: "127.0.0.1",
      port: this.targets[slot % this.targets.length]!,
      localAddress: `127.0.0.${2 + slot % this.addresses}`,
    });
    this.#sockets.add(socket);
    const closed = new Promise<void>((resolve) => {
      socket.on("close", () => {
        this.#sockets.delete(socket);
        this.#closed.delete(closed);
        resolve();
        // Reconnect after the close has been handled, not inside it.
        queueMicrotask(() => this.#connect(slot));
      });
    });
    this.#closed.add(closed);
    socket.on("connect", () => {
      this.opened++;
      for (const waiter of this.#waiters.filter((w) => this.opened >= w.count)) waiter.resolve();
      this.#waiters = this.#waiters.filter((w) => this.opened < w.count);
    });
    socket.on("data", (chunk: Uint8Array) => {
      if (new TextDecoder().decode(chunk).includes('"SERVER_FULL"')) this.shed++;
    });
    socket.on("error", () => {});
  }

  /**
   * Wait until this many connections have been established in all.
   *
   * @param count The number.
   */
  reached(count: number): Promise<void> {
    if (this.opened >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }

  /** End the flood: close every connection and wait until they are closed. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const socket of this.#sockets) socket.destroy();
    while (this.#closed.size > 0) await Promise.all([...this.#closed]);
  }
}

/** Every line of the log, split into its level, event and `key=value` fields. */
function parseLog(log: string): { level: string; event: string; fields: Record<string, string> }[] {
  return log.split("\n").filter((line) => line !== "").map((line) => {
    const [, level = "", event = "", ...rest] = line.split(" ");
    const fields = Object.fromEntries(rest.map((kv) => kv.split("=", 2) as [string, string]));
    return { level, event, fields };
  });
}

/**
 * How often each event happened: the lines logged plus the lines the `suppressed` reports counted; and the
 * lines logged per event and code, what each rate limit applies to.
 */
function eventCounts(
  log: string,
): { logged: Map<string, number>; happened: Map<string, number>; limited: Map<string, number> } {
  const logged = new Map<string, number>();
  const happened = new Map<string, number>();
  const limited = new Map<string, number>();
  for (const { event, fields } of parseLog(log)) {
    logged.set(event, (logged.get(event) ?? 0) + 1);
    const key = fields.code === undefined ? event : `${event} code=${fields.code}`;
    limited.set(key, (limited.get(key) ?? 0) + 1);
    const [name, count] = event === "suppressed" ? [fields.of!, Number(fields.count)] : [event, 1];
    happened.set(name, (happened.get(name) ?? 0) + count);
  }
  return { logged, happened, limited };
}

/**
 * Wait until the server's log matches (polled: the log is the only thing that says so).
 *
 * @returns The match, or `null` when `signal` stopped the wait first.
 */
async function logShows(
  server: ServerProcess,
  pattern: RegExp,
  signal?: AbortSignal,
): Promise<RegExpMatchArray | null> {
  for (let tries = 0; tries < 1500 && !signal?.aborted; tries++) {
    const match = server.stderr.match(pattern);
    if (match) return match;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (signal?.aborted) return null;
  throw new Error(`The server log never showed ${pattern}:\n${server.stderr}`);
}

Deno.test("a flood of connections beyond the descriptors sheds those not logged in, and logins keep working", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  const passwordFile = join(dir.path, "alice.pw");
  await Deno.writeTextFile(passwordFile, `${ALICE.password}\n`);
  const server = await ServerProcess.start(data, {
    descriptors: 256,
    env: { AUTHCHAT_LOG_LINES_PER_SECOND: String(LOG_RATE), AUTHCHAT_LOG_LINES_BURST: String(LOG_BURST) },
  });
  let flood: Flood | null = null;
  try {
    // The cap comes from the descriptors the server found free: fewer than the 256 of the limit.
    const [, cap, free] = (await logShows(
      server,
      / INFO connection_cap max_connections=(\d+) free_descriptors=(\d+) found=probe$/m,
    ))!.map(Number);
    assert.ok(free! < 256 && free! > 150, `free descriptors: ${free}`);
    assert.equal(cap, defaultConnectionCap(free!));

    // 300 connections from 20 addresses (15 each, under the cap of 32 per address), a third of them on
    // TLS, reconnecting whenever they are shed: more than the process has descriptors, all the time.
    flood = new Flood([server.tcpPort, server.tcpPort, server.tlsPort], 300, 20);
    await flood.reached(600);
    await goodRawLogin(server.tcpPort);
    await goodCliLogin(server.tcpPort, passwordFile, dir.path);
    // A logged-in session is never shed: it stays usable as the flood goes on.
    await using kept = await RawClient.connect(server.tcpPort);
    const greeting = await hello(kept);
    await scramLogin(kept, { ...ALICE, mechanisms: greeting.mechanisms as string[] });
    const during = flood.opened;
    await flood.reached(during + 300);
    assert.deepEqual(await kept.request({ op: "IS_LOGGED", id: 7 }), {
      op: "IS_LOGGED",
      id: 7,
      logged_in: true,
      user: "alice",
    });
    assert.ok(flood.shed > 0, "flood connections were told BYE SERVER_FULL");
    const opened = flood.opened;
    await flood.stop();
    flood = null;

    // After the flood, everything works as before.
    await goodRawLogin(server.tcpPort);
    assert.deepEqual(await kept.request({ op: "IS_LOGGED", id: 8 }), {
      op: "IS_LOGGED",
      id: 8,
      logged_in: true,
      user: "alice",
    });
    await kept.close();
    const status = await server.stop("SIGTERM");
    assert.equal(status.code, 0, server.stderr);

    const log = server.stderr;
    const { logged, happened, limited } = eventCounts(log);
    assert.ok((happened.get("connect") ?? 0) > opened / 2, "the server accepted most of the flood");
    // Each event logged its burst, then its rate over the log's span (by the log's own timestamps), and
    // counted the rest: unlimited, each flood connection would log three lines (connect, ended, disconnect).
    const stamps = log.split("\n").filter((l) => l !== "").map((l) => Date.parse(l.slice(0, 24)));
    const budget = LOG_BURST + LOG_RATE * ((stamps.at(-1)! - stamps[0]!) / 1000 + 1);
    for (const [event, count] of limited) {
      if (!event.startsWith("suppressed")) {
        assert.ok(count <= budget, `${count} lines of ${event}, at most ${budget}`);
      }
    }
    assert.match(log, / WARN suppressed of=connect count=\d+ seconds=[\d.]+$/m);
    assert.ok(happened.get("connect")! > 2 * logged.get("connect")!, "most connect lines were left out");
    // The ready line and the stop lines are always there; nothing crashed.
    for (const event of ["listening", "stopping", "shutdown"]) assert.equal(logged.get(event), 1, event);
    assert.doesNotMatch(log, / ERROR |panicked|Uncaught/);
  } finally {
    await flood?.stop();
    await server.kill();
  }
});

Deno.test("a configured max_connections makes the start-up probe count only the descriptors it needs", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const server = await ServerProcess.start(data, {
    descriptors: 4096,
    env: { AUTHCHAT_MAX_CONNECTIONS: "100" },
  });
  try {
    // 100 connections and the reserve of 64 fit: counting the other 3,900 would tell nothing more.
    await logShows(
      server,
      / INFO connection_cap max_connections=100 configured=true free_descriptors=164 at_least=true found=probe$/m,
    );
    assert.doesNotMatch(server.stderr, /connection_cap_above_descriptors/);
  } finally {
    await server.kill();
  }
});

Deno.test("a server out of descriptors pauses between failed accepts, serves its sessions meanwhile, and recovers", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password });
  // A cap above what the process may open, so the descriptors run out before the cap is reached.
  const server = await ServerProcess.start(data, {
    descriptors: 64,
    // Alice logs in some 35 sessions in quick succession: above a person's budget of logins (PROTOCOL §7).
    env: {
      AUTHCHAT_MAX_CONNECTIONS: "1000",
      AUTHCHAT_LOG_LINES_PER_SECOND: String(LOG_RATE),
      AUTHCHAT_LOGINS_PER_MINUTE_PER_ACCOUNT: "1000",
    },
  });
  const sessions: RawClient[] = [];
  let waiting: { client: RawClient; greeting: Promise<Reply> } | null = null;
  try {
    await logShows(server, / INFO connection_cap max_connections=1000 configured=true free_descriptors=\d+ /);
    await logShows(server, / WARN connection_cap_above_descriptors max_connections=1000 /);
    // Log in until the descriptors run out: from then on every accept fails (EMFILE), and a new connection
    // waits in the kernel's queue. (The one that took the last descriptor may be served or not: either way
    // it is the one kept waiting here.)
    while (waiting === null) {
      const client = await RawClient.connect(server.tcpPort);
      await client.send({ op: "HELLO", version: 1, id: 1 });
      const greeting = client.reply(30_000);
      const failing = new AbortController();
      const first = await Promise.race([greeting, logShows(server, / WARN accept_failed /, failing.signal)]);
      failing.abort();
      if (first === null || Array.isArray(first)) {
        waiting = { client, greeting };
      } else {
        sessions.push(client);
        await scramLogin(client, { ...ALICE, mechanisms: (first as Reply).mechanisms as string[] });
      }
    }
    assert.ok(sessions.length > 10, `${sessions.length} sessions before the descriptors ran out`);
    // The pause doubles up to a second: the server does not spin, and it serves its sessions meanwhile.
    await logShows(server, /( WARN accept_failed transport=tcp .* retry_ms=1000\n[^]*){2}/);
    for (const [i, session] of [sessions[0]!, sessions.at(-1)!].entries()) {
      assert.deepEqual(await session.request({ op: "IS_LOGGED", id: 9 + i }), {
        op: "IS_LOGGED",
        id: 9 + i,
        logged_in: true,
        user: "alice",
      });
    }
    // Sessions end: the waiting connection is accepted at the next try, and logs in.
    for (const session of sessions.splice(0, 5)) await session.close();
    const greeting = await waiting.greeting;
    assert.equal(greeting.op, "HELLO", JSON.stringify(greeting));
    await scramLogin(waiting.client, { ...ALICE, mechanisms: greeting.mechanisms as string[] });
    await goodRawLogin(server.tcpPort);
    for (const session of [...sessions.splice(0), waiting.client]) await session.close();
    const status = await server.stop("SIGTERM");
    assert.equal(status.code, 0, server.stderr);
    // Every failed accept is in the log, as a line or in a count: a handful, where a loop without a pause
    // fails tens of thousands of times a second. Each came after the pause the one before announced (by
    // the log's own clock: a timer never fires early).
    const failures = eventCounts(server.stderr).happened.get("accept_failed") ?? 0;
    assert.ok(failures >= 10 && failures < 100, `${failures} failed accepts`);
    const failed = server.stderr.split("\n").filter((line) => / WARN accept_failed /.test(line)).map((
      line,
    ) => ({
      at: Date.parse(line.slice(0, 24)),
      pause: Number(/ retry_ms=(\d+)/.exec(line)?.[1]),
    }));
    assert.ok(failed.filter((f) => f.pause === 1000).length >= 2, "the pause reached a second");
    for (const [i, next] of failed.slice(1).entries()) {
      const previous = failed[i]!;
      assert.ok(
        [5, Math.min(1000, previous.pause * 2)].includes(next.pause),
        `pause ${i + 1}: ${next.pause}`,
      );
      assert.ok(
        next.at - previous.at >= previous.pause - 1,
        `failure ${i + 1} came before its pause was over`,
      );
    }
  } finally {
    for (const session of [...sessions, ...waiting ? [waiting.client] : []]) await session.close();
    await server.kill();
  }
});
