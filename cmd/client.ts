/**
 * `authchat client`: an interactive REPL on a terminal, otherwise commands
 * from `--exec` flags or stdin lines. Exits 0 only if every command succeeded.
 *
 * @module
 */

import { AuthchatClient } from "../lib/client/authchat_client.ts";
import type { ClientOptions } from "../lib/client/authchat_client.ts";
import { CommandRunner } from "../lib/client/command_runner.ts";
import { describeConnectFailure } from "../lib/client/connect_error.ts";
import type { CommandIO, SecretKind } from "../lib/client/command_runner.ts";
import { defaultKnownHostsPath, KnownHosts } from "../lib/client/known_hosts.ts";
import { defaultKnownPeersPath, KnownPeers } from "../lib/client/known_peers.ts";
import { endpointName } from "../lib/client/open_connection.ts";
import { isFingerprint } from "../lib/crypto/fingerprint.ts";
import { LineInput } from "./_line_input.ts";
import { readPasswordFile } from "./_password_file.ts";
import { UsageError } from "./_usage_error.ts";

/** Flags of `authchat client`. */
export interface ClientFlags {
  host: string;
  port?: number;
  tls?: boolean;
  ca?: string;
  fingerprint?: string;
  user?: string;
  passwordFile?: string;
  newPasswordFile?: string;
  exec?: string[];
  knownHosts?: string;
  knownPeers?: string;
  relay?: boolean;
  serverUdpPort?: number;
}

function write(stream: { writeSync(p: Uint8Array): number }, line: string): void {
  const bytes = new TextEncoder().encode(line + "\n");
  let done = 0;
  while (done < bytes.length) done += stream.writeSync(bytes.subarray(done));
}

/** Secrets from files (scripted mode). */
function fileSecrets(flags: ClientFlags): (kind: SecretKind) => Promise<string> {
  return (kind) => {
    if (kind === "new") {
      if (!flags.newPasswordFile) throw new Error("passwd needs --new-password-file when not on a terminal");
      return readPasswordFile(flags.newPasswordFile, "--new-password-file");
    }
    if (!flags.passwordFile) throw new Error("This command needs --password-file when not on a terminal");
    return readPasswordFile(flags.passwordFile, "--password-file");
  };
}

/** Secrets from hidden prompts (terminal); new passwords are asked twice. */
function promptSecrets(input: LineInput): (kind: SecretKind) => Promise<string> {
  return async (kind) => {
    if (kind === "login" || kind === "current") return await input.readHidden("Password: ");
    const label = kind === "register" ? "Choose a password" : "New password";
    const first = await input.readHidden(`${label}: `);
    if (await input.readHidden("Repeat it: ") !== first) throw new Error("The two passwords do not match");
    return first;
  };
}

/**
 * Run the client.
 *
 * @param flags Parsed flags.
 * @returns Exit code: 0 when every command succeeded, 1 otherwise.
 * @throws {UsageError} For contradictory flags.
 */
export async function runClient(flags: ClientFlags): Promise<number> {
  if (flags.ca !== undefined && flags.fingerprint !== undefined) {
    throw new UsageError("Pass --ca or --fingerprint, not both");
  }
  if (flags.ca !== undefined && !flags.tls) {
    throw new UsageError(
      "--ca applies to TLS: add --tls, or pin the sealing key on plain TCP with --fingerprint",
    );
  }
  if (flags.fingerprint !== undefined && !isFingerprint(flags.fingerprint)) {
    throw new UsageError(
      `Invalid --fingerprint ${flags.fingerprint}: expected SHA256: and 43 base64 characters`,
    );
  }
  const env = {
    AUTHCHAT_CONFIG_DIR: Deno.env.get("AUTHCHAT_CONFIG_DIR"),
    XDG_CONFIG_HOME: Deno.env.get("XDG_CONFIG_HOME"),
    HOME: Deno.env.get("HOME"),
  };
  const knownHostsPath = flags.knownHosts ?? defaultKnownHostsPath(env);
  // Server events reach the runner made below (the connection options must exist first).
  const events: { runner?: CommandRunner } = {};
  const options: ClientOptions = {
    host: flags.host,
    port: flags.port ?? (flags.tls ? 1992 : 1991),
    tls: flags.tls ?? false,
    trust: {
      knownHosts: new KnownHosts(knownHostsPath),
      onNewKey: (kind, endpoint, fp) =>
        write(
          Deno.stderr,
          `Trusting ${
            kind === "tls" ? "TLS certificate" : "sealing key"
          } of ${endpoint} on first use: ${fp}\n` +
            `(remembered in ${knownHostsPath}; compare it with the fingerprint authchat keygen printed)`,
        ),
    },
    onEvent: (event) => events.runner?.onServerEvent(event),
    onClosed: () => events.runner?.onConnectionClosed(),
  };
  if (flags.ca !== undefined) {
    try {
      options.trust.ca = await Deno.readTextFile(flags.ca);
    } catch (err) {
      throw new UsageError(`Cannot read --ca ${flags.ca}: ${(err as Error).message}`);
    }
  }
  if (flags.fingerprint !== undefined) options.trust.fingerprint = flags.fingerprint;

  const interactive = !flags.exec?.length && Deno.stdin.isTerminal();
  const input = new LineInput();
  const io: CommandIO = {
    out: (line) => write(Deno.stdout, line),
    err: (line) => write(Deno.stderr, line),
    secret: interactive ? promptSecrets(input) : fileSecrets(flags),
    user: async () => {
      if (!interactive) throw new Error("No user name: give it as an argument or with --user");
      write(Deno.stderr, "User: ");
      return (await input.readLine())?.trim() || Promise.reject(new Error("No user name given"));
    },
  };
  const runner = new CommandRunner(() => AuthchatClient.connect(options), io, {
    user: flags.user,
    reconnect: interactive,
    chat: {
      knownPeers: new KnownPeers(flags.knownPeers ?? defaultKnownPeersPath(env)),
      serverName: endpointName(options),
      serverHost: options.host,
      ...(flags.relay ? { relayOnly: true } : {}),
      ...(flags.serverUdpPort === undefined ? {} : { udpPort: flags.serverUdpPort }),
    },
  });
  events.runner = runner;

  try {
    await runner.client();
  } catch (err) {
    io.err(`error: ${describeConnectFailure(err, options)}`);
    return 1;
  }
  let failures = 0;
  if (flags.exec?.length) {
    for (const command of flags.exec) {
      if (!await runner.run(command)) failures++;
      if (runner.finished) break;
    }
  } else {
    if (interactive) {
      io.err(
        `Connected to ${options.host}:${options.port}${options.tls ? " (TLS)" : ""}. Type help for commands.`,
      );
    }
    while (!runner.finished) {
      if (interactive) Deno.stderr.writeSync(new TextEncoder().encode("authchat> "));
      const line = await input.readLine();
      if (line === null) break;
      if (!await runner.run(line) && !interactive) failures++;
    }
  }
  await runner.close();
  if (failures > 0) io.err(`${failures} command${failures === 1 ? "" : "s"} failed`);
  return failures === 0 ? 0 : 1;
}
