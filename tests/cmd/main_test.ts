import assert from "node:assert/strict";
import type { Command } from "commander";
import { CLIENT_CONFIG_KEYS } from "../../lib/client/client_config.ts";
import type { ClientConfigKey } from "../../lib/client/client_config.ts";
import { clientConfigSources, configSources, createProgram } from "../../cmd/main.ts";

/** Parse with the real program, running no action: the subcommand chosen, with its options. */
function parsed(args: string[]): Command {
  const { program } = createProgram();
  let chosen: Command | undefined;
  for (const sub of program.commands) {
    sub.action((...actionArgs: unknown[]) => {
      chosen = actionArgs.at(-1) as Command;
    });
  }
  program.parse(args, { from: "user" });
  assert.ok(chosen, "a subcommand ran");
  return chosen;
}

const noEnv = () => undefined;

/** A value for the flag of each key that takes one. */
const VALUES: Partial<Record<ClientConfigKey, string>> = {
  host: "h.example",
  port: "2000",
  ca: "ca.pem",
  fingerprint: "SHA256:x",
  user: "alice",
  password_file: "pw",
  new_password_file: "new.pw",
  known_hosts: "kh",
  known_peers: "kp",
  device_tokens: "dt",
  server_udp_port: "2001",
};

Deno.test("clientConfigSources takes every client configuration key from its own flag, and only flags given", () => {
  const args = CLIENT_CONFIG_KEYS.flatMap((key) => {
    const flag = `--${key.replaceAll("_", "-")}`;
    return VALUES[key] === undefined ? [flag] : [flag, VALUES[key]];
  });
  const sources = clientConfigSources(parsed(["client", "--config", "c.yaml", ...args]), noEnv);
  assert.equal(sources.file, "c.yaml");
  assert.deepEqual(Object.keys(sources.flags ?? {}).sort(), [...CLIENT_CONFIG_KEYS].sort());
  assert.equal(sources.flags?.password_file, "pw");
  assert.equal(sources.flags?.port, 2000);
  assert.equal(sources.flags?.keep_going, true);

  const none = clientConfigSources(parsed(["client"]), noEnv);
  assert.deepEqual(none.flags, {}, "defaults are the loader's, not flags");
  assert.equal("file" in none, false);
  assert.deepEqual(clientConfigSources(parsed(["client", "--no-tls"]), noEnv).flags, { tls: false });
});

Deno.test("configSources takes the server's and seed's keys from the flags given", () => {
  const server = configSources(
    parsed(["server", "--config", "s.yaml", "--data", "d", "--tcp-port", "0", "--no-udp"]),
    noEnv,
  );
  assert.equal(server.file, "s.yaml");
  assert.deepEqual(server.flags, { data_dir: "d", tcp_port: 0, udp: false });
  assert.deepEqual(configSources(parsed(["server"]), noEnv).flags, {});
  const seed = configSources(parsed(["seed", "--data", "d", "--iterations", "5000", "--demo"]), noEnv);
  assert.deepEqual(seed.flags, { data_dir: "d", scram_iterations: 5000 });
  assert.equal("file" in seed, false);
  // Errors name the flag typed, not the key it sets.
  assert.equal(server.flagNames?.data_dir, "--data");
  assert.equal(server.flagNames?.tcp_port, "--tcp-port");
  assert.equal(seed.flagNames?.scram_iterations, "--iterations");
});

Deno.test("configSources takes udp_sessions from --no-udp-sessions, apart from --no-udp", () => {
  assert.deepEqual(configSources(parsed(["server", "--no-udp-sessions"]), noEnv).flags, {
    udp_sessions: false,
  });
  assert.deepEqual(configSources(parsed(["server", "--no-udp"]), noEnv).flags, { udp: false });
});

Deno.test("configSources takes the metrics port and host from their flags", () => {
  const server = configSources(parsed(["server", "--metrics-port", "0", "--metrics-host", "::1"]), noEnv);
  assert.deepEqual(server.flags, { metrics_port: 0, metrics_host: "::1" });
  assert.equal(server.flagNames?.metrics_port, "--metrics-port");
  assert.throws(() => parsed(["server", "--metrics-port", "65536"]), /Expected an integer within 0\.\.65535/);
});
