/**
 * The client's command language (`hello`, `register`, `login`, …): parses one
 * line, runs it against an {@linkcode AuthchatClient} and reports each outcome
 * as a {@linkcode ClientEvent} through a small I/O interface. The REPL and
 * scripted mode are front ends to it.
 *
 * The connection is opened when a command first needs the server, after the
 * secrets that command asks for, so a person typing at a prompt is never held
 * to the server's login deadline. A connection the server closed before it
 * logged in — idle too long (`BYE AUTH_TIMEOUT`), or shed to make room for a
 * newer one from the same address (`BYE TOO_MANY_CONNECTIONS`) or at the
 * server's cap (`BYE SERVER_FULL`) — held nothing
 * to lose: it is replaced silently on the next command, and a request that met
 * that close is sent once more on the new connection. Any other close is reported; with
 * `reconnect` (the REPL) the next command opens a new connection, else (a
 * script, which must not go on as if still logged in) commands fail.
 *
 * @module
 */

import { prepareNewUsername } from "../auth/username.ts";
import { ProtocolError } from "../codec/protocol_error.ts";
import { ConnectionClosedError } from "./authchat_client.ts";
import type { AuthchatClient, ServerEvent } from "./authchat_client.ts";
import { ChatCommands } from "./_chat_commands.ts";
import type { ChatSettings } from "./_chat_commands.ts";
import type { CommandResult, FailureEvent } from "./client_event.ts";
import type { CommandIO, SecretKind } from "./command_io.ts";

export type { CommandIO, SecretKind } from "./command_io.ts";

/** What a connection reports to its runner (the `onEvent` and `onClosed` of the client's options). */
export interface ConnectionHandlers {
  /** A message the server pushed (`BYE`, `PRESENCE`). */
  onEvent(event: ServerEvent): void;
  /** The connection ended, however. */
  onClosed(): void;
}

/** Options of {@linkcode CommandRunner.run}. */
export interface RunOptions {
  /**
   * Where the line came from, for the error about an unknown command (`on line 3`); the line itself is
   * never repeated, since it may be a password typed at the wrong prompt.
   */
  source?: string;
  /** Ends a `wait` early (Ctrl-C at the terminal). */
  signal?: AbortSignal;
}

/** BYE codes that only end a connection not logged in, which is replaced silently (see the module doc). */
const REPLACEABLE: ReadonlySet<string> = new Set(["AUTH_TIMEOUT", "TOO_MANY_CONNECTIONS", "SERVER_FULL"]);

/** The help text. */
export const COMMAND_HELP: string = [
  "Commands:",
  "  hello              show the server's name, protocol version and mechanisms",
  "  register [USER]    create an account (password asked twice, or --password-file)",
  "  login [USER]       log in with SCRAM-SHA-256 (channel-bound over TLS and UDP sessions)",
  "  is_logged          say whether this connection is logged in",
  "  access             read the protected resource (logged in only)",
  "  passwd             change the password: the current one is checked, then the new one is asked",
  "  delete             delete the account (password proved); every session of it ends",
  "  list               the users online, with their identity-key fingerprints",
  "  send USER TEXT     send an end-to-end encrypted message; prints delivered once acknowledged",
  "  fingerprint USER   both identity keys and the safety number to compare with USER",
  "  trust USER         accept USER's current identity key (after it changed)",
  "  wait SECONDS       stay online that long, printing messages and presence notices (fails at once",
  "                     if the server ends the session meanwhile)",
  "  logout             log out, staying connected",
  "  close              close the connection and exit",
  "  help               this text",
].join("\n");

const COMMANDS = new Set([
  "hello",
  "register",
  "login",
  "is_logged",
  "access",
  "passwd",
  "delete",
  "logout",
  "close",
  "help",
  "list",
  "send",
  "fingerprint",
  "trust",
  "wait",
]);

/** Said (on stderr) after `login` and `is_logged` while the account must change its password. */
const MUST_CHANGE_PASSWORD = "this account must change its password before anything else: type passwd";

/**
 * The secrets each command reads, in order. In a script each is the next stdin line (when no file gives
 * it), so a command that fails before reading them all still takes their lines: the next line is a command
 * again, and a password is never run as one (`wait forever` would be quoted back in its error).
 */
const SECRETS: Readonly<Record<string, readonly SecretKind[]>> = {
  login: ["login"],
  register: ["register"],
  passwd: ["current", "new"],
  delete: ["current"],
};

