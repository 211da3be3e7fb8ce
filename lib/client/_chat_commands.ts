/**
 * The chat commands of the client's command language (`list`, `send`,
 * `fingerprint`, `trust`, `wait`) and the events of what arrives: messages,
 * presence, the server's goodbye.
 *
 * @module
 */

import { prepareUsername } from "../auth/username.ts";
import { decodeBase64 } from "../codec/base64.ts";
import { describeError } from "../codec/protocol_error.ts";
import { identityFingerprint } from "../crypto/identity_key.ts";
import { safetyNumber } from "../crypto/safety_number.ts";
import type { AuthchatClient, ServerEvent } from "./authchat_client.ts";
import { ChatNode } from "./chat_node.ts";
import type { CommandResult } from "./client_event.ts";
import type { CommandIO } from "./command_io.ts";
import type { KnownPeers } from "./known_peers.ts";

/** Where chat keeps its pins, and how it reaches the server. */
export interface ChatSettings {
  /** Pins of other users' identity keys. */
  knownPeers: KnownPeers;
  /** This server's name in the pin file (`host:port`). */
  serverName: string;
  /** The server's host (its UDP rendezvous is on the same host). */
  serverHost: string;
  /** Always use the server's relay (for networks that block direct UDP). */
  relayOnly?: boolean;
  /** The server's UDP port when it differs from the one the server announces (port forwarding). */
  udpPort?: number;
  /** How long a send may take (default 10 s). */
  sendTimeoutMs?: number;
}

/** Runs the chat commands for a {@linkcode CommandRunner}. */
export class ChatCommands {
  #io: CommandIO;
  #settings: ChatSettings | undefined;
  #node: ChatNode | null = null;
  #starting: Promise<void> | null = null;
  /** Why chat did not start after the last login, so `send` can say so (cleared when chat stops). */
  #unavailable: string | null = null;
  #online = new Set<string>();

  /**
   * Make the chat side.
   *
   * @param io Output.
   * @param settings Pins and server; without them chat is off.
   */
  constructor(io: CommandIO, settings: ChatSettings | undefined) {
    this.#io = io;
    this.#settings = settings;
  }

