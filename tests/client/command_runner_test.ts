import assert from "node:assert/strict";
import type { AuthchatClient } from "../../lib/client/authchat_client.ts";
import { CommandRunner } from "../../lib/client/command_runner.ts";
import type { CommandIO, SecretKind } from "../../lib/client/command_runner.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";

/** A client stand-in recording calls; only what the runner uses. */
function fakeClient(calls: string[]) {
  const state = { user: null as string | null, closedReason: null as string | null };
  const client = {
    get user() {
      return state.user;
    },
    get closedReason() {
      return state.closedReason;
    },
    hello: () =>
      Promise.resolve({ server: "s", version: 1, mechanisms: ["SCRAM-SHA-256"], confidential: false }),
    register: (user: string, pw: string) => (calls.push(`register ${user} ${pw}`), Promise.resolve(user)),
    login: (user: string, pw: string) => {
      calls.push(`login ${user} ${pw}`);
      if (pw !== "right") return Promise.reject(new ProtocolError("AUTH_FAILED", "Authentication failed"));
      state.user = user;
      return Promise.resolve(user);
    },
    isLogged: () => Promise.resolve(state.user ? { loggedIn: true, user: state.user } : { loggedIn: false }),
    passwd: (a: string, b: string) => (calls.push(`passwd ${a} ${b}`), Promise.resolve()),
    deleteAccount: (pw: string) => (calls.push(`delete ${pw}`), state.user = null, Promise.resolve("alice")),
    logout: () => (state.user = null, Promise.resolve()),
    close: () => (calls.push("close"), state.closedReason = "Closed", Promise.resolve()),
    drop: () => state.closedReason = "Server ended the session",
  };
  return client;
}

function io(secrets: Partial<Record<SecretKind, string>> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const value: CommandIO = {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    secret: (kind) =>
      secrets[kind] ? Promise.resolve(secrets[kind]) : Promise.reject(new Error(`no ${kind} secret`)),
    user: () => Promise.reject(new Error("No user name")),
  };
  return { out, err, value };
}

Deno.test("CommandRunner runs commands, prints results and reports failures with codes", async () => {
  const calls: string[] = [];
  const client = fakeClient(calls);
  const { out, err, value } = io({ login: "right", register: "new-pw", current: "right", new: "next-pw" });
  const runner = new CommandRunner(() => Promise.resolve(client as unknown as AuthchatClient), value, {
    user: "alice",
  });
  assert.equal(await runner.run("  "), true);
  assert.equal(await runner.run("# comment"), true);
  assert.equal(await runner.run("passwd"), false, "passwd needs a login");
  assert.equal(await runner.run("REGISTER bob"), true);
  assert.equal(await runner.run("login"), true);
  assert.equal(await runner.run("is_logged"), true);
  assert.equal(await runner.run("passwd"), true);
  assert.equal(await runner.run("login a b"), false);
  assert.equal(await runner.run("dance"), false);
  assert.equal(await runner.run("delete"), true);
  assert.equal(await runner.run("is_logged"), true);
  assert.equal(await runner.run("close"), true);
  assert.equal(runner.finished, true);
  assert.deepEqual(calls, [
    "register bob new-pw",
    "login alice right",
    "passwd right next-pw",
    "delete right",
    "close",
  ]);
  assert.deepEqual(out, [
    "registered bob",
    "logged in as alice",
    "logged in as alice",
    "password changed",
    "account alice deleted",
    "not logged in",
    "closed",
  ]);
  assert.deepEqual(err, [
    "error: Not logged in: log in first (NOT_LOGGED_IN)",
    "error: too many arguments for login: type help for its usage",
    'error: unknown command "dance": type help for the list',
  ]);
});

Deno.test("CommandRunner reconnects after a drop only when asked to", async () => {
  let connects = 0;
  const clients: ReturnType<typeof fakeClient>[] = [];
  const connect = () => {
    connects++;
    const c = fakeClient([]);
    clients.push(c);
    return Promise.resolve(c as unknown as AuthchatClient);
  };
  const scripted = io({ login: "right" });
  const once = new CommandRunner(connect, scripted.value, { user: "a" });
  assert.equal(await once.run("login"), true);
  clients[0]!.drop();
  assert.equal(await once.run("is_logged"), false);
  assert.match(scripted.err[0]!, /Not connected: Server ended the session/);
  assert.equal(connects, 1);

  const repl = io({ login: "right" });
  const again = new CommandRunner(connect, repl.value, { user: "a", reconnect: true });
  assert.equal(await again.run("hello"), true);
  clients[1]!.drop();
  assert.equal(await again.run("is_logged"), true);
  assert.equal(connects, 3);
  assert.deepEqual(repl.out.at(-1), "not logged in");
  assert.match(repl.err[0]!, /reconnecting/);
});

Deno.test("CommandRunner asks for a user name when none is given", async () => {
  const { err, value } = io({ login: "right" });
  const runner = new CommandRunner(() => Promise.resolve(fakeClient([]) as unknown as AuthchatClient), value);
  assert.equal(await runner.run("login"), false);
  assert.deepEqual(err, ["error: No user name"]);
});
