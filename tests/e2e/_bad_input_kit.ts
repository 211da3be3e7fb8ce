/**
 * The bad-input tables' shared parts: a row (bytes, frames or a scripted exchange that must draw one
 * documented ERROR), the helpers rows are written with, and the runner that plays a table against a real
 * server and checks that it keeps serving. The tables themselves are the `bad_input_*_test.ts` files, one
 * per concern.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { ScramClient } from "../../lib/auth/scram_client.ts";
import { decodeServerMessage } from "../../lib/codec/messages.ts";
import { ERROR_CODES } from "../../lib/codec/protocol_error.ts";
import type { ErrorCode } from "../../lib/codec/protocol_error.ts";
import { formatVerifier } from "../../lib/crypto/scram_verifier.ts";
import { installKeys, runCli, seedUsers, ServerProcess, tempDir, TEST_ITERATIONS } from "./_harness.ts";
import { frameHeader, hello, RawClient, scramLogin, sealVerifier } from "./_raw_client.ts";
import type { Reply } from "./_raw_client.ts";

export const ALICE = { user: "alice", password: "tulip orbit canyon 7" };
const encoder = new TextEncoder();

/** Where a row's steps run: the HELLO reply (when the row said HELLO) and writes still in flight. */
export interface RowEnv {
  greeting: Reply | null;
  inFlight: Promise<unknown>[];
}

/** Raw bytes, a JSON message sent as a frame, a half-close, or a scripted exchange. */
export type Step = Uint8Array | Record<string, unknown> | "closeWrite" | Exchange;
export type Exchange = (c: RawClient, env: RowEnv) => Promise<void>;

export interface Row {
  name: string;
  /** Say HELLO (and check the greeting) before the steps. */
  hello: boolean;
  steps: Step[];
  /** The code of the ERROR frame the last step must draw. */
  code: ErrorCode;
  /** The server closes the connection after the error. */
  fatal: boolean;
  /** The id the error must echo, or `null` for none. */
  id: number | null;
  message?: string | RegExp;
  scram?: string;
  reason?: string;
  /** The user IS_LOGGED must still report after the error (default: logged out). */
  loggedInAs?: string;
}

export function bytes(...parts: (Uint8Array | string | number[])[]): Uint8Array {
  const chunks = parts.map((p) => typeof p === "string" ? encoder.encode(p) : new Uint8Array(p));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** A message for assertion output, with long strings cut short. */
export function brief(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) => typeof v === "string" && v.length > 120 ? `${v.slice(0, 60)}…(${v.length} chars)` : v,
  );
}

/** A frame around any payload bytes (below the cap). */
export function rawFrame(payload: Uint8Array | string | number[]): Uint8Array {
  const body = bytes(payload);
  return bytes(frameHeader(body.length), body);
}

export function mechanisms(env: RowEnv): string[] {
  assert.ok(env.greeting, "this row needs HELLO first");
  return env.greeting.mechanisms as string[];
}

/** Send LOGIN (with a device token, if given) and expect a CHALLENGE; returns the SCRAM client and the server-first-message. */
export async function beginLogin(
  c: RawClient,
  env: RowEnv,
  credentials: { user: string; password: string; nonce?: string; deviceToken?: string },
  id: number,
): Promise<{ scram: ScramClient; serverFirst: string }> {
  const scram = new ScramClient({
    username: credentials.user,
    password: credentials.password,
    serverMechanisms: mechanisms(env),
    ...(credentials.nonce === undefined ? {} : { nonce: credentials.nonce }),
  });
  const challenge = await c.request({
    op: "LOGIN",
    id,
    mechanism: scram.mechanism,
    data: scram.first,
    ...(credentials.deviceToken === undefined ? {} : { device_token: credentials.deviceToken }),
  });
  assert.equal(challenge.op, "CHALLENGE", JSON.stringify(challenge));
  assert.equal(challenge.id, id);
  return { scram, serverFirst: String(challenge.data) };
}

export const NUL_USER = "a\u0000b";
export const JUNK_SEALED = { key: "AAAA", iv: "AAAAAAAAAAAAAAAA", ct: "Zm9vYmFy" };
export const ONE_MB_NAME = "u".repeat(1024 * 1024);
export const ONE_MB_PAYLOAD = encoder.encode(
  JSON.stringify({ op: "REGISTER", id: 3, user: ONE_MB_NAME, verifier: "x".repeat(12) }),
);

