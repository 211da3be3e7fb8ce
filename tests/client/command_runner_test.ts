import assert from "node:assert/strict";
import type { AuthchatClient } from "../../lib/client/authchat_client.ts";
import { ConnectionClosedError } from "../../lib/client/authchat_client.ts";
import { eventText } from "../../lib/client/client_event.ts";
import type { ClientEvent } from "../../lib/client/client_event.ts";
import type { CommandIO, SecretKind } from "../../lib/client/command_io.ts";
import { commandOf, CommandRunner } from "../../lib/client/command_runner.ts";
import type { ConnectionHandlers } from "../../lib/client/command_runner.ts";
import { KnownPeers } from "../../lib/client/known_peers.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";

/** A client stand-in recording calls; only what the runner uses. */
function fakeClient(calls: string[], handlers?: ConnectionHandlers) {
  const state = { user: null as string | null, closedReason: null as string | null, password: "right" };
  const client = {
    get user() {
      return state.user;
    },
    get closedReason() {
      return state.closedReason;
    },
    get chat() {
      return null;
    },
    hello:
      () => (calls.push("hello"),
        Promise.resolve({ server: "s", version: 1, mechanisms: ["SCRAM-SHA-256"], confidential: false })),
    register: (user: string, pw: string) => (calls.push(`register ${user} ${pw}`), Promise.resolve(user)),
    checkNewPassword: (_user: string, pw: string) => {
      calls.push(`check ${pw}`);
      return pw.length < 6
        ? Promise.reject(new ProtocolError("PASSWORD_POLICY", "Password refused: too short"))
        : Promise.resolve();
    },
    passwordMatches: (pw: string) => (calls.push(`matches ${pw}`), Promise.resolve(pw === state.password)),
    login: (user: string, pw: string) => {
      calls.push(`login ${user} ${pw}`);
      if (pw !== state.password) {
        return Promise.reject(new ProtocolError("AUTH_FAILED", "Authentication failed"));
      }
      state.user = user;
      return Promise.resolve(user);
    },
    isLogged:
      () => (calls.push("is_logged"),
        Promise.resolve(state.user ? { loggedIn: true, user: state.user } : { loggedIn: false })),
    passwd: (a: string, b: string) => (calls.push(`passwd ${a} ${b}`), state.password = b, Promise.resolve()),
    deleteAccount: (pw: string) => (calls.push(`delete ${pw}`), state.user = null, Promise.resolve("alice")),
    logout: () => (state.user = null, Promise.resolve()),
    close: () => (calls.push("close"), state.closedReason = "Closed", Promise.resolve()),
    drop: () => state.closedReason = "Server ended the session",
    /** The server stops: BYE SHUTDOWN, then the connection ends. */
    shutdown: () => {
      state.user = null;
      handlers?.onEvent({ op: "BYE", code: "SHUTDOWN", reason: "Server shutting down" });
      state.closedReason = "Server ended the session: Server shutting down (SHUTDOWN)";
      handlers?.onClosed();
    },
    /** Shed at a connection cap before logging in: BYE with `code`, then the connection ends. */
    shed: (code = "TOO_MANY_CONNECTIONS") => {
      handlers?.onEvent({ op: "BYE", code, reason: "Too many connections" });
      state.closedReason = `Server ended the session: Too many connections (${code})`;
      handlers?.onClosed();
    },
    /** The server's login deadline: BYE AUTH_TIMEOUT, then the connection ends. */
    idleTimeout: () => {
      handlers?.onEvent({ op: "BYE", code: "AUTH_TIMEOUT", reason: "Not logged in within 30 s" });
      state.closedReason = "Server ended the session: Not logged in within 30 s (AUTH_TIMEOUT)";
      handlers?.onClosed();
    },
  };
  return client;
}

type Fake = ReturnType<typeof fakeClient>;

/** An I/O recording events (and their text), with secrets from a queue per kind. */
function io(secrets: Partial<Record<SecretKind, string[] | string>> = {}, confirms?: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const events: ClientEvent[] = [];
  const asked: string[] = [];
  const queue = (kind: SecretKind) => {
    const s = secrets[kind];
    return Array.isArray(s) ? s.shift() : s;
  };
  const value: CommandIO = {
    emit: (event) => {
      events.push(event);
      const text = eventText(event);
      (text.stream === "stdout" ? out : err).push(...text.lines);
    },
    secret: (kind) => {
      asked.push(kind);
      const s = queue(kind);
      return s === undefined ? Promise.reject(new Error(`no ${kind} secret`)) : Promise.resolve(s);
    },
    ...(confirms
      ? {
        confirm: (kind: SecretKind) => {
          asked.push(`confirm ${kind}`);
          return Promise.resolve(confirms.shift() ?? null);
        },
      }
      : {}),
    user: () => Promise.reject(new Error("No user name")),
  };
  return { out, err, events, asked, value };
}

