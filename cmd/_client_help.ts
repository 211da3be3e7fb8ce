/**
 * The part of `authchat client --help` after the flags: commands, modes, output and its JSON schema,
 * exit statuses, configuration and environment.
 *
 * @module
 */

/** Help text shown after the client's flags. */
export const CLIENT_HELP: string = `
Commands: hello, register, login, is_logged, access, passwd, delete, logout, close, help,
list, send USER TEXT, fingerprint USER, trust USER, wait SECONDS (type help in the client).

On a terminal: a prompt with line editing and a history of the session's commands (arrow keys),
hidden password prompts (a new password is checked against the server's policy, then asked again;
passwd checks the current one first), and messages printed above the line being typed. Ctrl-C drops
the line (or cancels a prompt, or ends a wait); close or Ctrl-D leaves. The connection opens when a
command first needs the server; one the server closed (idle without a login) is replaced silently.

Scripted (--exec, or commands on stdin when it is not a terminal): a password comes from
--password-file / --new-password-file, else from the next stdin line (passwd reads the current one,
then the new one). A script stops at its first failed command unless --keep-going. A line that is not
a command is reported by its number, never repeated (it may be a password).

Output: results on stdout; errors (error: ...), notices and prompts on stderr. Messages print as
'msg from USER: TEXT', presence as 'presence: USER online|offline'.
--json prints one JSON object per line on stdout, and nothing else there:
  {"type":"reply","ok":true,"command":"login","user":"alice","must_change_password":false}
  {"type":"reply","ok":false,"command":"login","error":{"code":"AUTH_FAILED","message":"..."}}
  {"type":"message","from":"bob","text":"hi"}
  {"type":"presence","user":"bob","state":"online"}
  {"type":"bye","code":"SHUTDOWN","reason":"..."}
  {"type":"notice","level":"info","message":"..."}               (level info or warning)
A reply carries its command's fields (README lists them); error.code is a protocol error code, or
null; command is null for a line that is not a command.

Over UDP (--udp, or udp: true): the whole session runs on the server's UDP port (default 1991), for
networks where only UDP gets through; every command works and prints as over TCP or TLS. The server
is trusted as on TLS (its certificate: --ca, --fingerprint, or known_hosts, kind udp). A server under
load asks for a proof of work first: progress is shown once a second after the first second, and one
above 24 bits is refused (exit status 3). Messages to and from peers use UDP as always.

Exit status: 0 every command succeeded (the REPL: left with close or Ctrl-D), 1 a command failed,
2 usage or configuration error, 3 cannot connect to the server, 4 the server's key is not trusted
(changed since first use, or not the one --ca or --fingerprint names).

Configuration: --config FILE, else client.yaml in the configuration directory when present. Its keys
mirror the flags (password_file for --password-file); config/client.example.yaml documents each.
Flags win over the file, the file over defaults. Without --ca or --fingerprint the first server key
seen is remembered in known_hosts and a changed one is refused. Each login's device token is kept in
device_tokens and shown at the next login to that server: strangers' failed guesses do not hold it back.

Environment:
  AUTHCHAT_CONFIG_DIR  the configuration directory (client.yaml, known_hosts, known_peers, device_tokens)
  XDG_CONFIG_HOME      else $XDG_CONFIG_HOME/authchat
  HOME                 else ~/.config/authchat
  TERM                 dumb turns line editing off

Examples: authchat client --tls --user alice --password-file pw --exec login --exec access
          authchat client --udp --user alice --password-file pw --exec login --exec access`;
