/**
 * `authchat client`: an interactive REPL on a terminal, otherwise commands
 * from `--exec` flags or stdin lines (scripted mode). Exit statuses: 0 every
 * command succeeded, 1 a command failed, 2 usage or configuration error,
 * 3 cannot connect, 4 the server's key is not trusted (changed, or not the
 * pinned one). The REPL exits 0 when left with `close` or Ctrl-D.
 *
 * @module
 */

import { AuthchatClient } from "../lib/client/authchat_client.ts";
import type { ClientOptions } from "../lib/client/authchat_client.ts";
import type { ClientConfig } from "../lib/client/client_config.ts";
import type { CommandIO } from "../lib/client/command_io.ts";
import { commandOf, CommandRunner } from "../lib/client/command_runner.ts";
import { configDir, configDirEnv } from "../lib/client/config_dir.ts";
import { describeConnectFailure } from "../lib/client/connect_error.ts";
import { defaultDeviceTokensPath, DeviceTokens } from "../lib/client/device_tokens.ts";
import { defaultKnownHostsPath, KnownHosts, TrustError } from "../lib/client/known_hosts.ts";
import { defaultKnownPeersPath, KnownPeers } from "../lib/client/known_peers.ts";
import { endpointName } from "../lib/client/open_connection.ts";
import type { Endpoint } from "../lib/client/open_connection.ts";
import { DEFAULT_UDP_PORT, puzzleProgressLine } from "../lib/client/open_udp_session.ts";
import type { KeyKind } from "../lib/client/known_hosts.ts";
import { ProtocolError } from "../lib/codec/protocol_error.ts";
import { eventPrinter, printPlain, secretIO } from "./_client_io.ts";
import type { Printer } from "./_client_io.ts";
import { LineEditor } from "./_line_editor.ts";
import { LineInput } from "./_line_input.ts";
import { UsageError } from "./_usage_error.ts";

/** The client's exit statuses (its `--help` lists them). */
export const CLIENT_EXIT = {
  /** Every command succeeded (or the REPL was left). */
  ok: 0,
  /** A command failed. */
  failed: 1,
  /** Bad flags or configuration. */
  usage: 2,
  /** The server could not be reached or refused the connection. */
  connect: 3,
  /** The server's key is not the trusted one (changed since first use, or not the pinned one). */
  trust: 4,
} as const;

/** What the first-use notice calls each kind of server key. */
const KEY_NAMES: Record<KeyKind, string> = {
  tls: "TLS certificate",
  udp: "UDP session certificate",
  seal: "sealing key",
};

/**
 * Why a connection could not be made, as the user sees it: the one place that maps a connect error to
 * its message and exit status.
 *
 * @param err What connecting threw.
 * @param endpoint Where it tried.
 * @returns An error to report (a protocol error keeps its code) and the exit status it calls for.
 */
export function connectFailure(err: unknown, endpoint: Endpoint): { error: Error; status: 3 | 4 } {
  if (err instanceof TrustError) return { error: err, status: CLIENT_EXIT.trust };
  if (err instanceof ProtocolError) {
    // The printer adds the code: the message must not carry it already.
    const plain = describeConnectFailure(new Error(err.message), endpoint);
    return { error: new ProtocolError(err.code, plain, err.details), status: CLIENT_EXIT.connect };
  }
  return { error: new Error(describeConnectFailure(err, endpoint)), status: CLIENT_EXIT.connect };
}

/**
 * Run the client.
 *
 * @param config The resolved configuration (flags over file over defaults).
 * @param exec Commands of `--exec`, in order (scripted mode without reading stdin for commands).
 * @returns The exit status, see {@linkcode CLIENT_EXIT}.
 * @throws {UsageError} When a file the configuration names cannot be read, or no configuration
 *   directory can be found for the known-hosts file.
 */