/** A frame of exactly `size` bytes: `prefix`, then `fill` repeated, then `suffix`. */
export function frameOfSize(size: number, prefix: string, fill: string, suffix: string): Uint8Array {
  const payload = prefix + fill.repeat(size - prefix.length - suffix.length) + suffix;
  assert.equal(encoder.encode(payload).length, size);
  return rawFrame(payload);
}

/**
 * A verifier of the right form (what the server checks) but of no password, or with one part changed to
 * test a refusal: the server's iteration count, a 16-byte salt, 32-byte keys.
 */
export function verifierText(options: { iterations?: number; saltBytes?: number } = {}): string {
  return formatVerifier({
    iterations: options.iterations ?? TEST_ITERATIONS,
    salt: new Uint8Array(options.saltBytes ?? 16).fill(7),
    storedKey: new Uint8Array(32).fill(1),
    serverKey: new Uint8Array(32).fill(2),
  });
}
export const VERIFIER = verifierText();

/** Seal a verifier (or any text or bytes) with the row's HELLO, for `op` by or for `user`. */
export async function sealedFor(
  env: RowEnv,
  op: "REGISTER" | "PASSWD",
  user: string,
  verifier: string | Uint8Array<ArrayBuffer> = VERIFIER,
) {
  assert.ok(env.greeting, "sealing needs HELLO first");
  return await sealVerifier(env.greeting, { op, user, verifier });
}

/** A step sending REGISTER of mallory with `verifier` (or any text or bytes) sealed. */
export function sealedRegister(id: number, verifier: string | Uint8Array<ArrayBuffer>): Exchange {
  return async (c, env) => {
    const sealed = await sealedFor(env, "REGISTER", "mallory", verifier);
    await c.send({ op: "REGISTER", id, user: "mallory", sealed });
  };
}

/** A step logging alice in, then sending PASSWD with `fields` carrying the new verifier. */
export function passwdAfterLogin(
  id: number,
  fields: (env: RowEnv) => Promise<Record<string, unknown>>,
): Exchange {
  return async (c, env) => {
    await scramLogin(c, { ...ALICE, mechanisms: mechanisms(env) });
    const data = "n,,n=alice,r=abcdefgh";
    await c.send({ op: "PASSWD", id, mechanism: "SCRAM-SHA-256", data, ...await fields(env) });
  };
}

/** Run one row on a fresh connection and check the error and what follows it. */
export async function runRow(port: number, row: Row): Promise<void> {
  const env: RowEnv = { greeting: null, inFlight: [] };
  const c = await RawClient.connect(port);
  try {
    if (row.hello) env.greeting = await hello(c);
    for (const step of row.steps) {
      if (step === "closeWrite") await c.closeWrite();
      else if (typeof step === "function") await step(c, env);
      else if (step instanceof Uint8Array) await c.sendBytes(step);
      else await c.send(step);
    }
    const error = await c.reply();
    const shown = brief(error);
    assert.equal(error.op, "ERROR", shown);
    // The real client validates every server frame with this schema; an ERROR it refuses is useless.
    assert.doesNotThrow(() => decodeServerMessage(encoder.encode(JSON.stringify(error))), shown);
    assert.ok((ERROR_CODES as readonly unknown[]).includes(error.code), `undocumented code: ${shown}`);
    assert.equal(error.code, row.code, shown);
    if (row.id === null) assert.equal("id" in error, false, `no id expected: ${shown}`);
    else assert.equal(error.id, row.id, shown);
    if (typeof row.message === "string") assert.equal(error.message, row.message);
    else if (row.message) assert.match(String(error.message), row.message);
    if (row.scram !== undefined) assert.equal(error.scram, row.scram, shown);
    if (row.reason !== undefined) assert.equal(error.reason, row.reason, shown);
    if (row.fatal) {
      assert.equal(error.fatal, true, shown);
      await c.expectClosed();
    } else {
      assert.equal(error.fatal, undefined, shown);
      const after = await c.request({ op: "IS_LOGGED", id: 99 });
      if (row.loggedInAs !== undefined) {
        assert.deepEqual(after, { op: "IS_LOGGED", id: 99, logged_in: true, user: row.loggedInAs });
      } else if (row.hello) assert.deepEqual(after, { op: "IS_LOGGED", id: 99, logged_in: false });
      else assert.equal(after.code, "OUT_OF_ORDER", brief(after));
      assert.equal(after.id, 99);
    }
  } finally {
    await c.close();
    await Promise.all(env.inFlight);
  }
}

