/**
 * The chat commands of the client's command language (`list`, `send`,
 * `fingerprint`, `trust`, `wait`) and the printing of what arrives: messages
 * as `msg from USER: TEXT`, presence as `presence: USER online|offline`.
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
import type { CommandIO } from "./command_runner.ts";
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

/**
 * Text from another user made safe for one terminal line: control characters (which could move the
 * cursor, clear the screen or fake a line of output) are shown escaped.
 *
 * @example
 * ```ts
 * import { printable } from "./_chat_commands.ts";
 * console.assert(printable("a\nb\u001b[2J") === "a\\nb\\u001b[2J");
 * ```
 *
 * @param text The text.
 * @returns One printable line.
 */
export function printable(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex -- matching control characters is the point
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => c === "\n" ? "\\n" : c === "\t" ? "\\t" : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** Runs the chat commands for a {@linkcode CommandRunner}. */
export class ChatCommands {
  #io: CommandIO;
  #settings: ChatSettings | undefined;
  #node: ChatNode | null = null;
  #starting: Promise<void> | null = null;
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

  /**
   * Start receiving after a login: bind UDP and meet the server's rendezvous.
   *
   * @param client The logged-in connection.
   */
  async start(client: AuthchatClient): Promise<void> {
    const chat = client.chat;
    const settings = this.#settings;
    if (!settings || !chat) return;
    if (!chat.identity) return this.#io.err(`warning: direct messages unavailable: ${chat.identityError}`);
    if (!chat.udp) return this.#io.err("warning: direct messages unavailable: the server does not serve UDP");
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
          onMessage: (from, text) => this.#io.out(`msg from ${from}: ${printable(text)}`),
          onWarning: (line) => this.#io.err(line),
          ...(settings.relayOnly ? { relayOnly: true } : {}),
          ...(settings.sendTimeoutMs === undefined ? {} : { sendTimeoutMs: settings.sendTimeoutMs }),
        });
      } catch (err) {
        this.#io.err(`warning: direct messages unavailable: ${describeError(err)}`);
      }
    })();
    await this.#starting;
  }

  /** Stop chat (logout, delete, close, end of session). */
  async stop(): Promise<void> {
    await this.#starting;
    const node = this.#node;
    this.#node = null;
    this.#online.clear();
    await node?.close();
  }

  /**
   * Print a pushed message; a user going offline fails the sends still waiting for them.
   *
   * @param event The message.
   */
  onServerEvent(event: ServerEvent): void {
    if (event.op === "BYE") {
      this.#io.err(`server: ${event.reason} (${event.code})`);
      void this.stop();
      return;
    }
    // An account's first login registers its identity key, which re-announces it online: print once.
    const key = event.user.toLowerCase();
    const known = this.#online.has(key);
    if (event.state === "online") this.#online.add(key);
    else this.#online.delete(key);
    if (!(known && event.state === "online")) this.#io.out(`presence: ${event.user} ${event.state}`);
    // Either way the peer's old session (and address) is gone: the next send looks them up again.
    this.#node?.forget(event.user, `${event.user} went ${event.state}`);
  }

  #requireNode(): ChatNode {
    if (!this.#node) throw new Error("Direct messages are not available: log in first (and see any warning)");
    return this.#node;
  }

  /**
   * `list`.
   *
   * @param client The connection.
   */
  async list(client: AuthchatClient): Promise<void> {
    const users = await client.list();
    const me = client.user === null ? null : prepareUsername(client.user).key;
    for (const u of users) {
      const you = prepareUsername(u.user).key === me ? " (you)" : "";
      this.#io.out(`${u.user} ${u.fingerprint ?? "(no identity key yet)"}${you}`);
    }
    this.#io.out(`${users.length} online`);
  }

  /**
   * `send USER TEXT`.
   *
   * @param client The connection.
   * @param user The recipient.
   * @param text The message.
   * @returns Whether it was delivered.
   */
  async send(client: AuthchatClient, user: string, text: string): Promise<boolean> {
    try {
      if (user === "" || text === "") throw new Error("send needs a user and a message: send USER TEXT");
      if (client.user === null) throw new Error("Not logged in: log in first");
      await this.#requireNode().send(user, text);
      this.#io.out("delivered");
      return true;
    } catch (err) {
      this.#io.err(`error: ${describeError(err)}`);
      return false;
    }
  }

  /**
   * `fingerprint USER`: both keys and the safety number.
   *
   * @param client The connection.
   * @param user The other user.
   */
  async fingerprint(client: AuthchatClient, user: string): Promise<void> {
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
    const state = !pinned
      ? "not pinned yet"
      : current && (await identityFingerprint(current)) !== (await identityFingerprint(pinned))
      ? `CHANGED: pinned ${await identityFingerprint(pinned)}`
      : "pinned";
    this.#io.out(`you (${chat.user}): ${await identityFingerprint(chat.identity.publicKey)}`);
    this.#io.out(`${name}: ${await identityFingerprint(theirs)} (${state})`);
    const number = await safetyNumber(
      { user: prepareUsername(chat.user).key, key: chat.identity.publicKey },
      { user: key, key: theirs },
    );
    this.#io.out(`safety number: ${number}`);
  }

  /**
   * `trust USER`: pin the key the server has for them now.
   *
   * @param client The connection.
   * @param user The user.
   */
  async trust(client: AuthchatClient, user: string): Promise<void> {
    const settings = this.#settings;
    if (!settings) throw new Error("Chat is not available");
    const info = await client.peer(user);
    const key = decodeBase64(info.key);
    if (!key) throw new Error("The server sent an invalid identity key");
    await settings.knownPeers.pin(settings.serverName, prepareUsername(info.user).key, key);
    this.#node?.forget(info.user, "its key was re-trusted");
    this.#io.out(`trusted ${info.user}: ${await identityFingerprint(new Uint8Array(key))}`);
  }

  /**
   * `wait SECONDS`.
   *
   * @param arg The number of seconds.
   */
  async wait(arg: string | undefined): Promise<void> {
    const seconds = Number(arg);
    if (arg === undefined || !Number.isFinite(seconds) || seconds < 0 || seconds > 86_400) {
      throw new Error(`wait needs a number of seconds from 0 to 86400: got ${arg ?? "nothing"}`);
    }
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }
}