function connector(calls: string[]) {
  const clients: Fake[] = [];
  const connect = (handlers: ConnectionHandlers) => {
    calls.push("connect");
    const c = fakeClient(calls, handlers);
    clients.push(c);
    return Promise.resolve(c as unknown as AuthchatClient);
  };
  return { clients, connect };
}

Deno.test("CommandRunner runs commands, prints results and reports failures with codes", async () => {
  const calls: string[] = [];
  const { connect } = connector(calls);
  const { out, err, value } = io({ login: "right", register: "new-pw", current: "right", new: "next-pw" });
  const runner = new CommandRunner(connect, value, { user: "alice" });
  assert.equal(await runner.run("  "), true);
  assert.equal(await runner.run("# comment"), true);
  assert.equal(await runner.run("passwd"), false, "passwd needs a login");
  assert.equal(await runner.run("REGISTER bob"), true);
  assert.equal(await runner.run("login"), true);
  assert.equal(await runner.run("is_logged"), true);
  assert.equal(await runner.run("passwd"), true);
  assert.equal(await runner.run("login a b"), false);
  assert.equal(await runner.run("dance"), false);
  assert.equal(await runner.run("delete"), false, "the current password is now next-pw");
  assert.equal(await runner.run("is_logged"), true);
  assert.equal(await runner.run("close"), true);
  assert.equal(runner.finished, true);
  assert.deepEqual(calls, [
    "connect",
    "check new-pw",
    "register bob new-pw",
    "login alice right",
    "is_logged",
    "matches right",
    "check next-pw",
    "passwd right next-pw",
    "matches right",
    "is_logged",
    "close",
  ]);
  assert.deepEqual(out, [
    "registered bob",
    "logged in as alice",
    "logged in as alice",
    "password changed",
    "logged in as alice",
    "closed",
  ]);
  assert.deepEqual(err, [
    "error: Not logged in: log in first (NOT_LOGGED_IN)",
    "error: Too many arguments for login: type help for its usage",
    "error: Unknown command: type help for the list",
    "error: Wrong password: it is not the one this session logged in with (nothing was sent) (AUTH_FAILED)",
  ]);
});

Deno.test("CommandRunner connects only when a command needs the server, after asking its secrets", async () => {
  const calls: string[] = [];
  const { connect } = connector(calls);
  const { value, asked } = io({ login: "right" });
  const runner = new CommandRunner(connect, value, { user: "alice" });
  assert.equal(await runner.run("help"), true);
  assert.equal(await runner.run("wait 0"), true);
  assert.equal(await runner.run("passwd"), false);
  assert.deepEqual(calls, [], "help, wait and a passwd without a login need no connection");
  assert.equal(await runner.run("login"), true);
  assert.deepEqual(asked, ["login"]);
  assert.deepEqual(calls, ["connect", "login alice right"], "the password is asked before the connection");
  assert.equal(await runner.run("close"), true);
});

Deno.test("CommandRunner checks a new password against the policy before asking it again", async () => {
  const calls: string[] = [];
  const { connect } = connector(calls);
  const short = io({ register: "tiny" }, ["tiny"]);
  assert.equal(await new CommandRunner(connect, short.value, { user: "bob" }).run("register"), false);
  assert.deepEqual(short.asked, ["register"], "not asked a second time");
  assert.deepEqual(short.err, ["error: Password refused: too short (PASSWORD_POLICY)"]);

  const mismatch = io({ register: "long enough" }, ["long enuogh"]);
  assert.equal(await new CommandRunner(connect, mismatch.value, { user: "bob" }).run("register"), false);
  assert.deepEqual(mismatch.asked, ["register", "confirm register"]);
  assert.deepEqual(mismatch.err, ["error: The two passwords do not match"]);

  const fine = io({ register: "long enough" }, ["long enough"]);
  assert.equal(await new CommandRunner(connect, fine.value, { user: "bob" }).run("register"), true);
  assert.deepEqual(fine.out, ["registered bob"]);
  assert.deepEqual(calls.filter((c) => c.startsWith("register")), ["register bob long enough"]);
});