  #cannotStart(reason: string): void {
    this.#unavailable = reason;
    this.#io.emit({ type: "notice", level: "warning", message: `Direct messages unavailable: ${reason}` });
  }

  /**
   * Start receiving after a login: bind UDP and meet the server's rendezvous. When that cannot be done,
   * a warning says why, and so does `send` later.
   *
   * @param client The logged-in connection.
   */
  async start(client: AuthchatClient): Promise<void> {
    const chat = client.chat;
    const settings = this.#settings;
    // A runner made without chat settings has chat off on purpose: nothing to warn about.
    if (!settings) return void (this.#unavailable = "chat is off in this client");
    if (!chat) return this.#cannotStart("the login gave no chat credentials");
    if (!chat.identity) return this.#cannotStart(chat.identityError ?? "no identity key");
    if (!chat.udp) return this.#cannotStart("the server does not serve UDP");
    const { identity, udp, user } = chat;
    this.#starting = (async () => {
      try {
        this.#node = await ChatNode.start({
          control: {
            user,
            identity,
            udp: settings.udpPort === undefined ? udp : { ...udp, port: settings.udpPort },
            peer: (u) => client.peer(u),
          },
          serverHost: settings.serverHost,
          knownPeers: settings.knownPeers,
          serverName: settings.serverName,
          onMessage: (from, text) => this.#io.emit({ type: "message", from, text }),
          onWarning: (message) => this.#io.emit({ type: "notice", level: "warning", message }),
          ...(settings.relayOnly ? { relayOnly: true } : {}),
          ...(settings.sendTimeoutMs === undefined ? {} : { sendTimeoutMs: settings.sendTimeoutMs }),
        });
      } catch (err) {
        this.#cannotStart(describeError(err));
      }
    })();
    await this.#starting;
  }

  /** Stop chat (logout, delete, close, end of session). */
  async stop(): Promise<void> {
    await this.#starting;
    const node = this.#node;
    this.#node = null;
    this.#unavailable = null;
    this.#online.clear();
    await node?.close();
  }

  /**
   * Report a pushed message; a user going offline fails the sends still waiting for them.
   *
   * @param event The message.
   * @param options `quiet`: the goodbye is not shown (an idle connection the client silently replaces).
   */
  onServerEvent(event: ServerEvent, options: { quiet?: boolean } = {}): void {
    if (event.op === "BYE") {
      if (!options.quiet) this.#io.emit({ type: "bye", code: event.code, reason: event.reason });
      void this.stop();
      return;
    }
    // An account's first login registers its identity key, which re-announces it online: report once.
    const key = event.user.toLowerCase();
    const known = this.#online.has(key);
    if (event.state === "online") this.#online.add(key);
    else this.#online.delete(key);
    if (!(known && event.state === "online")) {
      this.#io.emit({ type: "presence", user: event.user, state: event.state });
    }
    // Offline: what is waiting for them fails. Online: the next send looks them up again, and sends under
    // way follow them to a new session (the notice may also be a late echo of the session they reach).
    if (event.state === "offline") this.#node?.forget(event.user, `${event.user} went offline`);
    else this.#node?.refresh(event.user);
  }

  #requireNode(): ChatNode {
    if (this.#node) return this.#node;
    throw new Error(`Direct messages are not available: ${this.#unavailable ?? "log in first"}`);
  }

  /**
   * `list`.
   *
   * @param client The connection.
   * @returns The users online.
   */
  async list(client: AuthchatClient): Promise<CommandResult> {
    const users = await client.list();
    const me = client.user === null ? null : prepareUsername(client.user).key;
    return {
      command: "list",
      users: users.map((u) => ({
        user: u.user,
        fingerprint: u.fingerprint ?? null,
        you: prepareUsername(u.user).key === me,
      })),
    };
  }

  /**
   * `send USER TEXT`: resolves once the recipient's client acknowledged it.
   *
   * @param client The connection.
   * @param user The recipient.
   * @param text The message.
   * @returns The recipient.
   * @throws {Error} When it cannot be sent or was not acknowledged in time.
   */
  async send(client: AuthchatClient, user: string, text: string): Promise<CommandResult> {
    if (user === "" || text === "") throw new Error("send needs a user and a message: send USER TEXT");
    if (client.user === null) throw new Error("Not logged in: log in first");
    await this.#requireNode().send(user, text);
    return { command: "send", to: user };
  }

  /**
   * `fingerprint USER`: both keys and the safety number.
   *
   * @param client The connection.
   * @param user The other user.
   * @returns Both fingerprints, the pin state and the safety number.
   */
  async fingerprint(client: AuthchatClient, user: string): Promise<CommandResult> {
    const chat = client.chat;
    const settings = this.#settings;
    if (!chat?.identity || !settings) throw new Error("No identity key: log in first");
    const key = prepareUsername(user).key;
    const pinned = await settings.knownPeers.pinned(settings.serverName, key);
    let current: Uint8Array<ArrayBuffer> | undefined;
    let name = user;
    try {
      const info = await client.peer(user);
      name = info.user;
      current = decodeBase64(info.key) ?? undefined;
    } catch {
      // Offline: the pinned key is all there is.
    }
    const theirs = current ?? pinned;
    if (!theirs) throw new Error(`No identity key known for ${user}: they are offline and not pinned`);
    const theirPrint = await identityFingerprint(theirs);
    const pinnedPrint = pinned ? await identityFingerprint(pinned) : null;
    const number = await safetyNumber(
      { user: prepareUsername(chat.user).key, key: chat.identity.publicKey },
      { user: key, key: theirs },
    );
    return {
      command: "fingerprint",
      user: chat.user,
      fingerprint: await identityFingerprint(chat.identity.publicKey),
      peer: name,
      peer_fingerprint: theirPrint,
      pin: pinnedPrint === null ? "new" : pinnedPrint === theirPrint ? "pinned" : "changed",
      pinned_fingerprint: pinnedPrint,
      safety_number: number,
    };
  }

  /**
   * `trust USER`: pin the key the server has for them now.
   *
   * @param client The connection.
   * @param user The user.
   * @returns The user and the fingerprint now pinned.
   */
  async trust(client: AuthchatClient, user: string): Promise<CommandResult> {
    const settings = this.#settings;
    if (!settings) throw new Error("Chat is not available");
    const info = await client.peer(user);
    const key = decodeBase64(info.key);
    if (!key) throw new Error("The server sent an invalid identity key");
    await settings.knownPeers.pin(settings.serverName, prepareUsername(info.user).key, key);
    this.#node?.forget(info.user, "its key was re-trusted");
    return { command: "trust", user: info.user, fingerprint: await identityFingerprint(new Uint8Array(key)) };
  }

  /**
   * `wait SECONDS`: stay online that long (messages and presence are reported meanwhile).
   *
   * @param arg The number of seconds.
   * @param signal Ends the wait early (Ctrl-C at the terminal).
   * @param session Aborted, with the reason as an `Error`, when the session waited on ends.
   * @returns The seconds asked for.
   * @throws {Error} For a bad number, `Interrupted` when `signal` aborted it, or `session`'s reason.
   */
  async wait(arg: string | undefined, signal?: AbortSignal, session?: AbortSignal): Promise<CommandResult> {
    const seconds = Number(arg);
    if (arg === undefined || !Number.isFinite(seconds) || seconds < 0 || seconds > 86_400) {
      throw new Error(`wait needs a number of seconds from 0 to 86400: got ${arg ?? "nothing"}`);
    }
    if (signal?.aborted) throw new Deno.errors.Interrupted("Interrupted");
    if (session?.aborted) throw session.reason;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", abort);
        session?.removeEventListener("abort", end);
      };
      const abort = () => {
        done();
        reject(new Deno.errors.Interrupted("Interrupted"));
      };
      const end = () => {
        done();
        reject(session!.reason);
      };
      const timer = setTimeout(() => (done(), resolve()), seconds * 1000);
      signal?.addEventListener("abort", abort, { once: true });
      session?.addEventListener("abort", end, { once: true });
    });
    return { command: "wait", seconds };
  }
}
