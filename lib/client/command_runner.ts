/**
 * The client's command language (`hello`, `register`, `login`, …): parses one
 * line, runs it against an {@linkcode AuthchatClient} and reports through a
 * small I/O interface. The REPL and scripted mode are front ends to it.
 *
 * @module
 */

import { describeError, ProtocolError } from "../codec/protocol_error.ts";
import type { AuthchatClient, ServerEvent } from "./authchat_client.ts";
import { ChatCommands } from "./_chat_commands.ts";
import type { ChatSettings } from "./_chat_commands.ts";

/** Which secret a command needs. */
export type SecretKind = "login" | "register" | "current" | "new";

/** How the runner talks to its user. */
export interface CommandIO {
  /** A result line (stdout). */
  out(line: string): void;
  /** A diagnostic line (stderr). */
  err(line: string): void;
  /**
   * Get a secret: from a file when scripted, from a hidden prompt on a terminal.
   *
   * @param kind What it is for; `register` and `new` are confirmed twice on a terminal.
   * @returns The secret.
   */
  secret(kind: SecretKind): Promise<string>;
  /**
   * Get the user name when a command needs one and none was given.
   *
   * @returns The name.
   */
  user(): Promise<string>;
}

/** The help text. */
export const COMMAND_HELP: string = [
  "Commands:",
  "  hello              show the server's name, protocol version and mechanisms",
  "  register [USER]    create an account (password asked twice, or --password-file)",
  "  login [USER]       log in with SCRAM-SHA-256 (channel-bound over TLS)",
  "  is_logged          say whether this connection is logged in",
  "  access             read the protected resource (logged in only)",
  "  passwd             change the password (current one proved; new one from --new-password-file)",
  "  delete             delete the account (password proved); every session of it ends",
  "  list               the users online, with their identity-key fingerprints",
  "  send USER TEXT     send an end-to-end encrypted message; prints delivered once acknowledged",
  "  fingerprint USER   both identity keys and the safety number to compare with USER",
  "  trust USER         accept USER's current identity key (after it changed)",
  "  wait SECONDS       stay online that long, printing messages and presence notices",
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

/** How many arguments each command takes at most (`send` keeps the rest of the line as its text). */
const MAX_ARGS: Record<string, number> = { register: 1, login: 1, fingerprint: 1, trust: 1, wait: 1 };

/**
 * Runs commands against a client connection.
 *
 * @example
 * ```ts ignore
 * const runner = new CommandRunner(() => AuthchatClient.connect(options), io, { user: "alice" });
 * const ok = await runner.run("login");
 * ```
 */
export class CommandRunner {
  #connect: () => Promise<AuthchatClient>;
  #io: CommandIO;
  #defaultUser: string | undefined;
  #reconnect: boolean;
  #client: AuthchatClient | null = null;
  #finished = false;
  #chat: ChatCommands;

  /**
   * Make a runner.
   *
   * @param connect Opens a connection (called lazily, and again after a drop when `reconnect`).
   * @param io Output and secrets.
   * @param options Default user, whether to reconnect after the server closed the connection, and
   *   the chat settings (pin file, server name).
   */
  constructor(
    connect: () => Promise<AuthchatClient>,
    io: CommandIO,
    options: { user?: string | undefined; reconnect?: boolean; chat?: ChatSettings } = {},
  ) {
    this.#connect = connect;
    this.#io = io;
    this.#defaultUser = options.user;
    this.#reconnect = options.reconnect ?? false;
    this.#chat = new ChatCommands(io, options.chat);
  }

  /**
   * A message the server pushed: presence notices are printed, and the end of the session stops chat.
   *
   * @param event The message.
   */
  onServerEvent(event: ServerEvent): void {
    this.#chat.onServerEvent(event);
  }

  /** The connection ended (however): direct messages stop with it. */
  onConnectionClosed(): void {
    void this.#chat.stop();
  }

  /** True after `close`: no more commands. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * The connection, opened on first use.
   *
   * @returns The client.
   */
  async client(): Promise<AuthchatClient> {
    if (this.#client && this.#client.closedReason !== null) {
      if (!this.#reconnect) throw new Error(`Not connected: ${this.#client.closedReason}`);
      this.#io.err(`(${this.#client.closedReason}; reconnecting)`);
      this.#client = null;
    }
    this.#client ??= await this.#connect();
    return this.#client;
  }

  /** Close the connection if one is open (without reconnecting). */
  async close(): Promise<void> {
    await this.#chat.stop();
    await this.#client?.close();
  }

  /**
   * Run one command line.
   *
   * @param line The command and its argument.
   * @returns Whether it succeeded (blank lines and comments succeed).
   */
  async run(line: string): Promise<boolean> {
    const [name = "", ...args] = line.trim().split(/\s+/).filter((w) => w !== "");
    if (name === "" || name.startsWith("#")) return true;
    const command = name.toLowerCase();
    if (!COMMANDS.has(command)) {
      this.#io.err(`error: unknown command ${JSON.stringify(name)}: type help for the list`);
      return false;
    }
    if (command !== "send" && args.length > (MAX_ARGS[command] ?? 0)) {
      this.#io.err(`error: too many arguments for ${command}: type help for its usage`);
      return false;
    }
    try {
      if (command === "send") {
        // The text is the rest of the line after the user, spacing kept.
        const rest = line.trim().slice(name.length).trimStart();
        const user = rest.split(/\s/, 1)[0] ?? "";
        return await this.#chat.send(await this.client(), user, rest.slice(user.length).replace(/^\s/, ""));
      }
      await this.#execute(command, args[0]);
      return true;
    } catch (err) {
      this.#io.err(`error: ${describeError(err)}`);
      return false;
    }
  }

  #argument(command: string, arg: string | undefined): string {
    if (arg === undefined) throw new Error(`${command} needs a user: ${command} USER`);
    return arg;
  }

  async #user(given: string | undefined): Promise<string> {
    return given ?? this.#defaultUser ?? await this.#io.user();
  }

  async #execute(command: string, arg: string | undefined): Promise<void> {
    const io = this.#io;
    switch (command) {
      case "help":
        return io.out(COMMAND_HELP);
      case "close":
        this.#finished = true;
        await this.#chat.stop();
        await this.#client?.close();
        return io.out("closed");
      case "wait":
        return await this.#chat.wait(arg);
    }
    const client = await this.client();
    switch (command) {
      case "hello": {
        const h = await client.hello();
        return io.out(
          `server ${h.server}, protocol ${h.version}, mechanisms ${h.mechanisms.join(" ")}, ` +
            (h.confidential ? "TLS" : "plain TCP (secrets sealed)"),
        );
      }
      case "register": {
        const user = await this.#user(arg);
        return io.out(`registered ${await client.register(user, await io.secret("register"))}`);
      }
      case "login": {
        const user = await this.#user(arg);
        await this.#chat.stop();
        io.out(`logged in as ${await client.login(user, await io.secret("login"))}`);
        // Chat starts once the password is changed (see passwd).
        if (client.mustChangePassword) return io.err(MUST_CHANGE_PASSWORD);
        return await this.#chat.start(client);
      }
      case "is_logged": {
        const state = await client.isLogged();
        io.out(state.loggedIn ? `logged in as ${state.user}` : "not logged in");
        if (state.mustChangePassword) io.err(MUST_CHANGE_PASSWORD);
        return;
      }
      case "access": {
        const a = await client.access();
        io.out(`user ${a.user}`);
        io.out(`created ${a.created}`);
        io.out(`last login ${a.last_login ?? "never (this is the first)"}`);
        return io.out(a.resource);
      }
      case "passwd": {
        if (client.user === null) throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: log in first");
        const current = await io.secret("current");
        const restricted = client.mustChangePassword;
        await client.passwd(current, await io.secret("new"));
        io.out("password changed");
        // The session was held back until now: it goes online as after a login.
        if (restricted) await this.#chat.start(client);
        return;
      }
      case "delete": {
        if (client.user === null) throw new ProtocolError("NOT_LOGGED_IN", "Not logged in: log in first");
        const name = await client.deleteAccount(await io.secret("current"));
        await this.#chat.stop();
        return io.out(`account ${name} deleted`);
      }
      case "logout":
        await client.logout();
        await this.#chat.stop();
        return io.out("logged out");
      case "list":
        return await this.#chat.list(client);
      case "fingerprint":
        return await this.#chat.fingerprint(client, this.#argument(command, arg));
      case "trust":
        return await this.#chat.trust(client, this.#argument(command, arg));
    }
  }
}