Deno.test("CommandRunner refuses a wrong current password before asking for the new one", async () => {
  const calls: string[] = [];
  const { connect } = connector(calls);
  const { value, asked, events } = io({
    login: "right",
    current: ["wrong", "right"],
    new: ["abc", "fresh-pw"],
  }, [
    "fresh-pw",
  ]);
  const runner = new CommandRunner(connect, value, { user: "alice" });
  assert.equal(await runner.run("login"), true);
  assert.equal(await runner.run("passwd"), false);
  assert.deepEqual(asked, ["login", "current"], "the new password is not asked after a wrong current one");
  assert.deepEqual(events.at(-1), {
    type: "reply",
    ok: false,
    command: "passwd",
    error: {
      code: "AUTH_FAILED",
      message: "Wrong password: it is not the one this session logged in with (nothing was sent)",
    },
  });
  assert.equal(await runner.run("passwd"), false, "abc is too short");
  assert.deepEqual(asked.slice(2), ["current", "new"], "a refused new password is not asked twice");
  assert.ok(!calls.some((c) => c.startsWith("passwd")), "nothing was sent");
});

Deno.test("CommandRunner names an unknown line by its source, never by its text", async () => {
  const { value, err, events } = io();
  const runner = new CommandRunner(() => Promise.reject(new Error("no server")), value);
  assert.equal(await runner.run("hunter2 is my password", { source: "on line 2" }), false);
  assert.deepEqual(err, ["error: Unknown command on line 2: type help for the list"]);
  assert.equal((events[0] as { command: unknown }).command, null);
  assert.ok(!JSON.stringify(events).includes("hunter2"));
  assert.equal(commandOf("hunter2"), null);
  assert.equal(commandOf("  Send bob hi"), "send");
});

Deno.test("CommandRunner reconnects after a drop only when asked to", async () => {
  const calls: string[] = [];
  const { clients, connect } = connector(calls);
  const scripted = io({ login: "right" });
  const once = new CommandRunner(connect, scripted.value, { user: "a" });
  assert.equal(await once.run("login"), true);
  clients[0]!.drop();
  assert.equal(await once.run("is_logged"), false);
  assert.match(scripted.err[0]!, /Not connected: Server ended the session/);
  assert.equal(clients.length, 1);

  const repl = io({ login: "right" });
  const again = new CommandRunner(connect, repl.value, { user: "a", reconnect: true });
  assert.equal(await again.run("hello"), true);
  clients[1]!.drop();
  assert.equal(await again.run("is_logged"), true);
  assert.equal(clients.length, 3);
  assert.deepEqual(repl.out.at(-1), "not logged in");
  assert.match(repl.err[0]!, /\(Server ended the session; reconnecting\)/);
});

Deno.test("CommandRunner replaces a connection the login deadline closed silently, and retries its request", async () => {
  const calls: string[] = [];
  const { clients, connect } = connector(calls);
  const { value, out, err, events } = io({ login: "right" });
  const runner = new CommandRunner(connect, value, { user: "a", reconnect: true });
  assert.equal(await runner.run("hello"), true);
  clients[0]!.idleTimeout();
  assert.equal(await runner.run("login"), true);
  assert.deepEqual(err, [], "no goodbye and no reconnection notice");
  assert.ok(!events.some((e) => e.type === "bye" || e.type === "notice"));
  assert.deepEqual(out, [
    "server s, protocol 1, mechanisms SCRAM-SHA-256, plain TCP (secrets sealed)",
    "logged in as a",
  ]);
  assert.equal(clients.length, 2);

  // The deadline met a request on its way: it goes again on a new connection.
  const racing = connector([]);
  let first = true;
  const late = new CommandRunner(
    async (handlers) => {
      const client = await racing.connect(handlers) as unknown as Fake;
      if (first) {
        first = false;
        client.isLogged = () => {
          client.idleTimeout();
          return Promise.reject(new ConnectionClosedError("Server ended the session (AUTH_TIMEOUT)"));
        };
      }
      return client as unknown as AuthchatClient;
    },
    io().value,
    { reconnect: true },
  );
  assert.equal(await late.run("is_logged"), true);
  assert.equal(racing.clients.length, 2);
});

Deno.test("CommandRunner replaces a connection shed before its login silently, and retries the login on a new one", async () => {
  // Shed by its address's cap, or by the server's.
  for (const code of ["TOO_MANY_CONNECTIONS", "SERVER_FULL"]) {
    const racing = connector([]);
    const { value, out, err, events } = io({ login: "right" });
    let first = true;
    const runner = new CommandRunner(
      async (handlers) => {
        const client = await racing.connect(handlers) as unknown as Fake;
        if (first) {
          first = false;
          // A newer connection from the same address made this one, not logged in, close as LOGIN went out.
          client.login = () => {
            client.shed(code);
            return Promise.reject(new ConnectionClosedError(`Server ended the session (${code})`));
          };
        }
        return client as unknown as AuthchatClient;
      },
      value,
      { user: "a" },
    );
    assert.equal(await runner.run("login"), true, "a script goes on: nothing was lost");
    assert.deepEqual(err, []);
    assert.ok(!events.some((e) => e.type === "bye" || e.type === "notice"));
    assert.deepEqual(out, ["logged in as a"]);
    assert.equal(racing.clients.length, 2);
  }
});