/** How many arguments each command takes at most (`send` keeps the rest of the line as its text). */
const MAX_ARGS: Record<string, number> = { register: 1, login: 1, fingerprint: 1, trust: 1, wait: 1 };

/**
 * The command a line names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { commandOf } from "./command_runner.ts";
 * assert(commandOf("LOGIN alice") === "login" && commandOf("hunter2") === null);
 * ```
 *
 * @param line A line as typed.
 * @returns The command in lower case, or `null` for a blank line, a comment, or no known command.
 */
export function commandOf(line: string): string | null {
  const name = line.trim().split(/\s+/, 1)[0]!.toLowerCase();
  return COMMANDS.has(name) ? name : null;
}

function failure(command: string | null, err: unknown): FailureEvent {
  return {
    type: "reply",
    ok: false,
    command,
    error: err instanceof ProtocolError
      ? { code: err.code, message: err.message }
      : { code: null, message: err instanceof Error ? err.message : String(err) },
  };
}

/**
 * Runs commands against a client connection.
 *
 * @example
 * ```ts ignore
 * const runner = new CommandRunner((handlers) => AuthchatClient.connect({ ...options, ...handlers }), io, {
 *   user: "alice",
 * });
 * const ok = await runner.run("login");
 * ```
 */
export class CommandRunner {
  #connect: (handlers: ConnectionHandlers) => Promise<AuthchatClient>;
  #io: CommandIO;
  #defaultUser: string | undefined;
  #reconnect: boolean;
  #client: AuthchatClient | null = null;
  #connecting: Promise<AuthchatClient> | null = null;
  /** Counts connections, so a replaced one's late events are ignored. */
  #generation = 0;
  /**
   * The current connection was closed before it logged in (the login deadline, or shed at a connection cap),
   * and so is replaced silently.
   */
  #closedBeforeLogin = false;
  /** Aborted when the current connection ends (its reason: why), so a `wait` on a session ends with it. */
  #ended = new AbortController();
  #finished = false;
  #chat: ChatCommands;
  /** How many secrets the running command has asked for (see `SECRETS`). */
  #secretsRead = 0;

  /**
   * Make a runner.
   *
   * @param connect Opens a connection that reports to the given handlers (called when a command first
   *   needs the server, and again after a close: see {@linkcode CommandRunner.client}).
   * @param io Events out, secrets and user names in.
   * @param options Default user, whether to reconnect after the server ended a session (a connection
   *   closed before it logged in is replaced either way), and the chat settings (pin file, server name).
   */
  constructor(
    connect: (handlers: ConnectionHandlers) => Promise<AuthchatClient>,
    io: CommandIO,
    options: { user?: string | undefined; reconnect?: boolean; chat?: ChatSettings } = {},
  ) {
    this.#connect = connect;
    this.#io = io;
    this.#defaultUser = options.user;
    this.#reconnect = options.reconnect ?? false;
    this.#chat = new ChatCommands(io, options.chat);
  }

