/**
 * The mistakes a newcomer makes first, against real processes: the wrong port
 * or protocol for the client, nothing listening, a port already taken, and
 * configuration the server cannot use. Each gives one line saying what
 * happened and what to do.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { installKeys, ROOT, runCli, runProgram, ServerProcess, tempDir } from "./_harness.ts";
import { encodeMessage, parseJsonObject, peekId } from "../../lib/codec/messages.ts";

/** A port nothing listens on: bound, then closed. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("authchat client without --tls on the TLS port says to add --tls (exit 3)", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data);
  const result = await runCli("client", ["--port", String(server.tlsPort), "--exec", "hello"], {
    env: { XDG_CONFIG_HOME: dir.path },
  });
  assert.equal(
    result.stderr,
    `error: Cannot connect to 127.0.0.1:${server.tlsPort}: it speaks TLS: add --tls\n`,
  );
  assert.equal(result.code, 3);
  assert.equal(result.stdout, "");
});

Deno.test("authchat client with --tls on the plain TCP port says to drop --tls (exit 3)", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  await using server = await ServerProcess.start(data);
  const result = await runCli("client", ["--tls", "--port", String(server.tcpPort), "--exec", "hello"], {
    env: { XDG_CONFIG_HOME: dir.path },
  });
  assert.equal(
    result.stderr,
    `error: Cannot connect to 127.0.0.1:${server.tcpPort}: it does not speak TLS (a plain TCP authchat ` +
      "port?): drop --tls, or use the TLS port (default 1992)\n",
  );
  assert.equal(result.code, 3);
});

Deno.test("authchat client says the same over TCP and TLS when nothing listens: start the server (exit 3)", async () => {
  await using dir = await tempDir();
  const port = freePort();
  for (const tls of [[], ["--tls"]]) {
    const result = await runCli("client", [...tls, "--port", String(port), "--exec", "hello"], {
      env: { XDG_CONFIG_HOME: dir.path },
    });
    assert.equal(
      result.stderr,
      `error: Cannot connect to 127.0.0.1:${port}: nothing is listening there (connection refused): start ` +
        "the server (deno task start, or authchat server), or check --host and --port\n",
      tls.join(""),
    );
    assert.equal(result.code, 3);
  }
});

Deno.test("authchat server on a port already taken names the port and its key, for TCP, TLS and UDP (exit 2)", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  await installKeys(data);
  for (const key of ["tcp_port", "tls_port", "udp_port"] as const) {
    const taken = key === "udp_port"
      ? Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" })
      : Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (taken.addr as Deno.NetAddr).port;
      const flag = `--${key.replace("_", "-")}`;
      const ports = ["--tcp-port", "--tls-port", "--udp-port"].flatMap((
        f,
      ) => [f, f === flag ? String(port) : "0"]);
      const result = await runCli("server", ["--data", data, ...ports]);
      assert.equal(result.code, 2, result.stderr);
      assert.ok(
        result.stderr.endsWith(
          `\nerror: Cannot listen on 127.0.0.1:${port} for ${key}: address already in use (another authchat ` +
            `server?): choose another with ${flag} or ${key} in the config\n`,
        ),
        result.stderr,
      );
      assert.equal(result.stdout, "", "no ready line");
    } finally {
      taken.close();
    }
  }
});

/** Run `deno task start`, whose launcher has a full view of the environment. */
async function serverWithWholeEnvironment(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stderr: string }> {
  // Only what deno itself needs is passed on, so no variable of the test's own environment plays a part.
  const inherited = Object.fromEntries(
    ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME"].flatMap((name) => {
      const value = Deno.env.get(name);
      return value === undefined ? [] : [[name, value]];
    }),
  );
  return await runProgram(Deno.execPath(), ["task", "--quiet", "start", ...args], {
    cwd: ROOT,
    clearEnv: true,
    env: { ...inherited, NO_COLOR: "1", ...env },
  });
}

Deno.test("authchat server refuses a misspelt AUTHCHAT_ variable with one line naming it and the one meant (exit 2)", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  const result = await serverWithWholeEnvironment(["--data", data], { AUTHCHAT_TCP_PROT: "2000" });
  assert.equal(result.code, 2, result.stderr);
  assert.equal(
    result.stderr,
    "error: Invalid configuration AUTHCHAT_TCP_PROT: unknown variable: did you mean AUTHCHAT_TCP_PORT?\n",
  );
  await assert.rejects(Deno.stat(data), Deno.errors.NotFound, "nothing was created");
});

Deno.test("authchat server refuses tls_port equal to tcp_port, a host that does not resolve and broken YAML, each in one line (exit 2)", async () => {
  await using dir = await tempDir();
  const data = join(dir.path, "data");
  const file = join(dir.path, "authchat.yaml");
  const cases: [string, string[], string][] = [
    [
      "tcp_port: 2000\ntls_port: 2000\n",
      [],
      "error: Invalid configuration tls_port: 2000 is tcp_port too: TLS and plain TCP need a port each " +
      "(set another tls_port or tcp_port)\n",
    ],
    [
      "",
      ["--host", "no-such-host.invalid"],
      "error: Invalid configuration host: cannot resolve no-such-host.invalid (no such name): give an address " +
      "of this machine, or a name that resolves to one\n",
    ],
    [
      "name: demo\ntcp_port: 2000\n  tls_port: 2001\n",
      [],
      `error: Invalid configuration tcp_port: not valid YAML in ${file} at line 2, column 11 ("tcp_port: 2000"): ` +
      "Nested mappings are not allowed in compact mappings\n",
    ],
  ];
  for (const [yaml, args, expected] of cases) {
    await Deno.writeTextFile(file, yaml);
    const result = await runCli("server", ["--config", file, "--data", data, ...args]);
    assert.equal(result.stderr, expected);
    assert.equal(result.code, 2);
  }
  await assert.rejects(
    Deno.stat(data),
    Deno.errors.NotFound,
    "no keys were made for a host that is not there",
  );
});

Deno.test("authchat client prints a hostile server's escape sequences escaped, never to the terminal", async () => {
  await using dir = await tempDir();
  // A server (or, on plain TCP, anyone in the path) answering HELLO with terminal control sequences.
  const evil = "\u001b]0;owned\u0007\u001b[2J\u009b31mgotcha";
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = listener.accept().then(async (conn) => {
    try {
      const buffer = new Uint8Array(4096);
      const n = (await conn.read(buffer)) ?? 0;
      const id = peekId(parseJsonObject(buffer.subarray(4, n)));
      await conn.write(encodeMessage({ op: "ERROR", code: "INTERNAL", message: evil, id: id! }));
      await conn.read(buffer);
    } finally {
      conn.close();
    }
  });
  try {
    const port = String((listener.addr as Deno.NetAddr).port);
    const result = await runCli("client", ["--port", port, "--exec", "hello"], {
      env: { XDG_CONFIG_HOME: dir.path },
    });
    assert.equal(result.code, 3, result.stderr);
    assert.ok(
      // deno-lint-ignore no-control-regex -- matching control characters is the point
      !/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(result.stderr + result.stdout),
      result.stderr,
    );
    assert.ok(
      result.stderr.startsWith(
        `error: Cannot connect to 127.0.0.1:${port}: \\u001b]0;owned\\u0007\\u001b[2J\\u009b31mgotcha (INTERNAL)`,
      ),
      result.stderr,
    );
  } finally {
    await serving;
    listener.close();
  }
});