Deno.test("CommandRunner replaces an idle connection silently in scripts too, but no other closed one", async () => {
  const { clients, connect } = connector([]);
  const { value, err, out } = io({ login: "right" });
  const runner = new CommandRunner(connect, value, { user: "a" });
  assert.equal(await runner.run("hello"), true);
  clients[0]!.idleTimeout();
  assert.equal(await runner.run("login"), true, "nothing was lost: the script goes on");
  assert.deepEqual(err, []);
  assert.equal(out.at(-1), "logged in as a");
  clients[1]!.drop();
  assert.equal(await runner.run("is_logged"), false, "a script does not go on as if still logged in");
  assert.deepEqual(err, ["error: Not connected: Server ended the session"]);
  assert.equal(clients.length, 2);
});

Deno.test("CommandRunner says why direct messages are not available when chat did not start", async () => {
  const { connect } = connector([]);
  const { value, err } = io({ login: "right" });
  const dir = await Deno.makeTempDir();
  try {
    const runner = new CommandRunner(connect, value, {
      user: "alice",
      chat: { knownPeers: new KnownPeers(`${dir}/known_peers`), serverName: "h:1", serverHost: "h" },
    });
    assert.equal(await runner.run("login"), true);
    assert.equal(await runner.run("send bob hi"), false);
    assert.deepEqual(err, [
      "warning: Direct messages unavailable: the login gave no chat credentials",
      "error: Direct messages are not available: the login gave no chat credentials",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CommandRunner asks for a user name when none is given", async () => {
  const { err, value } = io({ login: "right" });
  const runner = new CommandRunner(connector([]).connect, value);
  assert.equal(await runner.run("login"), false);
  assert.deepEqual(err, ["error: No user name"]);
});

Deno.test("CommandRunner ends a wait early on its signal", async () => {
  const { value, events } = io();
  const runner = new CommandRunner(connector([]).connect, value);
  const stop = new AbortController();
  const waiting = runner.run("wait 600", { signal: stop.signal });
  stop.abort();
  assert.equal(await waiting, false);
  assert.deepEqual(events, [{
    type: "reply",
    ok: false,
    command: "wait",
    error: { code: null, message: "Interrupted" },
  }]);
});

Deno.test("CommandRunner ends a wait on a logged-in session when the server ends the session", async () => {
  const { clients, connect } = connector([]);
  const { value, events } = io({ login: "right" });
  const runner = new CommandRunner(connect, value, { user: "a" });
  assert.equal(await runner.run("login"), true);
  const waiting = runner.run("wait 600");
  clients[0]!.shutdown();
  assert.equal(await waiting, false, "the wait failed at once instead of lasting ten minutes");
  assert.deepEqual(events.at(-1), {
    type: "reply",
    ok: false,
    command: "wait",
    error: {
      code: null,
      message: "The session ended while waiting: Server ended the session: Server shutting down (SHUTDOWN)",
    },
  });
  // A wait without a logged-in session is only a pause: the login deadline closing the connection does not
  // end it.
  const idle = connector([]);
  const pause = io();
  const paused = new CommandRunner(idle.connect, pause.value);
  assert.equal(await paused.run("hello"), true);
  const short = paused.run("wait 0.2");
  idle.clients[0]!.idleTimeout();
  assert.equal(await short, true);
  assert.deepEqual(pause.events.at(-1), { type: "reply", ok: true, command: "wait", seconds: 0.2 });
});

Deno.test("CommandRunner refuses a name the rules of new names refuse before asking for a password", async () => {
  const calls: string[] = [];
  const { value, asked, events } = io({ register: "a long enough password" });
  const runner = new CommandRunner(connector(calls).connect, value);
  assert.equal(await runner.run("register I\u2665NY"), false);
  assert.deepEqual(asked, [], "no password was asked for");
  assert.deepEqual(calls, [], "nothing was sent");
  const last = events.at(-1);
  assert.ok(
    last?.type === "reply" && !last.ok && last.error.code === "INVALID_USERNAME",
    JSON.stringify(last),
  );
});