/** A full SCRAM login of alice with the raw client, then the protected resource, then CLOSE. */
export async function goodRawLogin(port: number): Promise<void> {
  await using c = await RawClient.connect(port);
  const greeting = await hello(c);
  const { reply } = await scramLogin(c, { ...ALICE, mechanisms: greeting.mechanisms as string[] });
  assert.equal(reply.user, "alice");
  const access = await c.request({ op: "ACCESS", id: 4 });
  assert.equal(access.op, "ACCESS", JSON.stringify(access));
  assert.equal(access.user, "alice");
  assert.deepEqual(await c.request({ op: "CLOSE", id: 5 }), { op: "CLOSE", id: 5 });
  await c.expectClosed();
}

export async function goodCliLogin(port: number, passwordFile: string, home: string): Promise<void> {
  const result = await runCli(
    "client",
    ["--port", String(port), "--user", "alice", "--password-file", passwordFile, "--exec", "login"],
    { env: { XDG_CONFIG_HOME: home } },
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^logged in as alice$/m);
}

/** A step of a table that is not a row: it runs against the table's server, and a good login follows. */
export interface ExtraStep {
  name: string;
  run(port: number): Promise<void>;
}

/** Options of {@linkcode badInputTable}. */
export interface TableOptions {
  /** Steps that are not rows, run after them. */
  extra?: ExtraStep[];
  /** The server's `database` (default: SQLite in the data directory), e.g. a PostgreSQL URL. */
  database?: string;
}

/**
 * Run a table of bad inputs against one real server: each row on a fresh connection, a good raw login
 * after every row (and a good CLI login after every eighth), then a clean stop whose log must show no
 * crash or escaped exception.
 *
 * @param t The test context.
 * @param rows The rows.
 * @param options Extra steps, and the database the server uses.
 */
export async function badInputTable(
  t: Deno.TestContext,
  rows: Row[],
  options: TableOptions = {},
): Promise<void> {
  const extra = options.extra ?? [];
  const database: Record<string, string> = options.database === undefined
    ? {}
    : { AUTHCHAT_DATABASE: options.database };
  assert.ok(rows.length > 0);
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await seedUsers(data, { [ALICE.user]: ALICE.password }, { env: database });
  const passwordFile = join(dir.path, "alice.pw");
  await Deno.writeTextFile(passwordFile, `${ALICE.password}\n`);
  // A good login of alice follows every row: far more than a person's budget of logins (docs/PROTOCOL.md §7).
  // Every log line is kept (no rate limit): the check at the end must see each one.
  const server = await ServerProcess.start(data, {
    env: {
      ...database,
      AUTHCHAT_REGISTRATIONS_PER_MINUTE: "100000",
      AUTHCHAT_LOGINS_PER_MINUTE_PER_ACCOUNT: "100000",
      AUTHCHAT_LOG_LINES_PER_SECOND: "0",
    },
  });
  let stopped = false;
  try {
    for (const [index, row] of rows.entries()) {
      await t.step(row.name, async () => {
        await runRow(server.tcpPort, row);
        await goodRawLogin(server.tcpPort);
        if (index % 8 === 7) await goodCliLogin(server.tcpPort, passwordFile, dir.path);
      });
    }
    for (const step of extra) {
      await t.step(step.name, async () => {
        await step.run(server.tcpPort);
        await goodRawLogin(server.tcpPort);
      });
    }
    await goodCliLogin(server.tcpPort, passwordFile, dir.path);
    assert.doesNotMatch(server.stderr, / stopping /, "the server began stopping before SIGTERM");
    const status = await server.stop("SIGTERM");
    stopped = true;
    assert.equal(status.code, 0, server.stderr);
    assert.equal(status.signal, null);
    // Only a process still running when SIGTERM came can have logged this.
    assert.match(server.stderr, / stopping signal=SIGTERM/);
    assert.match(server.stderr, / shutdown /);
    // A stack trace, an INTERNAL error, or a disconnect reason "error: …" (serveConnection logs that
    // only when Session.receive threw, which it must never do) all mean a bad input got too far.
    const suspicious = server.stderr.split("\n").filter((line) =>
      /^\s+at |internal_error|connection_error|Uncaught|panicked|reason="error: /.test(line)
    );
    assert.deepEqual(suspicious, [], "server log shows a crash or an escaped exception");
    assert.match(server.stderr, /login_ok/);
  } finally {
    if (!stopped) await server.kill();
  }
}