export async function runClient(config: ClientConfig, exec: string[] = []): Promise<number> {
  const env = configDirEnv((name) => Deno.env.get(name));
  if (configDir(env) === null && (config.known_hosts === undefined || config.known_peers === undefined)) {
    throw new UsageError(
      "No configuration directory for known_hosts and known_peers: set HOME, XDG_CONFIG_HOME or " +
        "AUTHCHAT_CONFIG_DIR, or pass --known-hosts and --known-peers",
    );
  }
  const knownHostsPath = config.known_hosts ?? defaultKnownHostsPath(env);
  // Without a configuration directory, tokens are kept only in a file named for them: none otherwise.
  const deviceTokensPath = config.device_tokens ??
    (configDir(env) === null ? undefined : defaultDeviceTokensPath(env));
  let ca: string | undefined;
  if (config.ca !== undefined) {
    try {
      ca = await Deno.readTextFile(config.ca);
    } catch (err) {
      throw new UsageError(`Cannot read the CA file ${config.ca}: ${(err as Error).message}`);
    }
  }

  const terminal = Deno.stdin.isTerminal();
  const interactive = terminal && exec.length === 0;
  // On a terminal the editor owns stdin; in --exec mode it is made only if a prompt is needed.
  let editor: LineEditor | null = interactive ? new LineEditor() : null;
  const lineEditor = () => editor ??= new LineEditor();
  const lines = terminal ? undefined : new LineInput();
  const print: Printer = (stream, text) => editor ? editor.print(stream, text) : printPlain(stream, text);
  const emit = eventPrinter(config.json, print);

  const options: ClientOptions = {
    host: config.host,
    port: config.port ?? (config.tls ? 1992 : config.udp ? DEFAULT_UDP_PORT : 1991),
    tls: config.tls,
    ...(config.udp
      ? {
        udp: true,
        udpSession: {
          onPuzzleProgress: (progress) =>
            emit({ type: "notice", level: "info", message: puzzleProgressLine(progress) }),
        },
      }
      : {}),
    trust: {
      knownHosts: new KnownHosts(knownHostsPath),
      onNewKey: (kind, endpoint, fp) =>
        emit({
          type: "notice",
          level: "info",
          message: `Trusting ${KEY_NAMES[kind]} of ${endpoint} on first ` +
            `use: ${fp}\n(remembered in ${knownHostsPath}; compare it with the fingerprint authchat keygen printed)`,
        }),
      ...(ca === undefined ? {} : { ca }),
      ...(config.fingerprint === undefined ? {} : { fingerprint: config.fingerprint }),
    },
    ...(deviceTokensPath === undefined ? {} : { deviceTokens: new DeviceTokens(deviceTokensPath) }),
    onWarning: (message) => emit({ type: "notice", level: "warning", message }),
  };
  const io: CommandIO = {
    emit,
    ...secretIO({
      passwordFile: config.password_file,
      newPasswordFile: config.new_password_file,
      ...(terminal ? { terminal: lineEditor } : {}),
      ...(lines ? { lines } : {}),
    }),
  };
  /** The worst connect failure so far: it decides the exit status when commands failed. */
  let connectStatus = 0;
  const runner = new CommandRunner(
    async (handlers) => {
      try {
        return await AuthchatClient.connect({ ...options, ...handlers });
      } catch (err) {
        const failure = connectFailure(err, options);
        connectStatus = Math.max(connectStatus, failure.status);
        throw failure.error;
      }
    },
    io,
    {
      user: config.user,
      reconnect: interactive,
      chat: {
        knownPeers: new KnownPeers(config.known_peers ?? defaultKnownPeersPath(env)),
        serverName: endpointName(options),
        serverHost: options.host,
        ...(config.relay ? { relayOnly: true } : {}),
        ...(config.server_udp_port === undefined ? {} : { udpPort: config.server_udp_port }),
      },
    },
  );

  let failures = 0;
  let ran = 0;
  let stopped = false;
  try {
    if (interactive) {
      await repl(runner, editor!, options);
    } else {
      // Scripted: --exec commands, else stdin lines; the first failure stops the rest unless keep_going.
      const next = exec.length > 0
        ? (i: number) =>
          Promise.resolve(i < exec.length ? { line: exec[i]!, source: `in --exec ${i + 1}` } : null)
        : async () => {
          const line = await lines!.readLine();
          return line === null ? null : { line, source: `on line ${lines!.lineNumber}` };
        };
      for (let i = 0; !runner.finished; i++) {
        const command = await next(i);
        if (command === null) break;
        ran++;
        if (await runner.run(command.line, { source: command.source })) continue;
        failures++;
        if (!config.keep_going) {
          stopped = exec.length === 0 || i < exec.length - 1;
          break;
        }
      }
    }
  } finally {
    await runner.close();
    editor?.close();
  }
  // Said only when it adds to the error line: the script held more than the one command that failed.
  if (failures > 0 && (stopped || ran > 1) && !config.json) {
    printPlain(
      "stderr",
      stopped
        ? "stopped at the first failed command (--keep-going runs the rest)"
        : `${failures} command${failures === 1 ? "" : "s"} failed`,
    );
  }
  return failures === 0 ? CLIENT_EXIT.ok : Math.max(CLIENT_EXIT.failed, connectStatus);
}

/** How the banner names the transport. */
function transportName(endpoint: Endpoint): string {
  return endpoint.udp ? "a UDP session" : endpoint.tls ? "TLS" : "plain TCP";
}

/** The interactive loop: a prompt, the session's history, Ctrl-C ends a `wait`, Ctrl-D or `close` leaves. */
async function repl(runner: CommandRunner, editor: LineEditor, endpoint: Endpoint): Promise<void> {
  editor.print(
    "stderr",
    `authchat client for ${endpointName(endpoint)} over ${transportName(endpoint)} ` +
      "(it connects when a command needs the server). Type help for commands; close or Ctrl-D leaves.",
  );
  while (!runner.finished) {
    // A line typed ahead that is no command may be a password for a prompt that never came: not shown.
    const line = await editor.readLine("authchat> ", {
      showTypedAhead: (ahead) => commandOf(ahead) !== null,
    });
    if (line === null) break;
    // Only commands are remembered: a password typed at the wrong prompt must not be recalled.
    if (commandOf(line) !== null) editor.addHistory(line.trim());
    const interrupt = new AbortController();
    editor.onInterrupt = () => interrupt.abort();
    try {
      await runner.run(line, { signal: interrupt.signal });
    } finally {
      editor.onInterrupt = null;
    }
  }
}