  /** True after `close`: no more commands. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * The connection, opened on first use, and again after the server closed it for idling without a
   * login (or, with `reconnect`, for any reason).
   *
   * @returns The client.
   * @throws {Error} `Not connected` after another close without `reconnect`; whatever connecting throws.
   */
  async client(): Promise<AuthchatClient> {
    const old = this.#client;
    if (old && old.closedReason !== null) {
      if (!this.#closedBeforeLogin) {
        if (!this.#reconnect) throw new Error(`Not connected: ${old.closedReason}`);
        this.#io.emit({ type: "notice", level: "info", message: `(${old.closedReason}; reconnecting)` });
      }
      this.#client = null;
    }
    if (this.#client) return this.#client;
    this.#connecting ??= this.#open().finally(() => this.#connecting = null);
    return await this.#connecting;
  }

  async #open(): Promise<AuthchatClient> {
    const generation = ++this.#generation;
    this.#closedBeforeLogin = false;
    const ended = this.#ended = new AbortController();
    const client = await this.#connect({
      onEvent: (event) => {
        if (generation !== this.#generation) return;
        // Only a connection that never logged in (or logged out) meets the login deadline or is shed.
        const beforeLogin = event.op === "BYE" && REPLACEABLE.has(event.code);
        if (beforeLogin) this.#closedBeforeLogin = true;
        this.#chat.onServerEvent(event, { quiet: beforeLogin });
      },
      onClosed: () => {
        if (generation !== this.#generation) return;
        void this.#chat.stop();
        const reason = this.#client?.closedReason ?? "the connection ended";
        ended.abort(new Error(`The session ended while waiting: ${reason}`));
      },
    });
    this.#client = client;
    return client;
  }

  /**
   * Run a request on the connection; when the server closed it before a login (idle, or shed) just as the
   * request went out, once more on a new connection (the first did nothing).
   */
  async #onServer<T>(request: (client: AuthchatClient) => Promise<T>): Promise<T> {
    const client = await this.client();
    try {
      return await request(client);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError) || !this.#closedBeforeLogin || this.#client !== client) {
        throw err;
      }
      return await request(await this.client());
    }
  }

  /** The connection, when it is open and logged in; never opens one (a new one is not logged in). */
  #loggedIn(): AuthchatClient & { user: string } {
    const client = this.#client;
    if (client && client.closedReason !== null && !this.#reconnect && !this.#closedBeforeLogin) {
      throw new Error(`Not connected: ${client.closedReason}`);
    }
    if (!client || client.closedReason !== null || client.user === null) {
      throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: log in first");
    }
    return client as AuthchatClient & { user: string };
  }

  /** Close the connection if one is open (without reconnecting). */
  async close(): Promise<void> {
    await this.#chat.stop();
    await this.#client?.close();
  }

  /**
   * Run one command line and report its outcome.
   *
   * @param line The command and its argument.
   * @param options Where the line came from; a signal that ends a `wait`.
   * @returns Whether it succeeded (blank lines and comments succeed).
   */
  async run(line: string, options: RunOptions = {}): Promise<boolean> {
    const [name = "", ...args] = line.trim().split(/\s+/).filter((w) => w !== "");
    if (name === "" || name.startsWith("#")) return true;
    const command = name.toLowerCase();
    this.#secretsRead = 0;
    try {
      if (!COMMANDS.has(command)) {
        throw new Error(
          `Unknown command${
            options.source === undefined ? "" : ` ${options.source}`
          }: type help for the list`,
        );
      }
      if (command !== "send" && args.length > (MAX_ARGS[command] ?? 0)) {
        throw new Error(`Too many arguments for ${command}: type help for its usage`);
      }
      let result: CommandResult | null;
      if (command === "send") {
        // The text is the rest of the line after the user, spacing kept.
        const rest = line.trim().slice(name.length).trimStart();
        const user = rest.split(/\s/, 1)[0] ?? "";
        result = await this.#chat.send(await this.client(), user, rest.slice(user.length).replace(/^\s/, ""));
      } else {
        result = await this.#execute(command, args[0], options.signal);
      }
      if (result) this.#io.emit({ type: "reply", ok: true, ...result });
      return true;
    } catch (err) {
      this.#io.emit(failure(COMMANDS.has(command) ? command : null, err));
      await this.#skipUnread(command);
      return false;
    }
  }

  /** After a command failed: pass over the lines of the secrets it did not get to read. */
  async #skipUnread(command: string): Promise<void> {
    for (const kind of (SECRETS[command] ?? []).slice(this.#secretsRead)) {
      try {
        await this.#io.skipSecret?.(kind);
      } catch {
        // Nothing left to pass over: the next read says so.
      }
    }
  }

  /** Ask for a secret, counting it (see `#skipUnread`). */
  #secret(kind: SecretKind): Promise<string> {
    this.#secretsRead++;
    return this.#io.secret(kind);
  }

  #argument(command: string, arg: string | undefined): string {
    if (arg === undefined) throw new Error(`${command} needs a user: ${command} USER`);
    return arg;
  }

  async #user(given: string | undefined): Promise<string> {
    return given ?? this.#defaultUser ?? await this.#io.user();
  }

  /**
   * A new password: checked (policy, which may open the connection for the server's HELLO) before it is
   * asked a second time, so a refused one is not typed twice.
   */
  async #newSecret(kind: "register" | "new", check: (secret: string) => Promise<void>): Promise<string> {
    const secret = await this.#secret(kind);
    await check(secret);
    const again = await this.#io.confirm?.(kind);
    if (again !== undefined && again !== null && again !== secret) {
      throw new Error("The two passwords do not match");
    }
    return secret;
  }

  /** The current password, checked locally against this login before anything else is asked or sent. */
  async #currentSecret(client: AuthchatClient): Promise<string> {
    const secret = await this.#secret("current");
    if (!await client.passwordMatches(secret)) {
      throw new ProtocolError(
        "AUTH_FAILED",
        "Wrong password: it is not the one this session logged in with (nothing was sent)",
      );
    }
    return secret;
  }

  /** Run a command; `null` when it reported its own reply (login, whose chat start follows it). */
  async #execute(
    command: string,
    arg: string | undefined,
    signal?: AbortSignal,
  ): Promise<CommandResult | null> {
    switch (command) {
      case "help":
        return { command: "help", text: COMMAND_HELP };
      case "close":
        this.#finished = true;
        await this.close();
        return { command: "close" };
      case "wait": {
        // Waiting on a logged-in session is waiting for what it receives: it ends when the session does.
        const session = this.#client?.user ? this.#ended.signal : undefined;
        return await this.#chat.wait(arg, signal, session);
      }
      case "hello": {
        let udp = false;
        const h = await this.#onServer((c) => {
          udp = c.overUdp;
          return c.hello();
        });
        return {
          command: "hello",
          server: h.server,
          version: h.version,
          mechanisms: h.mechanisms,
          confidential: h.confidential,
          ...(udp ? { transport: "udp" as const } : {}),
        };
      }
      case "register": {
        const user = await this.#user(arg);
        // A name the server would refuse is refused before any password is asked for.
        prepareNewUsername(user);
        const password = await this.#newSecret(
          "register",
          (secret) => this.#onServer((c) => c.checkNewPassword(user, secret)),
        );
        return { command: "register", user: await this.#onServer((c) => c.register(user, password)) };
      }
      case "login": {
        const user = await this.#user(arg);
        const password = await this.#secret("login");
        await this.#chat.stop();
        const { client, name } = await this.#onServer(async (c) => ({
          client: c,
          name: await c.login(user, password),
        }));
        const mustChange = client.mustChangePassword;
        this.#io.emit({
          type: "reply",
          ok: true,
          command: "login",
          user: name,
          must_change_password: mustChange,
        });
        // Chat starts once the password is changed (see passwd).
        if (mustChange) this.#io.emit({ type: "notice", level: "warning", message: MUST_CHANGE_PASSWORD });
        else await this.#chat.start(client);
        return null;
      }
      case "is_logged": {
        const state = await this.#onServer((c) => c.isLogged());
        const reply = {
          command: "is_logged",
          logged_in: state.loggedIn,
          user: state.user ?? null,
          must_change_password: state.mustChangePassword ?? false,
        } as const;
        if (!reply.must_change_password) return reply;
        // The warning follows the reply it explains.
        this.#io.emit({ type: "reply", ok: true, ...reply });
        this.#io.emit({ type: "notice", level: "warning", message: MUST_CHANGE_PASSWORD });
        return null;
      }
      case "access": {
        const a = await this.#onServer((c) => c.access());
        return {
          command: "access",
          user: a.user,
          created: a.created,
          last_login: a.last_login ?? null,
          resource: a.resource,
        };
      }
      case "passwd": {
        const client = this.#loggedIn();
        const current = await this.#currentSecret(client);
        const next = await this.#newSecret("new", (secret) => client.checkNewPassword(client.user, secret));
        const restricted = client.mustChangePassword;
        await client.passwd(current, next);
        if (!restricted) return { command: "passwd" };
        // The session was held back until now: it goes online as after a login.
        this.#io.emit({ type: "reply", ok: true, command: "passwd" });
        await this.#chat.start(client);
        return null;
      }
      case "delete": {
        const client = this.#loggedIn();
        const name = await client.deleteAccount(await this.#currentSecret(client));
        await this.#chat.stop();
        return { command: "delete", user: name };
      }
      case "logout":
        await this.#onServer((c) => c.logout());
        await this.#chat.stop();
        return { command: "logout" };
      case "list":
        return await this.#chat.list(await this.client());
      case "fingerprint":
        return await this.#chat.fingerprint(await this.client(), this.#argument(command, arg));
      case "trust":
        return await this.#chat.trust(await this.client(), this.#argument(command, arg));
    }
    throw new Error(`Unknown command: ${command}`);
  }
}
