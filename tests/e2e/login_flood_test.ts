/**
 * The presence flood of issue 9 against a real server with its default settings: one account logging in
 * and dropping in a loop while others watch, and the exact count of wrong proofs checked before backoff.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { installKeys, seedUsers, ServerProcess, tempDir } from "./_harness.ts";
import { hello, RawClient, scramAttempt, scramLogin } from "./_raw_client.ts";
import type { Reply } from "./_raw_client.ts";

const PASSWORD = "tulip orbit canyon 7";
const WATCHERS = 4;
/** The server's default `logins_per_minute_per_account`. */
const ACCOUNT_BUDGET = 30;
/** The server's interval between two notices about one user. */
const NOTICE_INTERVAL_MS = 500;

/** A logged-in connection that keeps every frame it receives, with its arrival time. */
class Watcher {
  readonly frames: { at: number; frame: Reply }[] = [];
  #client: RawClient;
  #reading: Promise<void>;

  private constructor(client: RawClient) {
    this.#client = client;
    this.#reading = (async () => {
      while (true) {
        const frame = await client.next(3_600_000);
        if (frame === null) return;
        this.frames.push({ at: Date.now(), frame });
      }
    })();
  }

  static async start(port: number, user: string): Promise<Watcher> {
    const client = await RawClient.connect(port);
    const greeting = await hello(client);
    await scramLogin(client, { user, password: PASSWORD, mechanisms: greeting.mechanisms as string[] });
    return new Watcher(client);
  }

  /** The PRESENCE notices about `user` received so far. */
  about(user: string): { at: number; state: unknown }[] {
    return this.frames.flatMap(({ at, frame }) =>
      frame.op === "PRESENCE" && frame.user === user ? [{ at, state: frame.state }] : []
    );
  }

  async close(): Promise<void> {
    await this.#client.close();
    await this.#reading;
  }
}

/** One cycle of the loop: connect, log in, drop the connection. The reply to LOGIN, or to PROOF. */
async function loginAndDrop(port: number, user: string): Promise<Reply> {
  const client = await RawClient.connect(port);
  try {
    const greeting = await hello(client);
    const mechanisms = greeting.mechanisms as string[];
    return (await scramAttempt(client, { user, password: PASSWORD, mechanisms })).reply;
  } finally {
    await client.close(); // no CLOSE: a drop, which takes the user offline at once
  }
}

/** The names `LIST` shows on a logged-in connection (PRESENCE notices arriving meanwhile are skipped). */
async function listed(client: RawClient, id: number): Promise<string[]> {
  await client.send({ op: "LIST", id });
  while (true) {
    const frame = await client.reply();
    if (frame.id === id) return (frame.users as { user: string }[]).map((u) => u.user);
  }
}

/** Wait until `done` holds, polling; fail with `what` after a generous deadline. */
async function eventually(what: string, done: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!await done()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("authchat server bounds a login-and-drop loop: RATE_LIMITED past the account's budget, a few notices a second to each observer, the final state", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  const users = Object.fromEntries(
    ["mallory", ...Array.from({ length: WATCHERS }, (_, i) => `watcher${i}`)].map((u) => [u, PASSWORD]),
  );
  await seedUsers(data, users);
  const server = await ServerProcess.start(data);
  const watchers: Watcher[] = [];
  try {
    for (let i = 0; i < WATCHERS; i++) watchers.push(await Watcher.start(server.tcpPort, `watcher${i}`));
    // LIST shows the directory as it is, uncoalesced: the loop waits for each drop to take mallory offline
    // there, so that every cycle is a real online-offline flap.
    await using lister = await RawClient.connect(server.tcpPort);
    const greeting = await hello(lister);
    await scramLogin(lister, {
      user: "watcher0",
      password: PASSWORD,
      mechanisms: greeting.mechanisms as string[],
    });
    let listId = 100;
    const start = Date.now();
    const outcomes: string[] = [];
    let refusal: Reply | undefined;
    for (let i = 0; i < 120; i++) {
      const reply = await loginAndDrop(server.tcpPort, "mallory");
      outcomes.push(reply.op === "ERROR" ? String(reply.code) : String(reply.op));
      if (reply.code === "RATE_LIMITED") refusal ??= reply;
      await eventually(
        "mallory to go offline",
        async () => !(await listed(lister, listId++)).includes("mallory"),
      );
    }
    const loopMs = Date.now() - start;

    // The loop is refused once the account's budget is spent (a token comes back every 2 s).
    const logins = outcomes.filter((o) => o === "LOGIN").length;
    assert.ok(logins >= ACCOUNT_BUDGET, `${logins} logins`);
    assert.ok(logins <= ACCOUNT_BUDGET + Math.ceil(loopMs / 2000) + 1, `${logins} logins in ${loopMs} ms`);
    assert.deepEqual(outcomes.slice(0, ACCOUNT_BUDGET), Array(ACCOUNT_BUDGET).fill("LOGIN"));
    assert.deepEqual(new Set(outcomes), new Set(["LOGIN", "RATE_LIMITED"]));
    assert.ok(refusal, "a refusal was seen");
    assert.match(String(refusal.message), /^Too many logins to this account: retry in \d+ s$/);
    assert.ok(
      Number(refusal.retry_after_ms) > 0 && Number(refusal.retry_after_ms) <= 2000,
      String(refusal.retry_after_ms),
    );

    // Every watcher ends knowing mallory is offline, and a new session does not list her.
    await eventually(
      "every watcher to hear mallory is offline",
      () => watchers.every((w) => w.about("mallory").at(-1)?.state === "offline"),
    );
    assert.ok(!(await listed(lister, listId++)).includes("mallory"), "and LIST does not show her");
    const spanMs = Date.now() - start;

    // The server sends notices about one user at least 500 ms apart: over the whole run (longer than the
    // span of the notices), at most one per 500 ms and one more, whatever the machine's speed.
    for (const [i, watcher] of watchers.entries()) {
      const notices = watcher.about("mallory");
      const perSecond = (notices.length * 1000 / spanMs).toFixed(1);
      assert.ok(
        notices.length <= Math.floor(spanMs / NOTICE_INTERVAL_MS) + 1,
        `watcher${i}: ${notices.length} notices about mallory in ${spanMs} ms (${perSecond}/s) for ${logins} logins`,
      );
      assert.equal(notices[0]?.state, "online");
    }
  } finally {
    for (const watcher of watchers) await watcher.close();
    await server.stop();
  }
});

Deno.test("authchat server checks exactly failures_before_backoff (5) wrong proofs, and the 6th attempt waits", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { alice: PASSWORD });
  const server = await ServerProcess.start(data);
  try {
    const outcomes: unknown[] = [];
    for (let i = 0; i < 7; i++) {
      await using c = await RawClient.connect(server.tcpPort);
      const greeting = await hello(c);
      const mechanisms = greeting.mechanisms as string[];
      const { reply } = await scramAttempt(c, { user: "alice", password: `wrong guess ${i}`, mechanisms });
      outcomes.push(reply.code);
    }
    assert.deepEqual(outcomes, [
      "AUTH_FAILED",
      "AUTH_FAILED",
      "AUTH_FAILED",
      "AUTH_FAILED",
      "AUTH_FAILED",
      "RATE_LIMITED",
      "RATE_LIMITED",
    ]);
  } finally {
    await server.stop();
  }
});
