import assert from "node:assert/strict";
import type { AuthchatClient } from "../../lib/client/authchat_client.ts";
import { eventText } from "../../lib/client/client_event.ts";
import type { CommandIO, SecretKind } from "../../lib/client/command_io.ts";
import { CommandRunner } from "../../lib/client/command_runner.ts";
import { ProtocolError } from "../../lib/codec/protocol_error.ts";

/** A client stand-in for an account that must change its password; counts reads of `chat` (chat start). */
function flaggedClient() {
  const state = { user: null as string | null, mustChange: false, chatReads: 0 };
  const client = {
    get user() {
      return state.user;
    },
    get closedReason() {
      return null;
    },
    get mustChangePassword() {
      return state.mustChange;
    },
    get chat() {
      state.chatReads++;
      return null;
    },
    login: (user: string) => {
      state.user = user;
      state.mustChange = true;
      return Promise.resolve(user);
    },
    isLogged: () =>
      Promise.resolve({
        loggedIn: true,
        user: state.user!,
        ...(state.mustChange ? { mustChangePassword: true } : {}),
      }),
    access: () =>
      Promise.reject(
        new ProtocolError("PASSWORD_CHANGE_REQUIRED", "Password change required: ACCESS is refused"),
      ),
    checkNewPassword: () => Promise.resolve(),
    passwordMatches: (pw: string) => Promise.resolve(pw === "password10"),
    passwd: (current: string) => {
      if (current !== "password10") {
        return Promise.reject(new ProtocolError("AUTH_FAILED", "Authentication failed"));
      }
      state.mustChange = false;
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
  return { client, state };
}

function io(secrets: Partial<Record<SecretKind, string>>) {
  const out: string[] = [];
  const err: string[] = [];
  const value: CommandIO = {
    emit: (event) => {
      const { stream, lines } = eventText(event);
      (stream === "stdout" ? out : err).push(...lines);
    },
    secret: (kind) => Promise.resolve(secrets[kind] ?? ""),
    user: () => Promise.reject(new Error("No user name")),
  };
  return { out, err, value };
}

const MUST_CHANGE = "warning: this account must change its password before anything else: type passwd";

Deno.test("CommandRunner says a login must change its password, and starts chat only after passwd", async () => {
  const { client, state } = flaggedClient();
  const { out, err, value } = io({
    login: "password10",
    current: "password10",
    new: "amber glacier piano 17",
  });
  const runner = new CommandRunner(() => Promise.resolve(client as unknown as AuthchatClient), value, {
    user: "user10",
  });
  assert.equal(await runner.run("login"), true);
  assert.deepEqual(out, ["logged in as user10"]);
  assert.deepEqual(err, [MUST_CHANGE]);
  assert.equal(state.chatReads, 0, "chat does not start");
  assert.equal(await runner.run("is_logged"), true);
  assert.deepEqual(out.at(-1), "logged in as user10");
  assert.deepEqual(err.at(-1), MUST_CHANGE);
  assert.equal(await runner.run("access"), false);
  assert.deepEqual(
    err.at(-1),
    "error: Password change required: ACCESS is refused (PASSWORD_CHANGE_REQUIRED)",
  );
  assert.equal(await runner.run("passwd"), true);
  assert.deepEqual(out.at(-1), "password changed");
  assert.equal(state.chatReads, 1, "chat starts as after a login");
  const errors = err.length;
  assert.equal(await runner.run("is_logged"), true);
  assert.equal(err.length, errors, "nothing more to say");
  assert.equal(await runner.run("passwd"), true);
  assert.equal(state.chatReads, 1, "a later passwd does not start chat again");
  for (const line of [...out, ...err]) {
    assert.doesNotMatch(line, /password10|amber glacier/, "no password shown");
  }
});

Deno.test("CommandRunner keeps chat stopped after a failed passwd of a login that must change its password", async () => {
  const { client, state } = flaggedClient();
  const { err, value } = io({ login: "password10", current: "wrong", new: "amber glacier piano 17" });
  const runner = new CommandRunner(() => Promise.resolve(client as unknown as AuthchatClient), value, {
    user: "user10",
  });
  await runner.run("login");
  assert.equal(await runner.run("passwd"), false);
  assert.deepEqual(
    err.at(-1),
    "error: Wrong password: it is not the one this session logged in with (nothing was sent) (AUTH_FAILED)",
  );
  assert.equal(state.chatReads, 0);
});
